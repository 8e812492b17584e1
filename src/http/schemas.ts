/** JSON schemas of the request bodies and answers; unknown fields are refused, never stripped. */
import { PASSWORD_MAX, PASSWORD_MIN } from '../service/auth/passwords.ts'

/**
 * No C0/C1 control character (NUL, newline, DEL...): such an email is refused with 400 before
 * any handler runs. Format and other invisible characters are refused by `canonicalEmail`'s
 * check (src/core/email.ts) with the same 400.
 */
export const EMAIL_PATTERN = '^[^\\u0000-\\u001F\\u007F-\\u009F]*$'
const email = { type: 'string', minLength: 3, maxLength: 254, pattern: EMAIL_PATTERN } as const
const password = { type: 'string', minLength: PASSWORD_MIN, maxLength: PASSWORD_MAX } as const
/** A compact JWS is far below this; the bound keeps hashing and parsing cheap. */
const token = { type: 'string', minLength: 1, maxLength: 8192 } as const

export const credentialsBody = {
  type: 'object',
  required: ['email', 'password'],
  additionalProperties: false,
  properties: { email, password },
} as const

export const refreshBody = {
  type: 'object',
  required: ['refreshToken'],
  additionalProperties: false,
  properties: { refreshToken: token },
} as const

export const passwordChangeBody = {
  type: 'object',
  required: ['currentPassword', 'newPassword'],
  additionalProperties: false,
  // The current password is checked against the hash, so any length the hash could hold is allowed.
  properties: { currentPassword: { type: 'string', minLength: 1, maxLength: PASSWORD_MAX }, newPassword: password },
} as const

export interface PasswordChange {
  currentPassword: string
  newPassword: string
}

export const tokenPairReply = {
  type: 'object',
  required: ['accessToken', 'refreshToken', 'tokenType', 'expiresIn'],
  properties: {
    accessToken: { type: 'string' },
    refreshToken: { type: 'string' },
    tokenType: { type: 'string' },
    expiresIn: { type: 'integer' },
  },
} as const

export interface Credentials {
  email: string
  password: string
}

export interface RefreshRequest {
  refreshToken: string
}

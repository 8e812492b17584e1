/** The store layer's public surface: the contract, its records, and `openStore`. */
export { openStore } from './open.ts'
export type { OpenStoreOptions } from './open.ts'
export { CHANGE_CHANNELS } from './store.ts'
export type {
  AuditQuery, ChangeChannel, KeyMutation, MutationOptions, RotateResult, RotateTokenInput, Store, StoreOperations, StoreTx,
} from './store.ts'
export type * from './types.ts'
export { maskLocation } from './errors.ts'

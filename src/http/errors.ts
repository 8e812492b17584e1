/**
 * Mapping every failure to `{ error, message }` with the right status: RekeyError codes from
 * the catalog, the service's snake-case codes, Fastify's own errors. Never a stack trace.
 */
import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { isRekeyError } from '../core/errors.ts'
import { SERVICE_ERRORS, ServiceError, type ServiceErrorCode } from '../service/errors.ts'

/** Seconds a client should wait after a 503 caused by the store. */
export const STORE_RETRY_AFTER_SECONDS = 5

function body(code: string, message: string): { error: string, message: string } {
  return { error: code, message }
}

function fromFastify(err: FastifyError): { status: number, code: ServiceErrorCode, message?: string } | null {
  if (err.validation !== undefined) return { status: 400, code: 'validation_failed', message: err.message }
  switch (err.code) {
    case 'FST_ERR_BAD_URL': return { status: 400, code: 'bad_request', message: 'The URL is malformed (a bad percent-encoding)' }
    case 'FST_ERR_CTP_BODY_TOO_LARGE': return { status: 413, code: 'payload_too_large' }
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': return { status: 415, code: 'unsupported_media_type' }
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH': return { status: 400, code: 'invalid_json' }
  }
  if (err instanceof SyntaxError || err.statusCode === 400) return { status: 400, code: 'invalid_json' }
  if (err.statusCode === 429) return { status: 429, code: 'rate_limited', message: err.message }
  if (err.statusCode === 413) return { status: 413, code: 'payload_too_large' }
  if (err.statusCode === 415) return { status: 415, code: 'unsupported_media_type' }
  return null
}

/** The app's error handler; also Fastify's `frameworkErrors` (a malformed URL such as `/%`, refused by the router before any route). */
export function handleError(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  if (isRekeyError(err)) {
    if (err.code === 'ERR_STORE_UNAVAILABLE') {
      request.log.warn({ reqId: request.id, err: { code: err.code, message: err.message } }, 'store unavailable')
      void reply.header('retry-after', String(STORE_RETRY_AFTER_SECONDS)).code(503).send(body(err.code, 'The store is unavailable; retry later'))
      return
    }
    if (err.status === 401) void reply.header('www-authenticate', 'Bearer error="invalid_token"')
    if (err.status >= 500) request.log.error({ reqId: request.id, err }, 'request failed')
    void reply.code(err.status).send(body(err.code, err.message))
    return
  }
  if (err instanceof ServiceError) {
    if (err.retryAfter !== undefined) void reply.header('retry-after', String(err.retryAfter))
    void reply.code(err.status).send(err.details === undefined ? body(err.code, err.message) : { ...err.details, ...body(err.code, err.message) })
    return
  }
  const mapped = fromFastify(err)
  if (mapped !== null) {
    void reply.code(mapped.status).send(body(mapped.code, mapped.message ?? SERVICE_ERRORS[mapped.code].message))
    return
  }
  request.log.error({ reqId: request.id, err }, 'unexpected error')
  void reply.code(500).send(body('internal_error', SERVICE_ERRORS.internal_error.message))
}

/** The answer to an unknown route. */
export function handleNotFound(request: FastifyRequest, reply: FastifyReply): void {
  void reply.code(404).send(body('not_found', `No route ${request.method} ${request.url.split('?')[0]}`))
}

/**
 * An `onRequest` hook: an HTTP/1.1 request without a `Host` header (or with an empty one) is
 * refused with 400, as Node does by default (`requireHostHeader`), but in the service's body
 * rather than Node's empty one; the connection then closes, as Node's does.
 */
export function refuseMissingHost(request: FastifyRequest, reply: FastifyReply, done: () => void): void {
  if (request.raw.httpVersion !== '1.1' || (request.headers.host ?? '') !== '') {
    done()
    return
  }
  void reply.code(400).header('connection', 'close').send(body('bad_request', 'The request has no Host header (HTTP/1.1 requires one)'))
}

/**
 * Fastify's `clientErrorHandler`: a request Node's parser refused before Fastify saw it (headers
 * over the size limit, a request that timed out, bytes that are not HTTP). The socket is
 * answered once with the service's own body and then closed, as Node itself does.
 */
export function handleClientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const code: ServiceErrorCode = err.code === 'HPE_HEADER_OVERFLOW' ? 'headers_too_large'
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'request_timeout' : 'bad_request'
  const { status, message } = SERVICE_ERRORS[code]
  const payload = JSON.stringify(body(code, message))
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Length: ${Buffer.byteLength(payload)}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${payload}`)
  }
  socket.destroy()
}

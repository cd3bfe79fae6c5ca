// Provider failures, whatever their shape, become one stable code, an HTTP status and a safe message.
import { StreamInterruptedError } from "../converter"
import type { ErrorCode, ErrorPart } from "../parts"
import { isApiError, isSdkError } from "./sdks"
import { UpstreamClosedError, UpstreamStalledError } from "./transport"

export type Failure = { status: number; code: ErrorCode; message: string; retryAfter?: number }

const BY_TYPE: Record<string, ErrorCode> = {
  overloaded_error: "provider_overloaded",
  rate_limit_error: "rate_limited",
  authentication_error: "provider_auth_failed",
  permission_error: "provider_auth_failed",
  invalid_request_error: "provider_rejected_request",
  not_found_error: "model_not_found",
  request_too_large: "payload_too_large",
  api_error: "provider_error",
  timeout_error: "provider_timeout",
}

const STATUS_OF: Record<ErrorCode, number> = {
  invalid_json: 400,
  invalid_request: 400,
  run_not_found: 404,
  run_exists: 409,
  run_truncated: 410,
  run_abandoned: 499,
  run_stopped: 499,
  unsupported_media_type: 415,
  payload_too_large: 413,
  not_found: 404,
  method_not_allowed: 405,
  origin_not_allowed: 403,
  unknown_provider: 400,
  provider_not_configured: 503,
  model_not_allowed: 400,
  model_not_found: 400,
  provider_rejected_request: 400,
  provider_auth_failed: 502,
  rate_limited: 429,
  provider_overloaded: 503,
  provider_error: 502,
  provider_unreachable: 502,
  provider_timeout: 504,
  provider_stalled: 504,
  stream_interrupted: 502,
  duration_exceeded: 504,
  shutdown: 503,
  shutting_down: 503,
  unauthorized: 401,
  byok_missing: 401,
  too_many_streams: 429,
  server_busy: 503,
  too_many_requests: 429,
  too_many_messages: 400,
  input_too_large: 413,
  max_tokens_too_large: 400,
  internal_error: 500,
}

function codeForStatus(status: number): ErrorCode {
  if (status === 401 || status === 403) return "provider_auth_failed"
  if (status === 404) return "model_not_found"
  if (status === 413) return "payload_too_large"
  if (status === 429) return "rate_limited"
  if (status === 529 || status === 503) return "provider_overloaded"
  if (status === 408 || status === 504) return "provider_timeout"
  if (status >= 400 && status < 500) return "provider_rejected_request"
  return "provider_error"
}

/** Classifies anything a provider call can throw; `provider` names it in messages. */
export function classifyError(error: unknown, provider: string): Failure {
  if (error instanceof UpstreamStalledError) return failure("provider_stalled", `${provider} sent nothing for ${error.ms / 1000} s`)
  if (error instanceof StreamInterruptedError) return failure("stream_interrupted", error.message)
  if (error instanceof UpstreamClosedError)
    return failure("stream_interrupted", `${provider} closed the connection before the response was complete`)
  // The SDKs throw the JSON parser's error for an event they cannot read.
  if (error instanceof SyntaxError) return failure("provider_error", `${provider} sent an event stream sidechat could not read`)
  if (isSdkError(error, "APIConnectionTimeoutError")) return failure("provider_timeout", `${provider} did not answer in time`)
  if (isSdkError(error, "APIConnectionError")) return failure("provider_unreachable", `could not reach ${provider}`)
  if (isApiError(error)) {
    const body = (error.error ?? {}) as { type?: string; message?: string; error?: { type?: string; message?: string } }
    const type = body.error?.type ?? body.type
    // OpenAI answers a bad key with 401 and type invalid_request_error: the status says more.
    const auth = error.status === 401 || error.status === 403
    const code = auth ? "provider_auth_failed" : (type && BY_TYPE[type]) || (error.status ? codeForStatus(error.status) : "provider_error")
    const given: unknown = body.error?.message ?? body.message
    // Some compatible servers send a list or an object as the message.
    const detail = given === undefined || given === null ? undefined : typeof given === "string" ? given : JSON.stringify(given)
    const afterMs = retryAfterMs(error.headers)
    const retryAfter = afterMs === undefined ? undefined : Math.max(1, Math.ceil(afterMs / 1000))
    const status = error.status === 429 ? 429 : STATUS_OF[code]
    return { ...failure(code, safeMessage(code, provider, detail, retryAfter)), status, ...(retryAfter && { retryAfter }) }
  }
  return failure("internal_error", "sidechat failed while streaming the response")
}

/**
 * Why a provider could not be reached (an error `classifyError` made `provider_unreachable`), for
 * the operator's log, never the client's: the SDK's connection error only says "Connection
 * error."; what it wraps names the proxy, the refused certificate or the address.
 */
export function unreachableReason(error: unknown): string | undefined {
  const cause = (error as { cause?: unknown } | undefined)?.cause
  return cause instanceof Error ? cause.message : undefined
}

function failure(code: ErrorCode, message: string): Failure {
  return { status: STATUS_OF[code], code, message }
}

/** Auth errors can quote part of the key, so they get our words; others keep the provider's, scrubbed. */
function safeMessage(code: ErrorCode, provider: string, detail: string | undefined, retryAfter?: number): string {
  const when = retryAfter ? `in ${retryAfter} s` : "in a moment"
  switch (code) {
    case "provider_auth_failed":
      return `${provider} rejected the API key; check the server's configuration (or the key you sent)`
    case "rate_limited":
      return `${provider} is rate limiting requests right now; please try again ${when}`
    case "provider_overloaded":
      return `${provider} is overloaded right now; please try again ${when}`
    default:
      return detail ? `${provider}: ${scrubSecrets(detail)}` : `${provider} failed (${code})`
  }
}

/** Removes anything shaped like an API key from text bound for a client or a log. */
export function scrubSecrets(text: string): string {
  return text.replace(/\b(sk-[A-Za-z0-9_*-]{6,}|[A-Za-z0-9_-]{32,})/g, "[redacted]")
}

/** `retry-after-ms`, or `retry-after` in seconds or as an HTTP date, in milliseconds. */
function retryAfterMs(headers: Headers | undefined): number | undefined {
  const ms = Number(headers?.get("retry-after-ms") ?? Number.NaN)
  if (Number.isFinite(ms) && ms >= 0) return ms
  const raw = headers?.get("retry-after")
  if (!raw) return undefined
  const seconds = Number(raw)
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000
  const date = Date.parse(raw)
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now())
}

/**
 * Whether a failure before the first byte is worth another try: 408, 409, 429, 5xx (529 included)
 * and connection errors and timeouts are; a request the provider refused for what it is is not.
 */
export function retryable(error: unknown): { retry: boolean; afterMs?: number } {
  if (isSdkError(error, "APIUserAbortError")) return { retry: false }
  if (isSdkError(error, "APIConnectionError")) return { retry: true }
  if (isApiError(error)) {
    const status = error.status ?? 0
    const retry = status === 408 || status === 409 || status === 429 || status >= 500
    return { retry, afterMs: retry ? retryAfterMs(error.headers) : undefined }
  }
  return { retry: false }
}

/** A failure as the final part of a stream, carrying when to retry where the provider said so. */
export function errorPart(error: unknown, provider: string): ErrorPart {
  const { code, message, retryAfter } = classifyError(error, provider)
  return { type: "error", code, message, ...(retryAfter && { retryAfter }) }
}

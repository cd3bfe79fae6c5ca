// The internal vocabulary between provider converters and wire encoders: one small union.

/** Why the model stopped, in the legacy wire's terms (AG-UI uses the same words). */
export type FinishReason = "stop" | "length" | "tool_calls" | "content_filter"

export type Usage = {
  inputTokens: number
  outputTokens: number
  cachedInputTokens?: number
  reasoningTokens?: number
}

/** Stable error codes; callers branch on these, never on message text. */
export type ErrorCode =
  | "invalid_json"
  | "invalid_request"
  | "unsupported_media_type"
  | "payload_too_large"
  | "not_found"
  | "method_not_allowed"
  | "origin_not_allowed"
  | "unknown_provider"
  | "provider_not_configured"
  | "model_not_allowed"
  | "model_not_found"
  | "provider_rejected_request"
  | "provider_auth_failed"
  | "rate_limited"
  | "provider_overloaded"
  | "provider_error"
  | "provider_unreachable"
  | "provider_timeout"
  | "provider_stalled"
  | "stream_interrupted"
  | "duration_exceeded"
  | "shutdown"
  | "shutting_down"
  | "unauthorized"
  | "byok_missing"
  | "too_many_streams"
  | "server_busy"
  | "too_many_requests"
  | "too_many_messages"
  | "input_too_large"
  | "max_tokens_too_large"
  | "run_not_found"
  | "run_exists"
  | "run_truncated"
  | "run_abandoned"
  | "run_stopped"
  | "internal_error"

/**
 * What a provider stream says, provider-neutral. Converters yield these in order;
 * wire encoders turn them into their generation's events.
 */
export type Part =
  | { type: "start"; model: string }
  | { type: "text"; delta: string }
  | { type: "reasoning-start" }
  | { type: "reasoning"; delta: string }
  | { type: "reasoning-end"; signature?: string; redacted?: string }
  | { type: "tool-start"; id: string; name: string }
  | { type: "tool-args"; id: string; delta: string }
  | { type: "tool-end"; id: string; name: string; input: unknown }
  | { type: "finish"; reason: FinishReason; usage: Usage }
  | ErrorPart

/** A stream's last part when it fails; `retryAfter` (seconds) when the provider said when to come back. */
export type ErrorPart = { type: "error"; code: ErrorCode; message: string; retryAfter?: number }

/** Ids and clocks are injected so that encoded output is byte-stable in tests. */
export type Ctx = { newId: (prefix: string) => string; now: () => number }

export function liveCtx(): Ctx {
  return { newId: (prefix) => `${prefix}_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`, now: Date.now }
}

/** A deterministic context: ids count up per prefix, the clock stands still. */
export function fixedCtx(at = 1_700_000_000_000): Ctx {
  const counters = new Map<string, number>()
  return {
    newId(prefix) {
      const n = (counters.get(prefix) ?? 0) + 1
      counters.set(prefix, n)
      return `${prefix}_${n}`
    },
    now: () => at,
  }
}

/** Makes a new variant of a union a compile error wherever it is switched on. */
export function unreachable(value: never): never {
  throw new Error(`unreachable: ${JSON.stringify(value)}`)
}

/** What makes content: the first of these ends the wait for a first token. */
const CONTENT = new Set<Part["type"]>(["text", "reasoning-start", "reasoning", "tool-start"])
export const isContent = (part: Part) => CONTENT.has(part.type)

// A chat's clocks: the first token must come within one limit and the whole stream within another;
// either expiring (or a shutdown) aborts the provider call with a reason the stream ends on.
import type { ErrorPart } from "../parts"

export type Deadline = {
  /** Aborts when the client leaves or any limit expires. */
  signal: AbortSignal
  /** Why the deadline aborted, if it did: the stream's final error part. */
  expired(): ErrorPart | undefined
  /** Ends the call now with `part` (shutdown uses this). */
  expire(part: ErrorPart): void
  /** The first content arrived: the first-token clock stops. */
  contentArrived(): void
  /** The stream ended: every clock stops. */
  clear(): void
}

export function createDeadline(
  clientSignal: AbortSignal,
  limits: { firstTokenMs: number; maxDurationMs: number },
  provider: string,
): Deadline {
  const controller = new AbortController()
  let reason: ErrorPart | undefined
  const expire = (part: ErrorPart) => {
    if (reason || controller.signal.aborted) return
    reason = part
    clear()
    controller.abort()
  }
  const firstToken = setTimeout(
    () => expire({ type: "error", code: "provider_timeout", message: `${provider} sent no answer within ${limits.firstTokenMs / 1000} s` }),
    limits.firstTokenMs,
  )
  const duration = setTimeout(
    () =>
      expire({
        type: "error",
        code: "duration_exceeded",
        message: `the answer took longer than this server allows (${limits.maxDurationMs / 1000} s)`,
      }),
    limits.maxDurationMs,
  )
  const clear = () => {
    clearTimeout(firstToken)
    clearTimeout(duration)
  }
  return {
    signal: AbortSignal.any([clientSignal, controller.signal]),
    expired: () => reason,
    expire,
    contentArrived: () => clearTimeout(firstToken),
    clear,
  }
}

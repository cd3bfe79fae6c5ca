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

/**
 * One timer per stream, armed for whichever limit comes next, and one signal: the client's abort
 * is passed on by a listener rather than `AbortSignal.any` (an open stream holds less this way).
 */
export function createDeadline(
  clientSignal: AbortSignal,
  limits: { firstTokenMs: number; maxDurationMs: number },
  provider: string,
): Deadline {
  const controller = new AbortController()
  const started = performance.now()
  let reason: ErrorPart | undefined
  let waiting = true
  let timer: ReturnType<typeof setTimeout> | undefined
  const clear = () => {
    clearTimeout(timer)
    clientSignal.removeEventListener("abort", passOn)
  }
  const expire = (part: ErrorPart) => {
    if (reason || controller.signal.aborted) return
    reason = part
    clear()
    controller.abort()
  }
  function passOn() {
    clear()
    controller.abort(clientSignal.reason)
  }
  const arm = () => {
    const left = limits.maxDurationMs - (performance.now() - started)
    const firstToken = waiting && limits.firstTokenMs < left
    timer = setTimeout(
      () =>
        expire(
          firstToken
            ? { type: "error", code: "provider_timeout", message: `${provider} sent no answer within ${limits.firstTokenMs / 1000} s` }
            : {
                type: "error",
                code: "duration_exceeded",
                message: `the answer took longer than this server allows (${limits.maxDurationMs / 1000} s)`,
              },
        ),
      firstToken ? limits.firstTokenMs : Math.max(0, left),
    )
  }
  if (clientSignal.aborted) controller.abort(clientSignal.reason)
  else {
    clientSignal.addEventListener("abort", passOn, { once: true })
    arm()
  }
  return {
    signal: controller.signal,
    expired: () => reason,
    expire,
    contentArrived() {
      if (!waiting) return
      waiting = false
      if (controller.signal.aborted) return
      clearTimeout(timer)
      arm()
    },
    clear,
  }
}

// Opening a provider stream: retries with backoff before the first byte, then the fallback
// provider. The only layer that retries (the SDKs' own retries are off), so it can count them.
import type { ProviderName } from "../config"
import type { Part } from "../parts"
import type { ChatRequest } from "../request"
import { retryable } from "./errors"
import type { Providers } from "./index"

export type RetryPolicy = {
  retries: number
  fallback?: { provider: ProviderName; model: string }
  /** Backoff before retry `attempt` (1-based): exponential with full jitter, capped. */
  backoffMs?: (attempt: number) => number
}

export type Opened = {
  parts: AsyncIterable<Part[]>
  retries: number
  /** Set when the fallback served the request: the primary's failure that sent it there. */
  fallbackFrom?: { provider: ProviderName; model: string; error: unknown }
}

/** The longest `retry-after` worth waiting for before the first byte; longer ones fail (or fall back) now. */
const MAX_RETRY_AFTER_MS = 30_000

const defaultBackoff = (attempt: number) => Math.random() * Math.min(8000, 500 * 2 ** (attempt - 1))

/**
 * Opens `request`, retrying on 408, 409, 429, 5xx, 529 and connection errors. Every retry happens
 * before any part exists, so no text can be shown twice. A retry-after from the provider is
 * honoured as the least wait. `onRetry` hears each retry as it is scheduled.
 */
export async function openWithRetries(
  providers: Providers,
  request: ChatRequest,
  signal: AbortSignal,
  policy: RetryPolicy,
  key?: string,
  hooks: {
    onRetry?: (error: unknown, waitMs: number) => void
    /** The primary failed for good and the fallback is about to be tried: from now on it is the fallback's request. */
    onFallback?: (served: ChatRequest, error: unknown) => void
  } = {},
): Promise<Opened> {
  let retries = 0
  const attempt = async (served: ChatRequest, ownKey: string | undefined): Promise<Opened> => {
    for (let tries = 0; ; tries++) {
      try {
        return { parts: await providers.open(served, signal, ownKey), retries }
      } catch (error) {
        const verdict = retryable(error)
        if (!verdict.retry || tries >= policy.retries || signal.aborted) throw error
        const wait = Math.max((policy.backoffMs ?? defaultBackoff)(tries + 1), verdict.afterMs ?? 0)
        if (wait > MAX_RETRY_AFTER_MS) throw error
        retries++
        hooks.onRetry?.(error, wait)
        await sleep(wait, signal)
      }
    }
  }
  try {
    return await attempt(request, key)
  } catch (error) {
    const { fallback } = policy
    const eligible = fallback && !signal.aborted && retryable(error).retry && fallback.provider !== request.provider
    if (!eligible) throw error
    // The fallback is the server's own choice of provider, so it runs on the server's key.
    const served = { ...request, provider: fallback.provider, model: fallback.model }
    hooks.onFallback?.(served, error)
    const opened = await attempt(served, undefined)
    return { ...opened, fallbackFrom: { provider: request.provider, model: request.model, error } }
  }
}

/** Waits `ms`, or rejects as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms)
    function done() {
      signal.removeEventListener("abort", aborted)
      resolve()
    }
    function aborted() {
      clearTimeout(timer)
      reject(signal.reason)
    }
    signal.addEventListener("abort", aborted, { once: true })
  })
}

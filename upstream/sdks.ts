// The provider SDKs, each loaded when it is first needed: a configuration that serves one provider
// does not evaluate the other's module until a request asks for it (the mock provider, always
// reachable, is served by Anthropic's), and the first request does not wait for both (together
// about 20 ms of a compiled binary's start-up).
import type AnthropicSdk from "@anthropic-ai/sdk"
import type OpenAISdk from "openai"

export type Anthropic = typeof AnthropicSdk
export type OpenAI = typeof OpenAISdk

/** The SDKs loaded so far: an SDK's error can only come from one of these. */
const loaded: { anthropic?: Anthropic; openai?: OpenAI } = {}
export const loadAnthropic = loadOnce(() => import("@anthropic-ai/sdk").then((module) => (loaded.anthropic = module.default)))
export const loadOpenAI = loadOnce(() => import("openai").then((module) => (loaded.openai = module.default)))

/** `load`'s result, kept once it succeeds; a failed load is not kept, so the next caller tries again. */
function loadOnce<T>(load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined
  return () =>
    (loading ??= load().catch((error: unknown) => {
      loading = undefined
      throw error
    }))
}

/** The SDK, if it is loaded already (no turn of the event loop for a request after the first). */
export const anthropicNow = () => loaded.anthropic
export const openaiNow = () => loaded.openai

export type ApiError = InstanceType<Anthropic["APIError"]> | InstanceType<OpenAI["APIError"]>
type ErrorClass = "APIConnectionError" | "APIConnectionTimeoutError" | "APIUserAbortError"

/** Whether `error` is either SDK's APIError (an HTTP error, or an error event in the stream). */
export function isApiError(error: unknown): error is ApiError {
  return Boolean(
    (loaded.anthropic && error instanceof loaded.anthropic.APIError) || (loaded.openai && error instanceof loaded.openai.APIError),
  )
}

/** Whether `error` is an instance of either SDK's class of that name. */
export function isSdkError(error: unknown, name: ErrorClass): boolean {
  return Boolean((loaded.anthropic && error instanceof loaded.anthropic[name]) || (loaded.openai && error instanceof loaded.openai[name]))
}

// Provider I/O: one SDK client per provider (live or mocked), opened eagerly so that errors
// before the first byte surface as HTTP errors, then handed to the matching converter.
import Anthropic from "@anthropic-ai/sdk"
import OpenAI from "openai"
import { type Config, PROVIDERS, type ProviderName, providerMode } from "../config"
import { fromAnthropic, fromOpenAI } from "../converter"
import { toAnthropic, toOpenAI } from "../formatters"
import { createTransport, type Fetch } from "./transport"
import { mockFetch } from "./mock"
import type { ErrorPart, Part } from "../parts"
import type { ChatRequest } from "../request"

export type Providers = {
  /**
   * Resolves once the provider has accepted the request; rejects with the SDK's error otherwise.
   * `key` is a caller's own key (BYOK), used for this request only. The parts may throw
   * mid-stream: wrap them in `guard` before they reach a client.
   */
  open(request: ChatRequest, signal: AbortSignal, key?: string): Promise<AsyncIterable<Part>>
  modes: Record<ProviderName, "live" | "mock" | "off">
}

export function createProviders(config: Config, fetch: Fetch = createTransport({ stallMs: config.providerStallMs })): Providers {
  const modes = Object.fromEntries(PROVIDERS.map((name) => [name, providerMode(config, name)])) as Providers["modes"]
  // Retrying is ours (upstream/attempts.ts): it sees the whole request, fallback included, and counts
  // what it does. The SDKs would log an unreadable event's raw data, which can hold a completion.
  const common = { maxRetries: 0, timeout: config.providerTimeoutMs, fetch, logLevel: "off" as const }
  const anthropicURL = config.anthropic.baseURL ?? "https://api.anthropic.com"
  const openaiURL = config.openai.baseURL ?? "https://api.openai.com/v1"
  const anthropic = {
    live: new Anthropic({ ...common, apiKey: config.anthropic.apiKey ?? "unset", baseURL: anthropicURL }),
    mock: new Anthropic({
      ...common,
      apiKey: "mock",
      baseURL: "http://mock.sidechat.invalid",
      fetch: mockFetch("anthropic", config.mockDelayMs),
    }),
    own: (apiKey: string) => new Anthropic({ ...common, apiKey, baseURL: anthropicURL }),
  }
  const openai = {
    live: new OpenAI({ ...common, apiKey: config.openai.apiKey ?? "unset", baseURL: openaiURL }),
    mock: new OpenAI({
      ...common,
      apiKey: "mock",
      baseURL: "http://mock.sidechat.invalid/v1",
      fetch: mockFetch("openai", config.mockDelayMs),
    }),
    own: (apiKey: string) => new OpenAI({ ...common, apiKey, baseURL: openaiURL }),
  }

  return {
    modes,
    async open(request, signal, key) {
      const mode = modes[request.provider] === "live" ? "live" : "mock"
      if (request.provider === "openai") {
        const client = key ? openai.own(key) : openai[mode]
        return fromOpenAI(await client.chat.completions.create(toOpenAI(request, config), { signal }))
      }
      const client = key && request.provider === "anthropic" ? anthropic.own(key) : anthropic[mode]
      return fromAnthropic(await client.messages.create(toAnthropic(request, config), { signal }))
    },
  }
}

/** How a provider is named in messages to clients. */
export function providerLabel(provider: ProviderName): string {
  return { anthropic: "Anthropic", openai: "OpenAI", mock: "mock" }[provider]
}

/** What makes content: the first of these ends the wait for a first token. */
const CONTENT = new Set<Part["type"]>(["text", "reasoning-start", "reasoning", "tool-start"])

/**
 * After headers are sent, any throw becomes one final error part (`classify` names it); nothing
 * follows it. Converters throw rather than yield their errors, so the parts pass through with
 * `yield*` (a per-part loop here costs a quarter of AG-UI's throughput); only the parts before the
 * first content are looked at, to tell `onContent` when it came.
 */
export async function* guard(
  parts: AsyncIterable<Part>,
  classify: (error: unknown) => ErrorPart,
  onContent?: () => void,
): AsyncGenerator<Part> {
  const iterator = parts[Symbol.asyncIterator]()
  let delegated = false
  try {
    for (;;) {
      const next = await iterator.next()
      if (next.done) return
      yield next.value
      if (CONTENT.has(next.value.type)) break
    }
    onContent?.()
    delegated = true
    yield* { [Symbol.asyncIterator]: () => iterator }
  } catch (error) {
    yield classify(error)
  } finally {
    // A reader that leaves before the first content closes the source too (yield* does so after it).
    if (!delegated) await iterator.return?.()
  }
}

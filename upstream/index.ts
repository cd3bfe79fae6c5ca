// Provider I/O: one SDK client per provider (live or mocked), opened eagerly so that errors
// before the first byte surface as HTTP errors, then handed to the matching converter.
import Anthropic from "@anthropic-ai/sdk"
import OpenAI from "openai"
import { type Config, PROVIDERS, type ProviderName, providerMode } from "../config"
import { fromAnthropic, fromOpenAI } from "../converter"
import { classifyError } from "./errors"
import { toAnthropic, toOpenAI } from "../formatters"
import { createTransport, type Fetch } from "./transport"
import { mockFetch } from "./mock"
import type { ErrorPart, Part } from "../parts"
import type { ChatRequest } from "../request"

export type Providers = {
  /**
   * Resolves once the provider has accepted the request; rejects with the SDK's error otherwise.
   * The parts may throw mid-stream: wrap them in `guard` before they reach a client.
   */
  open(request: ChatRequest, signal: AbortSignal): Promise<AsyncIterable<Part>>
  modes: Record<ProviderName, "live" | "mock" | "off">
}

export function createProviders(config: Config, fetch: Fetch = createTransport({ stallMs: config.providerStallMs })): Providers {
  const modes = Object.fromEntries(PROVIDERS.map((name) => [name, providerMode(config, name)])) as Providers["modes"]
  // The SDKs would log an unreadable event's raw data, which can hold a completion; errors are ours to log.
  const common = { maxRetries: config.providerMaxRetries, timeout: config.providerTimeoutMs, fetch, logLevel: "off" as const }
  const mocked = { apiKey: "mock", maxRetries: 0, logLevel: "off" as const }
  const anthropic = {
    live: new Anthropic({
      ...common,
      apiKey: config.anthropic.apiKey ?? "unset",
      baseURL: config.anthropic.baseURL ?? "https://api.anthropic.com",
    }),
    mock: new Anthropic({ ...mocked, baseURL: "http://mock.sidechat.invalid", fetch: mockFetch("anthropic", config.mockDelayMs) }),
  }
  const openai = {
    live: new OpenAI({ ...common, apiKey: config.openai.apiKey ?? "unset", baseURL: config.openai.baseURL ?? "https://api.openai.com/v1" }),
    mock: new OpenAI({ ...mocked, baseURL: "http://mock.sidechat.invalid/v1", fetch: mockFetch("openai", config.mockDelayMs) }),
  }

  return {
    modes,
    async open(request, signal) {
      const mode = modes[request.provider] === "live" ? "live" : "mock"
      if (request.provider === "openai") {
        return fromOpenAI(await openai[mode].chat.completions.create(toOpenAI(request, config), { signal }))
      }
      return fromAnthropic(await anthropic[mode].messages.create(toAnthropic(request, config), { signal }))
    },
  }
}

/** How a provider is named in messages to clients. */
export function providerLabel(provider: ProviderName): string {
  return { anthropic: "Anthropic", openai: "OpenAI", mock: "mock" }[provider]
}

/**
 * After headers are sent, any throw becomes one final error part; nothing follows it. Converters
 * throw rather than yield their errors, so `onError` sees every error and the request's log can say
 * how it ended, while the parts themselves pass through with `yield*` (a per-part loop here costs
 * a quarter of AG-UI's throughput).
 */
export async function* guard(
  parts: AsyncIterable<Part>,
  provider: string,
  onError?: (part: ErrorPart, thrown?: unknown) => void,
): AsyncGenerator<Part> {
  try {
    yield* parts
  } catch (error) {
    const { code, message } = classifyError(error, provider)
    const part: ErrorPart = { type: "error", code, message }
    onError?.(part, error)
    yield part
  }
}

// Provider I/O: one SDK client per provider (live or mocked), opened eagerly so that errors
// before the first byte surface as HTTP errors, then handed to the matching converter.
import Anthropic from "@anthropic-ai/sdk"
import OpenAI from "openai"
import { type Config, PROVIDERS, type ProviderName, providerMode } from "../config"
import { fromAnthropic, fromOpenAI } from "../converter"
import { classifyError } from "./errors"
import { toAnthropic, toOpenAI } from "../formatters"
import { upstreamFetch } from "./transport"
import { mockFetch } from "./mock"
import type { Part } from "../parts"
import type { ChatRequest } from "../request"

export type Providers = {
  /** Resolves once the provider has accepted the request; rejects with the SDK's error otherwise. */
  open(request: ChatRequest, signal: AbortSignal): Promise<AsyncIterable<Part>>
  modes: Record<ProviderName, "live" | "mock" | "off">
}

type Fetch = typeof upstreamFetch

export function createProviders(config: Config, fetch: Fetch = upstreamFetch): Providers {
  const modes = Object.fromEntries(PROVIDERS.map((name) => [name, providerMode(config, name)])) as Providers["modes"]
  const common = { maxRetries: config.providerMaxRetries, timeout: config.providerTimeoutMs, fetch }
  const mocked = { apiKey: "mock", maxRetries: 0 }
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
        const stream = await openai[mode].chat.completions.create(toOpenAI(request, config), { signal })
        return guard(fromOpenAI(stream), providerLabel("openai"))
      }
      const stream = await anthropic[mode].messages.create(toAnthropic(request, config), { signal })
      return guard(fromAnthropic(stream), providerLabel(request.provider))
    },
  }
}

/** How a provider is named in messages to clients. */
export function providerLabel(provider: ProviderName): string {
  return { anthropic: "Anthropic", openai: "OpenAI", mock: "mock" }[provider]
}

/** After headers are sent, any throw becomes one final error part; nothing follows it. */
export async function* guard(parts: AsyncIterable<Part>, provider: string): AsyncGenerator<Part> {
  try {
    yield* parts
  } catch (error) {
    const { code, message } = classifyError(error, provider)
    yield { type: "error", code, message }
  }
}

// Provider I/O: one SDK client per provider (live or mocked) sends the request and classifies its
// HTTP errors; the response body goes to the hot path in raw.ts, one batch of parts per read.
import type { Config, ProviderName } from "../config"
import { providerModes } from "../edge/probes"
import { toAnthropic, toOpenAI } from "../formatters"
import { createTransport, type Fetch } from "./transport"
import { mockFetch } from "./mock"
import { anthropicBatches, openaiBatches } from "./raw"
import { type Anthropic, anthropicNow, loadAnthropic, loadOpenAI, type OpenAI, openaiNow } from "./sdks"
import { type ErrorPart, isContent, type Part } from "../parts"
import type { ChatRequest } from "../request"

export type Providers = {
  /**
   * Resolves once the provider has accepted the request; rejects with the SDK's error otherwise.
   * `key` is a caller's own key (BYOK), used for this request only. The parts come in batches, one
   * per network read, and may throw mid-stream: wrap them in `guard` before they reach a client.
   */
  open(request: ChatRequest, signal: AbortSignal, key?: string): Promise<AsyncIterable<Part[]>>
  modes: Record<ProviderName, "live" | "mock" | "off">
  /**
   * Loads the SDKs this configuration uses and makes their clients now, rather than on their first
   * request: the default provider's before it resolves, the others `laterMs` later (a second by
   * default). `step` runs each piece in a turn of its own, so requests are served in between. It
   * never rejects: a failure goes to `report`, and the request that needs the SDK tries again.
   */
  warm?(
    step: <T>(work: () => T | Promise<T>) => Promise<T>,
    options?: { laterMs?: number; report?: (error: unknown) => void },
  ): Promise<void>
}

export function createProviders(
  config: Config,
  fetch: Fetch = createTransport({ stallMs: config.providerStallMs, proxy: config.egressProxy }),
): Providers {
  const modes = providerModes(config)
  // Retrying is ours (upstream/attempts.ts): it sees the whole request, fallback included, and counts
  // what it does. The SDKs would log an unreadable event's raw data, which can hold a completion.
  const common = { maxRetries: 0, timeout: config.providerTimeoutMs, fetch, logLevel: "off" as const }
  const anthropicURL = config.anthropic.baseURL ?? "https://api.anthropic.com"
  const openaiURL = config.openai.baseURL ?? "https://api.openai.com/v1"
  // The Anthropic SDK's own OpenTelemetry spans would go to the global tracer provider, which
  // sidechat never registers (observe/trace.ts has its own): building them was about 4% of a
  // request's CPU for nothing.
  const anthropicCommon = { ...common, openTelemetry: false as const }
  // Each client is made on first use: an SDK client builds its whole resource tree (milliseconds at
  // start-up), and a configuration rarely needs all four.
  const anthropic = {
    live: once(
      (Anthropic: Anthropic) => new Anthropic({ ...anthropicCommon, apiKey: config.anthropic.apiKey ?? "unset", baseURL: anthropicURL }),
    ),
    mock: once(
      (Anthropic: Anthropic) =>
        new Anthropic({
          ...anthropicCommon,
          apiKey: "mock",
          baseURL: "http://mock.sidechat.invalid",
          fetch: mockFetch("anthropic", config.mockDelayMs),
        }),
    ),
    own: (Anthropic: Anthropic, apiKey: string) => new Anthropic({ ...anthropicCommon, apiKey, baseURL: anthropicURL }),
  }
  const openai = {
    live: once((OpenAI: OpenAI) => new OpenAI({ ...common, apiKey: config.openai.apiKey ?? "unset", baseURL: openaiURL })),
    mock: once(
      (OpenAI: OpenAI) =>
        new OpenAI({
          ...common,
          apiKey: "mock",
          baseURL: "http://mock.sidechat.invalid/v1",
          fetch: mockFetch("openai", config.mockDelayMs),
        }),
    ),
    own: (OpenAI: OpenAI, apiKey: string) => new OpenAI({ ...common, apiKey, baseURL: openaiURL }),
  }

  /** Which of a provider's clients serves it: the live one, or the mock (the mock provider included). */
  const modeOf = (provider: ProviderName) => (modes[provider] === "live" ? "live" : "mock")

  return {
    modes,
    async warm(step, { laterMs = 1000, report } = {}) {
      // The default provider's SDK and client first (the mock provider is served by Anthropic's);
      // the other a while later, so that a first request does not wait behind a module it does not use.
      const used = (["anthropic", "openai"] as const).filter(
        (provider) => modes[provider] !== "off" || (provider === "anthropic" && config.defaultProvider === "mock"),
      )
      const [first, ...rest] = config.defaultProvider === "openai" ? used.reverse() : used
      const make = async (provider: "anthropic" | "openai") => {
        try {
          if (provider === "openai") return void openai[modeOf("openai")](await step(loadOpenAI))
          const Anthropic = await step(loadAnthropic)
          anthropic[modeOf("anthropic")](Anthropic)
          if (config.defaultProvider === "mock") anthropic.mock(Anthropic)
        } catch (error) {
          report?.(error)
        }
      }
      if (first) await make(first)
      if (rest.length)
        setTimeout(async () => {
          for (const provider of rest) await make(provider)
        }, laterMs).unref()
    },
    async open(request, signal, key) {
      const mode = modeOf(request.provider)
      // The SDK builds, authenticates and sends the request and turns an HTTP error into its
      // APIError; the body is ours to read (upstream/raw.ts).
      if (request.provider === "openai") {
        const OpenAI = openaiNow() ?? (await loadOpenAI())
        const client = key ? openai.own(OpenAI, key) : openai[mode](OpenAI)
        return openaiBatches(await client.chat.completions.create(toOpenAI(request, config), { signal }).asResponse(), OpenAI)
      }
      const Anthropic = anthropicNow() ?? (await loadAnthropic())
      const client = key && request.provider === "anthropic" ? anthropic.own(Anthropic, key) : anthropic[mode](Anthropic)
      return anthropicBatches(await client.messages.create(toAnthropic(request, config), { signal }).asResponse(), Anthropic)
    },
  }
}

/** `make`'s first result, kept (its argument is the same SDK each time). */
function once<A, T>(make: (sdk: A) => T): (sdk: A) => T {
  let made: T | undefined
  return (sdk) => (made ??= make(sdk))
}

/** How a provider is named in messages to clients. */
export function providerLabel(provider: ProviderName): string {
  return { anthropic: "Anthropic", openai: "OpenAI", mock: "mock" }[provider]
}

/**
 * After headers are sent, any throw becomes one final error part (`classify` names it); nothing
 * follows it. Converters throw rather than yield their errors, so every error passes `classify`.
 * Batches are looked into only until the first content, to tell `onContent` when it came.
 */
export async function* guard(
  batches: AsyncIterable<Part[]>,
  classify: (error: unknown) => ErrorPart,
  onContent?: () => void,
): AsyncGenerator<Part[]> {
  let waiting = onContent !== undefined
  try {
    for await (const batch of batches) {
      if (waiting && batch.some(isContent)) {
        waiting = false
        onContent?.()
      }
      yield batch
    }
  } catch (error) {
    yield [classify(error)]
  }
}

// Observability, fed from the one place a request's outcome is known: a log line per request,
// Prometheus metrics, an optional span, and the estimated cost when a price table is set.
import { type Config, matchesPattern } from "../config"
import type { Outcome } from "../index"
import type { Usage } from "../parts"
import type { Logger } from "./log"
import { createRegistry, registerProcessMetrics } from "./metrics"
import { costOf, type Prices } from "./prices"
import type { Tracing } from "./trace"

export type Observer = {
  logger: Logger
  /** Logs, counts and traces one finished request; `startedAt` is its start in epoch ms. */
  record(outcome: Outcome, startedAt: number): void
  /** The estimated cost of a request, or undefined without a price for the model. */
  cost(model: string, usage: Usage): number | undefined
  /** The Prometheus text exposition. */
  metrics(): string
  /** Gauges read from the handler that owns the state. */
  bind(sources: Sources): void
}

type Sources = {
  activeStreams: () => number
  /** 1 while the shared Redis is reachable, 0 while not; absent without REDIS_URL. */
  redisUp?: () => number
  /** Resumable runs held and their logged bytes; absent with RESUMABLE off. */
  runs?: () => { runs: number; live: number; bytes: number; threads: number; threadBytes: number }
}

/** Models that may become a metric label beyond the configured ones; the rest count as `other`. */
const MAX_EXTRA_MODELS = 32
const SECONDS = [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64]
const LONG_SECONDS = [0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320, 640, 1800]

export function createObserver(options: { config: Config; logger: Logger; prices?: Prices; tracing?: Tracing }): Observer {
  const { config, logger, prices = [], tracing } = options
  const registry = createRegistry()
  let sources: Sources = { activeStreams: () => 0 }
  registry.gauge("sidechat_active_streams", "Chat streams open right now.", () => sources.activeStreams())
  if (config.redisUrl)
    registry.gauge("sidechat_redis_up", "1 while the shared Redis (REDIS_URL) is reachable.", () => sources.redisUp?.() ?? 0)
  if (config.resumable) {
    // One walk of the runs per scrape, not one per gauge: the scrape reads them all in one turn.
    let held: ReturnType<NonNullable<Sources["runs"]>> | undefined
    const runs = () => {
      if (!held) {
        held = sources.runs?.() ?? { runs: 0, live: 0, bytes: 0, threads: 0, threadBytes: 0 }
        queueMicrotask(() => (held = undefined))
      }
      return held
    }
    registry.gauge("sidechat_resumable_runs", "Resumable runs held in this process.", () => runs().runs)
    registry.gauge("sidechat_resumable_live_runs", "Resumable runs still streaming.", () => runs().live)
    registry.gauge("sidechat_resumable_log_bytes", "Event JSON held in resumable run logs.", () => runs().bytes)
    registry.gauge("sidechat_resumable_threads", "Threads held for hydration.", () => runs().threads)
    registry.gauge("sidechat_resumable_thread_bytes", "Text held in those threads' messages and answers.", () => runs().threadBytes)
  }
  const requests = registry.counter("sidechat_requests_total", "HTTP requests by route, status, wire generation and transport.")
  const endings = registry.counter("sidechat_stream_endings_total", "Chat requests by how they ended.")
  const tokens = registry.counter("sidechat_tokens_total", "Tokens by provider, model and kind (input, output, cached, reasoning).")
  const providerErrors = registry.counter("sidechat_provider_errors_total", "Provider failures by provider and error code.")
  const retries = registry.counter("sidechat_provider_retries_total", "Provider requests sent again before the first byte.")
  const fallbacks = registry.counter("sidechat_fallbacks_total", "Requests the fallback provider served.")
  const refusals = registry.counter("sidechat_refusals_total", "Requests sidechat refused itself (auth, limits, bad input), by code.")
  const cost = registry.counter("sidechat_estimated_cost_dollars_total", "Estimated provider cost in US dollars (PRICES_FILE).")
  const ttft = registry.histogram("sidechat_time_to_first_token_seconds", "Time from request to first content.", SECONDS)
  const duration = registry.histogram("sidechat_stream_duration_seconds", "Time from request to the end of its stream.", LONG_SECONDS)
  registerProcessMetrics(registry)

  // A model is a label only when the operator named it; a client's choice among `*` patterns gets
  // at most MAX_EXTRA_MODELS distinct labels, so no request can grow the series without bound.
  const named = new Set([config.anthropic.model, config.openai.model, "sidechat-mock", ...Object.keys(config.modelSettings)])
  for (const model of config.allowedModels) if (!model.includes("*")) named.add(model)
  if (config.fallback?.model) named.add(config.fallback.model)
  const extra = new Set<string>()
  const modelLabel = (model: string | undefined) => {
    if (!model) return "none"
    if (named.has(model) || extra.has(model)) return model
    if (extra.size < MAX_EXTRA_MODELS && config.allowedModels.some((pattern) => matchesPattern(pattern, model))) {
      extra.add(model)
      return model
    }
    return "other"
  }

  return {
    logger,
    bind(bound) {
      sources = bound
    },
    cost: (model, usage) => costOf(prices, model, usage),
    metrics: () => registry.render(),
    record(outcome, startedAt) {
      const chat = outcome.route === "/chat"
      requests.inc({
        route: outcome.route,
        status: String(outcome.status),
        generation: outcome.generation ?? "none",
        transport: outcome.transport ?? "none",
      })
      if (chat) log(logger, outcome)
      else logger.debug(accessLine(outcome), { requestId: outcome.requestId, route: outcome.route, status: outcome.status })
      if (!chat) return
      const provider = outcome.provider ?? "none"
      const model = modelLabel(outcome.model)
      if (outcome.end === "refused" && outcome.code && !outcome.code.startsWith("provider_") && outcome.code !== "rate_limited")
        refusals.inc({ code: outcome.code })
      else if (outcome.code && outcome.end !== "shutdown") providerErrors.inc({ provider, code: outcome.code })
      endings.inc({ reason: outcome.end })
      if (outcome.retries) retries.inc({ provider }, outcome.retries)
      if (outcome.fallbackFrom) fallbacks.inc({ from: outcome.fallbackFrom.split("/")[0] ?? "none", to: provider })
      if (outcome.ttftMs !== undefined) ttft.observe({ provider }, outcome.ttftMs / 1000)
      if (outcome.end !== "refused") duration.observe({ provider, generation: outcome.generation ?? "none" }, outcome.durationMs / 1000)
      if (outcome.usage) {
        const { inputTokens, outputTokens, cachedInputTokens, reasoningTokens } = outcome.usage
        tokens.inc({ provider, model, kind: "input" }, inputTokens)
        tokens.inc({ provider, model, kind: "output" }, outputTokens)
        if (cachedInputTokens) tokens.inc({ provider, model, kind: "cached" }, cachedInputTokens)
        if (reasoningTokens) tokens.inc({ provider, model, kind: "reasoning" }, reasoningTokens)
      }
      if (outcome.costUsd !== undefined) cost.inc({ provider, model }, outcome.costUsd)
      tracing?.record(outcome, startedAt)
    },
  }
}

/** One line per chat request: every field an operator asks about, never content or keys. */
function log(logger: Logger, outcome: Outcome): void {
  const { usage, traceparent, ...fields } = outcome
  const line = {
    ...fields,
    ...(usage && {
      tokensIn: usage.inputTokens,
      tokensOut: usage.outputTokens,
      ...(usage.cachedInputTokens !== undefined && { tokensCached: usage.cachedInputTokens }),
      ...(usage.reasoningTokens !== undefined && { tokensReasoning: usage.reasoningTokens }),
    }),
    ...(traceparent && { traceId: traceparent.split("-")[1] }),
  }
  // A request line is information, whatever its status; only sidechat's own failures are errors.
  logger[outcome.code === "internal_error" ? "error" : "info"](accessLine(outcome), line)
}

/**
 * The request as an access-log line: `POST /chat 200 agui anthropic/claude-… complete retries=1
 * fallback=openai/gpt-… 812ms`. The provider/model is the one asked for; the fallback's follows.
 */
export function accessLine(outcome: Outcome): string {
  const asked = outcome.fallbackFrom ?? (outcome.provider ? `${outcome.provider}/${outcome.model}` : undefined)
  const label = [outcome.generation, asked].filter(Boolean).join(" ")
  const how =
    outcome.end === "refused"
      ? (outcome.code ?? "refused")
      : outcome.end === "complete" || outcome.end === "cancelled"
        ? outcome.end
        : `error ${outcome.code}`
  const notes = `${outcome.retries ? ` retries=${outcome.retries}` : ""}${outcome.fallbackFrom ? ` fallback=${outcome.provider}/${outcome.model}` : ""}`
  const path = outcome.route === "other" ? "(other)" : outcome.route
  return `${outcome.method} ${path} ${outcome.status} ${label ? `${label} ` : ""}${how}${notes} ${outcome.durationMs}ms`
}

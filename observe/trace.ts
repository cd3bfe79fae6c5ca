// Traces: one span per chat request, following the OpenTelemetry GenAI semantic conventions, sent
// over OTLP/HTTP. The OpenTelemetry packages are loaded only when an endpoint is configured, so
// start-up and memory without tracing do not pay for them.
import type { Outcome } from "../index"

export type TraceConfig = { endpoint: string; headers: Record<string, string>; serviceName: string; scheduleDelayMs: number }

export type Tracing = {
  /** Records a finished request as a span, its parent taken from the request's `traceparent`. */
  record(outcome: Outcome, startedAt: number): void
  /** Sends what is still buffered. */
  shutdown(): Promise<void>
}

export async function createTracing(config: TraceConfig, version: string): Promise<Tracing> {
  const [api, core, resources, sdk, exporter] = await Promise.all([
    import("@opentelemetry/api"),
    import("@opentelemetry/core"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/sdk-trace"),
    import("@opentelemetry/exporter-trace-otlp-http"),
  ])
  const provider = new sdk.TracerProvider({
    resource: resources.resourceFromAttributes({ "service.name": config.serviceName, "service.version": version }),
    spanProcessors: [
      new sdk.BatchSpanProcessor({
        exporter: new exporter.OTLPTraceExporter({ url: config.endpoint, headers: config.headers }),
        scheduledDelayMillis: config.scheduleDelayMs,
      }),
    ],
  })
  const tracer = provider.getTracer("sidechat", version)
  const propagator = new core.W3CTraceContextPropagator()
  const getter = {
    get: (carrier: Record<string, string>, key: string) => carrier[key],
    keys: (carrier: Record<string, string>) => Object.keys(carrier),
  }

  return {
    record(outcome, startedAt) {
      const parent = outcome.traceparent
        ? propagator.extract(api.ROOT_CONTEXT, { traceparent: outcome.traceparent }, getter)
        : api.ROOT_CONTEXT
      const failed = outcome.end !== "complete" && outcome.end !== "cancelled"
      const attributes: Record<string, string | number | string[] | boolean> = {
        "gen_ai.operation.name": "chat",
        "http.response.status_code": outcome.status,
        "sidechat.request_id": outcome.requestId,
        "sidechat.end": outcome.end,
      }
      if (outcome.provider) attributes["gen_ai.provider.name"] = outcome.provider === "mock" ? "sidechat.mock" : outcome.provider
      if (outcome.model) attributes["gen_ai.request.model"] = outcome.model
      if (outcome.responseModel) attributes["gen_ai.response.model"] = outcome.responseModel
      if (outcome.usage) {
        attributes["gen_ai.usage.input_tokens"] = outcome.usage.inputTokens
        attributes["gen_ai.usage.output_tokens"] = outcome.usage.outputTokens
      }
      if (outcome.finishReason) attributes["gen_ai.response.finish_reasons"] = [outcome.finishReason]
      if (failed && outcome.code) attributes["error.type"] = outcome.code
      const span = tracer.startSpan(
        outcome.model ? `chat ${outcome.model}` : "chat",
        { kind: api.SpanKind.CLIENT, startTime: startedAt, attributes },
        parent,
      )
      if (failed) span.setStatus({ code: api.SpanStatusCode.ERROR, message: outcome.code })
      span.end(startedAt + outcome.durationMs)
    },
    shutdown: () => provider.shutdown(),
  }
}

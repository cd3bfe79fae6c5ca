// sidechat's HTTP edge: Bun.serve answers /chat, /health, /ready and /metrics. Policies apply in
// one visible order: CORS, probes, auth, routes, draining; then chat.ts streams the answer. Every
// request's outcome is recorded here, once, for logs, metrics and traces.
import { type Chat, createChat, BYOK_HEADER_NAMES, type Server, type Trail } from "./chat"
import type { Config, ProviderName } from "./config"
import { createAuth } from "./edge/auth"
import { createCors } from "./edge/cors"
import { httpError } from "./edge/http-error"
import { catalog, health, type ProbeState, ready } from "./edge/probes"
import { clientOf, createLimits } from "./edge/limits"
import { createRuns } from "./runs"
import { createClusterRuns } from "./cluster/runs"
import { createSharedLimits } from "./cluster/limits"
import type { Redis } from "./cluster/redis"
import type { Observer } from "./observe"
import type { Ctx, ErrorCode, FinishReason, Usage } from "./parts"
import { liveCtx } from "./parts"
import type { Generation, HttpError } from "./request"
import type { ToolDecl } from "./schema"
import type { Providers } from "./upstream"
import type { Transport } from "./wire"

export type Deps = {
  config: Config
  providers: Providers
  serverTools?: ToolDecl[]
  ctx?: () => Ctx
  /** Logs, metrics and traces: told every request's outcome, once, when it is known. */
  observer?: Observer
  /** The Redis connection (REDIS_URL) that shares runs and limits between instances. */
  redis?: Redis
  /** When the process started (uptime on /health); by default when the handler was made. */
  startedAt?: number
  /** Every request's outcome as well (tests read it). */
  onOutcome?: (outcome: Outcome) => void
}

export type Route = "/chat" | "/health" | "/ready" | "/metrics" | "/providers" | "other"

/** How one request ended, as its client saw it: the one record logs, metrics and traces are made from. */
export type Outcome = {
  requestId: string
  method: string
  route: Route
  status: number
  /**
   * `complete`; `error`, `timeout` or `shutdown` (the stream's final event was that error);
   * `cancelled` (the client left); `refused` (an HTTP error before any stream).
   */
  end: "complete" | "error" | "timeout" | "shutdown" | "cancelled" | "refused"
  code?: ErrorCode
  generation?: Generation
  transport?: Transport
  /** The provider and model that served the request (the fallback's, when it took over). */
  provider?: ProviderName
  model?: string
  /** The model the provider says answered. */
  responseModel?: string
  mocked?: boolean
  byok: boolean
  retries: number
  /** `provider/model` the fallback left, when it served the request. */
  fallbackFrom?: string
  /** A resumable run's log read again (a reconnect, a repeat or a join), not a new provider call. */
  resumed?: boolean
  ttftMs?: number
  durationMs: number
  usage?: Usage
  finishReason?: FinishReason
  costUsd?: number
  /** The incoming W3C trace context, so a span can continue the frontend's trace. */
  traceparent?: string
  /** Why the provider could not be reached (`provider_unreachable`): logged, never sent to the client. */
  reason?: string
}

export type Handler = ((request: Request, server?: Server) => Promise<Response>) & {
  /**
   * Drains: /ready and new chats answer 503 at once; live streams may finish within `graceMs`;
   * then each one left ends with a final `shutdown` error event. Resolves when none is open.
   */
  shutdown(graceMs: number): Promise<void>
}

/** The whole server as one function, testable with plain Requests. */
export function createHandler(deps: Deps): Handler {
  const { config, providers, serverTools = [], ctx = liveCtx, observer } = deps
  const started = deps.startedAt ?? Date.now()
  const auth = createAuth(config.authTokens)
  const cors = createCors(config.corsOrigins, config.byok === "off" ? [] : BYOK_HEADER_NAMES)
  let draining = false
  const report = (what: string, error: unknown, requestId?: string) =>
    observer ? observer.logger.error(`BUG: ${what}`, { requestId, error }) : console.error(`sidechat: BUG: ${what}:`, error)

  const record = (trail: Trail, status: number, end: Outcome["end"], code?: ErrorCode) => {
    const { begun, startedAt, deferred, ...fields } = trail
    const outcome: Outcome = { ...fields, status, end, ...(code && { code }), durationMs: Math.round(performance.now() - begun) }
    observer?.record(outcome, startedAt)
    deps.onOutcome?.(outcome)
  }
  const local = createLimits(config.limits)
  // With REDIS_URL, limits hold across instances; a stream's count outlives a crashed instance by at most its longest run.
  const limits = deps.redis ? createSharedLimits(local, deps.redis, config.limits, Math.ceil(config.timeouts.maxDurationMs / 1000)) : local
  const inMemory = config.resumable && createRuns(config.resumable)
  const runs =
    inMemory && deps.redis && config.resumable?.shared
      ? createClusterRuns(inMemory, deps.redis, observer?.logger ?? { warn: (message: string) => console.warn(message) })
      : inMemory
  const chat: Chat = createChat({ config, providers, serverTools, ctx, observer, limits, runs: runs || undefined, record, report })
  observer?.bind({
    activeStreams: chat.active,
    ...(deps.redis && { redisUp: () => Number(deps.redis?.up()) }),
    ...(runs && { runs: runs.stats }),
  })

  const handle = async (request: Request, server?: Server) => {
    const url = new URL(request.url)
    const trail: Trail = {
      requestId: requestIdOf(request),
      method: request.method,
      route: routeOf(url.pathname),
      byok: false,
      retries: 0,
      begun: performance.now(),
      startedAt: Date.now(),
      deferred: false,
      ...(request.headers.has("traceparent") && { traceparent: request.headers.get("traceparent") as string }),
    }
    let response: Response
    try {
      response = await route(request, url, trail, server)
    } catch (error) {
      report(`${request.method} ${url.pathname} failed inside sidechat`, error, trail.requestId)
      trail.code = "internal_error"
      response = httpError({ status: 500, code: "internal_error", message: "sidechat failed while handling the request" })
    }
    response.headers.set("x-request-id", trail.requestId)
    if (!trail.deferred) {
      const end = response.status === 499 ? "cancelled" : response.status >= 400 ? "refused" : "complete"
      record(trail, response.status, end, trail.code)
    }
    return response
  }

  async function shutdown(graceMs: number) {
    draining = true
    await Promise.race([chat.idle(), Bun.sleep(graceMs)])
    chat.expireAll({ type: "error", code: "shutdown", message: "sidechat is restarting; please send your message again" })
    await Promise.race([chat.idle(), Bun.sleep(5000)])
  }

  async function route(request: Request, url: URL, trail: Trail, server?: Server): Promise<Response> {
    const refuse = (error: HttpError) => {
      trail.code = error.code
      return httpError(error)
    }
    const origin = request.headers.get("origin")
    const corsHeaders = cors.headersFor(origin)
    if (!corsHeaders) return refuse({ status: 403, code: "origin_not_allowed", message: `origin ${origin} is not in CORS_ORIGINS` })
    const reply = (response: Response) => {
      for (const [key, value] of Object.entries(corsHeaders)) response.headers.set(key, value)
      return response
    }

    if (request.method === "OPTIONS") {
      const headers = { "access-control-allow-methods": "GET, POST, DELETE, OPTIONS", "access-control-allow-headers": cors.allowHeaders }
      return reply(new Response(null, { status: 204, headers: { ...headers, "access-control-max-age": "600" } }))
    }
    // Probes carry no token: /health says the process is up, /ready whether to send it traffic.
    if (trail.route === "/health" || trail.route === "/ready") {
      if (request.method !== "GET" && request.method !== "HEAD")
        return reply(refuse({ status: 405, code: "method_not_allowed", message: `use GET ${url.pathname}` }))
      return reply(trail.route === "/health" ? health(config, probe()) : ready(config, probe()))
    }
    // Every other route, unknown ones included, needs the token: nothing is learnt without it.
    const token = auth.check(request)
    if (auth.enabled && !token) {
      const refusal = { status: 401, code: "unauthorized" as const, message: "a valid bearer token is required (Authorization: Bearer …)" }
      return reply(refuse({ ...refusal, headers: { "www-authenticate": 'Bearer realm="sidechat"' } }))
    }
    if (trail.route === "/metrics" && observer) {
      if (request.method !== "GET") return reply(refuse({ status: 405, code: "method_not_allowed", message: "use GET /metrics" }))
      return reply(new Response(observer.metrics(), { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } }))
    }
    if (trail.route === "/providers") {
      if (request.method !== "GET") return reply(refuse({ status: 405, code: "method_not_allowed", message: "use GET /providers" }))
      return reply(Response.json(catalog(config, providers.modes)))
    }
    if (trail.route !== "/chat") {
      const message = `no route ${url.pathname}; sidechat serves POST /chat, GET /health, GET /ready, GET /providers${observer ? " and GET /metrics" : ""}`
      return reply(refuse({ status: 404, code: "not_found", message }))
    }
    const read = chat.runRoute(request, url, trail, token)
    if (read) return reply(await read)
    if (request.method !== "POST") return reply(refuse({ status: 405, code: "method_not_allowed", message: "use POST /chat" }))
    if (draining) {
      const refusal = { status: 503, code: "shutting_down" as const, message: "sidechat is shutting down; retry on another instance" }
      return reply(refuse({ ...refusal, headers: { "retry-after": "5" } }))
    }
    const client = clientOf(request, server?.requestIP?.(request)?.address, token, config.trustProxy)
    return reply(await chat.handle(request, url, client, trail, server, token))
  }

  const probe = (): ProbeState => ({
    providers: providers.modes,
    startedAt: started,
    activeStreams: chat.active(),
    draining,
    ...(deps.redis && { redis: deps.redis.up() }),
    ...(runs && { runs: runs.stats() }),
  })

  return Object.assign(handle, { shutdown })
}

/** A well-formed X-Request-Id (1-128 safe characters) is kept, so a trace across services holds; else a new one. */
function requestIdOf(request: Request): string {
  const given = request.headers.get("x-request-id")
  return given && /^[A-Za-z0-9._:@/+=-]{1,128}$/.test(given) ? given : `req_${crypto.randomUUID().replaceAll("-", "")}`
}

function routeOf(path: string): Route {
  return path === "/chat" || path === "/health" || path === "/ready" || path === "/metrics" || path === "/providers" ? path : "other"
}

// Not awaited: cli.ts imports this module back once it has bound the port.
if (import.meta.main) void import("./cli").then((cli) => cli.main())

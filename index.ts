// sidechat's HTTP edge: Bun.serve answers /chat, /health and /ready; provider events → parts →
// wire events → SSE. Policies apply in one visible order: CORS, probes, auth, draining, request
// checks, BYOK, limits; then the provider call, its clocks, and the stream.
import { parseCommand, printableConfig, usage } from "./cli"
import pkg from "./package.json"
import { type Config, maskKey, type ProviderName, parseConfig } from "./config"
import { createAuth } from "./edge/auth"
import { readJson } from "./edge/body"
import { createCors } from "./edge/cors"
import { clientOf, createLimits } from "./edge/limits"
import { createObserver, type Observer } from "./observe"
import { createLogger } from "./observe/log"
import { loadPrices } from "./observe/prices"
import { type Ctx, type ErrorCode, type ErrorPart, type FinishReason, liveCtx, type Part, type Usage } from "./parts"
import { detectGeneration, type Generation, type HttpError, parseChatBody, queryChoice } from "./request"
import { checkToolList, type ToolDecl } from "./schema"
import { streamResponse } from "./sse"
import { createProviders, guard, type Providers, providerLabel } from "./upstream"
import { type Opened, openWithRetries } from "./upstream/attempts"
import { createDeadline } from "./upstream/deadline"
import { classifyError, errorPart } from "./upstream/errors"
import { type Transport, wireFor } from "./wire"

export type Deps = {
  config: Config
  providers: Providers
  serverTools?: ToolDecl[]
  ctx?: () => Ctx
  /** Logs, metrics and traces: told every request's outcome, once, when it is known. */
  observer?: Observer
  /** Every request's outcome as well (tests read it). */
  onOutcome?: (outcome: Outcome) => void
}

export type Route = "/chat" | "/health" | "/ready" | "/metrics" | "other"

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
  ttftMs?: number
  durationMs: number
  usage?: Usage
  finishReason?: FinishReason
  costUsd?: number
  /** The incoming W3C trace context, so a span can continue the frontend's trace. */
  traceparent?: string
}

type Server = { timeout(request: Request, seconds: number): void; requestIP?(request: Request): { address: string } | null }

export type Handler = ((request: Request, server?: Server) => Promise<Response>) & {
  /**
   * Drains: /ready and new chats answer 503 at once; live streams may finish within `graceMs`;
   * then each one left ends with a final `shutdown` error event. Resolves when none is open.
   */
  shutdown(graceMs: number): Promise<void>
}

const BYOK_HEADERS: Record<string, string> = { anthropic: "x-byok-anthropic", openai: "x-byok-openai" }
const TIMEOUTS = new Set<ErrorCode>(["provider_timeout", "provider_stalled", "duration_exceeded"])

/** What a request has told us so far; `deferred` when a stream will record its end itself. */
type Trail = Omit<Outcome, "status" | "end" | "durationMs"> & { begun: number; startedAt: number; deferred: boolean }

/** The whole server as one function, testable with plain Requests. */
export function createHandler(deps: Deps): Handler {
  const { config, providers, serverTools = [], ctx = liveCtx, observer } = deps
  const started = Date.now()
  const auth = createAuth(config.authTokens)
  const cors = createCors(config.corsOrigins, config.byok === "off" ? [] : Object.values(BYOK_HEADERS))
  const limits = createLimits(config.limits)
  /** Live streams, each with the way to end it early (shutdown). */
  const streams = new Set<{ expire: (part: ErrorPart) => void }>()
  const drained = new Set<() => void>()
  let draining = false
  observer?.bind({ activeStreams: () => streams.size })
  const report = (what: string, error: unknown, requestId?: string) =>
    observer ? observer.logger.error(`BUG: ${what}`, { requestId, error }) : console.error(`sidechat: BUG: ${what}:`, error)

  const record = (trail: Trail, status: number, end: Outcome["end"], code?: ErrorCode) => {
    const { begun, startedAt, deferred, ...fields } = trail
    const outcome: Outcome = { ...fields, status, end, ...(code && { code }), durationMs: Math.round(performance.now() - begun) }
    observer?.record(outcome, startedAt)
    deps.onOutcome?.(outcome)
  }

  const handle = async (request: Request, server?: Server) => {
    const trail: Trail = {
      requestId: requestIdOf(request),
      method: request.method,
      route: routeOf(new URL(request.url).pathname),
      byok: false,
      retries: 0,
      begun: performance.now(),
      startedAt: Date.now(),
      deferred: false,
      ...(request.headers.has("traceparent") && { traceparent: request.headers.get("traceparent") as string }),
    }
    let response: Response
    try {
      response = await route(request, trail, server)
    } catch (error) {
      report(`${request.method} ${new URL(request.url).pathname} failed inside sidechat`, error, trail.requestId)
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
    const idle = () => new Promise<void>((resolve) => (streams.size ? drained.add(resolve) : resolve()))
    await Promise.race([idle(), Bun.sleep(graceMs)])
    const message = "sidechat is restarting; please send your message again"
    for (const stream of streams) stream.expire({ type: "error", code: "shutdown", message })
    await Promise.race([idle(), Bun.sleep(5000)])
  }

  async function route(request: Request, trail: Trail, server?: Server): Promise<Response> {
    const url = new URL(request.url)
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
      const headers = { "access-control-allow-methods": "GET, POST, OPTIONS", "access-control-allow-headers": cors.allowHeaders }
      return reply(new Response(null, { status: 204, headers: { ...headers, "access-control-max-age": "600" } }))
    }
    // Probes carry no token: /health says the process is up, /ready whether to send it traffic.
    if (trail.route === "/health" || trail.route === "/ready") {
      if (request.method !== "GET" && request.method !== "HEAD")
        return reply(refuse({ status: 405, code: "method_not_allowed", message: `use GET ${url.pathname}` }))
      return reply(trail.route === "/health" ? health() : ready())
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
    if (trail.route !== "/chat") {
      const message = `no route ${url.pathname}; sidechat serves POST /chat, GET /health, GET /ready${observer ? " and GET /metrics" : ""}`
      return reply(refuse({ status: 404, code: "not_found", message }))
    }
    if (request.method !== "POST") return reply(refuse({ status: 405, code: "method_not_allowed", message: "use POST /chat" }))
    if (draining) {
      const refusal = { status: 503, code: "shutting_down" as const, message: "sidechat is shutting down; retry on another instance" }
      return reply(refuse({ ...refusal, headers: { "retry-after": "5" } }))
    }
    const client = clientOf(request, server?.requestIP?.(request)?.address, token, config.trustProxy)
    return reply(await chat(request, url, client, trail, server))
  }

  function health(): Response {
    return Response.json({
      status: "ok",
      version: pkg.version,
      providers: providers.modes,
      defaultProvider: config.defaultProvider,
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
      activeStreams: streams.size,
    })
  }

  /** Configuration and draining state, never a provider call. */
  function ready(): Response {
    const body = {
      status: draining ? "draining" : "ready",
      draining,
      activeStreams: streams.size,
      providers: providers.modes,
      auth: auth.enabled,
      byok: config.byok,
    }
    return Response.json(body, { status: draining ? 503 : 200 })
  }

  async function chat(request: Request, url: URL, client: string, trail: Trail, server?: Server): Promise<Response> {
    const refuse = (error: HttpError) => {
      // A client that left has nobody to refuse; whatever failed after it left is its departure.
      if (request.signal.aborted) return cancelled()
      trail.code = error.code
      return httpError(error)
    }
    const cancelled = () => {
      trail.code = undefined
      return new Response(null, { status: 499 })
    }

    const body = await readJson(request, config.maxBodyBytes)
    if (!body.ok) return refuse(body.error)
    const transport = chooseTransport(url, request)
    if (!transport.ok) return refuse(transport.error)
    const generation = detectGeneration(body.value as Record<string, unknown>, request.headers, url)
    if (!generation.ok) return refuse(generation.error)
    trail.generation = generation.value
    trail.transport = transport.value
    const parsed = parseChatBody(generation.value, body.value, config, serverTools)
    if (!parsed.ok) return refuse(parsed.error)
    const chatRequest = parsed.value
    trail.provider = chatRequest.provider
    trail.model = chatRequest.model
    trail.mocked = providers.modes[chatRequest.provider] === "mock"
    if (config.logContent) observer?.logger.debug("request content", { requestId: trail.requestId, messages: chatRequest.messages })

    const key = ownKey(request, chatRequest.provider)
    trail.byok = Boolean(key)
    if (key) trail.mocked = false
    if (config.byok === "required" && !key && chatRequest.provider !== "mock") return byokMissing(chatRequest.provider, refuse)
    const admitted = limits.admit(client)
    if (!admitted.ok) {
      const { retryAfter, ...refusal } = admitted.refusal
      return refuse({ ...refusal, headers: { "retry-after": String(retryAfter) } })
    }

    // Thinking and slow first tokens can be quiet for longer than Bun's 10 s idle timer.
    server?.timeout(request, 0)
    const deadline = createDeadline(request.signal, config.timeouts, providerLabel(chatRequest.provider))
    const fallback = config.fallback && {
      provider: config.fallback.provider,
      model: config.fallback.model ?? defaultModel(config, config.fallback.provider),
    }
    const onRetry = () => trail.retries++
    const opening = openWithRetries(providers, chatRequest, deadline.signal, { retries: config.providerMaxRetries, fallback }, key, onRetry)
    void opening.then(
      (opened) => {
        if (!opened.fallbackFrom) return
        trail.fallbackFrom = `${opened.fallbackFrom.provider}/${opened.fallbackFrom.model}`
        trail.provider = opened.served.provider
        trail.model = opened.served.model
        trail.mocked = providers.modes[opened.served.provider] === "mock"
      },
      () => {},
    )
    // Every error a stream ends on passes here (converters throw theirs), so the log knows it.
    let error: ErrorPart | undefined
    const classify = (thrown: unknown) => {
      error = deadline.expired() ?? errorPart(thrown, providerLabel(trail.provider ?? chatRequest.provider))
      if (error.code === "internal_error" && !request.signal.aborted) report(`stream failed inside sidechat`, thrown, trail.requestId)
      return error
    }
    const firstContent = () => {
      trail.ttftMs = Math.round(performance.now() - trail.begun)
      deadline.contentArrived()
    }
    // Wait for the provider to accept for one heartbeat interval at most (so a refusal can still be
    // an HTTP status); a slower provider gets a started stream, heartbeats and in-band errors.
    const early = await settledWithin(opening, config.heartbeatMs)
    const finish = () => {
      admitted.release()
      deadline.clear()
    }
    // The request's signal aborted the provider call too, so nothing is left open behind this.
    if (request.signal.aborted) {
      finish()
      return cancelled()
    }
    let parts: AsyncIterable<Part>
    if (early?.ok === false) {
      const part = classify(early.error)
      if (config.providerErrors === "status") {
        finish()
        const status = deadline.expired() ? 504 : classifyError(early.error, providerLabel(chatRequest.provider)).status
        const retryAfter = part.retryAfter && { headers: { "retry-after": String(part.retryAfter) } }
        return refuse({ status, code: part.code, message: part.message, ...retryAfter })
      }
      parts = only(part)
    } else parts = guard(early ? early.value.parts : afterOpening(opening), classify, firstContent)

    const wire = wireFor(chatRequest.generation, transport.value)
    const context = ctx()
    /** The final event's extras, and the moment usage and the finish reason are known. */
    const final = (part: Part, model: string) => {
      trail.responseModel = model
      if (part.type === "finish") {
        trail.usage = part.usage
        trail.finishReason = part.reason
        const cost = observer?.cost(trail.model ?? model, part.usage)
        if (cost !== undefined) trail.costUsd = cost
      }
      return {
        requestId: trail.requestId,
        ...(trail.fallbackFrom && { fallback: { from: trail.fallbackFrom, to: `${trail.provider}/${trail.model}` } }),
        ...(trail.costUsd !== undefined && { costUsd: trail.costUsd }),
      }
    }
    const stream = { expire: deadline.expire }
    streams.add(stream)
    trail.deferred = true
    return streamResponse(wire.encode(parts, context, chatRequest, final), {
      frame: wire.frame,
      trailer: wire.trailer,
      fail: (thrown) => {
        report("stream failed inside sidechat", thrown, trail.requestId)
        error = { type: "error", code: "internal_error", message: "sidechat failed while streaming the response" }
        return wire.frame(wire.failure(error, context, chatRequest, final)) + wire.trailer
      },
      headers: {
        "content-type": wire.contentType,
        "cache-control": "no-cache",
        connection: "keep-alive",
        "x-accel-buffering": "no",
        "x-request-id": trail.requestId,
      },
      heartbeat: wire.heartbeat,
      heartbeatMs: config.heartbeatMs,
      signal: request.signal,
      onClose: (end) => {
        finish()
        streams.delete(stream)
        if (!streams.size) for (const resolve of drained) resolve()
        if (end === "cancelled") return record(trail, 200, "cancelled")
        if (!error) return record(trail, 200, "complete")
        const how = error.code === "shutdown" ? "shutdown" : TIMEOUTS.has(error.code) ? "timeout" : "error"
        record(trail, 200, how, error.code)
      },
    })
  }

  /** The caller's own provider key, when BYOK is on and the request carries one. */
  function ownKey(request: Request, provider: ProviderName): string | undefined {
    if (config.byok === "off") return undefined
    const header = BYOK_HEADERS[provider]
    return (header && request.headers.get(header)?.trim()) || undefined
  }

  return Object.assign(handle, { shutdown })
}

/** A well-formed X-Request-Id (1-128 safe characters) is kept, so a trace across services holds; else a new one. */
function requestIdOf(request: Request): string {
  const given = request.headers.get("x-request-id")
  return given && /^[A-Za-z0-9._:@/+=-]{1,128}$/.test(given) ? given : `req_${crypto.randomUUID().replaceAll("-", "")}`
}

function routeOf(path: string): Route {
  return path === "/chat" || path === "/health" || path === "/ready" || path === "/metrics" ? path : "other"
}

/**
 * BYOK=required and no key: TanStack's client turns exactly this 401 body into `ByokMissingError`,
 * which asks the user for a key.
 */
function byokMissing(provider: ProviderName, refuse: (error: HttpError) => Response): Response {
  const message = `Missing ${provider} API key`
  const response = refuse({ status: 401, code: "byok_missing", message })
  if (response.status !== 401) return response
  return Response.json({ error: { type: "byok_missing", code: "byok_missing", provider, message } }, { status: 401 })
}

function defaultModel(config: Config, provider: ProviderName): string {
  return provider === "mock" ? "sidechat-mock" : config[provider].model
}

/** A stream of one part: a failure before the first byte, told in-band. */
async function* only(part: ErrorPart): AsyncGenerator<Part> {
  yield part
}

type Settled<V> = { ok: true; value: V } | { ok: false; error: unknown }

/** The promise's outcome if it settles within `ms`, else undefined (the promise keeps running). */
async function settledWithin<V>(promise: Promise<V>, ms: number): Promise<Settled<V> | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const outcome = promise.then(
    (value): Settled<V> => ({ ok: true, value }),
    (error): Settled<V> => ({ ok: false, error }),
  )
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms)
  })
  try {
    return await Promise.race([outcome, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** The parts of a provider stream that is still opening; `guard` turns a late refusal into an error part. */
async function* afterOpening(opening: Promise<Opened>): AsyncGenerator<Part> {
  yield* (await opening).parts
}

type Result<V> = { ok: true; value: V } | { ok: false; error: HttpError }

function chooseTransport(url: URL, request: Request): Result<Transport> {
  const asked = queryChoice(url, "transport", ["sse", "ndjson"] as const)
  if (!asked.ok || asked.value) return asked as Result<Transport>
  return { ok: true, value: request.headers.get("accept")?.includes("application/x-ndjson") ? "ndjson" : "sse" }
}

export function httpError(error: HttpError & { code: ErrorCode }): Response {
  const { status, code, message, path, headers } = error
  return Response.json({ error: { code, message, ...(path && { path }) } }, { status, headers })
}

/** Reads TOOLS_FILE: a JSON array of `{ name, description, parameters }` declared to every provider call. */
export async function loadServerTools(path: string | undefined): Promise<{ ok: true; value: ToolDecl[] } | { ok: false; problem: string }> {
  if (!path) return { ok: true, value: [] }
  const file = Bun.file(path)
  if (!(await file.exists())) return { ok: false, problem: `TOOLS_FILE=${path}: no such file` }
  let json: unknown
  try {
    json = await file.json()
  } catch (error) {
    return { ok: false, problem: `TOOLS_FILE=${path}: not JSON (${(error as Error).message})` }
  }
  const checked = checkToolList(json)
  return checked.ok ? checked : { ok: false, problem: `TOOLS_FILE=${path}: ${checked.error.path || "(root)"} ${checked.error.message}` }
}

async function main() {
  const command = parseCommand(process.argv.slice(2), Bun.env)
  if (command.kind === "help") return console.log(usage(pkg.version))
  if (command.kind === "version") return console.log(pkg.version)
  // Until the configuration is read, the format comes from LOG_FORMAT as given, else the terminal.
  const asked = command.kind === "serve" ? command.env.LOG_FORMAT : undefined
  const boot = createLogger({
    level: "info",
    format: asked === "json" || asked === "pretty" ? asked : process.stdout.isTTY ? "pretty" : "json",
  })
  if (command.kind === "error") {
    boot.error(`sidechat: ${command.message}`)
    process.exit(2)
  }
  const parsed = parseConfig(command.env)
  if (!parsed.ok) {
    boot.error(`sidechat: cannot start:\n${parsed.problems.map((p) => `  - ${p}`).join("\n")}`, { problems: parsed.problems })
    process.exit(1)
  }
  const config = parsed.value
  if (command.printConfig) return console.log(printableConfig(config))
  const logger = createLogger({ level: config.logLevel, format: config.logFormat ?? (process.stdout.isTTY ? "pretty" : "json") })
  const [tools, prices] = await Promise.all([loadServerTools(config.toolsFile), loadPrices(config.pricesFile)])
  const problems = [tools, prices].flatMap((loaded) => (loaded.ok ? [] : [loaded.problem]))
  if (!tools.ok || !prices.ok) {
    logger.error(`sidechat: cannot start:\n${problems.map((p) => `  - ${p}`).join("\n")}`, { problems })
    process.exit(1)
  }
  for (const warning of parsed.warnings) logger.warn(`sidechat: ${warning}`)
  // Containment: a throw that escapes one stream's machinery is a bug to see, not a reason to end
  // every other stream; the process logs it loudly and carries on.
  process.on("uncaughtException", (error) => logger.error("BUG: uncaught exception (sidechat carries on)", { error }))
  process.on("unhandledRejection", (error) => logger.error("BUG: unhandled rejection (sidechat carries on)", { error }))
  // Loaded only when configured: without tracing, no OpenTelemetry module is evaluated.
  const tracing = config.otel ? await (await import("./observe/trace")).createTracing(config.otel, pkg.version) : undefined
  const observer = createObserver({ config, logger, prices: prices.value, tracing })
  const providers = createProviders(config)
  const handler = createHandler({ config, providers, serverTools: tools.value, observer })
  const server = Bun.serve({
    port: config.port,
    hostname: config.host,
    // Bun's own limit answers with an empty 413 no client can read; readJson answers every size.
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    fetch: (request, srv) => handler(request, srv),
    error(error) {
      logger.error("BUG: Bun.serve caught an error", { error })
      return httpError({ status: 500, code: "internal_error", message: "sidechat failed while handling the request" })
    },
  })

  let stopping = false
  const stop = async (signal: string) => {
    if (stopping) {
      logger.warn(`sidechat: ${signal} again: exiting now`, { signal })
      process.exit(1)
    }
    stopping = true
    logger.info(`sidechat: ${signal}: draining (up to ${config.shutdownGraceMs} ms for open streams)`, {
      signal,
      graceMs: config.shutdownGraceMs,
    })
    await handler.shutdown(config.shutdownGraceMs)
    await server.stop(true)
    await tracing?.shutdown()
    logger.info("sidechat: stopped")
    process.exit(0)
  }
  process.on("SIGTERM", () => void stop("SIGTERM"))
  process.on("SIGINT", () => void stop("SIGINT"))

  const url = `http://${server.hostname}:${server.port}`
  const mask = (key?: string) => (key ? maskKey(key) : undefined)
  logger.info(`sidechat ${pkg.version} listening on ${url}`, { version: pkg.version, url })
  logger.info(`  anthropic: ${providers.modes.anthropic}, default model ${config.anthropic.model}`, {
    provider: "anthropic",
    mode: providers.modes.anthropic,
    key: mask(config.anthropic.apiKey),
    model: config.anthropic.model,
  })
  logger.info(
    `  openai:    ${providers.modes.openai}, default model ${config.openai.model}${config.openai.baseURL ? ` at ${config.openai.baseURL}` : ""}`,
    {
      provider: "openai",
      mode: providers.modes.openai,
      key: mask(config.openai.apiKey),
      model: config.openai.model,
      baseURL: config.openai.baseURL,
    },
  )
  const mocked = providers.modes[config.defaultProvider] === "mock"
  logger.info(`  default provider: ${config.defaultProvider}${mocked ? " (mocked: no key set, replies are canned)" : ""}`, {
    defaultProvider: config.defaultProvider,
    mocked,
  })
  const tokens = config.authTokens.length
  logger.info(`  auth: ${tokens ? `bearer (${tokens} token${tokens > 1 ? "s" : ""})` : "off"}, BYOK: ${config.byok}`, {
    auth: tokens > 0,
    byok: config.byok,
    tracing: config.otel ? config.otel.endpoint : "off",
    prices: prices.value.length,
  })
  if (tools.value.length)
    logger.info(`  server tools: ${tools.value.map((tool) => tool.name).join(", ")}`, { tools: tools.value.map((t) => t.name) })
}

if (import.meta.main) await main()

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
import { type Ctx, type ErrorCode, type ErrorPart, liveCtx, type Part } from "./parts"
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
  /** One line per request, at its end. */
  log?: (line: string) => void
  /** Every /chat request's outcome, once, when it is known: the seam for logs and metrics. */
  onOutcome?: (outcome: Outcome) => void
  /** A bug: something sidechat did not expect threw. Logged loudly, with its stack. */
  report?: (what: string, error: unknown) => void
}

/** How one /chat request ended, as the client saw it. */
export type Outcome = {
  status: number
  /** `complete`; `error` (the final event was an error); `cancelled` (the client left); `refused` (an HTTP error). */
  end: "complete" | "error" | "cancelled" | "refused"
  code?: ErrorCode
  generation?: Generation
  transport?: Transport
  provider?: ProviderName
  model?: string
  byok: boolean
  retries: number
  /** `provider/model` the fallback left, when it served the request. */
  fallbackFrom?: string
  durationMs: number
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

/** The whole server as one function, testable with plain Requests. */
export function createHandler(deps: Deps): Handler {
  const { config, providers, serverTools = [], ctx = liveCtx, log = () => {}, report = reportToConsole } = deps
  const started = Date.now()
  const auth = createAuth(config.authTokens)
  const cors = createCors(config.corsOrigins, config.byok === "off" ? [] : Object.values(BYOK_HEADERS))
  const limits = createLimits(config.limits)
  /** Live streams, each with the way to end it early (shutdown). */
  const streams = new Set<{ expire: (part: ErrorPart) => void }>()
  const drained = new Set<() => void>()
  let draining = false

  const handle = async (request: Request, server?: Server) => {
    try {
      return await route(request, server)
    } catch (error) {
      report(`${request.method} ${new URL(request.url).pathname} failed inside sidechat`, error)
      return httpError({ status: 500, code: "internal_error", message: "sidechat failed while handling the request" })
    }
  }

  async function shutdown(graceMs: number) {
    draining = true
    const idle = () => new Promise<void>((resolve) => (streams.size ? drained.add(resolve) : resolve()))
    await Promise.race([idle(), Bun.sleep(graceMs)])
    const message = "sidechat is restarting; please send your message again"
    for (const stream of streams) stream.expire({ type: "error", code: "shutdown", message })
    await Promise.race([idle(), Bun.sleep(5000)])
  }

  async function route(request: Request, server?: Server): Promise<Response> {
    const url = new URL(request.url)
    const origin = request.headers.get("origin")
    const corsHeaders = cors.headersFor(origin)
    if (!corsHeaders) return httpError({ status: 403, code: "origin_not_allowed", message: `origin ${origin} is not in CORS_ORIGINS` })
    const reply = (response: Response) => {
      for (const [key, value] of Object.entries(corsHeaders)) response.headers.set(key, value)
      return response
    }

    if (request.method === "OPTIONS") {
      const headers = { "access-control-allow-methods": "GET, POST, OPTIONS", "access-control-allow-headers": cors.allowHeaders }
      return reply(new Response(null, { status: 204, headers: { ...headers, "access-control-max-age": "600" } }))
    }
    // Probes carry no token: /health says the process is up, /ready whether to send it traffic.
    if (url.pathname === "/health" || url.pathname === "/ready") {
      if (request.method !== "GET" && request.method !== "HEAD")
        return reply(httpError({ status: 405, code: "method_not_allowed", message: `use GET ${url.pathname}` }))
      return reply(url.pathname === "/health" ? health() : ready())
    }
    // Every other route, unknown ones included, needs the token: nothing is learnt without it.
    const token = auth.check(request)
    if (auth.enabled && !token) {
      const refusal = { status: 401, code: "unauthorized" as const, message: "a valid bearer token is required (Authorization: Bearer …)" }
      if (url.pathname === "/chat") logRefusal(refusal, "", 0)
      return reply(httpError({ ...refusal, headers: { "www-authenticate": 'Bearer realm="sidechat"' } }))
    }
    if (url.pathname !== "/chat")
      return reply(
        httpError({
          status: 404,
          code: "not_found",
          message: `no route ${url.pathname}; sidechat serves POST /chat, GET /health and GET /ready`,
        }),
      )
    if (request.method !== "POST") return reply(httpError({ status: 405, code: "method_not_allowed", message: "use POST /chat" }))
    if (draining) {
      const refusal = { status: 503, code: "shutting_down" as const, message: "sidechat is shutting down; retry on another instance" }
      logRefusal(refusal, "", 0)
      return reply(httpError({ ...refusal, headers: { "retry-after": "5" } }))
    }
    return reply(await chat(request, url, clientOf(request, server?.requestIP?.(request)?.address, token, config.trustProxy), server))
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

  function logRefusal(error: HttpError, label: string, ms: number) {
    log(`POST /chat ${error.status} ${label}${error.code} ${ms}ms`)
  }

  async function chat(request: Request, url: URL, client: string, server?: Server): Promise<Response> {
    const begun = performance.now()
    const ms = () => Math.round(performance.now() - begun)
    let label = ""
    const outcome = (fields: Omit<Outcome, "durationMs" | "byok" | "retries"> & Partial<Outcome>) =>
      deps.onOutcome?.({ byok: false, retries: 0, ...fields, durationMs: ms() })
    const refuse = (error: HttpError) => {
      // A client that left has nobody to refuse; whatever failed after it left is its departure.
      if (request.signal.aborted) return cancelled()
      logRefusal(error, label, ms())
      outcome({ status: error.status, end: "refused", code: error.code })
      return httpError(error)
    }
    const cancelled = () => {
      log(`POST /chat 499 ${label}cancelled ${ms()}ms`)
      outcome({ status: 499, end: "cancelled" })
      return new Response(null, { status: 499 })
    }

    const body = await readJson(request, config.maxBodyBytes)
    if (!body.ok) return refuse(body.error)
    const transport = chooseTransport(url, request)
    if (!transport.ok) return refuse(transport.error)
    const generation = detectGeneration(body.value as Record<string, unknown>, request.headers, url)
    if (!generation.ok) return refuse(generation.error)
    label = `${generation.value} `
    const parsed = parseChatBody(generation.value, body.value, config, serverTools)
    if (!parsed.ok) return refuse(parsed.error)
    const chatRequest = parsed.value
    label = `${chatRequest.generation} ${chatRequest.provider}/${chatRequest.model} `

    const key = ownKey(request, chatRequest.provider)
    if (config.byok === "required" && !key && chatRequest.provider !== "mock") return byokMissing(chatRequest.provider, refuse)
    const admitted = limits.admit(client)
    if (!admitted.ok) {
      const { retryAfter, ...refusal } = admitted.refusal
      return refuse({ ...refusal, headers: { "retry-after": String(retryAfter) } })
    }

    // Thinking and slow first tokens can be quiet for longer than Bun's 10 s idle timer.
    server?.timeout(request, 0)
    const deadline = createDeadline(request.signal, config.timeouts, providerLabel(chatRequest.provider))
    let retries = 0
    let served = chatRequest
    let fallbackFrom: string | undefined
    const fallback = config.fallback && {
      provider: config.fallback.provider,
      model: config.fallback.model ?? defaultModel(config, config.fallback.provider),
    }
    const opening = openWithRetries(
      providers,
      chatRequest,
      deadline.signal,
      { retries: config.providerMaxRetries, fallback },
      key,
      () => retries++,
    )
    void opening.then(
      (opened) => {
        served = opened.served
        if (opened.fallbackFrom) fallbackFrom = `${opened.fallbackFrom.provider}/${opened.fallbackFrom.model}`
      },
      () => {},
    )
    // Every error a stream ends on passes here (converters throw theirs), so the log knows it.
    let error: ErrorPart | undefined
    const classify = (thrown: unknown) => {
      error = deadline.expired() ?? errorPart(thrown, providerLabel(served.provider))
      if (error.code === "internal_error" && !request.signal.aborted) report(`stream ${label}failed inside sidechat`, thrown)
      return error
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
        const failure = classifyError(early.error, providerLabel(served.provider))
        const status = deadline.expired() ? 504 : failure.status
        return refuse({
          status,
          code: part.code,
          message: part.message,
          ...(part.retryAfter && { headers: { "retry-after": String(part.retryAfter) } }),
        })
      }
      parts = only(part)
    } else parts = guard(early ? early.value.parts : afterOpening(opening), classify, deadline.contentArrived)

    const wire = wireFor(chatRequest.generation, transport.value)
    const context = ctx()
    const extra = () => (fallbackFrom ? { fallback: { from: fallbackFrom, to: `${served.provider}/${served.model}` } } : {})
    const stream = { expire: deadline.expire }
    streams.add(stream)
    return streamResponse(wire.encode(parts, context, chatRequest, extra), {
      frame: wire.frame,
      trailer: wire.trailer,
      fail: (thrown) => {
        report(`stream ${label}failed inside sidechat`, thrown)
        error = { type: "error", code: "internal_error", message: "sidechat failed while streaming the response" }
        return wire.frame(wire.failure(error, context, chatRequest, extra)) + wire.trailer
      },
      headers: { "content-type": wire.contentType, "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" },
      heartbeat: wire.heartbeat,
      heartbeatMs: config.heartbeatMs,
      signal: request.signal,
      onClose: (end) => {
        finish()
        streams.delete(stream)
        if (!streams.size) for (const resolve of drained) resolve()
        const how = end === "cancelled" ? "cancelled" : error ? `error ${error.code}` : "complete"
        const notes = `${retries ? ` retries=${retries}` : ""}${fallbackFrom ? ` fallback=${served.provider}/${served.model}` : ""}`
        log(`POST /chat 200 ${label}${how}${notes} ${ms()}ms`)
        outcome({
          status: 200,
          end: end === "cancelled" ? "cancelled" : error ? "error" : "complete",
          code: error?.code,
          generation: chatRequest.generation,
          transport: transport.value,
          provider: served.provider,
          model: served.model,
          byok: Boolean(key),
          retries,
          fallbackFrom,
        })
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

function reportToConsole(what: string, error: unknown): void {
  console.error(`sidechat: BUG: ${what}:`, error)
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
  if (command.kind === "error") {
    console.error(`sidechat: ${command.message}`)
    process.exit(2)
  }
  const parsed = parseConfig(command.env)
  if (!parsed.ok) {
    console.error(`sidechat: cannot start:\n${parsed.problems.map((p) => `  - ${p}`).join("\n")}`)
    process.exit(1)
  }
  const config = parsed.value
  if (command.printConfig) return console.log(printableConfig(config))
  const tools = await loadServerTools(config.toolsFile)
  if (!tools.ok) {
    console.error(`sidechat: cannot start:\n  - ${tools.problem}`)
    process.exit(1)
  }
  for (const warning of parsed.warnings) console.warn(`sidechat: warning: ${warning}`)
  // Containment: a throw that escapes one stream's machinery is a bug to see, not a reason to end
  // every other stream; the process logs it loudly and carries on.
  process.on("uncaughtException", (error) => reportToConsole("uncaught exception (sidechat carries on)", error))
  process.on("unhandledRejection", (reason) => reportToConsole("unhandled rejection (sidechat carries on)", reason))
  const providers = createProviders(config)
  const handler = createHandler({ config, providers, serverTools: tools.value, log: (line) => console.log(line) })
  const server = Bun.serve({
    port: config.port,
    hostname: config.host,
    // Bun's own limit answers with an empty 413 no client can read; readJson answers every size.
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    fetch: (request, srv) => handler(request, srv),
    error(error) {
      reportToConsole("Bun.serve caught an error", error)
      return httpError({ status: 500, code: "internal_error", message: "sidechat failed while handling the request" })
    },
  })

  let stopping = false
  const stop = async (signal: string) => {
    if (stopping) {
      console.log(`sidechat: ${signal} again: exiting now`)
      process.exit(1)
    }
    stopping = true
    console.log(`sidechat: ${signal}: draining (up to ${config.shutdownGraceMs} ms for open streams)`)
    await handler.shutdown(config.shutdownGraceMs)
    await server.stop(true)
    console.log("sidechat: stopped")
    process.exit(0)
  }
  process.on("SIGTERM", () => void stop("SIGTERM"))
  process.on("SIGINT", () => void stop("SIGINT"))

  const keyOf = (key?: string) => (key ? ` (key ${maskKey(key)})` : "")
  console.log(`sidechat ${pkg.version} listening on http://${server.hostname}:${server.port}`)
  console.log(`  anthropic: ${providers.modes.anthropic}${keyOf(config.anthropic.apiKey)}, default model ${config.anthropic.model}`)
  console.log(
    `  openai:    ${providers.modes.openai}${keyOf(config.openai.apiKey)}, default model ${config.openai.model}${config.openai.baseURL ? ` at ${config.openai.baseURL}` : ""}`,
  )
  console.log(
    `  default provider: ${config.defaultProvider}${providers.modes[config.defaultProvider] === "mock" ? " (mocked: no key set, replies are canned)" : ""}`,
  )
  console.log(
    `  auth: ${config.authTokens.length ? `bearer (${config.authTokens.length} token${config.authTokens.length > 1 ? "s" : ""})` : "off"}, BYOK: ${config.byok}`,
  )
  if (tools.value.length) console.log(`  server tools: ${tools.value.map((tool) => tool.name).join(", ")}`)
}

if (import.meta.main) await main()

// sidechat's HTTP edge: Bun.serve answers /chat and /health; provider events → parts → wire events → SSE.
import pkg from "./package.json"
import { type Config, maskKey, matchesAny, parseConfig } from "./config"
import { type Ctx, type ErrorCode, type ErrorPart, liveCtx, type Part } from "./parts"
import { createProviders, guard, type Providers, providerLabel } from "./upstream"
import { classifyError } from "./upstream/errors"
import { detectGeneration, type HttpError, parseChatBody, queryChoice } from "./request"
import { checkToolList, type ToolDecl } from "./schema"
import { streamResponse } from "./sse"
import { type Transport, wireFor } from "./wire"

export type Deps = {
  config: Config
  providers: Providers
  serverTools?: ToolDecl[]
  ctx?: () => Ctx
  /** One line per request, at its end. */
  log?: (line: string) => void
  /** A bug: something sidechat did not expect threw. Logged loudly, with its stack. */
  report?: (what: string, error: unknown) => void
}

type Server = { timeout(request: Request, seconds: number): void }

/** The whole server as one function, testable with plain Requests. */
export function createHandler(deps: Deps): (request: Request, server?: Server) => Promise<Response> {
  const { config, providers, serverTools = [], ctx = liveCtx, log = () => {}, report = reportToConsole } = deps
  const started = Date.now()
  let activeStreams = 0

  return async (request, server) => {
    try {
      return await route(request, server)
    } catch (error) {
      report(`${request.method} ${new URL(request.url).pathname} failed inside sidechat`, error)
      return httpError({ status: 500, code: "internal_error", message: "sidechat failed while handling the request" })
    }
  }

  async function route(request: Request, server?: Server): Promise<Response> {
    const url = new URL(request.url)
    const origin = request.headers.get("origin")
    const cors = corsHeaders(config, origin)
    if (origin && !cors) return httpError({ status: 403, code: "origin_not_allowed", message: `origin ${origin} is not in CORS_ORIGINS` })
    const reply = (response: Response) => {
      for (const [key, value] of Object.entries(cors ?? {})) response.headers.set(key, value)
      return response
    }

    if (request.method === "OPTIONS") {
      const asked = request.headers.get("access-control-request-headers")
      return reply(
        new Response(null, {
          status: 204,
          headers: {
            "access-control-allow-methods": "GET, POST, OPTIONS",
            "access-control-allow-headers": asked ?? "content-type",
            "access-control-max-age": "600",
          },
        }),
      )
    }
    if (url.pathname === "/health") {
      if (request.method !== "GET" && request.method !== "HEAD")
        return reply(httpError({ status: 405, code: "method_not_allowed", message: "use GET /health" }))
      return reply(
        Response.json({
          status: "ok",
          version: pkg.version,
          providers: providers.modes,
          defaultProvider: config.defaultProvider,
          uptimeSeconds: Math.round((Date.now() - started) / 1000),
          activeStreams,
        }),
      )
    }
    if (url.pathname !== "/chat")
      return reply(
        httpError({ status: 404, code: "not_found", message: `no route ${url.pathname}; sidechat serves POST /chat and GET /health` }),
      )
    if (request.method !== "POST") return reply(httpError({ status: 405, code: "method_not_allowed", message: "use POST /chat" }))
    return reply(await chat(request, url, server))
  }

  async function chat(request: Request, url: URL, server?: Server): Promise<Response> {
    const begun = performance.now()
    const elapsed = () => `${Math.round(performance.now() - begun)}ms`
    const refuse = (error: HttpError, label = "") => {
      // A client that left has nobody to refuse; whatever failed after it left is its departure.
      if (request.signal.aborted) return cancelled(label)
      log(`POST /chat ${error.status} ${label}${error.code} ${elapsed()}`)
      return httpError(error)
    }
    const cancelled = (label: string) => {
      log(`POST /chat 499 ${label}cancelled ${elapsed()}`)
      return new Response(null, { status: 499 })
    }
    const body = await readJson(request, config.maxBodyBytes)
    if (!body.ok) return refuse(body.error)
    const transport = chooseTransport(url, request)
    if (!transport.ok) return refuse(transport.error)

    const generation = detectGeneration(body.value as Record<string, unknown>, request.headers, url)
    if (!generation.ok) return refuse(generation.error)
    const parsed = parseChatBody(generation.value, body.value, config, serverTools)
    if (!parsed.ok) return refuse(parsed.error, `${generation.value} `)
    const chatRequest = parsed.value
    const label = `${chatRequest.generation} ${chatRequest.provider}/${chatRequest.model} `
    const provider = providerLabel(chatRequest.provider)

    // Thinking and slow first tokens can be quiet for longer than Bun's 10 s idle timer.
    server?.timeout(request, 0)
    // Wait for the provider to accept (so its refusals become HTTP errors) for one heartbeat
    // interval at most; a slower provider gets a started stream, heartbeats and in-band errors.
    const opening = providers.open(chatRequest, request.signal)
    const early = await settledWithin(opening, config.heartbeatMs)
    // The request's signal aborted the provider call too, so nothing is left open behind this.
    if (request.signal.aborted) return cancelled(label)
    if (early?.ok === false) {
      const failure = classifyError(early.error, provider)
      return refuse({ ...failure, ...(failure.retryAfter && { headers: { "retry-after": failure.retryAfter } }) }, label)
    }
    let error: ErrorPart | undefined
    const parts = guard(early ? early.value : afterOpening(opening), provider, (part, thrown) => {
      error = part
      if (part.code === "internal_error" && !request.signal.aborted) report(`stream ${label}failed inside sidechat`, thrown)
    })

    const wire = wireFor(chatRequest.generation, transport.value)
    const context = ctx()
    activeStreams++
    return streamResponse(wire.encode(parts, context, chatRequest), {
      frame: wire.frame,
      trailer: wire.trailer,
      fail: (thrown) => {
        report(`stream ${label}failed inside sidechat`, thrown)
        error = { type: "error", code: "internal_error", message: "sidechat failed while streaming the response" }
        return wire.frame(wire.failure(error, context, chatRequest)) + wire.trailer
      },
      headers: { "content-type": wire.contentType, "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" },
      heartbeat: wire.heartbeat,
      heartbeatMs: config.heartbeatMs,
      signal: request.signal,
      onClose: (end) => {
        activeStreams--
        const outcome = end === "cancelled" ? "cancelled" : error ? `error ${error.code}` : "complete"
        log(`POST /chat 200 ${label}${outcome} ${elapsed()}`)
      },
    })
  }
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
async function* afterOpening(opening: Promise<AsyncIterable<Part>>): AsyncGenerator<Part> {
  yield* await opening
}

type Result<V> = { ok: true; value: V } | { ok: false; error: HttpError }

function chooseTransport(url: URL, request: Request): Result<Transport> {
  const asked = queryChoice(url, "transport", ["sse", "ndjson"] as const)
  if (!asked.ok || asked.value) return asked as Result<Transport>
  return { ok: true, value: request.headers.get("accept")?.includes("application/x-ndjson") ? "ndjson" : "sse" }
}

/** Reads at most `limit` bytes of JSON; each way a body can be wrong gets its own answer. */
async function readJson(request: Request, limit: number): Promise<Result<unknown>> {
  const type = request.headers.get("content-type") ?? ""
  if (!/^application\/([\w.+-]*\+)?json\b/i.test(type))
    return {
      ok: false,
      error: {
        status: 415,
        code: "unsupported_media_type",
        message: `Content-Type must be application/json; got ${type ? `"${type}"` : "none"}`,
      },
    }
  const tooLarge: Result<unknown> = {
    ok: false,
    error: { status: 413, code: "payload_too_large", message: `request body is over the ${limit}-byte limit (MAX_BODY_BYTES)` },
  }
  if (Number(request.headers.get("content-length") ?? 0) > limit) return tooLarge
  const chunks: Uint8Array[] = []
  let size = 0
  try {
    for await (const chunk of request.body ?? []) {
      size += chunk.byteLength
      if (size > limit) return tooLarge
      chunks.push(chunk)
    }
  } catch (error) {
    return {
      ok: false,
      error: { status: 400, code: "invalid_request", message: `the request body could not be read: ${(error as Error).message}` },
    }
  }
  const text = new TextDecoder().decode(Buffer.concat(chunks))
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    return {
      ok: false,
      error: { status: 400, code: "invalid_json", message: `request body is not valid JSON: ${(error as Error).message}` },
    }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return {
      ok: false,
      error: {
        status: 400,
        code: "invalid_request",
        message: `request body must be a JSON object; got ${Array.isArray(value) ? "an array" : JSON.stringify(value)}`,
      },
    }
  return { ok: true, value }
}

function corsHeaders(config: Config, origin: string | null): Record<string, string> | undefined {
  if (!origin) return {}
  if (!matchesAny(config.corsOrigins, origin)) return undefined
  return { "access-control-allow-origin": origin, "access-control-allow-credentials": "true", vary: "Origin" }
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
  const parsed = parseConfig(Bun.env)
  if (!parsed.ok) {
    console.error(`sidechat: cannot start:\n${parsed.problems.map((p) => `  - ${p}`).join("\n")}`)
    process.exit(1)
  }
  const config = parsed.value
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
    maxRequestBodySize: config.maxBodyBytes + 1024 * 1024,
    fetch: (request, srv) => handler(request, srv),
    error(error) {
      reportToConsole("Bun.serve caught an error", error)
      return httpError({ status: 500, code: "internal_error", message: "sidechat failed while handling the request" })
    },
  })
  const keyOf = (key?: string) => (key ? ` (key ${maskKey(key)})` : "")
  console.log(`sidechat ${pkg.version} listening on http://${server.hostname}:${server.port}`)
  console.log(`  anthropic: ${providers.modes.anthropic}${keyOf(config.anthropic.apiKey)}, default model ${config.anthropic.model}`)
  console.log(
    `  openai:    ${providers.modes.openai}${keyOf(config.openai.apiKey)}, default model ${config.openai.model}${config.openai.baseURL ? ` at ${config.openai.baseURL}` : ""}`,
  )
  console.log(
    `  default provider: ${config.defaultProvider}${providers.modes[config.defaultProvider] === "mock" ? " (mocked: no key set, replies are canned)" : ""}`,
  )
  if (tools.value.length) console.log(`  server tools: ${tools.value.map((tool) => tool.name).join(", ")}`)
}

if (import.meta.main) await main()

// The /chat route: a body becomes a ChatRequest, the provider's stream becomes parts, the parts
// become the client generation's events, and those a streamed Response. It owns the live streams.
import type { Config, ProviderName } from "./config"
import { httpError } from "./edge/http-error"
import type { Admit } from "./edge/limits"
import { readJson } from "./edge/body"
import type { Outcome } from "./index"
import type { Observer } from "./observe"
import type { Ctx, ErrorCode, ErrorPart, Part } from "./parts"
import { type ChatRequest, detectGeneration, type HttpError, parseChatBody, queryChoice } from "./request"
import type { ToolDecl } from "./schema"
import { findReconnect, type Reader, readRun, stopRun, tailResponse } from "./runs/http"
import { ownerOf, type RunLog, type Runs, type Started } from "./runs"
import { streamResponse } from "./sse"
import { type Providers, providerLabel } from "./upstream"
import { type Opened, openWithRetries } from "./upstream/attempts"
import { createDeadline } from "./upstream/deadline"
import { classifyError, errorPart, unreachableReason } from "./upstream/errors"
import { aguiEvents, aguiFailure, type RunRef, type Transport, wireFor } from "./wire"

/** What a request has told us so far; `deferred` when a stream will record its end itself. */
export type Trail = Omit<Outcome, "status" | "end" | "durationMs"> & { begun: number; startedAt: number; deferred: boolean }

export type Server = { timeout(request: Request, seconds: number): void; requestIP?(request: Request): { address: string } | null }

export type ChatDeps = {
  config: Config
  providers: Providers
  serverTools: ToolDecl[]
  ctx: () => Ctx
  observer?: Observer
  limits: Admit
  /** Resumable runs, when RESUMABLE is on (AG-UI requests only). */
  runs?: Runs
  /** Records the request's outcome once its stream has ended. */
  record: (trail: Trail, status: number, end: Outcome["end"], code?: ErrorCode) => void
  report: (what: string, error: unknown, requestId?: string) => void
}

export type Chat = {
  /** POST /chat; `token` is the bearer token the request presented (it owns resumable runs). */
  handle(request: Request, url: URL, client: string, trail: Trail, server?: Server, token?: string): Promise<Response>
  /** GET /chat (join, resume, hydration) and DELETE /chat (stop) with resumability on; else undefined. */
  runRoute(request: Request, url: URL, trail: Trail, token?: string): Promise<Response> | undefined
  /** Streams open right now. */
  active(): number
  /** Resolves once no stream is open. */
  idle(): Promise<void>
  /** Ends every open stream now with `part` as its final event. */
  expireAll(part: ErrorPart): void
}

const BYOK_HEADERS: Record<string, string> = { anthropic: "x-byok-anthropic", openai: "x-byok-openai" }
/** The BYOK request headers a browser's preflight must allow. */
export const BYOK_HEADER_NAMES = Object.values(BYOK_HEADERS)
const TIMEOUTS = new Set<ErrorCode>(["provider_timeout", "provider_stalled", "duration_exceeded"])
const STOPS = new Set<ErrorCode>(["run_stopped", "run_abandoned"])
/** Streams served before an idle moment is worth a full garbage collection. */
const IDLE_COLLECTION_AFTER = 256

export function createChat(deps: ChatDeps): Chat {
  const { config, providers, serverTools, ctx, observer, limits, runs, record, report } = deps
  /** Live streams, each with the way to end it early (shutdown). */
  const streams = new Set<{ expire: (part: ErrorPart) => void }>()
  const drained = new Set<() => void>()
  /** Responses reading a resumable run's log: a drain waits for them to deliver its last event too. */
  let readers = 0
  const settled = () => {
    if (streams.size || readers) return
    for (const resolve of drained) resolve()
    drained.clear()
    collectWhenIdle()
  }
  /**
   * A burst of streams leaves hundreds of MiB of garbage that an idle process would keep for a
   * long time (nothing allocates, so nothing triggers a collection). After a busy period, a
   * second of idleness collects it, and the allocator can give memory back.
   */
  let servedSinceCollection = 0
  let collection: ReturnType<typeof setTimeout> | undefined
  const idle = () => streams.size === 0 && readers === 0
  /**
   * Once idle, two full collections half a second apart: the second frees what the first's
   * finalizers let go of (sockets, native wrappers). After 4,000 streams that is RSS 80 MiB,
   * against 106 MiB with one (and 65 MiB before they opened).
   */
  const collectWhenIdle = () => {
    if (servedSinceCollection < IDLE_COLLECTION_AFTER || collection) return
    const collect = (afterMs: number, then?: () => void) => {
      collection = setTimeout(() => {
        collection = undefined
        if (!idle()) return
        servedSinceCollection = 0
        Bun.gc(true)
        then?.()
      }, afterMs)
      collection.unref?.()
    }
    collect(1000, () => collect(500))
  }
  /** A run's log as a response, counted until it closes. */
  const reading = (log: RunLog, after: number, request: Request, reader: Reader): Response => {
    readers++
    return tailResponse(log, after, request, {
      ...reader,
      onClose: (end) => {
        readers--
        reader.onClose?.(end)
        settled()
      },
    })
  }

  async function chat(request: Request, url: URL, client: string, trail: Trail, server?: Server, token?: string): Promise<Response> {
    /** A resumable run reserved for this request: refused requests give it back. */
    let reserved: Started | undefined
    const refuse = (error: HttpError) => {
      reserved?.discard()
      reserved = undefined
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
    // What the stream needs of the request once it is sent. The closures below keep only this and
    // `primary`, never `chatRequest`: a long conversation is not held for the length of its answer.
    const run: RunRef = { model: chatRequest.model, threadId: chatRequest.threadId, runId: chatRequest.runId }
    const primary = chatRequest.provider
    trail.provider = chatRequest.provider
    trail.model = chatRequest.model
    trail.mocked = providers.modes[chatRequest.provider] === "mock"
    if (config.logContent) observer?.logger.debug("request content", { requestId: trail.requestId, messages: chatRequest.messages })

    // A resumable run is never sent to the model twice: a reconnect or a repeat reads its log.
    const ownership = runs && chatRequest.generation === "agui" ? ownerOf(request, token) : undefined
    if (runs && ownership) {
      const lastEventId = request.headers.get("last-event-id")
      const found =
        lastEventId !== null
          ? await findReconnect(runs, lastEventId, chatRequest.runId, ownership.owner)
          : ((log) => (log ? { ok: true as const, log, after: -1 } : undefined))(await runs.find(ownership.owner, chatRequest.runId ?? ""))
      if (found && !found.ok) return refuse(found.error)
      if (found) return reread(found.log, found.after, request, transport.value === "sse", trail, ownership.cookie)
      // Reserved before the provider is called, so an identical POST meanwhile reads this run.
      const started = runs.start(ownership.owner, {
        runId: chatRequest.runId ?? "",
        threadId: chatRequest.threadId ?? "",
        messages: ((body.value as { messages?: unknown[] }).messages ?? []) as unknown[],
      })
      // Another instance may have started the same run a moment ago (RESUMABLE=redis): read that one.
      if (started !== "exists" && !(await started.claim())) started.discard()
      else if (started !== "exists") reserved = started
      if (!reserved) {
        const log = await runs.find(ownership.owner, chatRequest.runId ?? "")
        if (log) return reread(log, -1, request, transport.value === "sse", trail, ownership.cookie)
        return refuse({ status: 409, code: "run_exists", message: `run ${JSON.stringify(chatRequest.runId)} is starting; try again` })
      }
    }

    const key = ownKey(request, chatRequest.provider)
    trail.byok = Boolean(key)
    if (key) trail.mocked = false
    if (config.byok === "required" && !key && chatRequest.provider !== "mock") return byokMissing(chatRequest.provider, refuse)
    const admitted = await limits.admit(client)
    if (!admitted.ok) {
      const { retryAfter, ...refusal } = admitted.refusal
      return refuse({ ...refusal, headers: { "retry-after": String(retryAfter) } })
    }

    // Thinking and slow first tokens can be quiet for longer than Bun's 10 s idle timer.
    server?.timeout(request, 0)
    // A resumable run outlives its client's connection: only an explicit stop or the grace period ends it.
    const deadline = createDeadline(
      ownership ? new AbortController().signal : request.signal,
      config.timeouts,
      providerLabel(chatRequest.provider),
    )
    // From here the request holds a slot and two clocks: every way out gives them back, and a
    // shutdown can end it even while the provider is still opening.
    const entry = { expire: deadline.expire }
    streams.add(entry)
    servedSinceCollection++
    let finished = false
    const finish = () => {
      if (finished) return
      finished = true
      admitted.release()
      deadline.clear()
      streams.delete(entry)
      settled()
    }
    try {
      const fallback = config.fallback && {
        provider: config.fallback.provider,
        model: config.fallback.model ?? defaultModel(config, config.fallback.provider),
      }
      const hooks = {
        onRetry: () => trail.retries++,
        // From the fallback on, failures and the log are the fallback's.
        onFallback: (served: ChatRequest) => {
          trail.fallbackFrom = `${primary}/${run.model}`
          trail.provider = served.provider
          trail.model = served.model
          trail.mocked = providers.modes[served.provider] === "mock"
        },
      }
      const opening = openWithRetries(providers, chatRequest, deadline.signal, { retries: config.providerMaxRetries, fallback }, key, hooks)
      // Every error a stream ends on passes here (converters throw theirs), so the log knows it.
      let error: ErrorPart | undefined
      const classify = (thrown: unknown) => {
        error = deadline.expired() ?? errorPart(thrown, providerLabel(trail.provider ?? primary))
        if (error.code === "provider_unreachable") trail.reason = unreachableReason(thrown)
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
      // The request's signal aborted the provider call too, so nothing is left open behind this.
      if (request.signal.aborted && !reserved) {
        finish()
        return cancelled()
      }
      let batches: AsyncIterable<Part[]>
      if (early?.ok === false) {
        const part = classify(early.error)
        if (config.providerErrors === "status") {
          finish()
          const expired = deadline.expired()
          const status = expired
            ? expired.code === "shutdown"
              ? 503
              : 504
            : classifyError(early.error, providerLabel(trail.provider ?? chatRequest.provider)).status
          const retryAfter = part.retryAfter && { headers: { "retry-after": String(part.retryAfter) } }
          return refuse({ status, code: part.code, message: part.message, ...retryAfter })
        }
        batches = only(part)
      } else batches = early ? early.value.parts : afterOpening(opening)
      // Any throw from the provider's stream becomes its final error event, told in-band.
      const guarded = { classify, onContent: firstContent }

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
      trail.deferred = true
      const ended = (end: "complete" | "cancelled" | "failed") => {
        finish()
        if (end === "cancelled") return record(trail, 200, "cancelled")
        if (!error) return record(trail, 200, "complete")
        const how =
          error.code === "shutdown" ? "shutdown" : TIMEOUTS.has(error.code) ? "timeout" : STOPS.has(error.code) ? "cancelled" : "error"
        record(trail, 200, how, error.code)
      }
      const started = reserved
      if (runs && started && ownership) {
        runs.control(started.log, (reason) =>
          deadline.expire(
            reason === "stopped"
              ? { type: "error", code: "run_stopped", message: "the run was stopped by its client" }
              : { type: "error", code: "run_abandoned", message: `no client came back within ${config.resumable?.graceMs} ms` },
          ),
        )
        void (async () => {
          try {
            for await (const events of aguiEvents(batches, context, run, final, guarded)) started.record(events)
          } catch (thrown) {
            report("stream failed inside sidechat", thrown, trail.requestId)
            error = { type: "error", code: "internal_error", message: "sidechat failed while streaming the response" }
            started.record([aguiFailure(error, run, final)])
          } finally {
            started.end()
            ended("complete")
          }
        })()
        const headers = { "x-request-id": trail.requestId, ...(ownership.cookie && { "set-cookie": ownership.cookie }) }
        return reading(started.log, -1, request, { sse: transport.value === "sse", heartbeatMs: config.heartbeatMs, headers })
      }
      return streamResponse(wire.encode(batches, context, run, final, guarded), {
        trailer: wire.trailer,
        fail: (thrown) => {
          report("stream failed inside sidechat", thrown, trail.requestId)
          error = { type: "error", code: "internal_error", message: "sidechat failed while streaming the response" }
          return wire.failure(error, context, run, final) + wire.trailer
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
        onClose: ended,
      })
    } catch (thrown) {
      reserved?.discard()
      finish()
      throw thrown
    }
  }

  /** A resumable run's log from `after` on, for a reconnect, a repeat or a join; its own outcome is logged. */
  function reread(log: RunLog, after: number, request: Request, sse: boolean, trail: Trail, cookie?: string): Response {
    trail.deferred = true
    trail.resumed = true
    const headers = { "x-request-id": trail.requestId, ...(cookie && { "set-cookie": cookie }) }
    return reading(log, after, request, {
      sse,
      heartbeatMs: config.heartbeatMs,
      headers,
      onClose: (end) => record(trail, 200, end === "cancelled" ? "cancelled" : "complete"),
    })
  }

  /** The caller's own provider key, when BYOK is on and the request carries one. */
  function ownKey(request: Request, provider: ProviderName): string | undefined {
    if (config.byok === "off") return undefined
    const header = BYOK_HEADERS[provider]
    return (header && request.headers.get(header)?.trim()) || undefined
  }

  return {
    handle: chat,
    runRoute(request, url, trail, token) {
      if (!runs || (request.method !== "GET" && request.method !== "DELETE")) return undefined
      const { owner } = ownerOf(request, token)
      if (request.method === "DELETE") return stopRun(runs, url, owner)
      const sse = !request.headers.get("accept")?.includes("application/x-ndjson")
      const response = readRun(runs, request, url, owner, reading, {
        sse,
        heartbeatMs: config.heartbeatMs,
        headers: { "x-request-id": trail.requestId },
      })
      return response
    },
    active: () => streams.size,
    idle: () => new Promise<void>((resolve) => (streams.size || readers ? drained.add(resolve) : resolve())),
    expireAll(part) {
      for (const stream of streams) stream.expire(part)
    },
  }
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
async function* only(part: ErrorPart): AsyncGenerator<Part[]> {
  yield [part]
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
async function* afterOpening(opening: Promise<Opened>): AsyncGenerator<Part[]> {
  yield* (await opening).parts
}

type Result<V> = { ok: true; value: V } | { ok: false; error: HttpError }

function chooseTransport(url: URL, request: Request): Result<Transport> {
  const asked = queryChoice(url, "transport", ["sse", "ndjson"] as const)
  if (!asked.ok || asked.value) return asked as Result<Transport>
  return { ok: true, value: request.headers.get("accept")?.includes("application/x-ndjson") ? "ndjson" : "sse" }
}

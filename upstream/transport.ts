// The provider SDKs' `fetch`, built on node:http: Bun's own fetch allows only 256 requests in flight
// per process unless BUN_CONFIG_MAX_HTTP_REQUESTS is set before start-up, which a binary cannot do.
import http from "node:http"
import https from "node:https"

const agents = {
  "http:": new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY, maxFreeSockets: 256 }),
  "https:": new https.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY, maxFreeSockets: 256 }),
}

/** A pooled socket can die between two requests; that many fresh tries follow before giving up. */
const STALE_SOCKET_RETRIES = 2

/**
 * Up to 64 KiB may wait for the reader before the socket is paused: pausing at every chunk (the
 * default, one chunk) costs a pause and a resume per token, and adds milliseconds under load.
 */
const BUFFERED = new ByteLengthQueuingStrategy({ highWaterMark: 64 * 1024 })

const abortError = () => new DOMException("The operation was aborted.", "AbortError")

/** The provider's connection ended before its response body did; what arrived before stands. */
export class UpstreamClosedError extends Error {
  override readonly name = "UpstreamClosedError"
  constructor(readonly detail: string) {
    super(`the provider closed the connection before the response ended (${detail})`)
  }
}

/** The provider sent no byte for `ms`; its connection was closed. */
export class UpstreamStalledError extends Error {
  override readonly name = "UpstreamStalledError"
  constructor(readonly ms: number) {
    super(`the provider sent nothing for ${ms} ms`)
  }
}

export type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>

export type TransportOptions = {
  /** A response body that sends no byte for this long is closed with UpstreamStalledError. */
  stallMs: number
}

type Exchange = { request: http.ClientRequest; response: http.IncomingMessage }

/** Enough of `fetch` for the SDKs: string or byte bodies, streamed responses, abort at any point. */
export function createTransport(options: TransportOptions): Fetch {
  return (input, init) => upstreamFetch(input, init, options)
}

/** `createTransport`'s fetch, with a stall limit of five minutes unless told otherwise. */
export async function upstreamFetch(
  input: string | URL | Request,
  init: RequestInit = {},
  transport: TransportOptions = { stallMs: 300_000 },
): Promise<Response> {
  const url = new URL(input instanceof Request ? input.url : input)
  const signal = init.signal ?? undefined
  if (signal?.aborted) throw abortError()
  const body = await bodyBytes(init.body)
  const headers: Record<string, string> = {}
  new Headers(init.headers).forEach((value, key) => {
    headers[key] = value
  })
  if (body) headers["content-length"] = String(body.byteLength)
  const request = { method: init.method ?? "GET", headers, agent: agents[url.protocol as "http:"] }

  // No byte of a response reached anyone yet, so a request lost with a reused socket is sent again.
  let exchange: Exchange | undefined
  for (let attempt = 0; !exchange; attempt++) {
    const sent = await send(url, request, body, signal)
    if (sent.ok) exchange = sent.value
    else if (!sent.reused || attempt >= STALE_SOCKET_RETRIES || signal?.aborted) throw sent.error
  }
  return toResponse(exchange, init.method, transport.stallMs, signal)
}

type Sent = { ok: true; value: Exchange } | { ok: false; error: unknown; reused: boolean }

/** One attempt: resolves when response headers arrive, or with the error and whether the socket was pooled. */
function send(url: URL, options: http.RequestOptions, body: Uint8Array | undefined, signal?: AbortSignal): Promise<Sent> {
  const client = url.protocol === "https:" ? https : http
  return new Promise((resolve) => {
    const request = client.request(url, options)
    const onAbort = () => request.destroy(abortError())
    signal?.addEventListener("abort", onAbort, { once: true })
    const settle = (sent: Sent) => {
      signal?.removeEventListener("abort", onAbort)
      resolve(sent)
    }
    request.on("error", (error) => settle({ ok: false, error, reused: request.reusedSocket && !signal?.aborted }))
    request.on("response", (response) => settle({ ok: true, value: { request, response } }))
    request.end(body)
  })
}

/**
 * Wraps a node response as a web Response. Whatever ends the body first (its end, a socket error,
 * the reader's cancel, the caller's abort) ends it; every later signal is ignored.
 */
function toResponse({ request, response }: Exchange, method: string | undefined, stallMs: number, signal?: AbortSignal): Response {
  const headers = new Headers()
  for (const [key, value] of Object.entries(response.headers)) {
    for (const item of Array.isArray(value) ? value : [value ?? ""]) headers.append(key, item)
  }
  const status = response.statusCode ?? 502
  const init = { status, statusText: response.statusMessage, headers }
  if (status === 204 || status === 304 || method === "HEAD") {
    response.on("error", () => {})
    response.resume()
    return new Response(null, init)
  }

  // The caller may have aborted between the headers' arrival and this point.
  if (signal?.aborted) {
    request.destroy()
    throw abortError()
  }
  let ended = false
  /** An error held back until the reader has taken what arrived before it. */
  let failure: (() => void) | undefined
  let lastByte = performance.now()
  let stall: ReturnType<typeof setTimeout> | undefined
  const onAbort = () => request.destroy(abortError())
  signal?.addEventListener("abort", onAbort, { once: true })
  const end = (then: () => void) => {
    if (ended) return
    ended = true
    clearTimeout(stall)
    signal?.removeEventListener("abort", onAbort)
    then()
  }
  const body = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        // One timer per body, re-armed for what is left rather than reset on every chunk.
        const watch = () => {
          // A body paused because our reader is slow is not a stalled provider.
          if (response.isPaused()) lastByte = performance.now()
          const quiet = performance.now() - lastByte
          if (quiet < stallMs) stall = setTimeout(watch, stallMs - quiet)
          else
            end(() => {
              controller.error(new UpstreamStalledError(stallMs))
              request.destroy()
            })
        }
        stall = setTimeout(watch, stallMs)
        response.on("data", (chunk: Buffer) => {
          if (ended) return
          lastByte = performance.now()
          // A Buffer is a Uint8Array; reading its `.buffer` would make JSC copy it out of the fast path.
          controller.enqueue(chunk)
          if ((controller.desiredSize ?? 1) <= 0) response.pause()
        })
        response.on("end", () => end(() => controller.close()))
        response.on("error", (error) => end(() => fail(signal?.aborted ? abortError() : closedError(error))))
        // A socket closed before the body ended is an error, not a short body.
        response.on("close", () => {
          if (!response.complete) end(() => fail(signal?.aborted ? abortError() : new UpstreamClosedError("socket closed")))
        })
        // A connection lost while the reader is behind: what already arrived is read first, and
        // the error comes after it (an abort or a stall does not wait).
        const fail = (error: Error) => {
          if (error.name === "AbortError" || controller.desiredSize === BUFFERED.highWaterMark) controller.error(error)
          else failure = () => controller.error(error)
        }
      },
      pull(controller) {
        if (failure && controller.desiredSize === BUFFERED.highWaterMark) return failure()
        response.resume()
      },
      cancel() {
        end(() => request.destroy())
      },
    },
    BUFFERED,
  )
  return new Response(body, init)
}

function closedError(error: Error): Error {
  return error.name === "AbortError" ? error : new UpstreamClosedError((error as NodeJS.ErrnoException).code ?? error.message)
}

async function bodyBytes(body: RequestInit["body"]): Promise<Uint8Array | undefined> {
  if (body === undefined || body === null) return undefined
  if (typeof body === "string") return new TextEncoder().encode(body)
  if (body instanceof Uint8Array) return body
  return new Uint8Array(await new Response(body).arrayBuffer())
}

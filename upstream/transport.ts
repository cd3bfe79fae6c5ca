// A `fetch` for provider SDKs built on node:http, because Bun's own fetch allows only 256
// requests in flight per process unless BUN_CONFIG_MAX_HTTP_REQUESTS is set before start-up.
import http from "node:http"
import https from "node:https"

const agents = {
  "http:": new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY }),
  "https:": new https.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY }),
}

const abortError = () => new DOMException("The operation was aborted.", "AbortError")

/** Enough of `fetch` for the SDKs: string or byte bodies, streamed responses, abort at any point. */
export async function upstreamFetch(input: string | URL | Request, init: RequestInit = {}): Promise<Response> {
  const url = new URL(input instanceof Request ? input.url : input)
  const signal = init.signal ?? undefined
  if (signal?.aborted) throw abortError()
  const body = await bodyBytes(init.body)
  const headers: Record<string, string> = {}
  new Headers(init.headers).forEach((value, key) => {
    headers[key] = value
  })
  if (body) headers["content-length"] = String(body.byteLength)
  const client = url.protocol === "https:" ? https : http

  return new Promise((resolve, reject) => {
    const request = client.request(url, { method: init.method ?? "GET", headers, agent: agents[url.protocol as "http:"] })
    const onAbort = () => request.destroy(abortError())
    signal?.addEventListener("abort", onAbort, { once: true })
    request.on("error", (error) => {
      signal?.removeEventListener("abort", onAbort)
      reject(error)
    })
    request.on("response", (response) => {
      const responseHeaders = new Headers()
      for (const [key, value] of Object.entries(response.headers)) {
        for (const item of Array.isArray(value) ? value : [value ?? ""]) responseHeaders.append(key, item)
      }
      const status = response.statusCode ?? 502
      const done = () => signal?.removeEventListener("abort", onAbort)
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          response.on("data", (chunk: Buffer) => {
            controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))
            if ((controller.desiredSize ?? 1) <= 0) response.pause()
          })
          response.on("end", () => {
            done()
            controller.close()
          })
          response.on("error", (error) => {
            done()
            controller.error(error)
          })
          // A socket closed before the body ended is an error, not a short body.
          response.on("aborted", () => controller.error(new Error("the provider closed the connection")))
        },
        pull() {
          response.resume()
        },
        cancel() {
          done()
          request.destroy()
        },
      })
      const empty = status === 204 || status === 304 || init.method === "HEAD"
      resolve(new Response(empty ? null : stream, { status, statusText: response.statusMessage, headers: responseHeaders }))
    })
    request.end(body)
  })
}

async function bodyBytes(body: RequestInit["body"]): Promise<Uint8Array | undefined> {
  if (body === undefined || body === null) return undefined
  if (typeof body === "string") return new TextEncoder().encode(body)
  if (body instanceof Uint8Array) return body
  return new Uint8Array(await new Response(body).arrayBuffer())
}

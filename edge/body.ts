// The request body: at most a configured number of bytes of JSON, each way of being wrong named.
import type { HttpError } from "../request"

type Result<V> = { ok: true; value: V } | { ok: false; error: HttpError }

/** Reads at most `limit` bytes of JSON; each way a body can be wrong gets its own answer. */
export async function readJson(request: Request, limit: number): Promise<Result<unknown>> {
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
  // Only a plain number is a length: a header sent twice reads "N, N", which is not one.
  const length = request.headers.get("content-length")
  const declared = length !== null && /^\s*\d+\s*$/.test(length) ? Number(length) : undefined
  if (declared !== undefined && declared > limit) return tooLarge
  let bytes: Uint8Array
  try {
    // A declared length within the limit is read whole: HTTP/1.1 framing holds the body to it. Read
    // as a stream, a body costs about 320 KB of short-lived buffers here, the largest share of a
    // chat request's garbage. Any other body (chunked, or a length that is not one number) is
    // counted as it streams in.
    if (declared !== undefined) bytes = await request.bytes()
    else {
      const chunks: Uint8Array[] = []
      let size = 0
      for await (const chunk of request.body ?? []) {
        size += chunk.byteLength
        if (size > limit) return tooLarge
        chunks.push(chunk)
      }
      bytes = Buffer.concat(chunks)
    }
  } catch (error) {
    return {
      ok: false,
      error: { status: 400, code: "invalid_request", message: `the request body could not be read: ${(error as Error).message}` },
    }
  }
  if (bytes.byteLength > limit) return tooLarge
  const text = new TextDecoder().decode(bytes)
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

// The streaming hot path: a provider's raw response body becomes one batch of parts per network
// read, in one synchronous pass (bytes → events → JSON → converter step). It yields exactly the
// parts the SDKs' own stream iterators followed by our converters yield; tests prove it per fixture.
import Anthropic from "@anthropic-ai/sdk"
import OpenAI from "openai"
import { anthropicConverter, openaiConverter } from "../converter"
import type { Part } from "../parts"
import { createEventParser } from "./events"
import { type RawBody, rawBody } from "./transport"

/**
 * A provider's body as synchronous steps: `push` appends the parts one network read completes to
 * `out` (and throws the SDK's error for an error event, after appending what came before it);
 * `end` appends what the end of the body means. `done` turns true once the answer is complete
 * whatever the connection does next (OpenAI's `[DONE]`).
 */
type Decoder = { push(bytes: Uint8Array, out: Part[]): void; end(out: Part[]): void; done(): boolean }

/** Anthropic Messages: `event:` names each event; `ping` is skipped; `error` ends the stream as the SDK does. */
function anthropicDecoder(headers: Headers): Decoder {
  const converter = anthropicConverter()
  const parser = createEventParser()
  return {
    push(bytes, out) {
      for (const { event, data } of parser.push(bytes)) {
        if (event === "ping" || event === undefined || !data) continue
        if (event === "error") {
          const error = safeJSON(data) ?? data
          const type = (error as { error?: { type?: Anthropic.ErrorType } })?.error?.type
          throw new Anthropic.APIError(undefined, error as object, undefined, headers, type)
        }
        if (event === "content_block_delta") {
          const text = plainTextDelta(data)
          if (text !== undefined) {
            if (text) out.push({ type: "text", delta: text })
            continue
          }
        }
        for (const part of converter.step(JSON.parse(data))) out.push(part)
      }
    },
    end(out) {
      for (const part of converter.end()) out.push(part)
    },
    done: () => false,
  }
}

/** OpenAI Chat Completions: `data: [DONE]` ends the stream; an `error` payload is the SDK's APIError. */
function openaiDecoder(headers: Headers): Decoder {
  const converter = openaiConverter()
  const parser = createEventParser()
  let complete = false
  return {
    push(bytes, out) {
      // After `[DONE]` the rest is read and dropped, so the connection can serve the next request.
      if (complete) return
      for (const { event, data } of parser.push(bytes)) {
        if (data === "[DONE]") {
          // The answer is complete here, whatever the connection does next.
          complete = true
          for (const part of converter.end()) out.push(part)
          return
        }
        let chunk: { error?: object }
        try {
          chunk = JSON.parse(data)
        } catch {
          throw new SyntaxError("Error reading response: malformed server-sent event JSON.")
        }
        if (event === "error") throw new OpenAI.APIError(undefined, chunk?.error ?? chunk, undefined, headers)
        if (chunk?.error) throw new OpenAI.APIError(undefined, chunk.error, undefined, headers)
        for (const part of converter.step(chunk as OpenAI.ChatCompletionChunk)) out.push(part)
      }
    },
    end(out) {
      if (!complete) for (const part of converter.end()) out.push(part)
    },
    done: () => complete,
  }
}

export const anthropicBatches = (response: Response) => decodedBatches(response, anthropicDecoder(response.headers))
export const openaiBatches = (response: Response) => decodedBatches(response, openaiDecoder(response.headers))

/**
 * One batch of parts per network read, read straight off the body (the transport's raw body when
 * it made the response, else its web stream): what a read held before a failure still comes out
 * first, as it would event by event. Leaving early (a client gone) cancels the body, which closes
 * the connection.
 */
async function* decodedBatches(response: Response, decoder: Decoder): AsyncGenerator<Part[]> {
  if (!response.body) throw new Anthropic.AnthropicError("Attempted to iterate over a response with no body")
  const body = rawBody(response) ?? streamBody(response.body)
  let finished = false
  try {
    for (;;) {
      const chunks = await body.read()
      if (!chunks) {
        finished = true
        break
      }
      const parts: Part[] = []
      try {
        for (const chunk of chunks) decoder.push(chunk, parts)
      } finally {
        if (parts.length) yield parts
      }
    }
    const last: Part[] = []
    decoder.end(last)
    if (last.length) yield last
  } finally {
    if (!finished) body.cancel()
  }
}

/** A web stream read as a raw body: one chunk per read. */
function streamBody(stream: ReadableStream<Uint8Array>): RawBody {
  const reader = stream.getReader()
  return {
    read: () => reader.read().then((read) => (read.done ? undefined : [read.value])),
    cancel: () => void reader.cancel().catch(() => {}),
  }
}

const TEXT_DELTA_HEAD = '{"type":"content_block_delta","index":'
const TEXT_DELTA_MID = ',"delta":{"type":"text_delta","text":'

/**
 * Most of an answer is text deltas of one exact shape; for those only the text's string literal is
 * parsed, not the event around it. Anything else (another shape, key order or spacing, a literal
 * that is not one JSON string) returns undefined and takes the full path. The converter keeps no
 * state for text deltas, so skipping it yields the same part.
 */
export function plainTextDelta(data: string): string | undefined {
  if (!data.startsWith(TEXT_DELTA_HEAD) || !data.endsWith("}}")) return undefined
  let at = TEXT_DELTA_HEAD.length
  const digits = at
  while (at < data.length && data.charCodeAt(at) >= 48 && data.charCodeAt(at) <= 57) at++
  if (at === digits || !data.startsWith(TEXT_DELTA_MID, at)) return undefined
  // The literal is data[open, close]: both quotes, then the closing braces.
  const open = at + TEXT_DELTA_MID.length
  const close = data.length - 3
  if (close <= open || data.charCodeAt(open) !== 34 || data.charCodeAt(close) !== 34) return undefined
  // Without quotes, backslashes or control characters inside, the literal's text is what it shows.
  const inner = data.slice(open + 1, close)
  if (!NEEDS_PARSE.test(inner)) return inner
  try {
    const text: unknown = JSON.parse(data.slice(open, close + 1))
    return typeof text === "string" ? text : undefined
  } catch {
    return undefined
  }
}

const NEEDS_PARSE = /["\\\x00-\x1f]/

function safeJSON(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

// The streaming hot path: a provider's raw response body becomes one batch of parts per network
// read, in one synchronous pass (bytes → events → JSON → converter step). It yields exactly the
// parts the SDKs' own stream iterators followed by our converters yield; tests prove it per fixture.
import Anthropic from "@anthropic-ai/sdk"
import OpenAI from "openai"
import { anthropicConverter, openaiConverter } from "../converter"
import type { Part } from "../parts"
import { createEventParser } from "./events"

/** Anthropic Messages: `event:` names each event; `ping` is skipped; `error` ends the stream as the SDK does. */
export async function* anthropicBatches(response: Response): AsyncGenerator<Part[]> {
  const converter = anthropicConverter()
  const parser = createEventParser()
  for await (const bytes of body(response)) {
    const parts: Part[] = []
    try {
      for (const { event, data } of parser.push(bytes)) {
        if (event === "ping" || event === undefined || !data) continue
        if (event === "error") {
          const error = safeJSON(data) ?? data
          const type = (error as { error?: { type?: Anthropic.ErrorType } })?.error?.type
          throw new Anthropic.APIError(undefined, error as object, undefined, response.headers, type)
        }
        if (event === "content_block_delta") {
          const text = plainTextDelta(data)
          if (text !== undefined) {
            if (text) parts.push({ type: "text", delta: text })
            continue
          }
        }
        for (const part of converter.step(JSON.parse(data))) parts.push(part)
      }
    } finally {
      // What this read held before a failure still reaches the client, as it would event by event.
      if (parts.length) yield parts
    }
  }
  const last = [...converter.end()]
  if (last.length) yield last
}

/** OpenAI Chat Completions: `data: [DONE]` ends the stream; an `error` payload is the SDK's APIError. */
export async function* openaiBatches(response: Response): AsyncGenerator<Part[]> {
  const converter = openaiConverter()
  const parser = createEventParser()
  let complete = false
  for await (const bytes of body(response)) {
    // After `[DONE]` the rest is read and dropped, so the connection can serve the next request.
    if (complete) continue
    const parts: Part[] = []
    try {
      for (const { event, data } of parser.push(bytes)) {
        if (data === "[DONE]") {
          // The answer is complete here, whatever the connection does next.
          complete = true
          for (const part of converter.end()) parts.push(part)
          break
        }
        let chunk: { error?: object }
        try {
          chunk = JSON.parse(data)
        } catch {
          throw new SyntaxError("Error reading response: malformed server-sent event JSON.")
        }
        if (event === "error") throw new OpenAI.APIError(undefined, chunk?.error ?? chunk, undefined, response.headers)
        if (chunk?.error) throw new OpenAI.APIError(undefined, chunk.error, undefined, response.headers)
        for (const part of converter.step(chunk as OpenAI.ChatCompletionChunk)) parts.push(part)
      }
    } finally {
      if (parts.length) yield parts
    }
  }
  if (complete) return
  const last = [...converter.end()]
  if (last.length) yield last
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
  const literal = data.slice(at + TEXT_DELTA_MID.length, -2)
  const last = literal.length - 1
  if (last < 1 || literal.charCodeAt(0) !== 34 || literal.charCodeAt(last) !== 34) return undefined
  // Without quotes, backslashes or control characters inside, the literal's text is what it shows.
  const inner = literal.slice(1, last)
  if (!NEEDS_PARSE.test(inner)) return inner
  try {
    const text: unknown = JSON.parse(literal)
    return typeof text === "string" ? text : undefined
  } catch {
    return undefined
  }
}

const NEEDS_PARSE = /["\\\x00-\x1f]/

/** The body's reads; leaving early (a client gone, `[DONE]`) cancels it, which closes the connection. */
async function* body(response: Response): AsyncGenerator<Uint8Array> {
  if (!response.body) throw new Anthropic.AnthropicError("Attempted to iterate over a response with no body")
  const reader = response.body.getReader()
  let done = false
  try {
    for (;;) {
      const read = await reader.read()
      if (read.done) {
        done = true
        return
      }
      yield read.value
    }
  } finally {
    if (!done) await reader.cancel().catch(() => {})
  }
}

function safeJSON(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

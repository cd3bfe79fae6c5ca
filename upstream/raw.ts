// The streaming hot path: a provider's raw response body becomes one batch of parts per network
// read, in one synchronous pass (bytes → events → JSON → converter step). It yields exactly the
// parts the SDKs' own stream iterators followed by our converters yield; tests prove it per fixture.
import type AnthropicSdk from "@anthropic-ai/sdk"
import type OpenAISdk from "openai"
import { anthropicConverter, openaiConverter } from "../converter"
import type { Part } from "../parts"
import { createEventParser, type OnEvent } from "./events"
import type { Anthropic, OpenAI } from "./sdks"
import { type RawBody, rawBody, UpstreamClosedError } from "./transport"

/**
 * A provider's body as synchronous steps: `push` appends the parts one network read completes to
 * `out` (and throws the SDK's error for an error event, after appending what came before it);
 * `end` appends what the end of the body means. `done` turns true once the answer is complete
 * whatever the connection does next (OpenAI's `[DONE]`).
 */
type Decoder = { push(bytes: Uint8Array, out: Part[]): void; end(out: Part[]): void; done(): boolean }

/** Anthropic Messages: `event:` names each event; `ping` is skipped; `error` ends the stream as the SDK does. */
function anthropicDecoder(headers: Headers, Anthropic: Anthropic): Decoder {
  const converter = anthropicConverter()
  const parser = createEventParser()
  let out: Part[] = []
  const onEvent: OnEvent = (event, text, start, end) => {
    if (event === "ping" || event === undefined || start === end) return
    if (event === "content_block_delta") {
      // Read in place: of a text delta, only its text is sliced out of the read.
      const delta = plainTextDelta(text, start, end)
      if (delta !== undefined) {
        if (delta) out.push({ type: "text", delta })
        return
      }
    }
    const data = text.slice(start, end)
    if (event === "error") {
      const error = safeJSON(data) ?? data
      const type = (error as { error?: { type?: AnthropicSdk.ErrorType } })?.error?.type
      throw new Anthropic.APIError(undefined, error as object, undefined, headers, type)
    }
    for (const part of converter.step(JSON.parse(data))) out.push(part)
  }
  return {
    push(bytes, parts) {
      out = parts
      parser.push(bytes, onEvent)
    },
    end(parts) {
      for (const part of converter.end()) parts.push(part)
    },
    done: () => false,
  }
}

/** OpenAI Chat Completions: `data: [DONE]` ends the stream; an `error` payload is the SDK's APIError. */
function openaiDecoder(headers: Headers, OpenAI: OpenAI): Decoder {
  const converter = openaiConverter()
  const parser = createEventParser()
  const plainContent = contentDeltaReader()
  let complete = false
  let out: Part[] = []
  const onEvent: OnEvent = (event, text, start, end) => {
    // After `[DONE]` the rest is read and dropped, so the connection can serve the next request.
    if (complete) return
    if (event === undefined) {
      const delta = plainContent(text, start, end)
      if (delta !== undefined && converter.text(delta, out)) return
    }
    const data = text.slice(start, end)
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
    for (const part of converter.step(chunk as OpenAISdk.ChatCompletionChunk)) out.push(part)
  }
  return {
    push(bytes, parts) {
      if (complete) return
      out = parts
      parser.push(bytes, onEvent)
    },
    end(parts) {
      if (!complete) for (const part of converter.end()) parts.push(part)
    },
    done: () => complete,
  }
}

/** An Anthropic response's parts; `sdk` is the SDK that made it, whose errors an error event becomes. */
export const anthropicBatches = (response: Response, sdk: Anthropic) => decodedBatches(response, anthropicDecoder(response.headers, sdk))
export const openaiBatches = (response: Response, sdk: OpenAI) => decodedBatches(response, openaiDecoder(response.headers, sdk))

/**
 * One batch of parts per network read, read straight off the body (the transport's raw body when
 * it made the response, else its web stream): what a read held before a failure still comes out
 * first, as it would event by event. Leaving early (a client gone) cancels the body, which closes
 * the connection.
 */
async function* decodedBatches(response: Response, decoder: Decoder): AsyncGenerator<Part[]> {
  // `response` stays referenced for as long as this reads: the SDK removes its abort listener from
  // the request's signal once the response's web body is collected (a FinalizationRegistry), and a
  // deadline or a shutdown must still reach the transport while the raw body is read.
  if (!response.body) throw new UpstreamClosedError("the provider's response has no body")
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
        // Decoded into strings: the bytes are no longer needed.
        body.release(chunks)
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

/** A web stream read as a raw body: one chunk per read, left to the garbage collector. */
function streamBody(stream: ReadableStream<Uint8Array>): RawBody {
  const reader = stream.getReader()
  return {
    read: () => reader.read().then((read) => (read.done ? undefined : [read.value])),
    release: () => {},
    cancel: () => void reader.cancel().catch(() => {}),
  }
}

const TEXT_DELTA_HEAD = '{"type":"content_block_delta","index":'
const TEXT_DELTA_MID = ',"delta":{"type":"text_delta","text":'

/**
 * Most of an answer is text deltas of one exact shape; for those only the text's string literal is
 * parsed, not the event around it. Anything else (another shape, key order or spacing, a literal
 * that is not one JSON string) returns undefined and takes the full path. The converter keeps no
 * state for text deltas, so skipping it yields the same part. The event is `text[start, end)`.
 */
export function plainTextDelta(text: string, start = 0, end = text.length): string | undefined {
  if (end - start < SHORTEST_TEXT_DELTA || !text.startsWith(TEXT_DELTA_HEAD, start)) return undefined
  if (text.charCodeAt(end - 1) !== 125 || text.charCodeAt(end - 2) !== 125) return undefined
  let at = start + TEXT_DELTA_HEAD.length
  const digits = at
  while (at < end && text.charCodeAt(at) >= 48 && text.charCodeAt(at) <= 57) at++
  if (at === digits || !text.startsWith(TEXT_DELTA_MID, at)) return undefined
  // The literal is text[open, close]: both quotes, then the closing braces.
  const open = at + TEXT_DELTA_MID.length
  const close = end - 3
  if (close <= open || text.charCodeAt(open) !== 34 || text.charCodeAt(close) !== 34) return undefined
  return literalText(text, open, close)
}

/** A text delta's head, one index digit, its middle, an empty literal and the closing braces. */
const SHORTEST_TEXT_DELTA = TEXT_DELTA_HEAD.length + 1 + TEXT_DELTA_MID.length + 4

/** The text of the string literal `text[open, close]` (both quotes), or undefined when it is not one. */
function literalText(text: string, open: number, close: number): string | undefined {
  // Without quotes, backslashes or control characters inside, the literal's text is what it shows.
  // Checked in place: a slice tested on its own would be copied out first.
  PLAIN_RUN.lastIndex = open + 1
  PLAIN_RUN.test(text)
  if (PLAIN_RUN.lastIndex === close) return text.slice(open + 1, close)
  try {
    const value: unknown = JSON.parse(text.slice(open, close + 1))
    return typeof value === "string" ? value : undefined
  } catch {
    return undefined
  }
}

/** From `lastIndex`, the longest run with nothing to unescape: it ends at a quote, a backslash or a control character. */
const PLAIN_RUN = /[^"\\\x00-\x1f]*/y

const CONTENT_HEAD = ',"choices":[{"index":0,"delta":{"content":"'
/** The longest chunk the shortcut looks at (a plain token's chunk is a few hundred characters). */
const MAX_PLAIN = 16_384
/** What may follow the delta inside its choice when nothing else happens in the chunk. */
const CHOICE_TAILS = new Set(["}]", ',"logprobs":null}]', ',"finish_reason":null}]', ',"logprobs":null,"finish_reason":null}]'])
/**
 * A chunk field that changes nothing here: a plain key (not `choices` or `error`) with a scalar
 * (null, an integer, a string with nothing to unescape and no bracket), or `"usage":null`.
 */
const FIELD = String.raw`(?:"(?!(?:choices|error|usage)")\w+":(?:null|-?\d+|"[^"\\{}[\]]*")|"usage":null)`
/** The fields before `choices` (after the opening brace), and those after it up to the closing one. */
const HEAD_FIELDS = new RegExp(String.raw`^\{${FIELD}(?:,${FIELD})*$`)
const TAIL_FIELDS = new RegExp(String.raw`^(?:,${FIELD})*}$`)

/**
 * Most of an OpenAI answer is chunks whose only effect is a content delta on choice 0: that
 * choice's delta holds `content` alone, its finish_reason is null, and every other field is a
 * plain scalar (`FIELD`: no usage, no error, no second `choices`). For those only the content's
 * string literal is parsed. Any other shape (another key order, spacing, an object or array
 * anywhere else, an escaped key) returns undefined and takes the full path.
 */
export function plainContentDelta(data: string): string | undefined {
  const open = contentOpen(data)
  const close = open < 0 ? -1 : contentClose(data, open)
  return close < 0 ? undefined : literalText(data, open, close)
}

/** Where a plain content chunk's literal opens (its quote), after plain fields only; else -1. */
function contentOpen(data: string): number {
  // A chunk this long is no plain token (and would take the field checks a long time): full path.
  if (data.length > MAX_PLAIN) return -1
  const at = data.indexOf(CONTENT_HEAD)
  return at > 0 && HEAD_FIELDS.test(data.slice(0, at)) ? at + CONTENT_HEAD.length - 1 : -1
}

/** Where the literal opened at `open` closes, when only plain fields follow it; else -1. */
function contentClose(data: string, open: number): number {
  // The first quote no backslash escapes.
  let close = data.indexOf('"', open + 1)
  for (; close > 0; close = data.indexOf('"', close + 1)) {
    let slashes = 0
    while (data.charCodeAt(close - 1 - slashes) === 92) slashes++
    if (slashes % 2 === 0) break
  }
  if (close < 0 || data.charCodeAt(close + 1) !== 125) return -1
  const end = data.indexOf("}]", close + 2)
  if (end < 0 || !CHOICE_TAILS.has(data.slice(close + 2, end + 2)) || !TAIL_FIELDS.test(data.slice(end + 2))) return -1
  return close
}

/**
 * `plainContentDelta` for one stream, whose chunks mostly differ only in their text: the last plain
 * chunk's head (through the literal's opening quote) and tail (from its closing quote) are kept.
 * A chunk that is that head, a literal with nothing to unescape, and that tail is plain, found with
 * two comparisons; one with that head and another tail (OpenAI's `obfuscation` field changes with
 * every chunk) has only its tail checked.
 */
export function contentDeltaReader(): (text: string, start?: number, end?: number) => string | undefined {
  let head = ""
  let tail = ""
  // Copies, so that the read they were cut from is not kept alive with them (decoded text has no
  // lone surrogates, so UTF-8 gives it back unchanged).
  const copy = (text: string) => Buffer.from(text).toString()
  return (text, start = 0, end = text.length) => {
    // The usual chunk, checked in place in its read (the chunk is `text[start, end)`).
    const quote = end - tail.length - 1
    if (head && quote >= start + head.length && text.charCodeAt(quote) === 34) {
      if (text.startsWith(head, start) && text.startsWith(tail, quote + 1)) {
        PLAIN_RUN.lastIndex = start + head.length
        PLAIN_RUN.test(text)
        if (PLAIN_RUN.lastIndex === quote) return text.slice(start + head.length, quote)
      }
    }
    // Otherwise the chunk is checked whole: with the same head, only what follows its literal.
    const data = start === 0 && end === text.length ? text : text.slice(start, end)
    if (head && data.startsWith(head)) {
      const open = head.length - 1
      const close = data.length > MAX_PLAIN ? -1 : contentClose(data, open)
      if (close < 0) return undefined
      if (!data.endsWith(tail) || data.length - close - 1 !== tail.length) tail = copy(data.slice(close + 1))
      return literalText(data, open, close)
    }
    const open = contentOpen(data)
    const close = open < 0 ? -1 : contentClose(data, open)
    if (close < 0) return undefined
    // Head and tail are kept together, from a chunk that passed the whole check.
    head = copy(data.slice(0, open + 1))
    tail = copy(data.slice(close + 1))
    return literalText(data, open, close)
  }
}

function safeJSON(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

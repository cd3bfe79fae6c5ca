// Legacy wire (@tanstack/ai-client 0.0.x, WIRE.md §2): parts become StreamChunks.
import type { Ctx, ErrorPart, Part } from "../parts"
import { unreachable } from "../parts"
import type { Frame, Output } from "../sse"
import { type Encoder, encodeParts } from "./encoder"

export type Meta = { id: string; model: string; timestamp: number }

/** A legacy StreamChunk; `id`, `model` and `timestamp` are unread by the client but cheap to keep. */
export type LegacyChunk = Meta & Record<string, unknown> & { type: string }

/**
 * Encodes one response. `content` restarts after every tool call (WIRE.md §2.4), tool arguments
 * are sent as increments, and each finished tool call is announced with `tool-input-available`
 * after `done`, which is what makes the client run it (§2.5). `onFinal` is told the final part and
 * the answering model; legacy chunks have nowhere to put metadata.
 */
export function legacyEncoder(ctx: Ctx, model: string, onFinal?: (final: Part, model: string) => unknown): Encoder<LegacyChunk> {
  const meta = (): Meta => ({ id, model, timestamp: ctx.now() })
  const id = ctx.newId("chatcmpl")
  // The current segment's content as its JSON string literal holds it, in UTF-8: what every
  // content chunk sends again. Appends go past what earlier chunks' views cover, and a rewrite
  // (or growth) takes a new buffer, so a view stays as it was made.
  let escaped = Buffer.alloc(0)
  let escapedLength = 0
  const replace = (text: string) => {
    escaped = Buffer.from(text)
    escapedLength = escaped.length
  }
  const append = (delta: string) => {
    const first = delta.charCodeAt(0)
    // JSON.stringify escapes a lone surrogate but not a pair: a pair cut between deltas has the
    // whole segment escaped again, as stringify would escape it.
    if (first >= 0xdc00 && first <= 0xdfff && escapedLength)
      return replace(JSON.stringify(contentOf(escaped.subarray(0, escapedLength)) + delta).slice(1, -1))
    const text = JSON.stringify(delta).slice(1, -1)
    const needed = escapedLength + text.length * 3
    if (needed > escaped.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, escaped.length * 2, 256))
      escaped.copy(grown, 0, 0, escapedLength)
      escaped = grown
    }
    escapedLength += escaped.write(text, escapedLength)
  }
  let thinking = ""
  let blocks = 0
  const tools = new Map<string, { index: number; name: string }>()
  const ready: { id: string; name: string; input: unknown }[] = []

  return {
    open: () => [],
    push(part, out) {
      switch (part.type) {
        case "start":
          model = part.model || model
          return false
        case "text": {
          append(part.delta)
          const view = escaped.subarray(0, escapedLength)
          // `content` is read back from the bytes only when asked (tests, JSON.stringify); the
          // streaming path frames the bytes themselves (legacyFramer).
          const chunk: LegacyChunk = {
            type: "content",
            ...meta(),
            delta: part.delta,
            get content() {
              return contentOf(view)
            },
            role: "assistant",
          }
          contentBytes.set(chunk, view)
          out.push(chunk)
          return false
        }
        case "reasoning-start":
          blocks++
          return false
        case "reasoning": {
          // One thinking part per message on this wire: later blocks continue it after a blank line.
          const delta = blocks > 1 && thinking && !thinking.endsWith("\n\n") ? `\n\n${part.delta}` : part.delta
          thinking += delta
          out.push({ type: "thinking", ...meta(), delta, content: thinking })
          return false
        }
        case "reasoning-end":
          return false
        case "tool-start":
          tools.set(part.id, { index: tools.size, name: part.name })
          replace("")
          out.push(toolCall(meta(), tools.size - 1, part.id, part.name, ""))
          return false
        case "tool-args": {
          const tool = tools.get(part.id)
          if (tool) out.push(toolCall(meta(), tool.index, part.id, tool.name, part.delta))
          return false
        }
        case "tool-end":
          ready.push({ id: part.id, name: part.name, input: part.input })
          return false
        case "finish": {
          onFinal?.(part, model)
          const { inputTokens, outputTokens } = part.usage
          const usage = { promptTokens: inputTokens, completionTokens: outputTokens, totalTokens: inputTokens + outputTokens }
          out.push({ type: "done", ...meta(), finishReason: part.reason, usage })
          for (const tool of ready)
            out.push({ type: "tool-input-available", ...meta(), toolCallId: tool.id, toolName: tool.name, input: tool.input })
          return true
        }
        case "error":
          onFinal?.(part, model)
          out.push(legacyError(meta(), part))
          return true
        default:
          return unreachable(part)
      }
    },
  }
}

/** `legacyEncoder` over a stream of parts, one chunk at a time (fixtures and tests). */
export function toLegacy(
  parts: AsyncIterable<Part>,
  ctx: Ctx,
  model: string,
  onFinal?: (final: Part, model: string) => unknown,
): AsyncGenerator<LegacyChunk> {
  return encodeParts(parts, legacyEncoder(ctx, model, onFinal))
}

/** The final chunk of a failed response; `[DONE]` still follows it. */
export function legacyError(meta: Meta, error: ErrorPart): LegacyChunk {
  return {
    type: "error",
    ...meta,
    error: { message: error.message, code: error.code, ...(error.retryAfter && { retryAfter: error.retryAfter }) },
  }
}

function toolCall(meta: Meta, index: number, id: string, name: string, args: string): LegacyChunk {
  return { type: "tool_call", ...meta, index, toolCall: { id, type: "function", function: { name, arguments: args } } }
}

/** Each content chunk's content bytes, beside the chunk (not on it: neither sent nor compared). */
const contentBytes = new WeakMap<LegacyChunk, Uint8Array>()

/** A segment's text from its escaped UTF-8 bytes. */
function contentOf(bytes: Buffer): string {
  return JSON.parse(`"${bytes.toString("utf8")}"`) as string
}

/**
 * Frames legacy chunks with `frame`. A content chunk, which carries the whole segment so far and
 * so grows with the answer, goes out as its head, the encoder's content bytes and its tail: the
 * same bytes JSON.stringify gives, without a string of the whole content per token.
 */
export function legacyFramer(frame: Frame): (chunk: LegacyChunk) => Output {
  const { before, after } = frame
  const tail = `","role":"assistant"}${after}`
  let id: unknown
  let model: unknown
  let head = ""
  return (chunk) => {
    const content = contentBytes.get(chunk)
    if (!content) return frame(chunk)
    if (chunk.id !== id || chunk.model !== model) {
      id = chunk.id
      model = chunk.model
      head = `${before}{"type":"content","id":${JSON.stringify(id)},"model":${JSON.stringify(model)},"timestamp":`
    }
    return [`${head}${JSON.stringify(chunk.timestamp)},"delta":${JSON.stringify(chunk.delta)},"content":"`, content, tail]
  }
}

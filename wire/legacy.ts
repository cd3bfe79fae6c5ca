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
  const segment = escapedText()
  const thinking = escapedText()
  /** The last two characters of the thinking text, to know whether it ends in a blank line. */
  let thinkingEnd = ""
  let blocks = 0
  /** A later thinking block began: its first delta continues the text after a blank line. */
  let separate = false
  const tools = new Map<string, { index: number; name: string }>()
  const ready: { id: string; name: string; input: unknown }[] = []

  /**
   * A chunk that carries its text so far: `content` is read back from the bytes only when asked
   * (tests, JSON.stringify); the streaming path frames the bytes themselves (legacyFramer).
   */
  const grown = (type: "content" | "thinking", text: EscapedText, delta: string): LegacyChunk => {
    const bytes = text.append(delta)
    const chunk: LegacyChunk = {
      type,
      ...meta(),
      delta,
      get content() {
        return contentOf(bytes)
      },
      ...(type === "content" && { role: "assistant" }),
    }
    contentBytes.set(chunk, bytes)
    return chunk
  }

  return {
    open: () => [],
    push(part, out) {
      switch (part.type) {
        case "start":
          model = part.model || model
          return false
        case "text":
          out.push(grown("content", segment, part.delta))
          return false
        case "reasoning-start":
          separate = ++blocks > 1
          return false
        case "reasoning": {
          // One thinking part per message on this wire: later blocks continue it after a blank line.
          const delta = separate && !thinking.empty() && thinkingEnd !== "\n\n" ? `\n\n${part.delta}` : part.delta
          separate = false
          thinkingEnd = (thinkingEnd + delta).slice(-2)
          out.push(grown("thinking", thinking, delta))
          return false
        }
        case "reasoning-end":
          return false
        case "tool-start":
          tools.set(part.id, { index: tools.size, name: part.name })
          segment.reset()
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

/** Each growing chunk's content bytes, beside the chunk (not on it: neither sent nor compared). */
const contentBytes = new WeakMap<LegacyChunk, Buffer>()

type EscapedText = ReturnType<typeof escapedText>

/**
 * Text that grows a delta at a time, kept as the inside of its JSON string literal in UTF-8: what
 * every content (or thinking) chunk sends again. `append` returns a view of it all so far; later
 * appends go past that view, and a rewrite or growth takes a new buffer, so a view stays as made.
 */
function escapedText() {
  let bytes = Buffer.alloc(0)
  let length = 0
  const replace = (text: string) => {
    bytes = Buffer.from(text)
    length = bytes.length
  }
  return {
    append(delta: string): Buffer {
      const first = delta.charCodeAt(0)
      // JSON.stringify escapes a lone surrogate but not a pair: a pair cut between deltas has the
      // whole text escaped again, as stringify would escape it.
      if (first >= 0xdc00 && first <= 0xdfff && length) replace(JSON.stringify(contentOf(bytes.subarray(0, length)) + delta).slice(1, -1))
      else {
        const text = JSON.stringify(delta).slice(1, -1)
        const needed = length + text.length * 3
        if (needed > bytes.length) {
          // Zeroed and its own: a view's buffer holds nothing but this text.
          const larger = Buffer.alloc(Math.max(needed, bytes.length * 2, 256))
          bytes.copy(larger, 0, 0, length)
          bytes = larger
        }
        length += bytes.write(text, length)
      }
      return bytes.subarray(0, length)
    },
    reset: () => replace(""),
    empty: () => length === 0,
  }
}

/** A text from its escaped UTF-8 bytes. */
function contentOf(bytes: Buffer): string {
  return JSON.parse(`"${bytes.toString("utf8")}"`) as string
}

/**
 * Frames legacy chunks with `frame`. A content or thinking chunk, which carries all its text so far
 * and so grows with the answer, goes out as its head, the encoder's bytes and its tail: the same
 * bytes JSON.stringify gives, without a string of the whole text per token.
 */
export function legacyFramer(frame: Frame): (chunk: LegacyChunk) => Output {
  const { before, after } = frame
  const tails = { content: `","role":"assistant"}${after}`, thinking: `"}${after}` }
  let id: unknown
  let model: unknown
  let head = ""
  return (chunk) => {
    const bytes = contentBytes.get(chunk)
    if (!bytes) return frame(chunk)
    if (chunk.id !== id || chunk.model !== model) {
      id = chunk.id
      model = chunk.model
      head = `,"id":${JSON.stringify(id)},"model":${JSON.stringify(model)},"timestamp":`
    }
    const type = chunk.type as "content" | "thinking"
    return [
      `${before}{"type":"${type}"${head}${JSON.stringify(chunk.timestamp)},"delta":${JSON.stringify(chunk.delta)},"content":"`,
      bytes,
      tails[type],
    ]
  }
}

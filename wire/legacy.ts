// Legacy wire (@tanstack/ai-client 0.0.x, WIRE.md §2): parts become StreamChunks.
import type { Ctx, ErrorPart, Part } from "../parts"
import { unreachable } from "../parts"
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
  let segment = ""
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
        case "text":
          segment += part.delta
          out.push({ type: "content", ...meta(), delta: part.delta, content: segment, role: "assistant" })
          return false
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
          segment = ""
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

// Legacy wire (@tanstack/ai-client 0.0.x, WIRE.md §2): parts become StreamChunks.
import type { Ctx, ErrorPart, Part } from "../parts"
import { unreachable } from "../parts"

export type Meta = { id: string; model: string; timestamp: number }

/** A legacy StreamChunk; `id`, `model` and `timestamp` are unread by the client but cheap to keep. */
export type LegacyChunk = Meta & Record<string, unknown> & { type: string }

/**
 * Encodes one response. `content` restarts after every tool call (WIRE.md §2.4), tool arguments
 * are sent as increments, and each finished tool call is announced with `tool-input-available`
 * after `done`, which is what makes the client run it (§2.5).
 */
export async function* toLegacy(
  parts: AsyncIterable<Part>,
  ctx: Ctx,
  model: string,
  /** Told the final part and the answering model; legacy chunks have nowhere to put metadata. */
  onFinal?: (final: Part, model: string) => unknown,
): AsyncGenerator<LegacyChunk> {
  const meta = (): Meta => ({ id, model, timestamp: ctx.now() })
  const id = ctx.newId("chatcmpl")
  let segment = ""
  let thinking = ""
  let blocks = 0
  const tools = new Map<string, { index: number; name: string }>()
  const ready: { id: string; name: string; input: unknown }[] = []

  for await (const part of parts) {
    switch (part.type) {
      case "start":
        model = part.model || model
        break
      case "text":
        segment += part.delta
        yield { type: "content", ...meta(), delta: part.delta, content: segment, role: "assistant" }
        break
      case "reasoning-start":
        blocks++
        break
      case "reasoning": {
        // One thinking part per message on this wire: later blocks continue it after a blank line.
        const delta = blocks > 1 && thinking && !thinking.endsWith("\n\n") ? `\n\n${part.delta}` : part.delta
        thinking += delta
        yield { type: "thinking", ...meta(), delta, content: thinking }
        break
      }
      case "reasoning-end":
        break
      case "tool-start":
        tools.set(part.id, { index: tools.size, name: part.name })
        segment = ""
        yield toolCall(meta(), tools.size - 1, part.id, part.name, "")
        break
      case "tool-args": {
        const tool = tools.get(part.id)
        if (tool) yield toolCall(meta(), tool.index, part.id, tool.name, part.delta)
        break
      }
      case "tool-end":
        ready.push({ id: part.id, name: part.name, input: part.input })
        break
      case "finish": {
        onFinal?.(part, model)
        const { inputTokens, outputTokens } = part.usage
        const usage = { promptTokens: inputTokens, completionTokens: outputTokens, totalTokens: inputTokens + outputTokens }
        yield { type: "done", ...meta(), finishReason: part.reason, usage }
        for (const tool of ready)
          yield { type: "tool-input-available", ...meta(), toolCallId: tool.id, toolName: tool.name, input: tool.input }
        break
      }
      case "error":
        onFinal?.(part, model)
        yield legacyError(meta(), part)
        return
      default:
        unreachable(part)
    }
  }
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

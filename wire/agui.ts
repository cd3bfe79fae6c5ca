// AG-UI wire (@tanstack/ai-client 0.33.x, WIRE.md §3): parts become spec-valid AG-UI events.
import type { Ctx, ErrorPart, Part, Usage } from "../parts"
import { unreachable } from "../parts"
import { type Encoder, encodeParts } from "./encoder"
import { REDACTED_PREFIX } from "../request"
import type { Frame } from "../sse"

export type AguiEvent = { type: string } & Record<string, unknown>

/**
 * `extra` is told the final part (finish or error) and the answering model when the final event is
 * built, and returns what to add to its `metadata.tanstack` (request id, fallback, cost).
 */
export type Run = { threadId: string; runId: string; model: string; extra?: (final: Part, model: string) => Record<string, unknown> }

/**
 * Encodes one run: RUN_STARTED first; text, tool calls and each reasoning block (inside its own
 * STEP) opened and closed in order, so AG-UI's `verifyEvents` accepts the stream; client tools
 * are announced with CUSTOM `tool-input-available` (form A, WIRE.md §3.5) before RUN_FINISHED;
 * a failure is one RUN_ERROR with nothing after it.
 */
export function aguiEncoder(ctx: Ctx, run: Run): Encoder<AguiEvent> {
  const { threadId, runId } = run
  let model = run.model
  let messageId = ctx.newId("msg")
  let textOpen = false
  let textSent = false
  let afterReasoning = false
  let reasoningId = ""
  const tools: { toolCallId: string; toolName: string; input: unknown }[] = []
  const closeText = (out: AguiEvent[]) => {
    if (!textOpen) return
    textOpen = false
    out.push({ type: "TEXT_MESSAGE_END", messageId })
  }

  return {
    open: () => [{ type: "RUN_STARTED", threadId, runId }],
    push(part, out) {
      switch (part.type) {
        case "start":
          model = part.model || model
          return false
        case "text":
          if (!textOpen) {
            // Text that resumes after a reasoning block needs a fresh id, or the client repeats
            // the earlier text (WIRE.md §3.8).
            if (textSent && afterReasoning) messageId = ctx.newId("msg")
            textOpen = true
            textSent = true
            afterReasoning = false
            out.push({ type: "TEXT_MESSAGE_START", messageId, role: "assistant", metadata: { tanstack: { model } } })
          }
          out.push({ type: "TEXT_MESSAGE_CONTENT", messageId, delta: part.delta })
          return false
        case "reasoning-start":
          closeText(out)
          reasoningId = ctx.newId("reasoning")
          afterReasoning = true
          out.push({ type: "STEP_STARTED", stepName: reasoningId })
          out.push({ type: "REASONING_START", messageId: reasoningId })
          out.push({ type: "REASONING_MESSAGE_START", messageId: reasoningId, role: "reasoning" })
          return false
        case "reasoning":
          out.push({ type: "REASONING_MESSAGE_CONTENT", messageId: reasoningId, delta: part.delta })
          return false
        case "reasoning-end": {
          out.push({ type: "REASONING_MESSAGE_END", messageId: reasoningId })
          const encryptedValue = part.redacted !== undefined ? `${REDACTED_PREFIX}${part.redacted}` : part.signature
          if (encryptedValue) out.push({ type: "REASONING_ENCRYPTED_VALUE", subtype: "message", entityId: reasoningId, encryptedValue })
          out.push({ type: "REASONING_END", messageId: reasoningId })
          out.push({ type: "STEP_FINISHED", stepName: reasoningId })
          return false
        }
        case "tool-start":
          closeText(out)
          out.push({ type: "TOOL_CALL_START", toolCallId: part.id, toolCallName: part.name, parentMessageId: messageId })
          return false
        case "tool-args":
          out.push({ type: "TOOL_CALL_ARGS", toolCallId: part.id, delta: part.delta })
          return false
        case "tool-end":
          tools.push({ toolCallId: part.id, toolName: part.name, input: part.input })
          out.push({ type: "TOOL_CALL_END", toolCallId: part.id, metadata: { tanstack: { input: part.input } } })
          return false
        case "finish":
          closeText(out)
          for (const tool of tools) out.push({ type: "CUSTOM", name: "tool-input-available", value: tool })
          out.push({
            type: "RUN_FINISHED",
            threadId,
            runId,
            usage: [wireUsage(part.usage)],
            metadata: { tanstack: { finishReason: part.reason, model, ...run.extra?.(part, model) } },
          })
          return true
        case "error":
          out.push(aguiError(run, part, model))
          return true
        default:
          return unreachable(part)
      }
    },
  }
}

/** `aguiEncoder` over a stream of parts, one event at a time (fixtures and tests). */
export async function* toAgui(parts: AsyncIterable<Part>, ctx: Ctx, run: Run): AsyncGenerator<AguiEvent> {
  yield* encodeParts(parts, aguiEncoder(ctx, run))
}

/** A run's last event when it fails; nothing may follow it. */
export function aguiError(run: Run, error: ErrorPart, model = run.model): AguiEvent {
  const retryAfter = error.retryAfter && { retryAfter: error.retryAfter }
  const tanstack = { threadId: run.threadId, runId: run.runId, ...retryAfter, ...run.extra?.(error, model) }
  return { type: "RUN_ERROR", message: error.message, code: error.code, metadata: { tanstack } }
}

function wireUsage(usage: Usage) {
  return {
    inputTokens: usage.inputTokens,
    outputTokens: usage.outputTokens,
    totalTokens: usage.inputTokens + usage.outputTokens,
    ...(usage.cachedInputTokens !== undefined && { cachedInputTokens: usage.cachedInputTokens }),
    ...(usage.reasoningTokens !== undefined && { reasoningTokens: usage.reasoningTokens }),
  }
}

/** What JSON.stringify would escape in a string: quotes, backslashes, control characters, surrogates. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/

/**
 * Frames AG-UI events with `frame`, except text content, the bulk of an answer: when its text needs
 * no escaping, that frame is put together from strings, the same bytes JSON.stringify gives for the
 * event as `aguiEncoder` builds it (type, messageId, delta), without walking an object per token.
 */
export function aguiFramer(frame: Frame): (event: AguiEvent) => string {
  const { before, after } = frame
  let id: unknown
  let head = ""
  return (event) => {
    if (event.type !== "TEXT_MESSAGE_CONTENT") return frame(event)
    const { messageId, delta } = event
    if (typeof delta !== "string" || NEEDS_ESCAPE.test(delta)) return frame(event)
    if (messageId !== id) {
      id = messageId
      head = `${before}{"type":"TEXT_MESSAGE_CONTENT","messageId":${JSON.stringify(messageId)},"delta":"`
    }
    return `${head}${delta}"}${after}`
  }
}

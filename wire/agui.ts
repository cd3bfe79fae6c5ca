// AG-UI wire (@tanstack/ai-client 0.33.x, WIRE.md §3): parts become spec-valid AG-UI events.
import type { Ctx, ErrorPart, Part, Usage } from "../parts"
import { unreachable } from "../parts"
import { REDACTED_PREFIX } from "../request"

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
export async function* toAgui(parts: AsyncIterable<Part>, ctx: Ctx, run: Run): AsyncGenerator<AguiEvent> {
  const { threadId, runId } = run
  let model = run.model
  let messageId = ctx.newId("msg")
  let textOpen = false
  let textSent = false
  let afterReasoning = false
  let reasoningId = ""
  const tools: { toolCallId: string; toolName: string; input: unknown }[] = []

  yield { type: "RUN_STARTED", threadId, runId }
  const closeText = function* (): Generator<AguiEvent> {
    if (!textOpen) return
    textOpen = false
    yield { type: "TEXT_MESSAGE_END", messageId }
  }

  for await (const part of parts) {
    switch (part.type) {
      case "start":
        model = part.model || model
        break
      case "text":
        if (!textOpen) {
          // Text that resumes after a reasoning block needs a fresh id, or the client repeats
          // the earlier text (WIRE.md §3.8).
          if (textSent && afterReasoning) messageId = ctx.newId("msg")
          textOpen = true
          textSent = true
          afterReasoning = false
          yield { type: "TEXT_MESSAGE_START", messageId, role: "assistant", metadata: { tanstack: { model } } }
        }
        yield { type: "TEXT_MESSAGE_CONTENT", messageId, delta: part.delta }
        break
      case "reasoning-start":
        yield* closeText()
        reasoningId = ctx.newId("reasoning")
        afterReasoning = true
        yield { type: "STEP_STARTED", stepName: reasoningId }
        yield { type: "REASONING_START", messageId: reasoningId }
        yield { type: "REASONING_MESSAGE_START", messageId: reasoningId, role: "reasoning" }
        break
      case "reasoning":
        yield { type: "REASONING_MESSAGE_CONTENT", messageId: reasoningId, delta: part.delta }
        break
      case "reasoning-end": {
        yield { type: "REASONING_MESSAGE_END", messageId: reasoningId }
        const encryptedValue = part.redacted !== undefined ? `${REDACTED_PREFIX}${part.redacted}` : part.signature
        if (encryptedValue) yield { type: "REASONING_ENCRYPTED_VALUE", subtype: "message", entityId: reasoningId, encryptedValue }
        yield { type: "REASONING_END", messageId: reasoningId }
        yield { type: "STEP_FINISHED", stepName: reasoningId }
        break
      }
      case "tool-start":
        yield* closeText()
        yield { type: "TOOL_CALL_START", toolCallId: part.id, toolCallName: part.name, parentMessageId: messageId }
        break
      case "tool-args":
        yield { type: "TOOL_CALL_ARGS", toolCallId: part.id, delta: part.delta }
        break
      case "tool-end":
        tools.push({ toolCallId: part.id, toolName: part.name, input: part.input })
        yield { type: "TOOL_CALL_END", toolCallId: part.id, metadata: { tanstack: { input: part.input } } }
        break
      case "finish":
        yield* closeText()
        for (const tool of tools) yield { type: "CUSTOM", name: "tool-input-available", value: tool }
        yield {
          type: "RUN_FINISHED",
          threadId,
          runId,
          usage: [wireUsage(part.usage)],
          metadata: { tanstack: { finishReason: part.reason, model, ...run.extra?.(part, model) } },
        }
        return
      case "error":
        yield aguiError(run, part, model)
        return
      default:
        unreachable(part)
    }
  }
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

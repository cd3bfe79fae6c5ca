// AG-UI RunAgentInput bodies (@tanstack/ai-client 0.33.x, WIRE.md §3.1) into a ChatRequest.
import type { Config } from "../config"
import { AguiMessageByRole, ChatOptions, RunAgentInput, type ToolDecl, validator } from "../schema"
import {
  type ChatMessage,
  type ChatRequest,
  invalid,
  type Parsed,
  type Reasoning,
  resolveRequest,
  userParts,
  parseToolCalls,
} from "./resolve"

const checkInput = validator(RunAgentInput)
const checkOptions = validator(ChatOptions)
const checkRole = Object.fromEntries(Object.entries(AguiMessageByRole).map(([role, schema]) => [role, validator(schema)])) as {
  [R in keyof AguiMessageByRole]: (
    value: unknown,
  ) => { ok: true; value: AguiMessageByRole[R] } | { ok: false; error: { path: string; message: string } }
}

/**
 * Redacted thinking has no text, only an opaque blob. It travels to the client as an encrypted
 * value with this prefix, so that it comes back as a `redacted_thinking` block, not a signature.
 */
export const REDACTED_PREFIX = "redacted_thinking:"

export function parseAguiRequest(body: unknown, config: Config, serverTools: ToolDecl[]): Parsed<ChatRequest> {
  const checked = checkInput(body)
  if (!checked.ok) return invalid(checked.error)
  const input = checked.value
  const rows = (body as { messages: unknown[] }).messages

  const messages: ChatMessage[] = []
  const system = input.context.map((entry) => `${entry.description}: ${entry.value}`)
  let reasoning: Reasoning[] = []
  for (const [i, raw] of rows.entries()) {
    const role = input.messages[i]?.role as keyof AguiMessageByRole
    const at = `messages[${i}]`
    const fields = checkRole[role](raw)
    if (!fields.ok) return invalid({ path: fields.error.path ? `${at}.${fields.error.path}` : at, message: fields.error.message })
    const row = fields.value
    switch (role) {
      case "developer":
      case "system":
        system.push((row as AguiMessageByRole["system"]).content)
        break
      case "user": {
        const user = row as AguiMessageByRole["user"]
        messages.push({ role: "user", content: userParts(user.content), name: user.name })
        break
      }
      case "reasoning": {
        // Reasoning rows come right before the assistant row they belong to (WIRE.md §3.8).
        const { content, encryptedValue } = row as AguiMessageByRole["reasoning"]
        if (encryptedValue?.startsWith(REDACTED_PREFIX))
          reasoning.push({ text: "", redacted: encryptedValue.slice(REDACTED_PREFIX.length) })
        else reasoning.push({ text: content, signature: encryptedValue })
        break
      }
      case "assistant": {
        const assistant = row as AguiMessageByRole["assistant"]
        const toolCalls = parseToolCalls(assistant.toolCalls, at)
        if (!toolCalls.ok) return toolCalls
        messages.push({ role: "assistant", content: assistant.content ?? "", toolCalls: toolCalls.value, reasoning, name: assistant.name })
        reasoning = []
        break
      }
      case "tool": {
        const tool = row as AguiMessageByRole["tool"]
        // An approval answer is not the tool's output (WIRE.md §3.7); the call stays unanswered.
        if (isApprovalRow(tool.content)) break
        messages.push({
          role: "tool",
          toolCallId: tool.toolCallId,
          content: tool.content,
          ...(tool.error !== undefined && { error: tool.error }),
        })
        break
      }
      case "activity":
        break
    }
  }
  if (system.length) messages.unshift({ role: "system", content: system.join("\n\n") })

  const optionsPath = input.forwardedProps ? "forwardedProps" : "data"
  const options = checkOptions(input.forwardedProps ?? input.data ?? {})
  if (!options.ok) return invalid({ path: `${optionsPath}.${options.error.path}`, message: options.error.message })
  const { tools: _ignored, ...chosen } = options.value
  return resolveRequest(
    { generation: "agui", messages, options: chosen, optionsPath, threadId: input.threadId, runId: input.runId, clientTools: input.tools },
    config,
    serverTools,
  )
}

function isApprovalRow(content: string): boolean {
  if (!content.startsWith("{") || !content.includes('"approved"')) return false
  try {
    const value = JSON.parse(content) as Record<string, unknown>
    return (
      typeof value.approved === "boolean" &&
      (value.pendingExecution === true || /^User (approved|denied) this action$/.test(String(value.message)))
    )
  } catch {
    return false
  }
}

// Legacy request bodies (@tanstack/ai-client 0.0.x, WIRE.md §2.1) into a ChatRequest.
import type { Config } from "../config"
import { type ChatOptions, LegacyRequest, type ToolDecl, validator } from "../schema"
import { type ChatMessage, type ChatRequest, invalid, type Parsed, resolveRequest, textOf, userParts, parseToolCalls } from "./resolve"

const checkLegacy = validator(LegacyRequest)

/** Parses a legacy (`@tanstack/ai-client` 0.0.x) body; `serverTools` come from TOOLS_FILE. */
export function parseLegacyRequest(body: unknown, config: Config, serverTools: ToolDecl[]): Parsed<ChatRequest> {
  const checked = checkLegacy(body)
  if (!checked.ok) return invalid(checked.error)
  const { messages: rows, data = {} } = checked.value
  const messages: ChatMessage[] = []
  for (const [i, row] of rows.entries()) {
    const at = `messages[${i}]`
    switch (row.role) {
      case "system":
        messages.push({ role: "system", content: textOf(row.content) })
        break
      case "user":
        messages.push({ role: "user", content: userParts(row.content), name: row.name })
        break
      case "assistant": {
        const toolCalls = parseToolCalls(row.toolCalls, at)
        if (!toolCalls.ok) return toolCalls
        messages.push({ role: "assistant", content: textOf(row.content), toolCalls: toolCalls.value, reasoning: [], name: row.name })
        break
      }
      case "tool":
        if (row.toolCallId === undefined)
          return invalid({ path: `${at}.toolCallId`, message: "tool messages need the id of the call they answer" })
        messages.push({ role: "tool", toolCallId: row.toolCallId, content: textOf(row.content) })
        break
    }
  }
  const options: ChatOptions = { ...data, provider: data.provider ?? checked.value.provider, model: data.model ?? checked.value.model }
  return resolveRequest({ generation: "legacy", messages, options, optionsPath: "data" }, config, serverTools)
}

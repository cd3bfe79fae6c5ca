// Legacy request bodies (@tanstack/ai-client 0.0.x, WIRE.md §2.1) into a ChatRequest.
import type { Config } from "../config"
import { type ChatOptions, LegacyRequest, preview, type ToolDecl, validator } from "../schema"
import {
  type ChatMessage,
  type ChatRequest,
  invalid,
  isInvalidArguments,
  type Parsed,
  parseArguments,
  resolveRequest,
  type ToolCall,
  textOf,
  userParts,
} from "./resolve"

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
        const toolCalls: ToolCall[] = []
        for (const [j, call] of (row.toolCalls ?? []).entries()) {
          const input = parseArguments(call.function.arguments)
          if (isInvalidArguments(input))
            return invalid({
              path: `${at}.toolCalls[${j}].function.arguments`,
              message: `must be a JSON object; got ${preview(call.function.arguments)}`,
            })
          toolCalls.push({ id: call.id, name: call.function.name, input })
        }
        messages.push({ role: "assistant", content: textOf(row.content), toolCalls, reasoning: [], name: row.name })
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

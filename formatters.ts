// The provider-neutral conversation becomes an Anthropic Messages or an OpenAI Chat Completions request.
import type Anthropic from "@anthropic-ai/sdk"
import type OpenAI from "openai"
import { type Config, matchesAny } from "./config"
import type { ChatMessage, ChatRequest, UserPart } from "./request"

/** The SDK no longer types `temperature` (deprecated upstream); the API still takes it when set. */
export type AnthropicParams = Anthropic.MessageCreateParamsStreaming & { temperature?: number }
export type OpenAIParams = OpenAI.ChatCompletionCreateParamsStreaming

const UNANSWERED = "No result: the client did not run this tool call."

/**
 * Providers reject an assistant tool call that has no result before the next turn, and a result
 * for a call they never made. Both happen with real clients (an unregistered client tool, an
 * edited history), so answer the first with an error result and drop the second.
 */
export function repairToolCalls(messages: ChatMessage[]): ChatMessage[] {
  const out: ChatMessage[] = []
  let pending: string[] = []
  const settle = () => {
    for (const id of pending) out.push({ role: "tool", toolCallId: id, content: UNANSWERED, error: UNANSWERED })
    pending = []
  }
  for (const message of messages) {
    if (message.role === "tool") {
      if (!pending.includes(message.toolCallId)) continue
      pending = pending.filter((id) => id !== message.toolCallId)
      out.push(message)
      continue
    }
    settle()
    out.push(message)
    if (message.role === "assistant") pending = message.toolCalls.map((call) => call.id)
  }
  settle()
  return out
}

export function toAnthropic(request: ChatRequest, config: Config): AnthropicParams {
  const settings = config.modelSettings[request.model] ?? {}
  const maxTokens = request.maxTokens ?? settings.maxTokens ?? config.anthropic.maxTokens
  const temperature = settings.temperature ?? config.anthropic.temperature
  const system = request.messages.flatMap((m) => (m.role === "system" && m.content ? [m.content] : [])).join("\n\n")
  const thinking = request.thinkingBudget > 0 && !continuesUnsignedToolCall(request.messages) ? request.thinkingBudget : 0
  const params: AnthropicParams = {
    model: request.model,
    max_tokens: maxTokens + thinking,
    messages: anthropicMessages(repairToolCalls(request.messages)),
    stream: true,
  }
  if (system) params.system = system
  if (thinking) params.thinking = { type: "enabled", budget_tokens: thinking }
  else if (temperature !== undefined) params.temperature = Math.min(temperature, 1)
  if (request.tools.length)
    params.tools = request.tools.map((tool) => ({
      name: tool.name,
      description: tool.description,
      input_schema: { type: "object", ...tool.parameters } as Anthropic.Tool.InputSchema,
    }))
  return params
}

/**
 * With thinking on, Anthropic rejects a tool-use continuation whose assistant turn does not start
 * with its signed thinking block. Legacy clients never send thinking back, so such a turn is
 * answered without thinking rather than not at all.
 */
function continuesUnsignedToolCall(messages: ChatMessage[]): boolean {
  let i = messages.length - 1
  while (i >= 0 && messages[i]?.role === "tool") i--
  const last = messages[i]
  if (i === messages.length - 1 || last?.role !== "assistant" || !last.toolCalls.length) return false
  return !last.reasoning.some((r) => r.signature || r.redacted)
}

type AnthropicBlock = Anthropic.ContentBlockParam

function anthropicMessages(messages: ChatMessage[]): Anthropic.MessageParam[] {
  const out: { role: "user" | "assistant"; content: AnthropicBlock[] }[] = []
  // Consecutive tool results and user text share one user turn: Anthropic wants every result of a
  // parallel call in the message right after it, results first.
  const push = (role: "user" | "assistant", blocks: AnthropicBlock[]) => {
    if (!blocks.length) return
    const last = out.at(-1)
    if (last?.role === role) last.content.push(...blocks)
    else out.push({ role, content: blocks })
  }
  for (const message of messages) {
    switch (message.role) {
      case "system":
        break
      case "user":
        push("user", message.content.map(anthropicUserBlock))
        break
      case "assistant":
        push("assistant", [
          ...message.reasoning.flatMap((r): AnthropicBlock[] =>
            r.redacted
              ? [{ type: "redacted_thinking", data: r.redacted }]
              : r.signature
                ? [{ type: "thinking", thinking: r.text, signature: r.signature }]
                : [],
          ),
          ...(message.content ? [{ type: "text", text: message.content } as const] : []),
          ...message.toolCalls.map((call) => ({ type: "tool_use", id: call.id, name: call.name, input: call.input }) as const),
        ])
        break
      case "tool":
        push("user", [
          {
            type: "tool_result",
            tool_use_id: message.toolCallId,
            content: message.error ?? message.content,
            ...(message.error !== undefined && { is_error: true }),
          },
        ])
        break
    }
  }
  return out
}

function anthropicUserBlock(part: UserPart): AnthropicBlock {
  if (part.type === "text") return { type: "text", text: part.text }
  const { type, value, mimeType } = part.source
  if (type === "url" && !value.startsWith("data:")) return { type: "image", source: { type: "url", url: value } }
  const { data, mediaType } = splitDataUrl(value, mimeType)
  return { type: "image", source: { type: "base64", data, media_type: mediaType as Anthropic.Base64ImageSource["media_type"] } }
}

/** Accepts bare base64 or a `data:` URL and returns the base64 payload with its media type. */
export function splitDataUrl(value: string, mimeType = "image/png"): { data: string; mediaType: string } {
  const match = /^data:([^;,]+)(?:;[^,]*)?,(.*)$/s.exec(value)
  return match ? { mediaType: match[1] ?? mimeType, data: match[2] ?? "" } : { mediaType: mimeType, data: value }
}

export function toOpenAI(request: ChatRequest, config: Config): OpenAIParams {
  const settings = config.modelSettings[request.model] ?? {}
  const maxTokens = request.maxTokens ?? settings.maxTokens ?? config.openai.maxTokens
  const temperature = settings.temperature ?? config.openai.temperature
  const params: OpenAIParams = {
    model: request.model,
    messages: openaiMessages(repairToolCalls(request.messages)),
    stream: true,
    stream_options: { include_usage: true },
  }
  // Reasoning models refuse `max_tokens` and any temperature but the default.
  if (matchesAny(config.openai.reasoningModels, request.model)) params.max_completion_tokens = maxTokens
  else {
    params.max_tokens = maxTokens
    if (temperature !== undefined) params.temperature = temperature
  }
  if (request.tools.length)
    params.tools = request.tools.map((tool) => ({
      type: "function",
      function: { name: tool.name, description: tool.description, parameters: tool.parameters ?? { type: "object", properties: {} } },
    }))
  return params
}

function openaiMessages(messages: ChatMessage[]): OpenAI.ChatCompletionMessageParam[] {
  return messages.map((message): OpenAI.ChatCompletionMessageParam => {
    switch (message.role) {
      case "system":
        return { role: "system", content: message.content }
      case "user": {
        const only = message.content.length === 1 && message.content[0]?.type === "text" ? message.content[0].text : undefined
        return {
          role: "user",
          content: only ?? message.content.map(openaiUserPart),
          ...(message.name && { name: message.name }),
        }
      }
      case "assistant":
        return {
          role: "assistant",
          content: message.content || null,
          ...(message.name && { name: message.name }),
          ...(message.toolCalls.length && {
            tool_calls: message.toolCalls.map((call) => ({
              id: call.id,
              type: "function" as const,
              function: { name: call.name, arguments: JSON.stringify(call.input) },
            })),
          }),
        }
      case "tool":
        return {
          role: "tool",
          tool_call_id: message.toolCallId,
          content: message.error !== undefined ? `Error: ${message.error}` : message.content,
        }
    }
  })
}

function openaiUserPart(part: UserPart): OpenAI.ChatCompletionContentPart {
  if (part.type === "text") return { type: "text", text: part.text }
  const { type, value, mimeType } = part.source
  const url = type === "url" || value.startsWith("data:") ? value : `data:${mimeType ?? "image/png"};base64,${value}`
  return { type: "image_url", image_url: { url } }
}

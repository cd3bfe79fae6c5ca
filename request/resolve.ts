// The provider-neutral request both wire generations parse into, and the server policy applied to it.
import { type Config, MOCK_MODEL, matchesAny, PROVIDERS, type ProviderName, providerMode } from "../config"
import type { ErrorCode } from "../parts"
import { type ChatOptions, type ContentPart, type Invalid, MAX_TOOL_PARAMETERS_BYTES, MAX_TOOLS, preview, type ToolDecl } from "../schema"

export type UserPart =
  | { type: "text"; text: string }
  | { type: "image"; source: { type: "url" | "data"; value: string; mimeType?: string } }
export type ToolCall = { id: string; name: string; input: unknown }
export type Reasoning = { text: string; signature?: string; redacted?: string }

/** The conversation in one provider-neutral shape; formatters turn it into provider requests. */
export type ChatMessage =
  | { role: "system"; content: string }
  | { role: "user"; content: UserPart[]; name?: string }
  | { role: "assistant"; content: string; toolCalls: ToolCall[]; reasoning: Reasoning[]; name?: string }
  | { role: "tool"; toolCallId: string; content: string; error?: string }

export type Generation = "legacy" | "agui"

export type ChatRequest = {
  generation: Generation
  provider: ProviderName
  model: string
  messages: ChatMessage[]
  tools: ToolDecl[]
  /** Anthropic extended-thinking budget in tokens; 0 is off. */
  thinkingBudget: number
  /** The answer's token limit the client asked for, within MAX_TOKENS_LIMIT; else the server's. */
  maxTokens?: number
  threadId?: string
  runId?: string
}

/** A request rejected before any provider is called: an HTTP status and a JSON body. */
export type HttpError = { status: number; code: ErrorCode; message: string; path?: string; headers?: Record<string, string> }
export type Parsed<V> = { ok: true; value: V } | { ok: false; error: HttpError }

export const invalid = (error: Invalid): { ok: false; error: HttpError } => ({
  ok: false,
  error: {
    status: 400,
    code: "invalid_request",
    message: error.path ? `${error.path}: ${error.message}` : error.message,
    path: error.path || undefined,
  },
})

/** A query parameter that must be one of `allowed`; undefined when absent. */
export function queryChoice<T extends string>(url: URL, name: string, allowed: readonly T[]): Parsed<T | undefined> {
  const value = url.searchParams.get(name)
  if (value === null || (allowed as readonly string[]).includes(value)) return { ok: true, value: (value ?? undefined) as T | undefined }
  const options = allowed.map((option) => `"${option}"`).join(" or ")
  return fail(400, "invalid_request", `query parameter ?${name} must be ${options}; got "${value}"`, `?${name}`)
}

export type Draft = {
  generation: Generation
  messages: ChatMessage[]
  options: ChatOptions
  optionsPath: string
  threadId?: string
  runId?: string
  clientTools?: ToolDecl[]
}

/** Chooses provider, model, tools and thinking under the server's policy. Shared by both generations. */
export function resolveRequest(draft: Draft, config: Config, serverTools: ToolDecl[]): Parsed<ChatRequest> {
  const { options, optionsPath } = draft
  const provider = (options.provider ?? config.defaultProvider) as ProviderName
  if (!PROVIDERS.includes(provider))
    return fail(
      400,
      "unknown_provider",
      `${optionsPath}.provider: must be one of ${PROVIDERS.map((p) => `"${p}"`).join(", ")}; got ${preview(options.provider)}`,
      `${optionsPath}.provider`,
    )
  if (providerMode(config, provider) === "off")
    return fail(
      503,
      "provider_not_configured",
      `provider "${provider}" has no API key on this server (and MOCK=off)`,
      `${optionsPath}.provider`,
    )

  const model = options.model ?? (provider === "mock" ? MOCK_MODEL : config[provider].model)
  if (provider !== "mock" && model !== config[provider].model && !matchesAny(config.allowedModels, model))
    return fail(
      400,
      "model_not_allowed",
      `${optionsPath}.model: ${preview(model)} is not allowed on this server (ALLOWED_MODELS)`,
      `${optionsPath}.model`,
    )

  const { limits } = config
  if (draft.messages.length > limits.maxMessages)
    return fail(
      400,
      "too_many_messages",
      `at most ${limits.maxMessages} messages allowed (MAX_MESSAGES); got ${draft.messages.length}`,
      "messages",
    )
  const chars = inputChars(draft.messages)
  if (chars > limits.maxInputChars)
    return fail(
      413,
      "input_too_large",
      `the messages hold ${chars} characters of text; at most ${limits.maxInputChars} allowed (MAX_INPUT_CHARS)`,
      "messages",
    )
  if (options.maxTokens !== undefined && options.maxTokens > limits.maxTokens)
    return fail(
      400,
      "max_tokens_too_large",
      `${optionsPath}.maxTokens: at most ${limits.maxTokens} allowed (MAX_TOKENS_LIMIT); got ${options.maxTokens}`,
      `${optionsPath}.maxTokens`,
    )

  const tools = mergeTools(serverTools, [...(draft.clientTools ?? []), ...(options.tools ?? [])])
  if (tools.length > MAX_TOOLS)
    return fail(400, "invalid_request", `at most ${MAX_TOOLS} tools allowed; got ${tools.length}`, `${optionsPath}.tools`)
  for (const [i, tool] of tools.entries()) {
    if (JSON.stringify(tool.parameters ?? {}).length > MAX_TOOL_PARAMETERS_BYTES)
      return fail(
        400,
        "invalid_request",
        `tool "${tool.name}": parameters schema is over ${MAX_TOOL_PARAMETERS_BYTES} bytes`,
        `tools[${i}].parameters`,
      )
  }

  const configured = config.modelSettings[model]?.thinkingBudget ?? config.anthropic.thinkingBudget
  let thinkingBudget = configured
  if (options.thinking === false) thinkingBudget = 0
  else if (options.thinking === true) thinkingBudget = configured || Math.min(4096, config.anthropic.maxThinkingBudget)
  else if (options.thinking) {
    thinkingBudget = options.thinking.budgetTokens
    if (thinkingBudget > config.anthropic.maxThinkingBudget || (thinkingBudget > 0 && thinkingBudget < 1024))
      return fail(
        400,
        "invalid_request",
        `${optionsPath}.thinking.budgetTokens: must be 0 or from 1024 to ${config.anthropic.maxThinkingBudget}; got ${thinkingBudget}`,
        `${optionsPath}.thinking.budgetTokens`,
      )
  }

  return {
    ok: true,
    value: {
      generation: draft.generation,
      provider,
      model,
      messages: draft.messages,
      tools,
      thinkingBudget,
      ...(options.maxTokens !== undefined && { maxTokens: options.maxTokens }),
      threadId: draft.threadId,
      runId: draft.runId,
    },
  }
}

function fail(status: number, code: ErrorCode, message: string, path?: string): { ok: false; error: HttpError } {
  return { ok: false, error: { status, code, message, path } }
}

/** Server-declared tools win on a name clash: client tool text is untrusted. */
function mergeTools(server: ToolDecl[], client: ToolDecl[]): ToolDecl[] {
  const names = new Set(server.map((tool) => tool.name))
  return [...server, ...client.filter((tool) => !names.has(tool.name) && names.add(tool.name))]
}

type WireToolCall = { id: string; function: { name: string; arguments: string } }

/** Wire tool calls (arguments as JSON text) with their arguments parsed; `at` is the message path. */
export function parseToolCalls(calls: WireToolCall[] | undefined, at: string): Parsed<ToolCall[]> {
  const toolCalls: ToolCall[] = []
  for (const [j, call] of (calls ?? []).entries()) {
    const input = parseArguments(call.function.arguments)
    if (isInvalidArguments(input))
      return invalid({
        path: `${at}.toolCalls[${j}].function.arguments`,
        message: `must be a JSON object; got ${preview(call.function.arguments)}`,
      })
    toolCalls.push({ id: call.id, name: call.function.name, input })
  }
  return { ok: true, value: toolCalls }
}

const INVALID = Symbol("invalid")

/** Tool-call arguments as sent back by clients: a JSON object string, or empty when none streamed. */
export function parseArguments(text: string): unknown {
  if (text.trim() === "") return {}
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value : INVALID
  } catch {
    return INVALID
  }
}
export const isInvalidArguments = (value: unknown) => value === INVALID

export function textOf(content: string | null | undefined | ContentPart[]): string {
  if (typeof content === "string") return content
  if (!content) return ""
  return content.map((part) => (part.type === "text" ? (part.text ?? part.content ?? "") : "")).join("")
}

export function userParts(content: string | null | undefined | ContentPart[]): UserPart[] {
  if (typeof content === "string") return [{ type: "text", text: content }]
  if (!content) return []
  return content.map((part) =>
    part.type === "text" ? { type: "text", text: part.text ?? part.content ?? "" } : { type: "image", source: part.source },
  )
}

/** Characters of text and tool payloads in a conversation; images are counted by their reference. */
function inputChars(messages: ChatMessage[]): number {
  let total = 0
  for (const message of messages) {
    switch (message.role) {
      case "system":
        total += message.content.length
        break
      case "user":
        for (const part of message.content) total += part.type === "text" ? part.text.length : part.source.value.length
        break
      case "assistant":
        total += message.content.length
        for (const call of message.toolCalls) total += JSON.stringify(call.input ?? null).length
        for (const block of message.reasoning) total += block.text.length
        break
      case "tool":
        total += message.content.length
        break
    }
  }
  return total
}

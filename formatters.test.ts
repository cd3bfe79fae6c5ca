import { describe, expect, test } from "bun:test"
import { type Config, parseConfig } from "./config"
import { repairToolCalls, toAnthropic, toOpenAI } from "./formatters"
import { type ChatMessage, type ChatRequest, parseLegacyRequest } from "./request"

function configOf(env: Record<string, string> = {}): Config {
  const parsed = parseConfig(env)
  if (!parsed.ok) throw new Error(parsed.problems.join("; "))
  return parsed.value
}
const config = configOf({ ALLOWED_MODELS: "*" })

function legacy(body: unknown, cfg = config): ChatRequest {
  const parsed = parseLegacyRequest(body, cfg, [])
  if (!parsed.ok) throw new Error(parsed.error.message)
  return parsed.value
}

const toolHistory = {
  messages: [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Where and when am I?" },
    {
      role: "assistant",
      content: "Let me look.",
      toolCalls: [
        { id: "call_A", type: "function", function: { name: "getLocation", arguments: '{"precise":true}' } },
        { id: "call_B", type: "function", function: { name: "getTime", arguments: '{"tz":"UTC"}' } },
      ],
    },
    { role: "tool", content: '{"city":"Oslo"}', toolCallId: "call_A" },
    { role: "tool", content: '{"time":"12:00"}', toolCallId: "call_B" },
  ],
  data: {
    tools: [
      {
        name: "getLocation",
        description: "Where the user is",
        parameters: { type: "object", properties: { precise: { type: "boolean" } } },
      },
    ],
  },
}

describe("Anthropic", () => {
  test("system goes top-level, tool calls become tool_use, parallel results share one user turn", () => {
    const params = toAnthropic(legacy(toolHistory), config)
    expect(params.system).toBe("Be brief.")
    expect(params.messages).toEqual([
      { role: "user", content: [{ type: "text", text: "Where and when am I?" }] },
      {
        role: "assistant",
        content: [
          { type: "text", text: "Let me look." },
          { type: "tool_use", id: "call_A", name: "getLocation", input: { precise: true } },
          { type: "tool_use", id: "call_B", name: "getTime", input: { tz: "UTC" } },
        ],
      },
      {
        role: "user",
        content: [
          { type: "tool_result", tool_use_id: "call_A", content: '{"city":"Oslo"}' },
          { type: "tool_result", tool_use_id: "call_B", content: '{"time":"12:00"}' },
        ],
      },
    ])
    expect(params.tools).toEqual([
      {
        name: "getLocation",
        description: "Where the user is",
        input_schema: { type: "object", properties: { precise: { type: "boolean" } } },
      },
    ])
  })

  test("max_tokens and temperature come from config, per model over per provider", () => {
    const cfg = configOf({
      ALLOWED_MODELS: "*",
      ANTHROPIC_MAX_TOKENS: "2000",
      ANTHROPIC_TEMPERATURE: "0.3",
      MODEL_SETTINGS: '{"claude-x":{"maxTokens":99,"temperature":0.9}}',
    })
    const base = toAnthropic(legacy({ messages: [{ role: "user", content: "hi" }] }, cfg), cfg)
    expect([base.max_tokens, base.temperature]).toEqual([2000, 0.3])
    const special = toAnthropic(legacy({ messages: [{ role: "user", content: "hi" }], data: { model: "claude-x" } }, cfg), cfg)
    expect([special.max_tokens, special.temperature]).toEqual([99, 0.9])
  })

  test("extended thinking adds its budget on top of max_tokens and drops temperature", () => {
    const cfg = configOf({ ALLOWED_MODELS: "*", ANTHROPIC_THINKING_BUDGET: "2048", ANTHROPIC_TEMPERATURE: "0.5" })
    const params = toAnthropic(legacy({ messages: [{ role: "user", content: "hi" }] }, cfg), cfg)
    expect(params.thinking).toEqual({ type: "enabled", budget_tokens: 2048 })
    expect(params.max_tokens).toBe(1024 + 2048)
    expect(params.temperature).toBeUndefined()
    const off = toAnthropic(legacy({ messages: [{ role: "user", content: "hi" }], data: { thinking: false } }, cfg), cfg)
    expect(off.thinking).toBeUndefined()
  })

  test("thinking is left off for a tool continuation whose thinking the client did not send back", () => {
    const cfg = configOf({ ALLOWED_MODELS: "*", ANTHROPIC_THINKING_BUDGET: "2048" })
    expect(toAnthropic(legacy(toolHistory, cfg), cfg).thinking).toBeUndefined()
    const request = legacy(toolHistory, cfg)
    const assistant = request.messages.find((m) => m.role === "assistant")
    if (assistant?.role === "assistant") assistant.reasoning.push({ text: "hmm", signature: "sig" })
    expect(toAnthropic(request, cfg).thinking).toEqual({ type: "enabled", budget_tokens: 2048 })
    const nextQuestion = legacy(
      {
        ...toolHistory,
        messages: [...toolHistory.messages, { role: "assistant", content: "Oslo, noon." }, { role: "user", content: "Thanks" }],
      },
      cfg,
    )
    expect(toAnthropic(nextQuestion, cfg).thinking).toEqual({ type: "enabled", budget_tokens: 2048 })
  })

  test("images by URL and by base64 data", () => {
    const request = legacy({
      messages: [
        {
          role: "user",
          content: [
            { type: "text", content: "What is this?" },
            { type: "image", source: { type: "url", value: "https://example.com/cat.png" } },
            { type: "image", source: { type: "data", value: "data:image/jpeg;base64,AAAA" } },
          ],
        },
      ],
    })
    expect(toAnthropic(request, config).messages[0]?.content).toEqual([
      { type: "text", text: "What is this?" },
      { type: "image", source: { type: "url", url: "https://example.com/cat.png" } },
      { type: "image", source: { type: "base64", media_type: "image/jpeg", data: "AAAA" } },
    ])
    expect(toOpenAI(request, config).messages[0]).toEqual({
      role: "user",
      content: [
        { type: "text", text: "What is this?" },
        { type: "image_url", image_url: { url: "https://example.com/cat.png" } },
        { type: "image_url", image_url: { url: "data:image/jpeg;base64,AAAA" } },
      ],
    })
  })
})

describe("OpenAI", () => {
  test("tool_calls on the assistant, tool rows with tool_call_id, usage requested", () => {
    const params = toOpenAI(legacy(toolHistory), config)
    expect(params.stream_options).toEqual({ include_usage: true })
    expect(params.messages).toEqual([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Where and when am I?" },
      {
        role: "assistant",
        content: "Let me look.",
        tool_calls: [
          { id: "call_A", type: "function", function: { name: "getLocation", arguments: '{"precise":true}' } },
          { id: "call_B", type: "function", function: { name: "getTime", arguments: '{"tz":"UTC"}' } },
        ],
      },
      { role: "tool", tool_call_id: "call_A", content: '{"city":"Oslo"}' },
      { role: "tool", tool_call_id: "call_B", content: '{"time":"12:00"}' },
    ])
    expect(params.tools?.[0]).toMatchObject({ type: "function", function: { name: "getLocation" } })
  })

  test("name is passed through", () => {
    const params = toOpenAI(legacy({ messages: [{ role: "user", content: "hi", name: "ada" }] }), config)
    expect(params.messages[0]).toEqual({ role: "user", content: "hi", name: "ada" })
  })

  test("reasoning models get max_completion_tokens and no temperature; others max_tokens and temperature", () => {
    const reasoning = toOpenAI(
      legacy({ messages: [{ role: "user", content: "hi" }], data: { provider: "openai", model: "o3-mini" } }),
      config,
    )
    expect([reasoning.max_completion_tokens, reasoning.max_tokens, reasoning.temperature]).toEqual([1024, undefined, undefined])
    const classic = toOpenAI(legacy({ messages: [{ role: "user", content: "hi" }], data: { provider: "openai", model: "gpt-4o" } }), config)
    expect([classic.max_completion_tokens, classic.max_tokens, classic.temperature]).toEqual([undefined, 1024, 0.7])
  })
})

describe("tool-call repair", () => {
  test("a call with no result gets an error result; a result for no call is dropped", () => {
    const messages: ChatMessage[] = [
      { role: "user", content: [{ type: "text", text: "go" }] },
      {
        role: "assistant",
        content: "",
        reasoning: [],
        toolCalls: [
          { id: "a", name: "f", input: {} },
          { id: "b", name: "g", input: {} },
        ],
      },
      { role: "tool", toolCallId: "a", content: "1" },
      { role: "tool", toolCallId: "zzz", content: "stray" },
      { role: "user", content: [{ type: "text", text: "next" }] },
    ]
    const repaired = repairToolCalls(messages)
    expect(repaired.filter((m) => m.role === "tool").map((m) => m.role === "tool" && [m.toolCallId, m.error !== undefined])).toEqual([
      ["a", false],
      ["b", true],
    ])
    expect(repaired.at(-1)?.role).toBe("user")
    const anthropic = toAnthropic({ ...legacy({ messages: [{ role: "user", content: "x" }] }), messages }, config)
    expect(anthropic.messages[2]?.content).toEqual([
      { type: "tool_result", tool_use_id: "a", content: "1" },
      { type: "tool_result", tool_use_id: "b", content: expect.stringContaining("No result"), is_error: true },
      { type: "text", text: "next" },
    ])
  })
})

import { describe, expect, test } from "bun:test"
import { type Config, parseConfig } from "./config"
import { toAnthropic, toOpenAI } from "./formatters"
import { type ChatRequest, detectGeneration, parseAguiRequest } from "./request"

function configOf(env: Record<string, string> = {}): Config {
  const parsed = parseConfig(env)
  if (!parsed.ok) throw new Error(parsed.problems.join("; "))
  return parsed.value
}
const config = configOf({ ALLOWED_MODELS: "claude-*,gpt-*" })

const base = { threadId: "T", runId: "R", state: {}, tools: [], context: [], forwardedProps: {} }
const input = (messages: unknown[], extra: Record<string, unknown> = {}) => ({ ...base, messages, ...extra })
const userRow = { id: "u1", role: "user", content: "hi" }

function parse(body: unknown): ChatRequest {
  const parsed = parseAguiRequest(body, config, [])
  if (!parsed.ok) throw new Error(parsed.error.message)
  return parsed.value
}

describe("which generation a body speaks", () => {
  const legacy = { messages: [{ role: "user", content: "hi" }] }
  test.each([
    ["a legacy body", legacy, new Headers(), "", "legacy"],
    ["threadId/runId", input([userRow]), new Headers(), "", "agui"],
    ["message ids alone", { messages: [userRow] }, new Headers(), "", "agui"],
    ["X-Run-Id alone", legacy, new Headers({ "x-run-id": "R" }), "", "agui"],
    ["?wire=legacy overrides", input([userRow]), new Headers(), "?wire=legacy", "legacy"],
  ])("%s", (_name, body, headers, query, expected) => {
    const url = new URL(`http://sidechat/chat${query}`)
    expect(detectGeneration(body as Record<string, unknown>, headers, url)).toEqual({ ok: true, value: expected as "agui" })
  })

  test("an unknown ?wire value is an error naming the parameter", () => {
    const result = detectGeneration({}, new Headers(), new URL("http://sidechat/chat?wire=v2"))
    expect(result.ok).toBe(false)
    if (!result.ok) expect(result.error).toMatchObject({ status: 400, path: "?wire" })
  })
})

describe("RunAgentInput validation names the path", () => {
  const cases: [string, unknown, string][] = [
    ["threadId missing", { ...input([userRow]), threadId: undefined }, "threadId"],
    ["tools missing", { ...input([userRow]), tools: undefined }, "tools"],
    ["context not an array", input([userRow], { context: {} }), "context"],
    ["forwardedProps an array", input([userRow], { forwardedProps: [] }), "forwardedProps"],
    ["a message without id", input([{ role: "user", content: "hi" }]), "messages[0].id"],
    ["an unknown role", input([{ id: "x", role: "robot", content: "hi" }]), "messages[0].role"],
    ["assistant content null", input([userRow, { id: "a", role: "assistant", content: null }]), "messages[1].content"],
    ["a tool row without toolCallId", input([userRow, { id: "t", role: "tool", content: "1" }]), "messages[1].toolCallId"],
    ["a reasoning row without content", input([{ id: "r", role: "reasoning" }, userRow]), "messages[0].content"],
    ["a bad resume status", input([userRow], { resume: [{ interruptId: "i", status: "maybe" }] }), "resume[0].status"],
    ["a tool name with spaces", input([userRow], { tools: [{ name: "get weather", description: "d" }] }), "tools[0].name"],
    [
      "a tool description over the cap",
      input([userRow], { tools: [{ name: "t", description: "x".repeat(5000) }] }),
      "tools[0].description",
    ],
    ["too many tools", input([userRow], { tools: Array.from({ length: 65 }, (_, i) => ({ name: `t${i}`, description: "d" })) }), "tools"],
    ["a provider that does not exist", input([userRow], { forwardedProps: { provider: "gemini" } }), "forwardedProps.provider"],
    [
      "a model outside ALLOWED_MODELS",
      input([userRow], { forwardedProps: { provider: "anthropic", model: "llama-3" } }),
      "forwardedProps.model",
    ],
    ["a non-boolean thinking switch", input([userRow], { forwardedProps: { thinking: "yes" } }), "forwardedProps.thinking"],
    [
      "tool-call arguments that are not JSON",
      input([userRow, { id: "a", role: "assistant", toolCalls: [{ id: "c", type: "function", function: { name: "f", arguments: "{" } }] }]),
      "messages[1].toolCalls[0].function.arguments",
    ],
  ]
  for (const [name, body, path] of cases) {
    test(name, () => {
      const parsed = parseAguiRequest(body, config, [])
      expect(parsed.ok).toBe(false)
      if (!parsed.ok) {
        expect(parsed.error.status).toBeGreaterThanOrEqual(400)
        expect(parsed.error.status).toBeLessThan(500)
        expect(parsed.error.path).toBe(path)
        expect(parsed.error.message).toStartWith(path)
      }
    })
  }

  test("a tool parameters schema over the size cap", () => {
    const parameters = { type: "object", description: "x".repeat(20_000) }
    const parsed = parseAguiRequest(input([userRow], { tools: [{ name: "big", description: "d", parameters }] }), config, [])
    expect(parsed.ok || parsed.error.path).toBe("tools[0].parameters")
  })
})

describe("wire messages into provider requests", () => {
  const history = input(
    [
      { id: "d", role: "developer", content: "Answer in French." },
      {
        id: "u1",
        role: "user",
        content: [
          { type: "text", text: "What is this?" },
          { type: "image", source: { type: "data", value: "AAAA", mimeType: "image/webp" } },
        ],
      },
      { id: "a1-reasoning-1", role: "reasoning", content: "Looks like a cat.", encryptedValue: "sig-1" },
      { id: "a1-reasoning-2", role: "reasoning", content: "", encryptedValue: "redacted_thinking:blob" },
      { id: "a1-reasoning-3", role: "reasoning", content: "unsigned thoughts" },
      {
        id: "a1",
        role: "assistant",
        content: "Let me check.",
        toolCalls: [
          { id: "c1", type: "function", function: { name: "lookup", arguments: '{"q":"cat"}' } },
          { id: "c2", type: "function", function: { name: "confirm", arguments: "{}" } },
          { id: "c3", type: "function", function: { name: "broken", arguments: "" } },
        ],
      },
      { id: "tool-c1", role: "tool", toolCallId: "c1", content: "null", error: "lookup failed" },
      {
        id: "tool-c2",
        role: "tool",
        toolCallId: "c2",
        content: '{"approved":true,"pendingExecution":true,"message":"User approved this action"}',
      },
      { id: "u2", role: "user", content: "And now?" },
    ],
    {
      context: [{ description: "Locale", value: "fr-FR" }],
      parentRunId: "R0",
      resume: [{ interruptId: "x", status: "resolved", payload: {} }],
    },
  )

  test("developer and context fold into system; reasoning rows become thinking blocks of the next assistant", () => {
    const params = toAnthropic(parse(history), config)
    expect(params.system).toBe("Locale: fr-FR\n\nAnswer in French.")
    expect(params.messages[0]?.content).toEqual([
      { type: "text", text: "What is this?" },
      { type: "image", source: { type: "base64", media_type: "image/webp", data: "AAAA" } },
    ])
    const assistant = params.messages[1]?.content as unknown as Record<string, unknown>[]
    expect(assistant.map((b) => b.type)).toEqual(["thinking", "redacted_thinking", "text", "tool_use", "tool_use", "tool_use"])
    expect(assistant[0]).toEqual({ type: "thinking", thinking: "Looks like a cat.", signature: "sig-1" })
    expect(assistant[1]).toEqual({ type: "redacted_thinking", data: "blob" })
  })

  test("tool errors are error results, approval rows are not results, unanswered calls are repaired", () => {
    const results = toAnthropic(parse(history), config).messages[2]?.content as {
      type: string
      tool_use_id?: string
      is_error?: boolean
      content?: string
    }[]
    expect(results.map((b) => [b.type, b.tool_use_id, b.is_error ?? false])).toEqual([
      ["tool_result", "c1", true],
      ["tool_result", "c2", true],
      ["tool_result", "c3", true],
      ["text", undefined, false],
    ])
    expect(results[0]?.content).toBe("lookup failed")
    expect(results[1]?.content).not.toContain("approved")
    const openai = toOpenAI(parse(history), config).messages
    expect(openai.filter((m) => m.role === "tool").map((m) => m.role === "tool" && m.tool_call_id)).toEqual(["c1", "c2", "c3"])
    expect(openai[0]).toEqual({ role: "system", content: "Locale: fr-FR\n\nAnswer in French." })
  })

  test("only documented forwardedProps reach the provider", () => {
    const request = parse(
      input([userRow], {
        forwardedProps: { provider: "openai", model: "gpt-4o", temperature: 2, max_tokens: 99999, stream: false, note: "x" },
      }),
    )
    const params = toOpenAI(request, config) as unknown as Record<string, unknown>
    expect([params.model, params.temperature, params.max_tokens, params.stream, params.note]).toEqual([
      "gpt-4o",
      0.7,
      1024,
      true,
      undefined,
    ])
  })

  test("client tools are declared to the provider; a server tool of the same name wins", () => {
    const body = input([userRow], {
      tools: [
        { name: "lookup", description: "client version", parameters: { type: "object" } },
        { name: "clientOnly", description: "c" },
      ],
    })
    const parsed = parseAguiRequest(body, config, [{ name: "lookup", description: "server version", parameters: { type: "object" } }])
    if (!parsed.ok) throw new Error(parsed.error.message)
    expect(parsed.value.tools.map((t) => [t.name, t.description])).toEqual([
      ["lookup", "server version"],
      ["clientOnly", "c"],
    ])
  })
})

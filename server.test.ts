import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { type FakeProvider, hangingStream, startFakeProvider, transcript } from "./fixtures/fake-provider"
import { dataOf, post, type Sidechat, startSidechat, TEST_KEYS } from "./fixtures/sidechat"
import { upstreamFetch } from "./upstream/transport"

let fake: FakeProvider
let sidechat: Sidechat

beforeAll(() => {
  fake = startFakeProvider()
  sidechat = startSidechat({
    ...TEST_KEYS,
    ANTHROPIC_BASE_URL: fake.url,
    OPENAI_BASE_URL: `${fake.url}/v1`,
    ALLOWED_MODELS: "claude-*,gpt-4o*,o3*",
    MAX_BODY_BYTES: "4096",
    HEARTBEAT_MS: "200",
    // These tests pin the HTTP statuses of failures before the first byte; the in-band default is
    // tested in resilience.test.ts.
    PROVIDER_ERRORS: "status",
  })
})
afterAll(() => {
  sidechat.stop()
  fake.stop()
})

const user = (content: string) => ({ messages: [{ role: "user", content }] })

describe("GET /health", () => {
  test("answers with status, version and provider modes", async () => {
    const response = await fetch(`${sidechat.url}/health`)
    expect(response.status).toBe(200)
    const body = (await response.json()) as Record<string, unknown>
    expect(body).toMatchObject({
      status: "ok",
      providers: { anthropic: "live", openai: "live", mock: "mock" },
      defaultProvider: "anthropic",
    })
    expect(body.version).toMatch(/^\d+\.\d+\.\d+/)
  })
})

describe("bad input gets a 4xx JSON error naming what is wrong, and no provider call", () => {
  const big = "x".repeat(5000)
  const cases: [string, () => Promise<Response>, number, string, string?][] = [
    ["not JSON", () => post(sidechat.url, "{oops"), 400, "invalid_json"],
    [
      "wrong content type",
      () => fetch(`${sidechat.url}/chat`, { method: "POST", body: "{}", headers: { "content-type": "text/plain" } }),
      415,
      "unsupported_media_type",
    ],
    ["an array body", () => post(sidechat.url, [1, 2]), 400, "invalid_request"],
    ["a string body", () => post(sidechat.url, '"hi"'), 400, "invalid_request"],
    ["missing messages", () => post(sidechat.url, { data: {} }), 400, "invalid_request", "messages"],
    ["empty messages", () => post(sidechat.url, { messages: [] }), 400, "invalid_request", "messages"],
    [
      "content of the wrong type",
      () => post(sidechat.url, { messages: [{ role: "user", content: 5 }] }),
      400,
      "invalid_request",
      "messages[0].content",
    ],
    [
      "an unknown role",
      () => post(sidechat.url, { messages: [{ role: "bot", content: "x" }] }),
      400,
      "invalid_request",
      "messages[0].role",
    ],
    [
      "a tool row without toolCallId",
      () =>
        post(sidechat.url, {
          messages: [
            { role: "user", content: "x" },
            { role: "tool", content: "1" },
          ],
        }),
      400,
      "invalid_request",
      "messages[1].toolCallId",
    ],
    [
      "tool-call arguments that are not JSON",
      () =>
        post(sidechat.url, {
          messages: [
            { role: "assistant", content: null, toolCalls: [{ id: "a", type: "function", function: { name: "f", arguments: "{nope" } }] },
          ],
        }),
      400,
      "invalid_request",
      "messages[0].toolCalls[0].function.arguments",
    ],
    [
      "an unknown provider",
      () => post(sidechat.url, { ...user("x"), data: { provider: "gemini" } }),
      400,
      "unknown_provider",
      "data.provider",
    ],
    [
      "a model outside ALLOWED_MODELS",
      () => post(sidechat.url, { ...user("x"), data: { provider: "openai", model: "gpt-3.5-turbo" } }),
      400,
      "model_not_allowed",
      "data.model",
    ],
    [
      "a bad tool name",
      () => post(sidechat.url, { ...user("x"), data: { tools: [{ name: "no spaces allowed", parameters: {} }] } }),
      400,
      "invalid_request",
      "data.tools[0].name",
    ],
    [
      "a thinking budget over the cap",
      () => post(sidechat.url, { ...user("x"), data: { thinking: { budgetTokens: 999999 } } }),
      400,
      "invalid_request",
      "data.thinking.budgetTokens",
    ],
    ["a body over MAX_BODY_BYTES", () => post(sidechat.url, user(big)), 413, "payload_too_large"],
    [
      "an unknown transport",
      () =>
        fetch(`${sidechat.url}/chat?transport=xml`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(user("x")),
        }),
      400,
      "invalid_request",
      "?transport",
    ],
    ["GET /chat", () => fetch(`${sidechat.url}/chat`), 405, "method_not_allowed"],
    ["an unknown path", () => fetch(`${sidechat.url}/v1/chat`), 404, "not_found"],
  ]
  for (const [name, send, status, code, path] of cases) {
    test(name, async () => {
      const before = fake.seen.length
      const response = await send()
      expect(response.status).toBe(status)
      const body = (await response.json()) as { error: { code: string; message: string; path?: string } }
      expect(body.error.code).toBe(code)
      expect(body.error.message.length).toBeGreaterThan(10)
      if (path) {
        expect(body.error.path).toBe(path)
        expect(body.error.message).toContain(path)
      }
      expect(fake.seen.length).toBe(before)
    })
  }

  test("the server keeps serving after all of them", async () => {
    fake.respond(() => transcript("anthropic-text"))
    const response = await post(sidechat.url, user("still there?"))
    expect(response.status).toBe(200)
    expect(dataOf(await response.text()).at(-1)).toBe("[DONE]")
    expect(sidechat.log.some((line) => /^POST \/chat 400 legacy invalid_request \d+ms$/.test(line))).toBe(true)
    expect(sidechat.log.some((line) => /^POST \/chat 413 payload_too_large/.test(line))).toBe(true)
  })
})

describe("provider errors before the first byte", () => {
  const cases: [string, number, unknown, Record<string, string>, number, string][] = [
    [
      "bad key",
      401,
      { type: "error", error: { type: "authentication_error", message: `invalid x-api-key ${TEST_KEYS.ANTHROPIC_API_KEY}` } },
      {},
      502,
      "provider_auth_failed",
    ],
    [
      "unknown model",
      404,
      { type: "error", error: { type: "not_found_error", message: "model: claude-nope" } },
      {},
      400,
      "model_not_found",
    ],
    [
      "rate limited",
      429,
      { type: "error", error: { type: "rate_limit_error", message: "slow down" } },
      { "retry-after": "7" },
      429,
      "rate_limited",
    ],
    ["server error", 500, { type: "error", error: { type: "api_error", message: "Internal server error" } }, {}, 502, "provider_error"],
    [
      "overloaded",
      529,
      { type: "error", error: { type: "overloaded_error", message: "Overloaded" } },
      { "retry-after": "3" },
      503,
      "provider_overloaded",
    ],
  ]
  for (const [name, upstream, body, headers, status, code] of cases) {
    test(`${name} (${upstream}) → ${status} ${code}`, async () => {
      fake.respond(() => Response.json(body, { status: upstream, headers }))
      const response = await post(sidechat.url, user("hi"))
      expect(response.status).toBe(status)
      const text = await response.text()
      expect(JSON.parse(text).error.code).toBe(code)
      expect(text).not.toContain("sk-ant-test")
      if (headers["retry-after"]) expect(response.headers.get("retry-after")).toBe(headers["retry-after"])
    })
  }

  test("an unreachable provider → 502 provider_unreachable", async () => {
    const closed = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() })
    const port = closed.port
    closed.stop(true)
    const lonely = startSidechat({ ...TEST_KEYS, ANTHROPIC_BASE_URL: `http://127.0.0.1:${port}`, PROVIDER_ERRORS: "status" })
    try {
      const response = await post(lonely.url, user("hi"))
      expect(response.status).toBe(502)
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe("provider_unreachable")
    } finally {
      lonely.stop()
    }
  })
})

describe("streaming", () => {
  test("SSE headers and framing for a legacy client", async () => {
    fake.respond(() => transcript("anthropic-text"))
    const response = await post(sidechat.url, user("hi"))
    expect(response.headers.get("content-type")).toBe("text/event-stream")
    expect(response.headers.get("cache-control")).toBe("no-cache")
    expect(response.headers.get("x-accel-buffering")).toBe("no")
    const body = await response.text()
    expect(body.endsWith("data: [DONE]\n\n")).toBe(true)
    for (const line of body.split("\n").filter(Boolean)) expect(line.startsWith("data: ")).toBe(true)
    const events = dataOf(body) as { type: string; content?: string }[]
    expect(events.filter((e) => e.type === "content").at(-1)?.content).toBe("Grüße aus 東京 👋🏽 — naïve café.")
  })

  test("a provider error mid-stream ends with one error chunk", async () => {
    fake.respond(() => transcript("anthropic-error"))
    const events = dataOf(await (await post(sidechat.url, user("hi"))).text()) as { type: string; error?: { code: string } }[]
    expect(events.at(-2)).toMatchObject({ type: "error", error: { code: "provider_overloaded" } })
    expect(events.at(-1) as unknown).toBe("[DONE]")
  })

  test("a dropped provider connection ends with an error chunk, not a cut stream", async () => {
    fake.respond(() => {
      const encoder = new TextEncoder()
      return new Response(
        new ReadableStream({
          async start(controller) {
            const text = await Bun.file(new URL("fixtures/anthropic-cut.sse", import.meta.url)).text()
            controller.enqueue(encoder.encode(text))
            await Bun.sleep(20)
            controller.error(new Error("connection reset"))
          },
        }),
        { headers: { "content-type": "text/event-stream" } },
      )
    })
    const events = dataOf(await (await post(sidechat.url, user("hi"))).text()) as { type: string }[]
    expect(events.at(-2)).toMatchObject({ type: "error" })
  })

  test("quiet providers get heartbeats that legacy clients ignore (blank lines)", async () => {
    fake.respond(async () => {
      const text = await Bun.file(new URL("fixtures/anthropic-text.sse", import.meta.url)).text()
      const [head, ...rest] = text.split("\n\n")
      const encoder = new TextEncoder()
      return new Response(
        new ReadableStream({
          async start(controller) {
            controller.enqueue(encoder.encode(`${head}\n\n`))
            await Bun.sleep(700)
            controller.enqueue(encoder.encode(rest.join("\n\n")))
            controller.close()
          },
        }),
        { headers: { "content-type": "text/event-stream" } },
      )
    })
    const body = await (await post(sidechat.url, user("hi"))).text()
    expect(body).toMatch(/\n\n\n/)
    expect(body.split("\n").some((line) => line.startsWith(":"))).toBe(false)
    expect(dataOf(body).at(-1)).toBe("[DONE]")
  })

  test("a stream quiet for longer than Bun's idle timeout is not cut", async () => {
    const strict = startSidechat({ ...TEST_KEYS, ANTHROPIC_BASE_URL: fake.url, HEARTBEAT_MS: "9000" }, { idleTimeout: 1 })
    fake.respond(async () => {
      const text = await Bun.file(new URL("fixtures/anthropic-text.sse", import.meta.url)).text()
      await Bun.sleep(2500)
      return new Response(text, { headers: { "content-type": "text/event-stream" } })
    })
    try {
      const body = await (await post(strict.url, user("slow"))).text()
      expect(dataOf(body).at(-1)).toBe("[DONE]")
    } finally {
      strict.stop()
    }
  })
})

describe("a client disconnect cancels the provider request", () => {
  test("after the first token", async () => {
    const events = (await Bun.file(new URL("fixtures/anthropic-text.sse", import.meta.url)).text()).split("\n\n")
    const head = `${events.slice(0, 4).join("\n\n")}\n\n`
    fake.respond(() => hangingStream(head))
    const controller = new AbortController()
    const aborting = await fetch(`${sidechat.url}/chat`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(user("hang")),
      signal: controller.signal,
    })
    const reader = aborting.body?.getReader()
    const first = await reader?.read()
    expect(new TextDecoder().decode(first?.value)).toStartWith("data: ")
    const seen = fake.seen.at(-1)
    controller.abort()
    await reader?.cancel().catch(() => {})
    expect(await Promise.race([seen?.closed.then(() => "closed"), Bun.sleep(3000).then(() => "still open")])).toBe("closed")
  })

  test("before the provider sent anything", async () => {
    let arrived: () => void = () => {}
    const reached = new Promise<void>((resolve) => (arrived = resolve))
    fake.respond(async (seen) => {
      arrived()
      await seen.closed
      return new Response("too late")
    })
    const controller = new AbortController()
    const request = fetch(`${sidechat.url}/chat`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(user("wait")),
      signal: controller.signal,
    }).catch(() => "aborted")
    await reached
    const seen = fake.seen.at(-1)
    controller.abort()
    expect(await request).toBe("aborted")
    expect(await Promise.race([seen?.closed.then(() => "closed"), Bun.sleep(3000).then(() => "still open")])).toBe("closed")
  })
})

describe("concurrency", () => {
  test("1,000 simultaneous streams all reach the provider (Bun's fetch alone stops at 256)", async () => {
    const head = (await Bun.file(new URL("fixtures/anthropic-text.sse", import.meta.url)).text()).split("event: content_block_delta")[0]
    fake.respond(() => hangingStream(head))
    const before = fake.seen.length
    const controller = new AbortController()
    const count = 1000
    const responses = Array.from({ length: count }, () =>
      upstreamFetch(`${sidechat.url}/chat`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(user("many")),
        signal: controller.signal,
      }).catch(() => undefined),
    )
    const deadline = Date.now() + 15_000
    while (fake.seen.length - before < count && Date.now() < deadline) await Bun.sleep(50)
    const reached = fake.seen.length - before
    const statuses = (await Promise.all(responses)).map((r) => r?.status)
    controller.abort()
    expect(reached).toBe(count)
    expect(statuses.filter((s) => s === 200)).toHaveLength(count)
  }, 30_000)
})

describe("CORS", () => {
  test("a preflight from a localhost dev server is answered", async () => {
    const response = await fetch(`${sidechat.url}/chat`, {
      method: "OPTIONS",
      headers: {
        origin: "http://localhost:5173",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,x-run-id",
      },
    })
    expect(response.status).toBe(204)
    expect(response.headers.get("access-control-allow-origin")).toBe("http://localhost:5173")
    expect(response.headers.get("access-control-allow-headers")?.split(", ")).toEqual(expect.arrayContaining(["content-type", "x-run-id"]))
    expect(response.headers.get("access-control-allow-methods")).toContain("POST")
  })

  test("an origin outside CORS_ORIGINS is refused", async () => {
    const response = await fetch(`${sidechat.url}/chat`, { method: "OPTIONS", headers: { origin: "https://evil.example" } })
    expect(response.status).toBe(403)
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("origin_not_allowed")
  })

  test("responses to an allowed origin carry the allow header", async () => {
    fake.respond(() => transcript("anthropic-text"))
    const response = await post(sidechat.url, user("hi"), { origin: "http://127.0.0.1:3000" })
    expect(response.headers.get("access-control-allow-origin")).toBe("http://127.0.0.1:3000")
    await response.text()
  })
})

describe("current (AG-UI) clients", () => {
  const run = (content: string, extra: Record<string, unknown> = {}) => ({
    threadId: "thread-9",
    runId: "run-9",
    state: {},
    messages: [{ id: "u1", role: "user", content }],
    tools: [],
    context: [],
    forwardedProps: {},
    ...extra,
  })

  test("SSE: RUN_STARTED echoes the ids; one data line per event; no [DONE], no id: lines", async () => {
    fake.respond(() => transcript("anthropic-text"))
    const response = await post(sidechat.url, run("hi"), { "x-run-id": "run-9" })
    expect(response.headers.get("content-type")).toBe("text/event-stream")
    const body = await response.text()
    expect(body).not.toContain("[DONE]")
    expect(body).not.toContain("\r")
    const lines = body.split("\n")
    expect(lines.some((line) => line.startsWith("id:"))).toBe(false)
    const events = dataOf(body) as { type: string; threadId?: string; runId?: string }[]
    expect(events[0]).toEqual({ type: "RUN_STARTED", threadId: "thread-9", runId: "run-9" })
    expect(events.at(-1)).toMatchObject({ type: "RUN_FINISHED", threadId: "thread-9", runId: "run-9" })
    expect(body.endsWith("\n\n")).toBe(true)
  })

  test("NDJSON by query or by Accept: one JSON event per line", async () => {
    for (const [query, headers] of [
      ["?transport=ndjson", {}],
      ["", { accept: "application/x-ndjson" }],
    ] as const) {
      fake.respond(() => transcript("openai-text"))
      const response = await fetch(`${sidechat.url}/chat${query}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(run("hi", { forwardedProps: { provider: "openai" } })),
      })
      expect(response.headers.get("content-type")).toBe("application/x-ndjson")
      const lines = (await response.text()).trim().split("\n")
      const events = lines.map((line) => JSON.parse(line) as { type: string })
      expect(events[0]?.type).toBe("RUN_STARTED")
      expect(events.at(-1)?.type).toBe("RUN_FINISHED")
    }
  })

  test("quiet providers get SSE comment heartbeats, which the current parser skips", async () => {
    fake.respond(async () => {
      const text = await Bun.file(new URL("fixtures/anthropic-text.sse", import.meta.url)).text()
      await Bun.sleep(700)
      return new Response(text, { headers: { "content-type": "text/event-stream" } })
    })
    const body = await (await post(sidechat.url, run("slow"))).text()
    expect(body).toContain(": ping\n\n")
    expect((dataOf(body) as { type: string }[]).at(-1)?.type).toBe("RUN_FINISHED")
  })

  test("a mid-stream provider error is the last event: RUN_ERROR with code and ids", async () => {
    fake.respond(() => transcript("anthropic-error"))
    const response = await post(sidechat.url, run("hi"), { "x-request-id": "bug-report-42" })
    const events = dataOf(await response.text()) as Record<string, unknown>[]
    expect(events.at(-1)).toEqual({
      type: "RUN_ERROR",
      message: "Anthropic is overloaded right now; please try again in a moment",
      code: "provider_overloaded",
      metadata: { tanstack: { threadId: "thread-9", runId: "run-9", requestId: "bug-report-42" } },
    })
  })

  test("a malformed RunAgentInput is a 400 naming the path", async () => {
    const response = await post(sidechat.url, run("hi", { messages: [{ id: "a", role: "assistant", content: null }] }))
    expect(response.status).toBe(400)
    expect(((await response.json()) as { error: { path: string } }).error.path).toBe("messages[0].content")
  })

  test("a continuation with parentRunId, resume and tool rows goes through", async () => {
    fake.respond(() => transcript("anthropic-text"))
    const body = run("", {
      parentRunId: "run-8",
      resume: [{ interruptId: "client_tool_c1", status: "resolved", payload: { ok: true } }],
      messages: [
        { id: "u1", role: "user", content: "go" },
        { id: "a1", role: "assistant", toolCalls: [{ id: "c1", type: "function", function: { name: "f", arguments: "{}" } }] },
        { id: "tool-c1", role: "tool", toolCallId: "c1", content: '{"ok":true}' },
      ],
    })
    const response = await post(sidechat.url, body)
    expect(response.status).toBe(200)
    expect((dataOf(await response.text()) as { type: string }[]).at(-1)?.type).toBe("RUN_FINISHED")
    const sent = fake.seen.at(-1)?.body as { messages: { content: { type: string }[] }[] }
    expect(sent.messages.at(-1)?.content[0]).toMatchObject({ type: "tool_result", tool_use_id: "c1", content: '{"ok":true}' })
  })
})

describe("a provider slow to answer at all", () => {
  test("gets a started stream and heartbeats after one interval; a late refusal is in-band", async () => {
    fake.respond(async () => {
      await Bun.sleep(700)
      return Response.json({ type: "error", error: { type: "rate_limit_error", message: "slow down" } }, { status: 429 })
    })
    const response = await post(sidechat.url, {
      threadId: "t",
      runId: "r",
      messages: [{ id: "u", role: "user", content: "hi" }],
      tools: [],
      context: [],
    })
    expect(response.status).toBe(200)
    const body = await response.text()
    expect(body).toContain(": ping\n\n")
    const events = dataOf(body) as { type: string; code?: string }[]
    expect(events.map((e) => e.type)).toEqual(["RUN_STARTED", "RUN_ERROR"])
    expect(events[1]?.code).toBe("rate_limited")
  })
})

// Observability against a real `bun run index.ts` process: JSON log lines field by field, metrics
// checked by Prometheus' own promtool, spans received by an OTLP/HTTP receiver on 127.0.0.1.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type FakeProvider, hangingStream, startFakeProvider } from "./fixtures/fake-provider"
import { type SidechatProcess, spawnSidechat } from "./fixtures/process"
import { dataOf, post, startSidechat, TEST_KEYS } from "./fixtures/sidechat"

const PROMPT_SECRET = "prompt-marker-7f3a91"
const ANSWER_SECRET = "completion-marker-c0ffee"
const OWN_KEY = "sk-ant-byok-users-key-5555555555"

let fake: FakeProvider
let otlp: { url: string; spans: () => Span[]; stop: () => void }
let sidechat: SidechatProcess

type Attribute = {
  key: string
  value: { stringValue?: string; intValue?: string | number; arrayValue?: { values: { stringValue: string }[] } }
}
type Span = {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  attributes: Attribute[]
  status?: { code?: number }
}

/** An OTLP/HTTP receiver that keeps every span it is sent (JSON encoding). */
function startReceiver() {
  const spans: Span[] = []
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(request) {
      const body = (await request.json()) as { resourceSpans: { scopeSpans: { spans: Span[] }[] }[] }
      for (const resource of body.resourceSpans) for (const scope of resource.scopeSpans) spans.push(...scope.spans)
      return Response.json({})
    },
  })
  return { url: `http://127.0.0.1:${server.port}`, spans: () => spans, stop: () => server.stop(true) }
}

const anthropicAnswer = (text: string) => {
  const event = (data: { type: string } & Record<string, unknown>) => `event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`
  const message = { id: "msg_o", type: "message", role: "assistant", model: "claude-sonnet-4-6-20261101", content: [], stop_reason: null }
  return [
    event({
      type: "message_start",
      message: { ...message, stop_sequence: null, usage: { input_tokens: 11, cache_read_input_tokens: 4, output_tokens: 1 } },
    }),
    event({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }),
    event({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text } }),
    event({ type: "content_block_stop", index: 0 }),
    event({ type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: 7 } }),
    event({ type: "message_stop" }),
  ].join("")
}

beforeAll(async () => {
  fake = startFakeProvider()
  otlp = startReceiver()
  fake.respond((seen) => {
    const asked = JSON.stringify(seen.body.messages)
    if (asked.includes("hang")) return hangingStream(anthropicAnswer(ANSWER_SECRET).split("event: content_block_delta")[0])
    if (asked.includes("fail"))
      return new Response(
        `${anthropicAnswer(ANSWER_SECRET).split("event: content_block_stop")[0]}event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n`,
      )
    return new Response(anthropicAnswer(ANSWER_SECRET), { headers: { "content-type": "text/event-stream" } })
  })
  const dir = mkdtempSync(join(tmpdir(), "sidechat-prices-"))
  writeFileSync(join(dir, "prices.json"), JSON.stringify({ "claude-sonnet-4-6": { input: 3, output: 15, cached: 0.3 } }))
  sidechat = await spawnSidechat({
    ...TEST_KEYS,
    ANTHROPIC_BASE_URL: fake.url,
    BYOK: "optional",
    LOG_FORMAT: "json",
    FIRST_TOKEN_TIMEOUT_MS: "300",
    PRICES_FILE: join(dir, "prices.json"),
    OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
    OTEL_BSP_SCHEDULE_DELAY: "50",
  })
})
afterAll(async () => {
  await sidechat?.stop()
  fake?.stop()
  otlp?.stop()
})

const agui = (content: string) =>
  JSON.stringify({
    threadId: "t",
    runId: `r-${content}`,
    messages: [{ id: "u", role: "user", content: `${content} ${PROMPT_SECRET}` }],
    tools: [],
    context: [],
  })
const chat = (content: string, headers: Record<string, string> = {}, signal?: AbortSignal) =>
  fetch(`${sidechat.url}/chat`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: agui(content),
    signal,
  })
const lastRecord = async (requestId: string) => {
  const deadline = Date.now() + 3000
  for (;;) {
    const found = sidechat.requests().find((record) => record.requestId === requestId)
    if (found || Date.now() > deadline) return found
    await Bun.sleep(20)
  }
}

describe("request ids and log lines", () => {
  test("a complete chat: its id round-trips (header, final event, log) and the log line has every field", async () => {
    const response = await chat("hello", { "x-request-id": "frontend-42.a", "x-byok-anthropic": OWN_KEY })
    expect(response.headers.get("x-request-id")).toBe("frontend-42.a")
    const events = dataOf(await response.text()) as { type: string; metadata?: { tanstack?: Record<string, unknown> } }[]
    const finished = events.at(-1)?.metadata?.tanstack
    expect(finished).toMatchObject({ requestId: "frontend-42.a", finishReason: "stop" })
    // 11 uncached input tokens at $3, 4 cached at $0.3 and 7 output at $15, per million.
    expect(finished?.costUsd).toBeCloseTo((11 * 3 + 4 * 0.3 + 7 * 15) / 1e6, 12)
    expect(await lastRecord("frontend-42.a")).toMatchObject({
      level: "info",
      requestId: "frontend-42.a",
      method: "POST",
      route: "/chat",
      status: 200,
      end: "complete",
      generation: "agui",
      transport: "sse",
      provider: "anthropic",
      model: "claude-sonnet-4-6",
      responseModel: "claude-sonnet-4-6-20261101",
      mocked: false,
      byok: true,
      retries: 0,
      ttftMs: expect.any(Number),
      durationMs: expect.any(Number),
      tokensIn: 15,
      tokensOut: 7,
      tokensCached: 4,
      finishReason: "stop",
      costUsd: expect.any(Number),
    })
  })

  test("a malformed X-Request-Id is replaced by a generated one, echoed on errors too", async () => {
    for (const bad of ["x".repeat(129), "has space", 'quote"d', "é"]) {
      const response = await fetch(`${sidechat.url}/chat`, { method: "POST", headers: { "x-request-id": bad }, body: "{" })
      expect(response.status).toBe(415)
      expect(response.headers.get("x-request-id")).toMatch(/^req_[0-9a-f]{32}$/)
    }
    const health = await fetch(`${sidechat.url}/health`, { headers: { "x-request-id": "probe-1" } })
    expect(health.headers.get("x-request-id")).toBe("probe-1")
  })

  test("a provider failure mid-stream is logged as what the user saw: end error with its code", async () => {
    const response = await chat("fail", { "x-request-id": "failing-1" })
    await response.text()
    expect(await lastRecord("failing-1")).toMatchObject({
      status: 200,
      end: "error",
      code: "provider_overloaded",
      ttftMs: expect.any(Number),
    })
  })

  test("a client that leaves is logged as cancelled; a first-token timeout as timeout", async () => {
    const controller = new AbortController()
    const response = await chat("hang now", { "x-request-id": "leaver-1" }, controller.signal)
    const reader = response.body?.getReader()
    await reader?.read()
    controller.abort()
    expect(await lastRecord("leaver-1")).toMatchObject({ status: 200, end: "cancelled" })
    const timed = await chat("hang on", { "x-request-id": "timeout-1" })
    await timed.text()
    expect(await lastRecord("timeout-1")).toMatchObject({ status: 200, end: "timeout", code: "provider_timeout" })
  })

  test("a refusal is logged with its status and code", async () => {
    await (
      await fetch(`${sidechat.url}/chat`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-request-id": "bad-1" },
        body: "{}",
      })
    ).text()
    expect(await lastRecord("bad-1")).toMatchObject({ status: 400, end: "refused", code: "invalid_request" })
  })

  test("nothing the server wrote holds a prompt, a completion or a key", async () => {
    const everything = [...sidechat.stdout, ...sidechat.stderr].join("\n")
    expect(sidechat.requests().length).toBeGreaterThanOrEqual(5)
    for (const secret of [PROMPT_SECRET, ANSWER_SECRET, OWN_KEY, TEST_KEYS.ANTHROPIC_API_KEY, TEST_KEYS.OPENAI_API_KEY])
      expect(everything).not.toContain(secret)
    // Every line is JSON, startup lines included.
    for (const line of sidechat.stdout.filter(Boolean)) expect(() => JSON.parse(line)).not.toThrow()
  })
})

test("without PRICES_FILE there is no cost anywhere, never a made-up price", async () => {
  const plain = startSidechat({ ...TEST_KEYS, ANTHROPIC_BASE_URL: fake.url })
  try {
    const events = dataOf(await (await post(plain.url, { messages: [{ role: "user", content: "hello" }] })).text())
    expect(JSON.stringify(events)).not.toContain("cost")
    expect(plain.outcomes.at(-1)).toMatchObject({ end: "complete", usage: { outputTokens: 7 } })
    expect(plain.outcomes.at(-1)?.costUsd).toBeUndefined()
    expect(plain.written.join("\n")).not.toContain("cost")
    expect(await (await fetch(`${plain.url}/metrics`)).text()).not.toContain("sidechat_estimated_cost_dollars_total{")
  } finally {
    plain.stop()
  }
})

test("LOG_CONTENT=on (a debugging setting, off by default) logs the messages at debug level", async () => {
  const debugging = startSidechat({ ...TEST_KEYS, ANTHROPIC_BASE_URL: fake.url, LOG_CONTENT: "on" })
  const quiet = startSidechat({ ...TEST_KEYS, ANTHROPIC_BASE_URL: fake.url })
  try {
    for (const server of [debugging, quiet]) await (await post(server.url, { messages: [{ role: "user", content: PROMPT_SECRET }] })).text()
    const logged = debugging.written.map((line) => JSON.parse(line)).find((line) => line.msg === "request content")
    expect(logged).toMatchObject({ level: "debug", messages: [{ role: "user", content: [{ type: "text", text: PROMPT_SECRET }] }] })
    expect(quiet.written.join("\n")).not.toContain(PROMPT_SECRET)
  } finally {
    debugging.stop()
    quiet.stop()
  }
})

describe("metrics", () => {
  const scrape = async () => (await fetch(`${sidechat.url}/metrics`)).text()
  const value = (text: string, series: string) => {
    const line = text.split("\n").find((candidate) => candidate.startsWith(`${series} `))
    return line === undefined ? 0 : Number(line.slice(series.length + 1))
  }

  test("counters and histograms move with traffic", async () => {
    const before = await scrape()
    await (await chat("hello")).text()
    const after = await scrape()
    const requests = 'sidechat_requests_total{route="/chat",status="200",generation="agui",transport="sse"}'
    expect(value(after, requests) - value(before, requests)).toBe(1)
    const output = 'sidechat_tokens_total{provider="anthropic",model="claude-sonnet-4-6",kind="output"}'
    expect(value(after, output) - value(before, output)).toBe(7)
    const ttft = 'sidechat_time_to_first_token_seconds_count{provider="anthropic"}'
    expect(value(after, ttft) - value(before, ttft)).toBe(1)
    expect(
      value(after, 'sidechat_stream_endings_total{reason="complete"}') - value(before, 'sidechat_stream_endings_total{reason="complete"}'),
    ).toBe(1)
    expect(value(after, 'sidechat_estimated_cost_dollars_total{provider="anthropic",model="claude-sonnet-4-6"}')).toBeGreaterThan(0)
    expect(value(after, "process_resident_memory_bytes")).toBeGreaterThan(1e6)
    expect(value(after, "process_open_fds")).toBeGreaterThan(3)
    expect(after).toContain('sidechat_provider_errors_total{provider="anthropic",code="provider_overloaded"}')
    expect(after).toContain('sidechat_stream_endings_total{reason="cancelled"}')
    expect(after).toContain('sidechat_refusals_total{code="invalid_request"}')
  })

  test("a model outside the allow-list never reaches a label, nor does a key", async () => {
    for (const model of ["evil-model-1", "evil-model-2"]) {
      const body = JSON.stringify({ messages: [{ role: "user", content: "hi" }], data: { model } })
      await (await fetch(`${sidechat.url}/chat`, { method: "POST", headers: { "content-type": "application/json" }, body })).text()
    }
    const text = await scrape()
    expect(text).not.toContain("evil-model")
    expect(text).not.toContain(OWN_KEY)
  })

  const promtool = Bun.which("promtool")
  test.skipIf(!promtool)("promtool check metrics accepts the exposition (skipped when promtool is not installed)", async () => {
    const child = Bun.spawn([promtool as string, "check", "metrics"], {
      stdin: new TextEncoder().encode(await scrape()),
      stdout: "pipe",
      stderr: "pipe",
    })
    const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
    expect(`${out}${err}`.trim()).toBe("")
    expect(code).toBe(0)
  })
})

describe("traces", () => {
  test("one span per chat with the GenAI attributes, continuing the caller's W3C trace", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
    const parent = "00f067aa0ba902b7"
    await (await chat("hello", { traceparent: `00-${traceId}-${parent}-01`, "x-request-id": "traced-1" })).text()
    const deadline = Date.now() + 5000
    let span: Span | undefined
    while (!span && Date.now() < deadline) {
      span = otlp.spans().find((s) => s.attributes.some((a) => a.key === "sidechat.request_id" && a.value.stringValue === "traced-1"))
      await Bun.sleep(50)
    }
    expect(span).toBeDefined()
    const attributes = Object.fromEntries(
      (span?.attributes ?? []).map((a) => [
        a.key,
        a.value.stringValue ??
          (a.value.intValue === undefined ? a.value.arrayValue?.values.map((v) => v.stringValue) : Number(a.value.intValue)),
      ]),
    )
    expect(span).toMatchObject({ traceId, parentSpanId: parent, name: "chat claude-sonnet-4-6", kind: 3 })
    expect(attributes).toMatchObject({
      "gen_ai.operation.name": "chat",
      "gen_ai.provider.name": "anthropic",
      "gen_ai.request.model": "claude-sonnet-4-6",
      "gen_ai.response.model": "claude-sonnet-4-6-20261101",
      "gen_ai.usage.input_tokens": 15,
      "gen_ai.usage.output_tokens": 7,
      "gen_ai.response.finish_reasons": ["stop"],
    })
  })

  test("a failed chat's span carries error.type and an error status", async () => {
    await (await chat("fail", { "x-request-id": "traced-2" })).text()
    const deadline = Date.now() + 5000
    let span: Span | undefined
    while (!span && Date.now() < deadline) {
      span = otlp.spans().find((s) => s.attributes.some((a) => a.key === "sidechat.request_id" && a.value.stringValue === "traced-2"))
      await Bun.sleep(50)
    }
    expect(span?.attributes.find((a) => a.key === "error.type")?.value.stringValue).toBe("provider_overloaded")
    expect(span?.status?.code).toBe(2)
  })
})

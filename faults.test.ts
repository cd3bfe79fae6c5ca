// Provider-side faults, written byte for byte by a raw TCP provider: each ends with its stable code
// (an HTTP status before the first byte, in-band after it), nothing outlives its timeout, and
// sidechat keeps serving.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import type net from "node:net"
import { chunk, eventStreamHead, type RawProvider, startRawProvider } from "./fixtures/raw-provider"
import { dataOf, post, type Sidechat, startSidechat, TEST_KEYS } from "./fixtures/sidechat"
import { parseConfig } from "./config"
import { createHandler } from "./index"
import { createObserver } from "./observe"
import { createLogger } from "./observe/log"
import type { Part } from "./parts"
import type { ChatRequest } from "./request"
import type { Providers } from "./upstream"

let raw: RawProvider
let sidechat: Sidechat

beforeAll(async () => {
  raw = await startRawProvider()
  sidechat = startSidechat({
    ...TEST_KEYS,
    ANTHROPIC_BASE_URL: raw.url,
    OPENAI_BASE_URL: `${raw.url}/v1`,
    ALLOWED_MODELS: "claude-*,gpt-*",
    PROVIDER_TIMEOUT_MS: "1000",
    PROVIDER_STALL_MS: "500",
  })
})
afterAll(() => {
  sidechat.stop()
  raw.stop()
})

const transcripts = {
  anthropic: await Bun.file(new URL("fixtures/anthropic-text.sse", import.meta.url)).text(),
  openai: await Bun.file(new URL("fixtures/openai-text.sse", import.meta.url)).text(),
}
type Provider = keyof typeof transcripts
/** The first `n` events of a provider's text transcript: a started answer, not a finished one. */
const head = (provider: Provider, n: number) => `${transcripts[provider].split("\n\n").slice(0, n).join("\n\n")}\n\n`
const TEXT_BEFORE_CUT = { anthropic: 4, openai: 2 }

const agui = (provider: Provider, content = "hi") => ({
  threadId: "t",
  runId: "r",
  messages: [{ id: "u", role: "user", content }],
  tools: [],
  context: [],
  forwardedProps: { provider },
})
type Event = { type: string; code?: string; delta?: string }

/** Posts a chat and reads it to its end, or fails the test after `ms`. */
async function chat(provider: Provider, ms = 3000): Promise<{ status: number; events: Event[]; body: string }> {
  const exchange = post(sidechat.url, agui(provider)).then(async (response) => {
    const body = await response.text()
    return { status: response.status, body, events: response.status === 200 ? (dataOf(body) as Event[]) : [] }
  })
  const timeout = Bun.sleep(ms).then(() => Promise.reject(new Error(`the chat did not end within ${ms} ms`)))
  return Promise.race([exchange, timeout])
}

const closed = (socket: net.Socket) =>
  new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.once("close", () => resolve())))

describe.each(["anthropic", "openai"] as const)("%s: faults after the first byte end in-band", (provider) => {
  test("the connection reset mid-stream → stream_interrupted, the text before it kept", async () => {
    raw.respond((socket) => {
      socket.write(eventStreamHead("chunked") + chunk(head(provider, TEXT_BEFORE_CUT[provider])))
      setTimeout(() => socket.resetAndDestroy(), 30)
    })
    const { status, events } = await chat(provider)
    expect(status).toBe(200)
    expect(events.filter((e) => e.type === "TEXT_MESSAGE_CONTENT").length).toBeGreaterThan(0)
    expect(events.at(-1)).toMatchObject({ type: "RUN_ERROR", code: "stream_interrupted" })
  })

  test("a truncated chunk (a chunk shorter than its size line, then FIN) → stream_interrupted", async () => {
    raw.respond((socket) => {
      const text = head(provider, TEXT_BEFORE_CUT[provider])
      socket.write(`${eventStreamHead("chunked")}${(Buffer.byteLength(text) + 500).toString(16)}\r\n${text}`)
      setTimeout(() => socket.end(), 30)
    })
    const { status, events } = await chat(provider)
    expect(status).toBe(200)
    expect(events.at(-1)).toMatchObject({ type: "RUN_ERROR", code: "stream_interrupted" })
  })

  test("garbage bytes in the event stream → provider_error, and the garbage is not logged", async () => {
    raw.respond((socket) => {
      const garbage = `${provider === "anthropic" ? "event: content_block_delta\n" : ""}data: \u0000\u00ff{"secret completion" nonsense\n\n`
      socket.write(eventStreamHead("chunked") + chunk(head(provider, TEXT_BEFORE_CUT[provider])) + chunk(garbage))
    })
    const errors: unknown[] = []
    const original = console.error
    console.error = (...args: unknown[]) => errors.push(args)
    try {
      const { status, events } = await chat(provider)
      expect(status).toBe(200)
      expect(events.at(-1)).toMatchObject({ type: "RUN_ERROR", code: "provider_error" })
    } finally {
      console.error = original
    }
    expect(JSON.stringify(errors)).not.toContain("secret completion")
  })

  test("an answer complete up to its last event survives a connection lost just after it", async () => {
    raw.respond((socket) => {
      socket.write(eventStreamHead("chunked") + chunk(transcripts[provider]))
      setTimeout(() => socket.resetAndDestroy(), 30)
    })
    const { events } = await chat(provider)
    expect(events.at(-1)).toMatchObject({ type: "RUN_FINISHED" })
  })

  test("a refusal whose message is not a string is still told in-band, and frees its stream slot", async () => {
    const strict = startSidechat({
      ...TEST_KEYS,
      ANTHROPIC_BASE_URL: raw.url,
      OPENAI_BASE_URL: `${raw.url}/v1`,
      MAX_STREAMS_PER_CLIENT: "1",
    })
    try {
      raw.respond((socket) => {
        const body = JSON.stringify({ error: { type: "invalid_request_error", message: ["bad field", { at: "messages" }] } })
        socket.write(
          `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
        )
      })
      for (let i = 0; i < 2; i++) {
        const response = await post(strict.url, agui(provider))
        expect(response.status).toBe(200)
        const events = dataOf(await response.text()) as Event[]
        expect(events.at(-1)).toMatchObject({ type: "RUN_ERROR", code: "provider_rejected_request" })
        expect((events.at(-1) as { message?: string }).message).toContain("bad field")
      }
    } finally {
      strict.stop()
    }
  })

  test("a close-delimited body without content-length streams to its end", async () => {
    raw.respond((socket) => socket.end(eventStreamHead("close") + transcripts[provider]))
    const { status, events } = await chat(provider)
    expect(status).toBe(200)
    expect(events.at(-1)).toMatchObject({ type: "RUN_FINISHED" })
    expect(
      events
        .filter((e) => e.type === "TEXT_MESSAGE_CONTENT")
        .map((e) => e.delta)
        .join(""),
    ).toBe("Grüße aus 東京 👋🏽 — naïve café.")
  })

  test("a close-delimited body cut before its last event → stream_interrupted", async () => {
    raw.respond((socket) => socket.end(eventStreamHead("close") + head(provider, TEXT_BEFORE_CUT[provider])))
    const { events } = await chat(provider)
    expect(events.at(-1)).toMatchObject({ type: "RUN_ERROR", code: "stream_interrupted" })
  })
})

describe("faults before the first byte (in-band, the default)", () => {
  test("a provider that accepts and never answers → provider_timeout in-band after PROVIDER_TIMEOUT_MS, its connection closed", async () => {
    let socket: net.Socket | undefined
    raw.respond((s) => {
      socket = s
    })
    const started = performance.now()
    const { status, events } = await chat("anthropic")
    expect(status).toBe(200)
    expect(events.map((e) => e.type)).toEqual(["RUN_STARTED", "RUN_ERROR"])
    expect(events.at(-1)).toMatchObject({ code: "provider_timeout" })
    expect(performance.now() - started).toBeLessThan(2500)
    if (socket) await closed(socket)
    expect(socket?.destroyed).toBe(true)
  })

  test("headers, then silence → provider_stalled in-band after PROVIDER_STALL_MS, its connection closed", async () => {
    let socket: net.Socket | undefined
    raw.respond((s) => {
      socket = s
      s.write(eventStreamHead("chunked"))
    })
    const started = performance.now()
    const { status, events } = await chat("anthropic")
    expect(status).toBe(200)
    expect(events.map((e) => e.type)).toEqual(["RUN_STARTED", "RUN_ERROR"])
    expect(events.at(-1)).toMatchObject({ code: "provider_stalled" })
    expect(performance.now() - started).toBeGreaterThanOrEqual(450)
    if (socket) await closed(socket)
    expect(socket?.destroyed).toBe(true)
  })

  test("a keep-alive socket the provider closed between two requests: the next request still succeeds", async () => {
    // The first request on each connection is answered and kept alive; a second request that
    // arrives on it finds the provider gone (its idle timeout fired as the request was sent).
    raw.respond((socket, request) => {
      if (request.onConnection > 1) return socket.resetAndDestroy()
      const body = transcripts.anthropic
      socket.write(eventStreamHead({ length: Buffer.byteLength(body) }) + body)
    })
    const connections = raw.connections()
    const first = await chat("anthropic")
    const second = await chat("anthropic")
    expect(first.events.at(-1)).toMatchObject({ type: "RUN_FINISHED" })
    expect(second.status).toBe(200)
    expect(second.events.at(-1)).toMatchObject({ type: "RUN_FINISHED" })
    // The second request went out on the pooled socket, was lost, and was sent again on a new one.
    expect(raw.connections() - connections).toBe(2)
  })

  test("a client that leaves during the SDK's retry back-off is logged as cancelled, and no retry is sent", async () => {
    raw.respond((socket) => {
      const body = JSON.stringify({ type: "error", error: { type: "overloaded_error", message: "Overloaded" } })
      socket.write(
        `HTTP/1.1 529 Overloaded\r\ncontent-type: application/json\r\nretry-after: 1\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
      )
    })
    const retrying = startSidechat({ ...TEST_KEYS, ANTHROPIC_BASE_URL: raw.url, PROVIDER_MAX_RETRIES: "2" })
    try {
      const requests = raw.requests()
      const controller = new AbortController()
      const sent = post(retrying.url, agui("anthropic"), {}, controller.signal).catch(() => "aborted")
      while (raw.requests() === requests) await Bun.sleep(10)
      await Bun.sleep(200)
      controller.abort()
      expect(await sent).toBe("aborted")
      await Bun.sleep(1500)
      expect(raw.requests() - requests).toBe(1)
      expect(retrying.log).toEqual([expect.stringMatching(/^POST \/chat 499 agui anthropic\/\S+ cancelled retries=1 \d+ms$/)])
    } finally {
      retrying.stop()
    }
  })

  test("a connection refused on a fresh socket is not retried by the transport → 502 provider_unreachable", async () => {
    const gone = await startRawProvider()
    const url = gone.url
    gone.stop()
    const other = startSidechat({ ...TEST_KEYS, ANTHROPIC_BASE_URL: url, PROVIDER_ERRORS: "status" })
    try {
      const response = await post(other.url, agui("anthropic"))
      expect(response.status).toBe(502)
      expect(await response.json()).toMatchObject({ error: { code: "provider_unreachable" } })
    } finally {
      other.stop()
    }
  })
})

test("after every fault above, sidechat still serves and holds no stream open", async () => {
  const health = await (await fetch(`${sidechat.url}/health`)).json()
  expect(health).toMatchObject({ status: "ok", activeStreams: 0 })
})

describe("containment: a bug inside one stream's machinery ends that stream only", () => {
  // A provider whose parts are scripted, so a test can make sidechat's own code throw.
  const scripted = (script: (request: ChatRequest) => AsyncIterable<Part>): Providers => ({
    modes: { anthropic: "live", openai: "live", mock: "mock" },
    open: async (request) => oneByOne(script(request)),
  })
  async function* oneByOne(parts: AsyncIterable<Part>): AsyncGenerator<Part[]> {
    for await (const part of parts) yield [part]
  }
  const parsed = parseConfig({ ...TEST_KEYS })
  if (!parsed.ok) throw new Error(parsed.problems.join("; "))
  const config = parsed.value
  /** An observer whose log lines the test reads; `bugs` are the loud ones. */
  const capture = () => {
    const lines: Record<string, unknown>[] = []
    const logger = createLogger({ level: "debug", format: "json", write: (line) => lines.push(JSON.parse(line)) })
    const bugs = () => lines.filter((line) => line.level === "error" && String(line.msg).startsWith("BUG"))
    return { bugs, observer: createObserver({ config, logger }) }
  }

  test.each(["agui", "legacy"] as const)("%s: an encoder throw becomes the final error event and a loud log line", async (generation) => {
    const { bugs, observer } = capture()
    const providers = scripted(async function* (request) {
      yield { type: "start", model: request.model }
      yield { type: "text", delta: "fine so far" }
      // A part no encoder knows: its `unreachable` throws inside the wire encoder.
      yield { type: "no-such-part" } as unknown as Part
    })
    const handler = createHandler({ config: parsed.value, providers, observer })
    const body = generation === "agui" ? agui("anthropic") : { messages: [{ role: "user", content: "hi" }] }
    const response = await handler(
      new Request("http://sidechat.test/chat", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }),
    )
    const events = dataOf(await response.text()) as Event[]
    if (generation === "agui") expect(events.at(-1)).toMatchObject({ type: "RUN_ERROR", code: "internal_error" })
    else {
      expect(events.at(-2)).toMatchObject({ type: "error", error: { code: "internal_error" } })
      expect(events.at(-1) as unknown).toBe("[DONE]")
    }
    expect(bugs()).toHaveLength(1)
    expect(bugs()[0]).toMatchObject({ level: "error", msg: "BUG: stream failed inside sidechat", requestId: expect.any(String) })
  })

  test("a converter throw is reported, and a stream beside it completes untouched", async () => {
    const { bugs, observer } = capture()
    const gate = Promise.withResolvers<void>()
    const providers = scripted(async function* (request) {
      yield { type: "start", model: request.model }
      yield { type: "text", delta: request.messages.length ? "hello" : "" }
      await gate.promise
      if (JSON.stringify(request.messages).includes("break")) throw new TypeError("a bug in a converter")
      yield { type: "finish", reason: "stop", usage: { inputTokens: 1, outputTokens: 1 } }
    })
    const handler = createHandler({ config: parsed.value, providers, observer })
    const send = (content: string) =>
      handler(
        new Request("http://sidechat.test/chat", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ ...agui("anthropic"), messages: [{ id: "u", role: "user", content }] }),
        }),
      ).then((response) => response.text())
    const broken = send("break")
    const healthy = send("hello")
    gate.resolve()
    expect((dataOf(await broken) as Event[]).at(-1)).toMatchObject({ type: "RUN_ERROR", code: "internal_error" })
    expect((dataOf(await healthy) as Event[]).at(-1)).toMatchObject({ type: "RUN_FINISHED" })
    expect(bugs().map((line) => line.error)).toEqual([expect.objectContaining({ name: "TypeError", message: "a bug in a converter" })])
  })
})

// Provider-side faults, written byte for byte by a raw TCP provider: each ends with its stable code
// (an HTTP status before the first byte, in-band after it), nothing outlives its timeout, and
// sidechat keeps serving.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import type net from "node:net"
import { chunk, eventStreamHead, type RawProvider, startRawProvider } from "./fixtures/raw-provider"
import { dataOf, post, type Sidechat, startSidechat, TEST_KEYS } from "./fixtures/sidechat"

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

describe("faults before the first byte", () => {
  test("a provider that accepts and never answers → 504 provider_timeout, its connection closed", async () => {
    let socket: net.Socket | undefined
    raw.respond((s) => {
      socket = s
    })
    const started = performance.now()
    const { status, body } = await chat("anthropic")
    expect(status).toBe(504)
    expect(JSON.parse(body)).toMatchObject({ error: { code: "provider_timeout" } })
    expect(performance.now() - started).toBeLessThan(3000)
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

  test("a connection refused on a fresh socket is not retried by the transport → 502 provider_unreachable", async () => {
    const gone = await startRawProvider()
    const url = gone.url
    gone.stop()
    const other = startSidechat({ ...TEST_KEYS, ANTHROPIC_BASE_URL: url })
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

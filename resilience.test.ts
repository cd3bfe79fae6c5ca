// Timeouts, retries and fallback against fake providers on 127.0.0.1: every failure ends the stream
// with one final event carrying its own code, and no text is ever sent twice.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { type FakeProvider, hangingStream, startFakeProvider, transcript } from "./fixtures/fake-provider"
import { dataOf, post, type Sidechat, startSidechat, TEST_KEYS } from "./fixtures/sidechat"

let fake: FakeProvider
let backup: FakeProvider
const started: Sidechat[] = []
const start = (env: Record<string, string>) => {
  const sidechat = startSidechat({ ...TEST_KEYS, ANTHROPIC_BASE_URL: fake.url, OPENAI_BASE_URL: `${backup.url}/v1`, ...env })
  started.push(sidechat)
  return sidechat
}

beforeAll(() => {
  fake = startFakeProvider()
  backup = startFakeProvider()
})
afterAll(() => {
  for (const sidechat of started) sidechat.stop()
  fake.stop()
  backup.stop()
})

const agui = (content = "hi") => ({ threadId: "t", runId: "r", messages: [{ id: "u", role: "user", content }], tools: [], context: [] })
type Event = { type: string; code?: string; delta?: string; message?: string; metadata?: { tanstack?: Record<string, unknown> } }
const events = async (response: Response) => dataOf(await response.text()) as Event[]
const text = (list: Event[]) =>
  list
    .filter((e) => e.type === "TEXT_MESSAGE_CONTENT")
    .map((e) => e.delta)
    .join("")

const TEXT = await Bun.file(new URL("fixtures/anthropic-text.sse", import.meta.url)).text()
const EVENTS = TEXT.split("\n\n")
/** message_start and one empty text block: a provider that answered but has said nothing yet. */
const NOTHING_YET = `${EVENTS.slice(0, 2).join("\n\n")}\n\n`
const overloaded = () =>
  Response.json(
    { type: "error", error: { type: "overloaded_error", message: "Overloaded" } },
    { status: 529, headers: { "retry-after": "0" } },
  )

describe("timeouts end the stream with their own code", () => {
  test("first token: no content within FIRST_TOKEN_TIMEOUT_MS → provider_timeout, and the provider request is closed", async () => {
    const sidechat = start({ FIRST_TOKEN_TIMEOUT_MS: "300" })
    fake.respond(() => hangingStream(NOTHING_YET))
    const started = performance.now()
    const list = await events(await post(sidechat.url, agui()))
    expect(list.at(-1)).toMatchObject({ type: "RUN_ERROR", code: "provider_timeout" })
    expect(performance.now() - started).toBeLessThan(2000)
    expect(await Promise.race([fake.seen.at(-1)?.closed.then(() => "closed"), Bun.sleep(2000).then(() => "open")])).toBe("closed")
    expect(sidechat.log.at(-1)).toMatch(/ error provider_timeout /)
  })

  test("first token: the clock stops at the first content; a slow answer after it is not cut", async () => {
    const sidechat = start({ FIRST_TOKEN_TIMEOUT_MS: "300" })
    fake.respond(() => {
      const encoder = new TextEncoder()
      return new Response(
        new ReadableStream({
          async start(controller) {
            controller.enqueue(encoder.encode(`${EVENTS.slice(0, 4).join("\n\n")}\n\n`))
            await Bun.sleep(500)
            controller.enqueue(encoder.encode(EVENTS.slice(4).join("\n\n")))
            controller.close()
          },
        }),
        { headers: { "content-type": "text/event-stream" } },
      )
    })
    const list = await events(await post(sidechat.url, agui()))
    expect(list.at(-1)).toMatchObject({ type: "RUN_FINISHED" })
  })

  test("duration: a stream still going after MAX_DURATION_MS → duration_exceeded, the text so far kept", async () => {
    const sidechat = start({ MAX_DURATION_MS: "400" })
    fake.respond(() => {
      const encoder = new TextEncoder()
      const delta = (i: number) =>
        `event: content_block_delta\ndata: ${JSON.stringify({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: `${i} ` } })}\n\n`
      let i = 0
      return new Response(
        new ReadableStream({
          start: (controller) => controller.enqueue(encoder.encode(NOTHING_YET)),
          async pull(controller) {
            await Bun.sleep(50)
            controller.enqueue(encoder.encode(delta(i++)))
          },
        }),
        { headers: { "content-type": "text/event-stream" } },
      )
    })
    const list = await events(await post(sidechat.url, agui()))
    expect(list.at(-1)).toMatchObject({ type: "RUN_ERROR", code: "duration_exceeded" })
    expect(text(list)).toStartWith("0 1 2 ")
  })

  test("stall: no provider bytes for PROVIDER_STALL_MS → provider_stalled; sidechat's own heartbeats do not count", async () => {
    const sidechat = start({ PROVIDER_STALL_MS: "600", HEARTBEAT_MS: "200" })
    fake.respond(() => hangingStream(`${EVENTS.slice(0, 4).join("\n\n")}\n\n`))
    const body = await (await post(sidechat.url, agui())).text()
    expect(body).toContain(": ping")
    expect((dataOf(body) as Event[]).at(-1)).toMatchObject({ type: "RUN_ERROR", code: "provider_stalled" })
  })
})

describe("retries happen only before the first byte", () => {
  test("a provider that fails twice and then answers: the answer arrives once, and the log counts two retries", async () => {
    const sidechat = start({ PROVIDER_MAX_RETRIES: "2" })
    let calls = 0
    fake.respond(() => (++calls <= 2 ? overloaded() : transcript("anthropic-text")))
    const list = await events(await post(sidechat.url, agui()))
    expect(calls).toBe(3)
    expect(list.at(-1)).toMatchObject({ type: "RUN_FINISHED" })
    expect(text(list)).toBe("Grüße aus 東京 👋🏽 — naïve café.")
    expect(sidechat.log.at(-1)).toMatch(/ complete retries=2 /)
  })

  test("retries give up after PROVIDER_MAX_RETRIES with the provider's error, in-band, with when to retry", async () => {
    const sidechat = start({ PROVIDER_MAX_RETRIES: "1" })
    let calls = 0
    fake.respond(() => {
      calls++
      return Response.json(
        { type: "error", error: { type: "rate_limit_error", message: "slow down" } },
        { status: 429, headers: { "retry-after": "0" } },
      )
    })
    const list = await events(await post(sidechat.url, agui()))
    expect(calls).toBe(2)
    expect(list.map((e) => e.type)).toEqual(["RUN_STARTED", "RUN_ERROR"])
    expect(list.at(-1)).toMatchObject({
      code: "rate_limited",
      message: "Anthropic is rate limiting requests right now; please try again in 1 s",
    })
    expect(list.at(-1)?.metadata?.tanstack).toMatchObject({ retryAfter: 1 })
    expect(sidechat.outcomes.at(-1)).toMatchObject({ status: 200, end: "error", code: "rate_limited", retries: 1 })
  })

  test("a request the provider refuses for what it is (400) is not retried", async () => {
    const sidechat = start({ PROVIDER_MAX_RETRIES: "3" })
    let calls = 0
    fake.respond(() => {
      calls++
      return Response.json({ type: "error", error: { type: "invalid_request_error", message: "bad" } }, { status: 400 })
    })
    const list = await events(await post(sidechat.url, agui()))
    expect(calls).toBe(1)
    expect(list.at(-1)).toMatchObject({ code: "provider_rejected_request" })
  })

  test("a provider that fails after text was sent: an in-band error and no retry, so no text twice", async () => {
    const sidechat = start({ PROVIDER_MAX_RETRIES: "3" })
    let calls = 0
    fake.respond(() => {
      calls++
      return transcript("anthropic-error")
    })
    const list = await events(await post(sidechat.url, agui()))
    expect(calls).toBe(1)
    expect(text(list)).toBe("Partial answer")
    expect(list.at(-1)).toMatchObject({ type: "RUN_ERROR", code: "provider_overloaded" })
  })
})

describe("fallback", () => {
  test("Anthropic overloaded → OpenAI serves the request; the log and metadata.tanstack say so", async () => {
    const sidechat = start({ PROVIDER_MAX_RETRIES: "1", FALLBACK: "openai:gpt-backup", ALLOWED_MODELS: "claude-*,gpt-*" })
    let primary = 0
    fake.respond(() => {
      primary++
      return overloaded()
    })
    backup.respond(() => transcript("openai-text"))
    const before = backup.seen.length
    const list = await events(await post(sidechat.url, agui()))
    expect(primary).toBe(2)
    expect(backup.seen.length - before).toBe(1)
    expect(backup.seen.at(-1)?.body.model).toBe("gpt-backup")
    expect(text(list)).toBe("Grüße aus 東京 👋🏽 — naïve café.")
    const finished = list.at(-1)
    expect(finished).toMatchObject({ type: "RUN_FINISHED" })
    expect(finished?.metadata?.tanstack?.fallback).toEqual({ from: "anthropic/claude-sonnet-4-6", to: "openai/gpt-backup" })
    expect(sidechat.log.at(-1)).toMatch(
      /^POST \/chat 200 agui anthropic\/claude-sonnet-4-6 complete retries=1 fallback=openai\/gpt-backup \d+ms$/,
    )
  })

  test("a fallback that fails too is reported as the fallback's failure", async () => {
    const sidechat = start({ PROVIDER_MAX_RETRIES: "0", FALLBACK: "openai:gpt-backup", ALLOWED_MODELS: "claude-*,gpt-*" })
    fake.respond(overloaded)
    backup.respond(() =>
      Response.json({ error: { message: "Incorrect API key provided", type: "invalid_request_error" } }, { status: 401 }),
    )
    const list = await events(await post(sidechat.url, agui()))
    expect(list.at(-1)).toMatchObject({ type: "RUN_ERROR", code: "provider_auth_failed" })
    expect(list.at(-1)?.message).toStartWith("OpenAI")
    expect(sidechat.outcomes.at(-1)).toMatchObject({ end: "error", provider: "openai", fallbackFrom: "anthropic/claude-sonnet-4-6" })
  })

  test("no fallback for a refusal of the request itself, nor once the primary has sent text", async () => {
    const sidechat = start({ FALLBACK: "openai:gpt-backup" })
    const before = backup.seen.length
    fake.respond(() => Response.json({ type: "error", error: { type: "invalid_request_error", message: "bad" } }, { status: 400 }))
    expect((await events(await post(sidechat.url, agui()))).at(-1)).toMatchObject({ code: "provider_rejected_request" })
    fake.respond(() => transcript("anthropic-error"))
    expect((await events(await post(sidechat.url, agui()))).at(-1)).toMatchObject({ code: "provider_overloaded" })
    expect(backup.seen.length).toBe(before)
  })
})

// The HTTP edge against a running sidechat: bearer auth, CORS, limits, bring-your-own-key.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import net from "node:net"
import { type FakeProvider, hangingStream, startFakeProvider, transcript } from "./fixtures/fake-provider"
import { dataOf, post, type Sidechat, startSidechat, TEST_KEYS } from "./fixtures/sidechat"

let fake: FakeProvider
const started: Sidechat[] = []
const start = (env: Record<string, string>) => {
  const sidechat = startSidechat({ ...TEST_KEYS, ANTHROPIC_BASE_URL: fake.url, OPENAI_BASE_URL: `${fake.url}/v1`, ...env })
  started.push(sidechat)
  return sidechat
}

beforeAll(() => {
  fake = startFakeProvider()
})
afterAll(() => {
  for (const sidechat of started) sidechat.stop()
  fake.stop()
})

/** A provider that has started its answer and then holds the stream open. */
const holding = async () => {
  const text = await Bun.file(new URL("fixtures/anthropic-text.sse", import.meta.url)).text()
  return hangingStream(`${text.split("\n\n").slice(0, 4).join("\n\n")}\n\n`)
}
const user = (content = "hi") => ({ messages: [{ role: "user", content }] })
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const TOKENS = ["token-one-0123456789abcdef", "token-two-0123456789abcdef"]

describe("bearer auth", () => {
  let sidechat: Sidechat
  beforeAll(() => {
    sidechat = start({ AUTH_TOKEN: TOKENS.join(",") })
  })

  test("a missing or wrong token gets 401 JSON, a challenge, and no provider call", async () => {
    const before = fake.seen.length
    for (const headers of [{}, bearer("token-one-0123456789abcdeX"), bearer(""), { authorization: TOKENS[0] as string }]) {
      const response = await post(sidechat.url, user(), headers)
      expect(response.status).toBe(401)
      expect(response.headers.get("www-authenticate")).toStartWith("Bearer")
      expect(await response.json()).toMatchObject({ error: { code: "unauthorized" } })
    }
    expect(fake.seen.length).toBe(before)
    expect(sidechat.log.at(-1)).toMatch(/^POST \/chat 401 unauthorized \d+ms$/)
  })

  test("either of two tokens works, so a token can be rotated without downtime", async () => {
    fake.respond(() => transcript("anthropic-text"))
    for (const token of TOKENS) {
      const response = await post(sidechat.url, user(), bearer(token))
      expect(response.status).toBe(200)
      expect(await response.text()).toContain("[DONE]")
    }
  })

  test("/health and /ready stay open; every other route, /metrics included, needs the token", async () => {
    expect((await fetch(`${sidechat.url}/health`)).status).toBe(200)
    expect((await fetch(`${sidechat.url}/ready`)).status).toBe(200)
    expect((await fetch(`${sidechat.url}/metrics`)).status).toBe(401)
    expect((await fetch(`${sidechat.url}/anything`)).status).toBe(401)
    expect((await fetch(`${sidechat.url}/metrics`, { headers: bearer(TOKENS[1] as string) })).status).toBe(200)
    expect((await fetch(`${sidechat.url}/anything`, { headers: bearer(TOKENS[1] as string) })).status).toBe(404)
  })

  test("GET /providers needs the token and lists what a frontend may ask for, never a key", async () => {
    expect((await fetch(`${sidechat.url}/providers`)).status).toBe(401)
    const response = await fetch(`${sidechat.url}/providers`, { headers: bearer(TOKENS[0] as string) })
    expect(response.status).toBe(200)
    const text = await response.text()
    expect(JSON.parse(text)).toEqual({
      defaultProvider: "anthropic",
      providers: [
        { name: "anthropic", mode: "live", defaultModel: "claude-sonnet-4-6" },
        { name: "openai", mode: "live", defaultModel: "gpt-5.4-mini" },
        { name: "mock", mode: "mock", defaultModel: "sidechat-mock" },
      ],
      models: ["claude-sonnet-4-6", "gpt-5.4-mini"],
      resumable: false,
    })
    for (const key of Object.values(TEST_KEYS)) expect(text).not.toContain(key.slice(-8))
    const post = await fetch(`${sidechat.url}/providers`, { method: "POST", headers: bearer(TOKENS[0] as string) })
    expect(post.status).toBe(405)
  })

  test("a browser's preflight carries no token and is answered", async () => {
    const response = await fetch(`${sidechat.url}/chat`, {
      method: "OPTIONS",
      headers: { origin: "http://localhost:3000", "access-control-request-method": "POST" },
    })
    expect(response.status).toBe(204)
    expect(response.headers.get("access-control-allow-headers")).toContain("authorization")
  })
})

describe("CORS", () => {
  let sidechat: Sidechat
  beforeAll(() => {
    sidechat = start({ CORS_ORIGINS: "http://allowed.test,http://localhost:*,https://*.example.com" })
  })
  const preflight = (url: string, origin: string) =>
    fetch(`${url}/chat`, { method: "OPTIONS", headers: { origin, "access-control-request-method": "POST" } })

  test.each(["http://allowed.test", "http://localhost:5173", "http://localhost", "https://app.example.com"])(
    "%s is allowed, with credentials and Vary: Origin",
    async (origin) => {
      const response = await preflight(sidechat.url, origin)
      expect(response.status).toBe(204)
      expect(response.headers.get("access-control-allow-origin")).toBe(origin)
      expect(response.headers.get("access-control-allow-credentials")).toBe("true")
      expect(response.headers.get("vary")).toBe("Origin")
    },
  )

  test.each([
    "http://allowed.test.evil.com",
    "http://allowed.test:8081",
    "https://allowed.test",
    "http://localhost:5173.evil.com",
    "http://evil-localhost:5173",
    "https://a.b.example.com",
    "https://example.com.evil.org",
    "null",
  ])("the look-alike %s gets nothing", async (origin) => {
    for (const response of [await preflight(sidechat.url, origin), await post(sidechat.url, user(), { origin })]) {
      expect(response.status).toBe(403)
      expect(response.headers.get("access-control-allow-origin")).toBeNull()
      expect(response.headers.get("access-control-allow-credentials")).toBeNull()
    }
  })

  test("CORS_ORIGINS=* allows any origin, never with credentials", async () => {
    const open = start({ CORS_ORIGINS: "*" })
    const response = await preflight(open.url, "https://anywhere.test")
    expect(response.headers.get("access-control-allow-origin")).toBe("*")
    expect(response.headers.get("access-control-allow-credentials")).toBeNull()
  })

  test("the preflight allows the BYOK headers only when BYOK is on", async () => {
    const off = await preflight(sidechat.url, "http://allowed.test")
    expect(off.headers.get("access-control-allow-headers")).not.toContain("x-byok-anthropic")
    const byok = start({ CORS_ORIGINS: "http://allowed.test", BYOK: "optional" })
    const on = await preflight(byok.url, "http://allowed.test")
    expect(on.headers.get("access-control-allow-headers")?.split(", ")).toEqual(
      expect.arrayContaining(["authorization", "content-type", "x-byok-anthropic", "x-byok-openai"]),
    )
  })
})

/** Sends a request head by hand and returns the status line and body of the answer. */
function rawPost(port: number, head: string, bodyBytes: number, chunk = 64 * 1024): Promise<{ status: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.write(head)
      let sent = 0
      const pump = () => {
        while (sent < bodyBytes) {
          sent += chunk
          if (!socket.write(Buffer.alloc(chunk, 0x20))) return socket.once("drain", pump)
        }
      }
      pump()
    })
    let answer = ""
    socket.on("data", (data) => {
      answer += data
      const end = answer.indexOf("\r\n\r\n")
      const length = Number(answer.match(/content-length: (\d+)/i)?.[1] ?? -1)
      if (end >= 0 && length >= 0 && answer.length >= end + 4 + length) {
        resolve({ status: answer.split("\r\n")[0] ?? "", body: answer.slice(end + 4, end + 4 + length) })
        socket.destroy()
      }
    })
    socket.on("error", reject)
  })
}

describe("limits, each with its status and stable code", () => {
  let sidechat: Sidechat
  beforeAll(() => {
    sidechat = start({ MAX_BODY_BYTES: "65536", MAX_MESSAGES: "3", MAX_INPUT_CHARS: "1000", MAX_TOKENS_LIMIT: "2048" })
  })
  const port = () => Number(new URL(sidechat.url).port)

  test("a 10 MB body gets the JSON 413", async () => {
    const response = await post(sidechat.url, JSON.stringify({ messages: [{ role: "user", content: "x".repeat(10_000_000) }] }))
    expect(response.status).toBe(413)
    expect(await response.json()).toMatchObject({ error: { code: "payload_too_large" } })
  })

  test("a body announced as 1 GB gets the JSON 413 before it is sent", async () => {
    const head = `POST /chat HTTP/1.1\r\nhost: sidechat\r\ncontent-type: application/json\r\ncontent-length: ${2 ** 30}\r\n\r\n`
    const { status, body } = await rawPost(port(), head, 1 << 20)
    expect(status).toBe("HTTP/1.1 413 Payload Too Large")
    expect(JSON.parse(body)).toMatchObject({ error: { code: "payload_too_large" } })
  })

  test("a chunked body with no length is cut off at the limit with the JSON 413", async () => {
    const body = new ReadableStream<Uint8Array>({
      pull: (controller) => controller.enqueue(new Uint8Array(16_384).fill(0x20)),
    })
    const response = await fetch(`${sidechat.url}/chat`, { method: "POST", headers: { "content-type": "application/json" }, body })
    expect(response.status).toBe(413)
    expect(await response.json()).toMatchObject({ error: { code: "payload_too_large" } })
  })

  test("a body whose declared length never all arrives ends as its client leaving; the next request is served", async () => {
    fake.respond(() => transcript("anthropic-text"))
    const body = JSON.stringify(user("cut short"))
    const head = `POST /chat HTTP/1.1\r\nhost: sidechat\r\ncontent-type: application/json\r\ncontent-length: ${body.length + 100}\r\n\r\n`
    const socket = await Bun.connect({ hostname: "127.0.0.1", port: port(), socket: { data() {} } })
    socket.write(head + body)
    await Bun.sleep(50)
    socket.end()
    for (let i = 0; i < 100 && !sidechat.outcomes.some((outcome) => outcome.status === 499); i++) await Bun.sleep(10)
    expect(sidechat.outcomes.at(-1)).toMatchObject({ route: "/chat", status: 499, end: "cancelled" })
    const next = await post(sidechat.url, user())
    expect(next.status).toBe(200)
    expect(await next.text()).toContain('"done"')
  })

  test("a Content-Length sent twice does not get a body past the limit", async () => {
    const body = JSON.stringify(user("x".repeat(100_000)))
    const head = `POST /chat HTTP/1.1\r\nhost: sidechat\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\ncontent-length: ${body.length}\r\n\r\n`
    const { status, body: answer } = await rawPost(port(), head + body, 0)
    expect(status).toBe("HTTP/1.1 413 Payload Too Large")
    expect(JSON.parse(answer)).toMatchObject({ error: { code: "payload_too_large" } })
  })

  test("a body with its declared length, sent in pieces, is read whole", async () => {
    fake.respond(() => transcript("anthropic-text"))
    const body = JSON.stringify(user("x".repeat(900)))
    const head = `POST /chat HTTP/1.1\r\nhost: sidechat\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`
    let answer = ""
    const closed = Promise.withResolvers<void>()
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port: port(),
      socket: { data: (_, data) => void (answer += data.toString()), close: () => closed.resolve() },
    })
    socket.write(head)
    for (let at = 0; at < body.length; at += 200) {
      await Bun.sleep(5)
      socket.write(body.slice(at, at + 200))
    }
    await closed.promise
    expect(answer.split("\r\n")[0]).toBe("HTTP/1.1 200 OK")
    expect(answer).toContain('"done"')
    expect(JSON.stringify(fake.seen.at(-1)?.body.messages)).toContain("x".repeat(900))
  })

  test("too many messages → 400 too_many_messages", async () => {
    const messages = Array.from({ length: 4 }, (_, i) => ({ role: i % 2 ? "assistant" : "user", content: "hi" }))
    const response = await post(sidechat.url, { messages })
    expect(response.status).toBe(400)
    expect(await response.json()).toMatchObject({ error: { code: "too_many_messages", path: "messages" } })
  })

  test("too much text → 413 input_too_large", async () => {
    const response = await post(sidechat.url, user("x".repeat(1001)))
    expect(response.status).toBe(413)
    expect(await response.json()).toMatchObject({ error: { code: "input_too_large" } })
  })

  test("maxTokens over MAX_TOKENS_LIMIT → 400 naming the path; within it, the provider is asked for it", async () => {
    const over = await post(sidechat.url, { ...user(), data: { maxTokens: 4096 } })
    expect(over.status).toBe(400)
    expect(await over.json()).toMatchObject({ error: { code: "max_tokens_too_large", path: "data.maxTokens" } })
    fake.respond(() => transcript("anthropic-text"))
    const within = await post(sidechat.url, { ...user(), data: { maxTokens: 2000 } })
    expect(within.status).toBe(200)
    await within.text()
    expect(fake.seen.at(-1)?.body.max_tokens).toBe(2000)
  })

  test("streams per client: the next one gets 429 too_many_streams with Retry-After; another token is another client", async () => {
    const capped = start({ MAX_STREAMS_PER_CLIENT: "2", AUTH_TOKEN: TOKENS.join(",") })
    fake.respond(holding)
    const controller = new AbortController()
    const open = [0, 1].map(() => post(capped.url, user(), bearer(TOKENS[0] as string), controller.signal))
    await Promise.all(open)
    const third = await post(capped.url, user(), bearer(TOKENS[0] as string))
    expect(third.status).toBe(429)
    expect(third.headers.get("retry-after")).toBe("1")
    expect(await third.json()).toMatchObject({ error: { code: "too_many_streams" } })
    const other = await post(capped.url, user(), bearer(TOKENS[1] as string), controller.signal)
    expect(other.status).toBe(200)
    controller.abort()
  })

  test("streams in total: over MAX_STREAMS → 503 server_busy with Retry-After, and a freed slot is reusable", async () => {
    const capped = start({ MAX_STREAMS: "2" })
    fake.respond(holding)
    const controller = new AbortController()
    await Promise.all([0, 1].map(() => post(capped.url, user(), {}, controller.signal)))
    const third = await post(capped.url, user())
    expect(third.status).toBe(503)
    expect(third.headers.get("retry-after")).toBe("1")
    expect(await third.json()).toMatchObject({ error: { code: "server_busy" } })
    controller.abort()
    const deadline = Date.now() + 3000
    let active = -1
    while (active !== 0 && Date.now() < deadline)
      active = ((await (await fetch(`${capped.url}/health`)).json()) as { activeStreams: number }).activeStreams
    fake.respond(() => transcript("anthropic-text"))
    expect((await post(capped.url, user())).status).toBe(200)
  })

  test("request rate: a token bucket per client, refused with 429 and Retry-After", async () => {
    const limited = start({ RATE_LIMIT_PER_MINUTE: "6", RATE_LIMIT_BURST: "2" })
    fake.respond(() => transcript("anthropic-text"))
    const statuses: number[] = []
    let retryAfter: string | null = null
    for (let i = 0; i < 3; i++) {
      const response = await post(limited.url, user())
      statuses.push(response.status)
      if (response.status === 429) {
        retryAfter = response.headers.get("retry-after")
        expect(await response.json()).toMatchObject({ error: { code: "too_many_requests" } })
      } else await response.text()
    }
    expect(statuses).toEqual([200, 200, 429])
    // 6 a minute is one token every 10 s.
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(9)
    expect(Number(retryAfter)).toBeLessThanOrEqual(10)
  })
})

describe("bring-your-own-key", () => {
  const OWN_KEY = "sk-ant-users-own-key-0123456789"

  test("off (the default): the header is ignored and the server's key is used", async () => {
    const sidechat = start({})
    fake.respond(() => transcript("anthropic-text"))
    await (await post(sidechat.url, user(), { "x-byok-anthropic": OWN_KEY })).text()
    expect(fake.seen.at(-1)?.headers.get("authorization")).toBe(`Bearer ${TEST_KEYS.ANTHROPIC_API_KEY}`)
  })

  test("optional: a sent key is used for that request only, and never logged", async () => {
    const sidechat = start({ BYOK: "optional" })
    fake.respond(() => transcript("anthropic-text"))
    await (await post(sidechat.url, user(), { "x-byok-anthropic": OWN_KEY })).text()
    expect(fake.seen.at(-1)?.headers.get("authorization")).toBe(`Bearer ${OWN_KEY}`)
    await (await post(sidechat.url, user())).text()
    expect(fake.seen.at(-1)?.headers.get("authorization")).toBe(`Bearer ${TEST_KEYS.ANTHROPIC_API_KEY}`)
    expect(sidechat.log.join("\n")).not.toContain(OWN_KEY.slice(8))
  })

  test("optional: a key the provider rejects is an error that names no key", async () => {
    const sidechat = start({ BYOK: "optional" })
    fake.respond(() =>
      Response.json({ type: "error", error: { type: "authentication_error", message: `invalid x-api-key ${OWN_KEY}` } }, { status: 401 }),
    )
    const text = await (await post(sidechat.url, user(), { "x-byok-anthropic": OWN_KEY })).text()
    expect(dataOf(text).at(-2)).toMatchObject({ type: "error", error: { code: "provider_auth_failed" } })
    expect(text).not.toContain(OWN_KEY.slice(8))
    expect(sidechat.log.join("\n")).not.toContain(OWN_KEY.slice(8))
  })

  test("required: no key is TanStack's byok_missing 401 and no provider call; never the server's key", async () => {
    const sidechat = start({ BYOK: "required" })
    const before = fake.seen.length
    const response = await post(sidechat.url, user())
    expect(response.status).toBe(401)
    expect(await response.json()).toEqual({
      error: { type: "byok_missing", code: "byok_missing", provider: "anthropic", message: "Missing anthropic API key" },
    })
    expect(fake.seen.length).toBe(before)
    fake.respond(() => transcript("anthropic-text"))
    expect((await post(sidechat.url, user(), { "x-byok-anthropic": OWN_KEY })).status).toBe(200)
  })
})

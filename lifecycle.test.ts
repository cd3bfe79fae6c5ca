// Shutdown and probes, as an orchestrator drives them: signals to a real `bun run index.ts` process.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { type FakeProvider, hangingStream, startFakeProvider } from "./fixtures/fake-provider"
import { spawnSidechat } from "./fixtures/process"
import { dataOf, TEST_KEYS } from "./fixtures/sidechat"

let fake: FakeProvider
beforeAll(() => {
  fake = startFakeProvider()
})
afterAll(() => fake.stop())

const TEXT = await Bun.file(new URL("fixtures/anthropic-text.sse", import.meta.url)).text()
const STARTED = `${TEXT.split("\n\n").slice(0, 4).join("\n\n")}\n\n`
/** "slow" answers finish 400 ms after they start; anything else is held open until the reader leaves. */
function behaviour() {
  fake.respond((seen) => {
    if (!JSON.stringify(seen.body.messages).includes("slow")) return hangingStream(STARTED)
    const encoder = new TextEncoder()
    return new Response(
      new ReadableStream({
        async start(controller) {
          controller.enqueue(encoder.encode(STARTED))
          await Bun.sleep(400)
          controller.enqueue(encoder.encode(TEXT.slice(STARTED.length)))
          controller.close()
        },
      }),
      { headers: { "content-type": "text/event-stream" } },
    )
  })
}

const env = () => ({ ...TEST_KEYS, ANTHROPIC_BASE_URL: fake.url, PROVIDER_MAX_RETRIES: "0" })
const agui = (content: string) =>
  JSON.stringify({ threadId: "t", runId: `r-${content}`, messages: [{ id: "u", role: "user", content }], tools: [], context: [] })
const legacy = (content: string) => JSON.stringify({ messages: [{ role: "user", content }] })
const chat = (url: string, body: string) => fetch(`${url}/chat`, { method: "POST", headers: { "content-type": "application/json" }, body })

describe("SIGTERM drains", () => {
  test("/ready turns 503, new chats get 503 with Retry-After, live streams finish or end with a final `shutdown` event, exit 0", async () => {
    behaviour()
    const sidechat = await spawnSidechat({ ...env(), SHUTDOWN_GRACE_MS: "1000" })
    expect((await fetch(`${sidechat.url}/ready`)).status).toBe(200)
    const responses = await Promise.all([
      chat(sidechat.url, agui("slow")),
      chat(sidechat.url, legacy("slow")),
      chat(sidechat.url, agui("held")),
      chat(sidechat.url, legacy("held")),
    ])
    const bodies = responses.map((response) => response.text())
    const signalled = performance.now()
    sidechat.kill("SIGTERM")
    await Bun.sleep(100)

    const ready = await fetch(`${sidechat.url}/ready`)
    expect(ready.status).toBe(503)
    expect(await ready.json()).toMatchObject({ status: "draining", draining: true, activeStreams: 4 })
    const refused = await chat(sidechat.url, agui("late"))
    expect(refused.status).toBe(503)
    expect(refused.headers.get("retry-after")).toBe("5")
    expect(await refused.json()).toMatchObject({ error: { code: "shutting_down" } })

    const [slowAgui, slowLegacy, heldAgui, heldLegacy] = (await Promise.all(bodies)).map((body) => dataOf(body) as { type: string }[])
    expect(slowAgui?.at(-1)).toMatchObject({ type: "RUN_FINISHED" })
    expect(slowLegacy?.at(-2)).toMatchObject({ type: "done" })
    expect(heldAgui?.at(-1)).toMatchObject({ type: "RUN_ERROR", code: "shutdown" })
    expect(heldLegacy?.at(-2)).toMatchObject({ type: "error", error: { code: "shutdown" } })
    expect(heldLegacy?.at(-1) as unknown).toBe("[DONE]")
    expect(await sidechat.exited).toBe(0)
    // The held streams waited for the grace period, no longer than it takes to end them.
    expect(performance.now() - signalled).toBeGreaterThanOrEqual(950)
    expect(performance.now() - signalled).toBeLessThan(4000)
    expect(sidechat.requests().map((record) => [record.status, record.end])).toEqual(
      expect.arrayContaining([
        [200, "complete"],
        [200, "complete"],
        [200, "shutdown"],
        [200, "shutdown"],
        [503, "refused"],
      ]),
    )
  }, 15_000)

  test("a chat whose provider is still opening when the grace ends gets its final `shutdown` event too", async () => {
    fake.respond(async () => {
      await Bun.sleep(3000)
      return hangingStream(STARTED)
    })
    const sidechat = await spawnSidechat({ ...env(), SHUTDOWN_GRACE_MS: "200" })
    const response = chat(sidechat.url, agui("opening"))
    await Bun.sleep(300)
    sidechat.kill("SIGTERM")
    const events = dataOf(await (await response).text()) as { type: string; code?: string }[]
    expect(events.map((event) => event.type)).toEqual(["RUN_STARTED", "RUN_ERROR"])
    expect(events.at(-1)).toMatchObject({ code: "shutdown" })
    expect(await sidechat.exited).toBe(0)
  }, 15_000)

  test("with no stream open, SIGINT exits 0 at once", async () => {
    const sidechat = await spawnSidechat({ ...env(), SHUTDOWN_GRACE_MS: "10000" })
    const signalled = performance.now()
    sidechat.kill("SIGINT")
    expect(await sidechat.exited).toBe(0)
    expect(performance.now() - signalled).toBeLessThan(1500)
  })

  test("a second signal exits at once, without waiting for the grace period", async () => {
    behaviour()
    const sidechat = await spawnSidechat({ ...env(), SHUTDOWN_GRACE_MS: "30000" })
    const response = await chat(sidechat.url, agui("held"))
    const body = response.text().catch(() => "")
    sidechat.kill("SIGTERM")
    await Bun.sleep(200)
    const signalled = performance.now()
    sidechat.kill("SIGTERM")
    expect(await sidechat.exited).toBe(1)
    expect(performance.now() - signalled).toBeLessThan(1500)
    await body
  })
})

describe("/ready and /health", () => {
  test("/ready reports configuration and never calls a provider; /health stays cheap", async () => {
    const sidechat = await spawnSidechat({ ...env(), AUTH_TOKEN: "a-long-enough-token-0123", BYOK: "optional" })
    try {
      const before = fake.seen.length
      const ready = await fetch(`${sidechat.url}/ready`)
      expect(ready.status).toBe(200)
      expect(await ready.json()).toEqual({
        status: "ready",
        draining: false,
        activeStreams: 0,
        providers: { anthropic: "live", openai: "live", mock: "mock" },
        auth: true,
        byok: "optional",
      })
      expect((await fetch(`${sidechat.url}/health`)).status).toBe(200)
      expect(fake.seen.length).toBe(before)
    } finally {
      await sidechat.stop()
    }
  })
})

describe("the command line", () => {
  const run = async (args: string[], extra: Record<string, string> = {}) => {
    const child = Bun.spawn([process.execPath, "run", "index.ts", ...args], {
      cwd: import.meta.dir,
      env: { PATH: process.env.PATH ?? "", ...extra },
      stdout: "pipe",
      stderr: "pipe",
    })
    const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
    return { stdout, stderr, code }
  }

  test("--help and --version", async () => {
    const help = await run(["--help"])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain("--print-config")
    expect(help.stdout).toContain("--port")
    const version = await run(["--version"])
    expect(version.stdout.trim()).toBe((await Bun.file(new URL("package.json", import.meta.url)).json()).version)
  })

  test("--print-config: flags win over the environment, secrets are masked", async () => {
    const { stdout, code } = await run(["--print-config", "--port", "9999"], {
      PORT: "7777",
      HOST: "0.0.0.0",
      ANTHROPIC_API_KEY: "sk-ant-secret-0123456789abcdefghij",
      AUTH_TOKEN: "bearer-secret-0123456789abcdef",
      HTTPS_PROXY: "http://corp:proxy-secret-42@proxy.internal:3128",
      // Some services put the key in the user name, with no password.
      HTTP_PROXY: "http://zyte-key-secret-0123:@proxy.zyte.example:8011",
      OTEL_EXPORTER_OTLP_ENDPOINT: "https://otel:endpoint-secret-7@collector.internal:4318",
      OTEL_EXPORTER_OTLP_HEADERS: "x-honeycomb-team=otel-secret-0123456789abcdef",
      REDIS_URL: "redis://:redis-secret-pass@10.0.0.5:6379",
    })
    expect(code).toBe(0)
    const config = JSON.parse(stdout)
    expect([config.port, config.host]).toEqual([9999, "0.0.0.0"])
    const secrets = ["0123456789abcdefghij", "bearer-secret-0123456789abcdef", "proxy-secret-42", "zyte-key-secret", "endpoint-secret-7"]
    for (const secret of [...secrets, "0123456789abcdef", "redis-secret-pass"]) expect(stdout).not.toContain(secret)
    expect(config.anthropic.apiKey).toBe("sk-ant-…ghij")
    expect(config.egressProxy).toMatchObject({ https: "http://corp:***@proxy.internal:3128", http: "http://***@proxy.zyte.example:8011" })
    expect(config.otel).toMatchObject({
      endpoint: "https://otel:***@collector.internal:4318/v1/traces",
      headers: { "x-honeycomb-team": "***" },
    })
    expect(config.redisUrl).toBe("redis://:***@10.0.0.5:6379")
  })

  test("an unknown flag and a bad configuration each exit non-zero, listing every problem before listening", async () => {
    const unknown = await run(["--nope"])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain("--nope")
    const bad = await run([], { AUTH_TOKEN: "short", BYOK: "sometimes", FALLBACK: "gemini", PROVIDER_ERRORS: "loud" })
    expect(bad.code).toBe(1)
    for (const name of ["AUTH_TOKEN", "BYOK", "FALLBACK", "PROVIDER_ERRORS"]) expect(bad.stderr).toContain(name)
    expect(bad.stdout).not.toContain("listening")
  })

  test("--healthcheck exits 0 while this HOST:PORT answers /health and 1 when nothing does", async () => {
    const server = await spawnSidechat(env())
    const port = new URL(server.url).port
    try {
      expect((await run(["--healthcheck"], { HOST: "127.0.0.1", PORT: port })).code).toBe(0)
      expect((await run(["--healthcheck"], { HOST: "0.0.0.0", PORT: port })).code).toBe(0)
    } finally {
      await server.stop()
    }
    expect((await run(["--healthcheck"], { HOST: "127.0.0.1", PORT: port })).code).toBe(1)
  })

  test("a port already taken exits 1 at once and names the address, instead of running without a listener", async () => {
    const first = await spawnSidechat(env())
    try {
      const port = new URL(first.url).port
      const second = await run([], { HOST: "127.0.0.1", PORT: port, LOG_FORMAT: "json" })
      expect(second.code).toBe(1)
      expect(second.stdout + second.stderr).toContain(`cannot listen on 127.0.0.1:${port}`)
      expect(second.stdout).not.toContain("BUG")
      expect(first.alive()).toBe(true)
    } finally {
      await first.stop()
    }
  })
})

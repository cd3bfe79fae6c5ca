// Several sidechat processes sharing one real Redis (Debian's redis-server, started here on a
// random port): a run started on A is resumed, joined and hydrated on B; rate limits hold across
// instances; Redis killed mid-test leaves chats working, and its return brings sharing back.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { ChatClient, fetchServerSentEvents } from "@tanstack/ai-client"
import { cuttingProxy } from "./fixtures/cutting-proxy"
import { type FakeProvider, pacedTranscript, startFakeProvider } from "./fixtures/fake-provider"
import { type SidechatProcess, spawnSidechat } from "./fixtures/process"
import { answerOf, dataOf, deltasOf, readUntil, TEST_KEYS } from "./fixtures/sidechat"

const REDIS = Bun.which("redis-server", { PATH: `${process.env.PATH}:/usr/sbin:/usr/bin` })
if (!REDIS) console.warn("cluster.test.ts: SKIPPED: redis-server is not installed (apt-get install redis-server)")

const TOKEN = "cluster-token-0123456789ab"
const ANSWER = "Grüße aus 東京 👋🏽 — naïve café."

let redis: { port: number; stop: () => Promise<void>; start: () => Promise<void> }
let fake: FakeProvider
let a: SidechatProcess
let b: SidechatProcess

async function startRedis() {
  const port = 10_000 + Math.floor(Math.random() * 22_000)
  let child: Bun.Subprocess | undefined
  const start = async () => {
    child = Bun.spawn([REDIS as string, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdout: "ignore",
      stderr: "ignore",
    })
    for (let i = 0; i < 100; i++) {
      const ok = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).then(
        (socket) => (socket.end(), true),
        () => false,
      )
      if (ok) return
      await Bun.sleep(50)
    }
    throw new Error("redis-server did not start")
  }
  await start()
  return {
    port,
    start,
    stop: async () => {
      child?.kill()
      await child?.exited
    },
  }
}

const env = (extra: Record<string, string> = {}) => ({
  ...TEST_KEYS,
  ANTHROPIC_BASE_URL: fake.url,
  AUTH_TOKEN: TOKEN,
  REDIS_URL: `redis://127.0.0.1:${redis.port}`,
  RESUMABLE: "redis",
  RESUMABLE_GRACE_MS: "3000",
  LOG_FORMAT: "json",
  ...extra,
})

beforeAll(async () => {
  if (!REDIS) return
  fake = startFakeProvider()
  fake.respond(() => pacedTranscript("anthropic-text", 80))
  redis = await startRedis()
  ;[a, b] = await Promise.all([spawnSidechat(env()), spawnSidechat(env())])
  await Promise.all([a, b].map((server) => redisUp(server, true)))
})
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()])
  await redis?.stop()
  fake?.stop()
})

const bearer = { authorization: `Bearer ${TOKEN}` }
const body = (runId: string, threadId = `thread-${runId}`) =>
  JSON.stringify({ threadId, runId, messages: [{ id: `u-${runId}`, role: "user", content: "Grüß mich" }], tools: [], context: [] })
const post = (server: SidechatProcess, runId: string, headers: Record<string, string> = {}, signal?: AbortSignal) =>
  fetch(`${server.url}/chat`, {
    method: "POST",
    headers: { "content-type": "application/json", ...bearer, ...headers },
    body: body(runId),
    signal,
  })

/** Waits until the instance's /ready says Redis is up (or down). */
async function redisUp(server: SidechatProcess, up: boolean) {
  for (let i = 0; i < 100; i++) {
    const ready = (await (await fetch(`${server.url}/ready`)).json()) as { redis?: string }
    if ((ready.redis === "up") === up) return
    await Bun.sleep(100)
  }
  throw new Error(`Redis never became ${up ? "up" : "down"} on ${server.url}`)
}

describe.skipIf(!REDIS)("two instances and one Redis", () => {
  test("a run started on A, cut, resumes on B from Redis: exactly the provider's text, one provider call", async () => {
    const runId = `ab-${crypto.randomUUID()}`
    const before = fake.seen.length
    const controller = new AbortController()
    const seen = await readUntil(await post(a, runId, {}, controller.signal), 2)
    controller.abort()
    const lastId = [...seen.matchAll(/^id: (\S+)$/gm)].at(-1)?.[1] as string
    const resumed = await post(b, runId, { "last-event-id": lastId })
    expect(resumed.status).toBe(200)
    const events = dataOf(seen + (await resumed.text())) as { type: string; delta?: string }[]
    expect(events.at(-1)?.type).toBe("RUN_FINISHED")
    expect(deltasOf(events)).toBe(ANSWER)
    expect(fake.seen.length - before).toBe(1)
  })

  test("the real client: its stream from A is cut, it reconnects to B, and B finishes the answer from Redis", async () => {
    // A load balancer that sends the first connection to A (and drops it mid-answer), the rest to B.
    const balancer = cuttingProxy((n) => (n === 0 ? a.url : b.url), 1)
    try {
      const before = fake.seen.length
      const threadId = `client-${crypto.randomUUID()}`
      const errors: Error[] = []
      const client = new ChatClient({
        connection: fetchServerSentEvents(`${balancer.url}/chat`, { headers: bearer }),
        forwardedProps: { provider: "anthropic" },
        threadId,
        onError: (error) => errors.push(error),
      })
      await client.sendMessage("Grüß mich")
      for (let i = 0; i < 100 && client.getIsLoading(); i++) await Bun.sleep(50)
      expect(errors).toEqual([])
      // B served the reconnect: its log has the resumed read.
      await Bun.sleep(100)
      expect(b.requests().some((record) => record.resumed === true)).toBe(true)
      expect(answerOf(client)).toBe(ANSWER)
      expect(fake.seen.length - before).toBe(1)

      // A reload that lands on B hydrates the thread A streamed.
      await Bun.sleep(100)
      const reloaded = new ChatClient({
        connection: fetchServerSentEvents(`${b.url}/chat`, { headers: bearer }),
        persistence: true,
        threadId,
      })
      reloaded.attach()
      for (let i = 0; i < 100 && reloaded.getMessages().length < 2; i++) await Bun.sleep(50)
      expect(reloaded.getMessages().map((m) => m.role)).toEqual(["user", "assistant"])
      expect(answerOf(reloaded)).toBe(ANSWER)
    } finally {
      balancer.stop()
    }
  })

  test("joinRun on B follows a run A is streaming; B hydrates A's thread", async () => {
    const runId = `join-${crypto.randomUUID()}`
    const first = post(a, runId).then((response) => response.text())
    await Bun.sleep(250)
    const chunks: { type: string; delta?: string }[] = []
    for await (const chunk of fetchServerSentEvents(`${b.url}/chat`, { headers: bearer }).joinRun?.(runId) ?? [])
      chunks.push(chunk as { type: string; delta?: string })
    await first
    expect(chunks[0]?.type).toBe("RUN_STARTED")
    expect(chunks.at(-1)?.type).toBe("RUN_FINISHED")
    expect(deltasOf(chunks)).toBe(ANSWER)
    await Bun.sleep(100)
    const thread = await fetch(`${b.url}/chat?threadId=thread-${runId}`, { headers: { ...bearer, accept: "application/json" } })
    const hydrated = (await thread.json()) as {
      messages: { role: string; parts: { type: string; content?: string }[] }[]
      activeRun: unknown
    }
    expect(hydrated.messages.map((m) => m.role)).toEqual(["user", "assistant"])
    expect(hydrated.messages[1]?.parts).toEqual([{ type: "text", content: ANSWER }])
    expect(hydrated.activeRun).toBeNull()
  })

  test("a request refused after its run was claimed (rate limited) leaves the thread as it was, in Redis too", async () => {
    // An instance of its own, with a token of its own: one request a minute.
    const limitedToken = "cluster-limited-0123456789"
    const limited = await spawnSidechat(env({ AUTH_TOKEN: limitedToken, RATE_LIMIT_PER_MINUTE: "1", RATE_LIMIT_BURST: "1" }))
    try {
      await redisUp(limited, true)
      const auth = { authorization: `Bearer ${limitedToken}` }
      const threadId = `refused-${crypto.randomUUID()}`
      const send = (runId: string) =>
        fetch(`${limited.url}/chat`, {
          method: "POST",
          headers: { "content-type": "application/json", ...auth },
          body: body(runId, threadId),
        })
      const hydrate = async (server: SidechatProcess) =>
        (
          (await (await fetch(`${server.url}/chat?threadId=${threadId}`, { headers: { ...auth, accept: "application/json" } })).json()) as {
            messages: { id: string }[]
          }
        ).messages.map((message) => message.id)
      const first = await send("kept")
      expect(first.status).toBe(200)
      await first.text()
      await Bun.sleep(100)
      const before = await hydrate(limited)
      expect(before[0]).toBe("u-kept")
      const refused = await send("refused")
      expect(refused.status).toBe(429)
      await Bun.sleep(100)
      // Hydration takes the newer of this instance's thread and Redis's: both must be the kept one.
      expect(await hydrate(limited)).toEqual(before)
    } finally {
      await limited.stop()
    }
  })

  test("the same POST on A and B at once: one provider call, and both read the one run", async () => {
    const runId = `both-${crypto.randomUUID()}`
    const before = fake.seen.length
    const [fromA, fromB] = await Promise.all([post(a, runId), post(b, runId)])
    for (const text of await Promise.all([fromA.text(), fromB.text()])) {
      const events = dataOf(text) as { type: string; delta?: string }[]
      expect(events.at(-1)?.type).toBe("RUN_FINISHED")
      expect(deltasOf(events)).toBe(ANSWER)
    }
    expect(fake.seen.length - before).toBe(1)
  })

  test("DELETE on B stops the run A is streaming", async () => {
    const runId = `stop-${crypto.randomUUID()}`
    const before = fake.seen.length
    const response = await post(a, runId)
    const reading = response.text()
    await Bun.sleep(150)
    expect((await fetch(`${b.url}/chat?runId=${runId}`, { method: "DELETE", headers: bearer })).status).toBe(204)
    const closed = await Promise.race([fake.seen[before]?.closed.then(() => "closed"), Bun.sleep(2000).then(() => "open")])
    expect(closed).toBe("closed")
    expect((dataOf(await reading) as { code?: string }[]).at(-1)).toMatchObject({ code: "run_stopped" })
  })

  test("Redis killed: chats keep working and /ready says so; Redis back: runs are shared again", async () => {
    await redis.stop()
    await Promise.all([a, b].map((server) => redisUp(server, false)))
    const metric = async () => (await (await fetch(`${a.url}/metrics`, { headers: bearer })).text()).match(/^sidechat_redis_up (\d)$/m)?.[1]
    expect(await metric()).toBe("0")
    const alone = await post(a, `alone-${crypto.randomUUID()}`)
    expect(alone.status).toBe(200)
    expect((dataOf(await alone.text()) as { type: string }[]).at(-1)?.type).toBe("RUN_FINISHED")
    expect(a.alive() && b.alive()).toBe(true)

    await redis.start()
    await Promise.all([a, b].map((server) => redisUp(server, true)))
    expect(await metric()).toBe("1")
    const runId = `back-${crypto.randomUUID()}`
    const controller = new AbortController()
    const seen = await readUntil(await post(a, runId, {}, controller.signal), 2)
    controller.abort()
    const lastId = [...seen.matchAll(/^id: (\S+)$/gm)].at(-1)?.[1] as string
    const resumed = await post(b, runId, { "last-event-id": lastId })
    expect(deltasOf(dataOf(seen + (await resumed.text())) as { type: string; delta?: string }[])).toBe(ANSWER)
    // A's subscription came back too: a DELETE on B still reaches the run A streams.
    const stopId = `back-stop-${crypto.randomUUID()}`
    const before = fake.seen.length
    const stopping = (await post(a, stopId)).text()
    await Bun.sleep(150)
    expect((await fetch(`${b.url}/chat?runId=${stopId}`, { method: "DELETE", headers: bearer })).status).toBe(204)
    expect(await Promise.race([fake.seen[before]?.closed.then(() => "closed"), Bun.sleep(2000).then(() => "open")])).toBe("closed")
    expect((dataOf(await stopping) as { code?: string }[]).at(-1)).toMatchObject({ code: "run_stopped" })
    // Losing Redis was logged as a warning, never as a bug.
    const logged = [...a.stdout, ...a.stderr, ...b.stdout, ...b.stderr].join("\n")
    expect(logged).toContain("lost Redis")
    expect(logged).not.toContain("BUG")
  }, 30_000)
})

describe.skipIf(!REDIS)("limits across instances", () => {
  test("a token bucket of 3 holds across two instances: the fourth request is refused wherever it lands", async () => {
    const limited = { RATE_LIMIT_PER_MINUTE: "1", RATE_LIMIT_BURST: "3", RESUMABLE: "off" }
    const [c, d] = await Promise.all([spawnSidechat(env(limited)), spawnSidechat(env(limited))])
    try {
      await Promise.all([c, d].map((server) => redisUp(server, true)))
      const statuses: number[] = []
      for (const server of [c, d, c, d]) {
        const response = await post(server, `limit-${crypto.randomUUID()}`)
        statuses.push(response.status)
        if (response.status === 429) {
          expect(Number(response.headers.get("retry-after"))).toBeGreaterThan(0)
          expect(await response.json()).toMatchObject({ error: { code: "too_many_requests" } })
        } else await response.text()
      }
      expect(statuses).toEqual([200, 200, 200, 429])
    } finally {
      await Promise.all([c.stop(), d.stop()])
    }
  })
})

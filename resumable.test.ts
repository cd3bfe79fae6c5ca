// Resumable runs (RESUMABLE=memory) with the real @tanstack/ai-client 0.33.2: a stream cut by a
// small TCP proxy reconnects and completes with exactly the provider's text and one provider call;
// joinRun from a second client; hydration through ChatClient({ persistence: true }); the grace
// period and an explicit stop; and ownership.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { ChatClient, fetchHttpStream, fetchServerSentEvents } from "@tanstack/ai-client"
import { cuttingProxy } from "./fixtures/cutting-proxy"
import { type FakeProvider, pacedTranscript, startFakeProvider } from "./fixtures/fake-provider"
import { answerOf, dataOf, deltasOf, readUntil, type Sidechat, settle, startSidechat, TEST_KEYS } from "./fixtures/sidechat"

const TOKEN = "resumable-token-0123456789"
const OTHER = "someone-else-0123456789ab"
const GRACE_MS = 1500
const TEXT = await Bun.file(new URL("fixtures/anthropic-text.sse", import.meta.url)).text()
const EVENTS = TEXT.split("\n\n").filter(Boolean)
const ANSWER = "Grüße aus 東京 👋🏽 — naïve café."

let fake: FakeProvider
let sidechat: Sidechat
beforeAll(() => {
  fake = startFakeProvider()
  fake.respond(() => pacedTranscript("anthropic-text", 60))
  sidechat = startSidechat({
    ...TEST_KEYS,
    ANTHROPIC_BASE_URL: fake.url,
    AUTH_TOKEN: `${TOKEN},${OTHER}`,
    RESUMABLE: "memory",
    RESUMABLE_GRACE_MS: String(GRACE_MS),
  })
})
afterAll(() => {
  sidechat.stop()
  fake.stop()
})

const bearer = (token = TOKEN) => ({ authorization: `Bearer ${token}` })
const body = (runId: string, content = "Grüß mich") =>
  JSON.stringify({ threadId: `thread-${runId}`, runId, messages: [{ id: `u-${runId}`, role: "user", content }], tools: [], context: [] })
const post = (runId: string, headers: Record<string, string> = {}, signal?: AbortSignal) =>
  fetch(`${sidechat.url}/chat`, {
    method: "POST",
    headers: { "content-type": "application/json", ...bearer(), ...headers },
    body: body(runId),
    signal,
  })

describe("resumable runs with @tanstack/ai-client 0.33.2", () => {
  test("a stream cut mid-answer reconnects with Last-Event-ID and completes exactly, with one provider call", async () => {
    const proxy = cuttingProxy(sidechat.url, 1)
    try {
      const before = fake.seen.length
      const errors: Error[] = []
      const client = new ChatClient({
        connection: fetchServerSentEvents(`${proxy.url}/chat`, { headers: bearer() }),
        forwardedProps: { provider: "anthropic" },
        onError: (error) => errors.push(error),
      })
      await client.sendMessage("Grüß mich")
      await settle(() => !client.getIsLoading())
      expect(errors).toEqual([])
      expect(answerOf(client)).toBe(ANSWER)
      expect(fake.seen.length - before).toBe(1)
      const reads = sidechat.outcomes.filter((outcome) => outcome.route === "/chat").slice(-2)
      expect(reads.map((outcome) => Boolean(outcome.resumed))).toContain(true)
    } finally {
      proxy.stop()
    }
  })

  test("joinRun from a second client replays the run from its start and tails it to the end", async () => {
    let runId: string | null = null
    const first = new ChatClient({
      connection: fetchServerSentEvents(`${sidechat.url}/chat`, { headers: bearer() }),
      forwardedProps: { provider: "anthropic" },
      onRunIdChange: (id) => {
        runId ??= id
      },
    })
    const sent = first.sendMessage("Grüß mich")
    await settle(() => runId !== null)
    await Bun.sleep(150)
    const second = fetchServerSentEvents(`${sidechat.url}/chat`, { headers: bearer() })
    const chunks: { type: string; delta?: string }[] = []
    for await (const chunk of second.joinRun?.(runId as unknown as string) ?? []) chunks.push(chunk as { type: string; delta?: string })
    await sent
    expect(chunks[0]?.type).toBe("RUN_STARTED")
    expect(chunks.at(-1)?.type).toBe("RUN_FINISHED")
    expect(deltasOf(chunks)).toBe(ANSWER)
    expect(answerOf(first)).toBe(ANSWER)

    // Another token's holder cannot join it, and is not told whether it exists.
    const stranger = await fetch(`${sidechat.url}/chat?offset=-1&runId=${runId}`, { headers: bearer(OTHER) })
    expect(stranger.status).toBe(404)
    expect(await stranger.json()).toMatchObject({ error: { code: "run_not_found" } })
  })

  test("hydration: ChatClient({ persistence: true }) gets the thread back as UIMessages with parts", async () => {
    const threadId = `hydrated-${crypto.randomUUID()}`
    const first = new ChatClient({
      connection: fetchServerSentEvents(`${sidechat.url}/chat`, { headers: bearer() }),
      forwardedProps: { provider: "anthropic" },
      threadId,
    })
    await first.sendMessage("Grüß mich")
    await settle(() => !first.getIsLoading())

    const reloaded = new ChatClient({
      connection: fetchServerSentEvents(`${sidechat.url}/chat`, { headers: bearer() }),
      persistence: true,
      threadId,
    })
    reloaded.attach()
    await settle(() => reloaded.getMessages().length >= 2)
    const messages = reloaded.getMessages()
    expect(messages.map((m) => m.role)).toEqual(["user", "assistant"])
    expect(messages[0]?.parts).toEqual([{ type: "text", content: "Grüß mich" }])
    expect(answerOf(reloaded)).toBe(ANSWER)

    const stranger = await fetch(`${sidechat.url}/chat?threadId=${threadId}`, { headers: { ...bearer(OTHER), accept: "application/json" } })
    expect((await stranger.json()).messages).toEqual([])
  })

  test("a hydrated thread with a run still streaming joins it and completes", async () => {
    const threadId = `live-${crypto.randomUUID()}`
    const first = new ChatClient({
      connection: fetchServerSentEvents(`${sidechat.url}/chat`, { headers: bearer() }),
      forwardedProps: { provider: "anthropic" },
      threadId,
    })
    const sent = first.sendMessage("Grüß mich")
    await Bun.sleep(200)
    const reloaded = new ChatClient({
      connection: fetchServerSentEvents(`${sidechat.url}/chat`, { headers: bearer() }),
      persistence: true,
      threadId,
    })
    reloaded.attach()
    await sent
    await settle(() => answerOf(reloaded) === ANSWER && !reloaded.getIsLoading())
    expect(answerOf(reloaded)).toBe(ANSWER)
  })
})

describe("detach, grace period and stop", () => {
  test("a run with no client for the grace period is ended, logged as abandoned, and its provider request closed", async () => {
    const slow = startFakeProvider()
    slow.respond(
      () =>
        new Response(
          new ReadableStream({
            start(controller) {
              controller.enqueue(new TextEncoder().encode(`${EVENTS.slice(0, 4).join("\n\n")}\n\n`))
            },
          }),
          { headers: { "content-type": "text/event-stream" } },
        ),
    )
    const server = startSidechat({ ...TEST_KEYS, ANTHROPIC_BASE_URL: slow.url, RESUMABLE: "memory", RESUMABLE_GRACE_MS: String(GRACE_MS) })
    try {
      const runId = `abandoned-${crypto.randomUUID()}`
      const controller = new AbortController()
      const response = await fetch(`${server.url}/chat`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: body(runId),
        signal: controller.signal,
      })
      const cookie = response.headers.get("set-cookie")?.split(";")[0] as string
      expect(cookie).toStartWith("sidechat_owner=")
      await readUntil(response, 1)
      controller.abort()
      const left = performance.now()
      let closedAt = 0
      void slow.seen[0]?.closed.then(() => {
        closedAt = performance.now()
      })
      await Bun.sleep(GRACE_MS / 2)
      expect(closedAt).toBe(0)
      await settle(() => closedAt > 0)
      expect(closedAt - left).toBeGreaterThanOrEqual(GRACE_MS - 50)
      expect(closedAt - left).toBeLessThan(GRACE_MS + 1500)
      // The same browser (its owner cookie) joins the ended run: it replays to a final RUN_ERROR.
      const joined = await fetch(`${server.url}/chat?offset=-1&runId=${runId}`, { headers: { cookie } })
      const events = dataOf(await joined.text()) as { type: string; code?: string }[]
      expect(events.at(-1)).toMatchObject({ type: "RUN_ERROR", code: "run_abandoned" })
      expect(server.outcomes.find((o) => o.code === "run_abandoned")).toMatchObject({ end: "cancelled" })
      // Without the cookie, nobody can join it.
      expect((await fetch(`${server.url}/chat?offset=-1&runId=${runId}`)).status).toBe(404)
    } finally {
      server.stop()
      slow.stop()
    }
  })

  test("a client that comes back within the grace period keeps the run going", async () => {
    const runId = `back-${crypto.randomUUID()}`
    const before = fake.seen.length
    const controller = new AbortController()
    const response = await post(runId, {}, controller.signal)
    const seen = await readUntil(response, 1)
    const lastId = [...seen.matchAll(/^id: (\S+)$/gm)].at(-1)?.[1] as string
    controller.abort()
    await Bun.sleep(GRACE_MS / 3)
    const resumed = await post(runId, { "last-event-id": lastId })
    const rest = await resumed.text()
    const events = dataOf(seen + rest) as { type: string }[]
    expect(events.at(-1)?.type).toBe("RUN_FINISHED")
    expect(deltasOf(events)).toBe(ANSWER)
    expect(fake.seen.length - before).toBe(1)
  })

  test("DELETE /chat?runId= stops a run at once: its provider request closes and its readers get RUN_ERROR run_stopped", async () => {
    const runId = `stopped-${crypto.randomUUID()}`
    const before = fake.seen.length
    const response = await post(runId)
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    let text = new TextDecoder().decode((await reader.read()).value)
    const stranger = await fetch(`${sidechat.url}/chat?runId=${runId}`, { method: "DELETE", headers: bearer(OTHER) })
    expect(stranger.status).toBe(404)
    const stop = await fetch(`${sidechat.url}/chat?runId=${runId}`, { method: "DELETE", headers: bearer() })
    expect(stop.status).toBe(204)
    const closed = await Promise.race([fake.seen[before]?.closed.then(() => "closed"), Bun.sleep(1000).then(() => "open")])
    expect(closed).toBe("closed")
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      text += new TextDecoder().decode(value)
    }
    expect((dataOf(text) as { type: string; code?: string }[]).at(-1)).toMatchObject({ type: "RUN_ERROR", code: "run_stopped" })
  })
})

describe("one run, one provider call", () => {
  test("two identical POSTs at once (a retry while the first is still opening): both read the one run", async () => {
    const runId = `twice-${crypto.randomUUID()}`
    const before = fake.seen.length
    const [a, b] = await Promise.all([post(runId), post(runId)])
    const texts = await Promise.all([a.text(), b.text()])
    for (const text of texts) {
      const events = dataOf(text) as { type: string }[]
      expect(events.at(-1)?.type).toBe("RUN_FINISHED")
      expect(deltasOf(events)).toBe(ANSWER)
    }
    expect(fake.seen.length - before).toBe(1)
  })

  test("a browser on another origin may send the DELETE (the preflight allows it)", async () => {
    const preflight = await fetch(`${sidechat.url}/chat`, {
      method: "OPTIONS",
      headers: { origin: "http://localhost:3000", "access-control-request-method": "DELETE" },
    })
    expect(preflight.headers.get("access-control-allow-methods")).toContain("DELETE")
  })
})

describe("resuming what is not there", () => {
  test("a Last-Event-ID for an unknown run, or another run's id, is a 404 the client can show", async () => {
    for (const id of ["AAAAAAAAAAAAAAAA.3", "garbage"]) {
      const response = await post(`unknown-${crypto.randomUUID()}`, { "last-event-id": id })
      expect(response.status).toBe(404)
      expect(await response.json()).toMatchObject({ error: { code: "run_not_found" } })
    }
  })

  test("NDJSON carries each event in an {id, chunk} envelope, and fetchHttpStream reads it", async () => {
    const client = new ChatClient({
      connection: fetchHttpStream(`${sidechat.url}/chat?transport=ndjson`, { headers: bearer() }),
      forwardedProps: { provider: "anthropic" },
    })
    await client.sendMessage("Grüß mich")
    await settle(() => !client.getIsLoading())
    expect(answerOf(client)).toBe(ANSWER)
    const raw = await (await post(`ndjson-${crypto.randomUUID()}`, { accept: "application/x-ndjson" })).text()
    const first = JSON.parse(raw.split("\n")[0] as string)
    expect(Object.keys(first)).toEqual(["id", "chunk"])
    expect(first.chunk.type).toBe("RUN_STARTED")
  })

  test("with RESUMABLE off (the default), no id is ever sent", async () => {
    const plain = startSidechat({ ...TEST_KEYS, ANTHROPIC_BASE_URL: fake.url })
    try {
      const text = await (
        await fetch(`${plain.url}/chat`, { method: "POST", headers: { "content-type": "application/json" }, body: body("plain") })
      ).text()
      expect(text).toContain("RUN_FINISHED")
      expect(text).not.toMatch(/^id:/m)
    } finally {
      plain.stop()
    }
  })
})

describe("what the runs hold", () => {
  test("/metrics shows what the runs hold: runs, threads and their bytes", async () => {
    const runId = `metrics-${crypto.randomUUID()}`
    expect(await (await post(runId)).text()).toContain("RUN_FINISHED")
    const metrics = await (await fetch(`${sidechat.url}/metrics`, { headers: bearer() })).text()
    const value = (name: string) => Number(metrics.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1])
    expect(value("sidechat_resumable_runs")).toBeGreaterThanOrEqual(1)
    expect(value("sidechat_resumable_threads")).toBeGreaterThanOrEqual(1)
    // At least this run's events, and its thread's message and answer.
    expect(value("sidechat_resumable_log_bytes")).toBeGreaterThan(ANSWER.length)
    expect(value("sidechat_resumable_thread_bytes")).toBeGreaterThan(ANSWER.length)
    expect(value("sidechat_resumable_live_runs")).toBeGreaterThanOrEqual(0)
  })
})

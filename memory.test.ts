// What an open stream keeps in memory: not its conversation. A long history is parsed, sent to the
// provider and let go; only what the answer's events need stays for the answer's length.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { heapStats } from "bun:jsc"
import { type FakeProvider, hangingStream, startFakeProvider } from "./fixtures/fake-provider"
import { type Sidechat, startSidechat, TEST_KEYS } from "./fixtures/sidechat"
import { upstreamFetch } from "./upstream/transport"

let fake: FakeProvider
let sidechat: Sidechat
const STREAMS = 32
const HISTORY = 400_000

beforeAll(async () => {
  fake = startFakeProvider()
  const text = await Bun.file(new URL("fixtures/anthropic-text.sse", import.meta.url)).text()
  fake.respond(() => hangingStream(`${text.split("\n\n").slice(0, 4).join("\n\n")}\n\n`))
  sidechat = startSidechat({ ...TEST_KEYS, ANTHROPIC_BASE_URL: fake.url, MAX_BODY_BYTES: String(4 * HISTORY) })
})
afterAll(() => {
  sidechat.stop()
  fake.stop()
})

const heap = () => {
  Bun.gc(true)
  return heapStats().heapSize
}

test.each(["legacy", "agui"] as const)("%s: an open stream does not hold its request's messages", async (generation) => {
  const history = "lorem ipsum ".repeat(HISTORY / 12)
  const messages = [{ id: "u", role: "user", content: history }]
  const body =
    generation === "agui"
      ? { threadId: "t", runId: "r", messages, tools: [], context: [] }
      : { messages: messages.map(({ role, content }) => ({ role, content })) }
  // One byte array sent by every request, so the client side holds the history once.
  const bytes = new TextEncoder().encode(JSON.stringify(body))
  const open = () =>
    Promise.all(
      Array.from({ length: STREAMS }, async () => {
        const response = await upstreamFetch(`${sidechat.url}/chat`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: bytes,
        })
        if (response.status !== 200) throw new Error(await response.text())
        const reader = (response.body as ReadableStream<Uint8Array>).getReader()
        const decoder = new TextDecoder()
        let seen = ""
        while (!seen.includes("Grüße")) {
          const { done, value } = await reader.read()
          if (done) throw new Error(`the stream ended before its first text: ${seen}`)
          seen += decoder.decode(value, { stream: true })
        }
        return reader
      }),
    )
  const close = async (readers: ReadableStreamDefaultReader<Uint8Array>[]) => {
    for (const reader of readers) await reader.cancel()
    while (fake.open() > 0) await Bun.sleep(10)
    fake.seen.length = 0
  }
  // A first round warms up what is made once (compiled schemas, pooled sockets, code).
  await close(await open())
  const before = heap()
  const readers = await open()
  // The fake provider's own record of what it was sent is not sidechat's to keep.
  fake.seen.length = 0
  const grown = heap() - before
  await close(readers)
  // Each stream holding its history would be STREAMS × HISTORY bytes at least (12.8 MB); a few stragglers the collector has not let go of yet are far less.
  expect(grown).toBeLessThan((STREAMS * HISTORY) / 4)
})

// Benchmark: sidechat against a raw pass-through proxy, both in front of the same fake provider
// on 127.0.0.1, measured in the same run. Figures are reported as ratios to the proxy.
import Anthropic from "@anthropic-ai/sdk"
import { parseConfig } from "../config"
import { fromAnthropic } from "../converter"
import { createHandler } from "../index"
import { liveCtx } from "../parts"
import { createProviders } from "../upstream"
import { sseFrame } from "../sse"
import { toAgui } from "../wire/agui"

const DELTAS = Number(process.env.BENCH_DELTAS ?? 400)
const LEVELS = (process.env.BENCH_CONCURRENCY ?? "1,32,64").split(",").map(Number)
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 640)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)

/** An Anthropic transcript with DELTAS text deltas, built once and served from memory. */
function transcript(): Uint8Array {
  const event = (type: string, data: unknown) => `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`
  let text = event("message_start", {
    type: "message_start",
    message: {
      id: "msg_bench",
      type: "message",
      role: "assistant",
      model: "claude-bench",
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: 10, output_tokens: 1 },
    },
  })
  text += event("content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } })
  for (let i = 0; i < DELTAS; i++)
    text += event("content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: `tok${i} ` } })
  text += event("content_block_stop", { type: "content_block_stop", index: 0 })
  text += event("message_delta", {
    type: "message_delta",
    delta: { stop_reason: "end_turn", stop_sequence: null },
    usage: { output_tokens: DELTAS },
  })
  text += event("message_stop", { type: "message_stop" })
  return new TextEncoder().encode(text)
}

const body = transcript()
/** The provider writes its stream in 64 reads, as a real one trickles out chunks. */
const upstream = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  async fetch(request) {
    await request.arrayBuffer()
    const size = Math.ceil(body.byteLength / 64)
    let at = 0
    return new Response(
      new ReadableStream({
        pull(controller) {
          if (at >= body.byteLength) return controller.close()
          controller.enqueue(body.subarray(at, at + size))
          at += size
        },
      }),
      { headers: { "content-type": "text/event-stream" } },
    )
  },
})
const upstreamURL = `http://127.0.0.1:${upstream.port}`

const proxy = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  async fetch(request) {
    const response = await fetch(`${upstreamURL}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: await request.text(),
    })
    return new Response(response.body, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } })
  },
})

const parsed = parseConfig({
  ANTHROPIC_API_KEY: "sk-ant-bench-0000000000000000",
  ANTHROPIC_BASE_URL: upstreamURL,
  PROVIDER_MAX_RETRIES: "0",
  // One load client on one address: per-client limits would refuse it.
  RATE_LIMIT_PER_MINUTE: "0",
  MAX_STREAMS_PER_CLIENT: "0",
})
if (!parsed.ok) throw new Error(parsed.problems.join("; "))
const handler = createHandler({ config: parsed.value, providers: createProviders(parsed.value) })
const sidechat = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: (request, server) => handler(request, server) })

const payloads = {
  legacy: JSON.stringify({ messages: [{ role: "user", content: "benchmark" }] }),
  agui: JSON.stringify({ threadId: "t", runId: "r", messages: [{ id: "u", role: "user", content: "benchmark" }], tools: [], context: [] }),
}

type Result = { seconds: number; ttfbMs: number; bytes: number; errors: number }

/** What a stream read to its end must finish with; anything else (or an error event) is an error. */
const ENDINGS: Record<string, string> = { raw: '"type":"message_stop"}', legacy: "data: [DONE]\n\n", agui: '"type":"RUN_FINISHED"' }
const ERROR = /"type":"(error|RUN_ERROR)"/

async function load(url: string, payload: string, ending: string, concurrency: number): Promise<Result> {
  let next = 0
  let bytes = 0
  let errors = 0
  const ttfb: number[] = []
  const decoder = new TextDecoder()
  const started = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < REQUESTS) {
        const t0 = performance.now()
        try {
          const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: payload })
          const reader = response.body?.getReader()
          let first = true
          let tail = ""
          for (;;) {
            const chunk = await reader?.read()
            if (!chunk || chunk.done) break
            if (first) ttfb.push(performance.now() - t0)
            first = false
            bytes += chunk.value.byteLength
            tail = (tail + decoder.decode(chunk.value)).slice(-400)
          }
          if (response.status !== 200 || !tail.includes(ending) || ERROR.test(tail)) errors++
        } catch {
          errors++
        }
      }
    }),
  )
  ttfb.sort((a, b) => a - b)
  return { seconds: (performance.now() - started) / 1000, ttfbMs: ttfb[Math.floor(ttfb.length / 2)] ?? 0, bytes, errors }
}

const best = async (url: string, payload: string, ending: string, concurrency: number) => {
  const runs: Result[] = []
  for (let i = 0; i < ROUNDS; i++) runs.push(await load(url, payload, ending, concurrency))
  const errors = runs.reduce((sum, run) => sum + run.errors, 0)
  return { ...(runs.sort((a, b) => a.seconds - b.seconds)[0] as Result), errors }
}

const proxyURL = `http://127.0.0.1:${proxy.port}/`
const sidechatURL = `http://127.0.0.1:${sidechat.port}/chat`
await load(proxyURL, payloads.legacy, ENDINGS.raw as string, 32) // warm-up
await load(sidechatURL, payloads.legacy, ENDINGS.legacy as string, 32)

console.log(`${REQUESTS} streams of ${DELTAS} text deltas, best of ${ROUNDS} per concurrency level (Bun ${Bun.version})`)
console.log("what              clients  streams/s  ratio   p50 first byte  ratio   MB out  errors")
let raw: Result | undefined
let agui: Result | undefined
let errors = 0
for (const concurrency of LEVELS) {
  const proxied = await best(proxyURL, payloads.legacy, ENDINGS.raw as string, concurrency)
  const rows: [string, Result][] = [["raw proxy", proxied]]
  for (const [name, payload] of Object.entries(payloads))
    rows.push([`sidechat ${name}`, await best(sidechatURL, payload, ENDINGS[name] as string, concurrency)])
  for (const [name, result] of rows) {
    const rate = REQUESTS / result.seconds
    errors += result.errors
    console.log(
      `${name.padEnd(16)}  ${String(concurrency).padStart(7)}  ${rate.toFixed(0).padStart(9)}  ${(rate / (REQUESTS / proxied.seconds)).toFixed(2).padStart(5)}  ${result.ttfbMs.toFixed(2).padStart(12)} ms  ${(result.ttfbMs / proxied.ttfbMs).toFixed(2).padStart(5)}  ${(result.bytes / 1e6).toFixed(1).padStart(7)}  ${String(result.errors).padStart(6)}`,
    )
  }
  raw = proxied
  agui = rows[2]?.[1]
}
if (!raw || !agui) throw new Error("no concurrency level measured")
const perEvent = (agui.seconds - raw.seconds) / (REQUESTS * (DELTAS + 6))
console.log(
  `sidechat (AG-UI) costs ${(perEvent * 1e6).toFixed(2)} µs more per provider event than the proxy (wall clock, 2 cores shared by all parties)`,
)

// In process, no HTTP: the SDK's own stream parsing against the whole sidechat pipeline.
const client = new Anthropic({ apiKey: "bench", baseURL: "http://bench.invalid", maxRetries: 0, fetch: async () => new Response(body) })
const open = () => client.messages.create({ model: "m", max_tokens: 1, messages: [], stream: true })
const time = async (consume: () => Promise<void>) => {
  const runs = 200
  const t0 = performance.now()
  for (let i = 0; i < runs; i++) await consume()
  return (performance.now() - t0) / runs
}
const drain = async (items: AsyncIterable<unknown>) => {
  for await (const _ of items);
}
const sdkOnly = await time(async () => drain(await open()))
const pipeline = await time(async () => {
  for await (const event of toAgui(fromAnthropic(await open()), liveCtx(), { threadId: "t", runId: "r", model: "m" })) sseFrame(event)
})
console.log(
  `in process: SDK parsing alone ${((sdkOnly * 1000) / DELTAS).toFixed(2)} µs/event; SDK + converter + AG-UI encoder + SSE framing ${((pipeline * 1000) / DELTAS).toFixed(2)} µs/event (ratio ${(pipeline / sdkOnly).toFixed(2)})`,
)

upstream.stop(true)
proxy.stop(true)
sidechat.stop(true)
if (errors) console.log(`${errors} streams failed: a benchmark with errors measures nothing`)
process.exit(errors ? 1 : 0)

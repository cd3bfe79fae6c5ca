// Benchmark: the upstream transports side by side in one run. Each runs in its own sidechat process
// in front of the same fast fake provider; reported are tokens/s, the server's CPU per token, and
// how many of 1,000 simultaneous streams reach the provider. `bun run bench/transport.ts`;
// UNDICI_PATH=<path to undici's index.js> adds undici to the comparison.
import { type SidechatProcess, spawnSidechat } from "../fixtures/process"
import { startStreamingProvider } from "../fixtures/streaming-provider"

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4)
const DELTAS = 2000
const ENTRY = new URL("transport-server.ts", import.meta.url).pathname

const provider = startStreamingProvider()
/** One load client on one address: per-client limits would refuse it. */
const UNLIMITED = { RATE_LIMIT_PER_MINUTE: "0", MAX_STREAMS_PER_CLIENT: "0" }
const candidates: [string, Record<string, string>][] = [
  ["Bun sockets (sidechat's)", { BENCH_TRANSPORT: "sidechat" }],
  ["Bun fetch, default cap", { BENCH_TRANSPORT: "bun" }],
  ["Bun fetch, cap lifted", { BENCH_TRANSPORT: "bun", BUN_CONFIG_MAX_HTTP_REQUESTS: "65535" }],
]
if (process.env.UNDICI_PATH) candidates.push(["undici 8", { BENCH_TRANSPORT: "undici", UNDICI_PATH: process.env.UNDICI_PATH }])

const request = (n: number, deltas: number) =>
  JSON.stringify({
    threadId: "t",
    runId: `r${n}`,
    messages: [{ id: `u${n}`, role: "user", content: `bench deltas:${deltas}` }],
    tools: [],
    context: [],
  })

/** Closed loop of `clients` for SECONDS: completed streams' tokens, and the server's CPU meanwhile. */
async function throughput(server: SidechatProcess, clients: number) {
  let tokens = 0
  let errors = 0
  let n = 0
  const controller = new AbortController()
  const cpu0 = server.cpuSeconds()
  const t0 = performance.now()
  const deadline = t0 + SECONDS * 1000
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < deadline) {
        try {
          const response = await fetch(`${server.url}/chat`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: request(n++, DELTAS),
            signal: controller.signal,
          })
          const text = await response.text()
          if (response.status !== 200 || !text.includes('"RUN_FINISHED"') || text.includes('"RUN_ERROR"')) errors++
          else tokens += DELTAS
        } catch {
          if (!controller.signal.aborted) errors++
        }
        if (performance.now() >= deadline) controller.abort()
      }
    }),
  )
  const seconds = (performance.now() - t0) / 1000
  return { tokensPerSecond: tokens / seconds, cpuMicrosPerToken: ((server.cpuSeconds() - cpu0) * 1e6) / tokens, errors }
}

/** How many of `count` simultaneous streams reach a provider that answers and then holds them. */
async function held(env: Record<string, string>, count: number): Promise<number> {
  let reached = 0
  const holding = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 0,
    fetch() {
      reached++
      return new Response(new ReadableStream({ start: (c) => c.enqueue(new TextEncoder().encode(": open\n\n")) }), {
        headers: { "content-type": "text/event-stream" },
      })
    },
  })
  const server = await spawnSidechat(
    { ...env, ...UNLIMITED, ANTHROPIC_API_KEY: "sk-ant-bench-00000000", ANTHROPIC_BASE_URL: `http://127.0.0.1:${holding.port}` },
    ENTRY,
  )
  const { upstreamFetch } = await import("../upstream/transport")
  const controller = new AbortController()
  const streams = Array.from({ length: count }, (_, i) =>
    upstreamFetch(`${server.url}/chat`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: request(i, 1),
      signal: controller.signal,
    }).catch(() => undefined),
  )
  const deadline = performance.now() + 8000
  while (reached < count && performance.now() < deadline) await Bun.sleep(50)
  controller.abort()
  await Promise.all(streams)
  await server.stop()
  holding.stop(true)
  return reached
}

console.log(`AG-UI streams of ${DELTAS} text deltas at full speed, ${SECONDS} s per level (Bun ${Bun.version})`)
console.log("transport                  tokens/s c=1 / 16 / 64          CPU µs/token c=1 / 16 / 64   errors  streams held of 1000")
for (const [name, env] of candidates) {
  const server = await spawnSidechat(
    {
      ...env,
      ANTHROPIC_API_KEY: "sk-ant-bench-00000000",
      ANTHROPIC_BASE_URL: provider.url,
      PROVIDER_MAX_RETRIES: "0",
      // One load client on one address: per-client limits would refuse it.
      RATE_LIMIT_PER_MINUTE: "0",
      MAX_STREAMS_PER_CLIENT: "0",
    },
    ENTRY,
  )
  const levels = []
  for (const clients of [1, 16, 64]) levels.push(await throughput(server, clients))
  await server.stop()
  const reached = await held(env, 1000)
  console.log(
    `${name.padEnd(25)}  ${levels.map((l) => l.tokensPerSecond.toFixed(0).padStart(7)).join(" /")}   ${levels.map((l) => l.cpuMicrosPerToken.toFixed(2).padStart(6)).join(" /")}   ${String(levels.reduce((sum, l) => sum + l.errors, 0)).padStart(6)}  ${String(reached).padStart(6)}`,
  )
}
provider.stop()
process.exit(0)

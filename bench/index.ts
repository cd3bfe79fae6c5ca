// Benchmark: sidechat against a raw pass-through proxy, each in its own process, in front of the
// same fake provider (another process), measured in the same run and reported as ratios.
// `bun run bench` (a few minutes) or `bun run bench --quick` (under two minutes).
// Parts: full speed and paced streams for both providers, streams held through a silence (by
// `bun run index.ts` and by the compiled binary), bytes per token, and the binary's cold start.
// Exits non-zero if any stream failed.
import { readFileSync } from "node:fs"
import { upstreamFetch } from "../upstream/transport"

const QUICK = process.argv.includes("--quick")
/** `--only=full,paced,held,cold` runs just those parts. */
const ONLY = process.argv
  .find((arg) => arg.startsWith("--only="))
  ?.slice(7)
  .split(",")
const wanted = (part: string) => !ONLY || ONLY.includes(part)
const ROOT = new URL("..", import.meta.url).pathname
const FULL_TOKENS = 2000
const FULL_SECONDS = QUICK ? 3 : 6
const PACED = { streams: 100, tokens: 100, everyMs: 20, seconds: QUICK ? 5 : 10 }
/**
 * Each held stream needs two descriptors in the server under test (client and provider side), so
 * the streams held are what this machine's open-file limit allows, up to 10,000.
 */
const HELD = { streams: Math.min(QUICK ? 1000 : 10_000, fileCapacity()), silenceMs: QUICK ? 5000 : 15_000 }

function fileCapacity(): number {
  const limit = Number(readFileSync("/proc/self/limits", "utf8").match(/^Max open files\s+(\d+)/m)?.[1] ?? 1e6)
  return Math.floor((limit - 128) / 2)
}
const LEVELS = [1, 16, 64]

/** A port below Linux's ephemeral range (32768+), where the bench's own client sockets cannot hold it. */
const freePort = () => 10_000 + Math.floor(Math.random() * 22_000)

type Child = { url: string; pid: number; cpu: () => number; rss: () => number; stop: () => Promise<void> }

/**
 * Starts `bun run <entry>` on a port of our choosing (with an open-file limit when asked) and
 * waits until it answers. Its output goes nowhere: a pipe the bench reads late could block it.
 */
async function start(entry: string, env: Record<string, string>, fileLimit?: number): Promise<Child> {
  const port = freePort()
  // A path not ending in .ts is a compiled binary, run as it is.
  const run = entry.endsWith(".ts") ? `"${process.execPath}" run "${entry}"` : `"${entry}"`
  const command = `${fileLimit ? `ulimit -n ${fileLimit} 2>/dev/null; ` : ""}exec ${run}`
  const child = Bun.spawn(["sh", "-c", command], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOST: "127.0.0.1", PORT: String(port), ...env },
    stdout: "ignore",
    stderr: "inherit",
  })
  const url = `http://127.0.0.1:${port}`
  for (
    let i = 0;
    i < 200 &&
    !(await fetch(url).then(
      () => true,
      () => false,
    ));
    i++
  )
    await Bun.sleep(25)
  const stat = () => readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? []
  return {
    url,
    pid: child.pid,
    cpu: () => (Number(stat()[11]) + Number(stat()[12])) / 100,
    rss: () => Number(readFileSync(`/proc/${child.pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)?.[1]) * 1024,
    stop: async () => {
      child.kill()
      await child.exited
    },
  }
}

const selfCpu = () => {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1e6
}

type Provider = "anthropic" | "openai"
type Target = { name: string; url: string; kind: "sidechat" | "native"; cpu: () => number; rss: () => number }

/** One request in the target's own dialect. */
function send(target: Target, provider: Provider, content: string, fetcher: typeof fetch = fetch, signal?: AbortSignal) {
  const n = Math.floor(Math.random() * 1e9)
  const body =
    target.kind === "sidechat"
      ? {
          threadId: "t",
          runId: `r${n}`,
          messages: [{ id: `u${n}`, role: "user", content }],
          tools: [],
          context: [],
          forwardedProps: { provider },
        }
      : { model: "m", max_tokens: 10, stream: true, messages: [{ role: "user", content }] }
  const path = target.kind === "sidechat" ? "/chat" : provider === "openai" ? "/v1/chat/completions" : "/v1/messages"
  return fetcher(`${target.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal,
  })
}

const ending = (target: Target, provider: Provider) =>
  target.kind === "sidechat" ? '"RUN_FINISHED"' : provider === "openai" ? "[DONE]" : "message_stop"

/** Reads a stream to its end; the tail says whether it finished well. */
async function drain(response: Response, onText?: (text: string) => void) {
  const decoder = new TextDecoder()
  let bytes = 0
  let tail = ""
  for await (const chunk of response.body as ReadableStream<Uint8Array>) {
    bytes += chunk.byteLength
    const text = decoder.decode(chunk, { stream: true })
    onText?.(text)
    tail = (tail + text).slice(-300)
  }
  return { bytes, tail }
}

let errors = 0
const failed = (what: string) => {
  errors++
  if (errors <= 5) console.error(`bench: a stream failed: ${what}`)
}

/** Closed loop of `clients` streaming full-speed answers for FULL_SECONDS. */
async function fullSpeed(target: Target, provider: Provider, clients: number) {
  let tokens = 0
  let bytes = 0
  const controller = new AbortController()
  const [cpu0, self0] = [target.cpu(), selfCpu()]
  const t0 = performance.now()
  const deadline = t0 + FULL_SECONDS * 1000
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < deadline) {
        try {
          const response = await send(target, provider, `full n=${FULL_TOKENS}`, fetch, controller.signal)
          const read = await drain(response)
          if (response.status !== 200 || !read.tail.includes(ending(target, provider)) || read.tail.includes("RUN_ERROR"))
            failed(`${target.name} ${response.status}`)
          else {
            tokens += FULL_TOKENS
            bytes += read.bytes
          }
        } catch (error) {
          if (!controller.signal.aborted) failed(`${target.name} ${(error as Error).message}`)
        }
        if (performance.now() >= deadline) controller.abort()
      }
    }),
  )
  const seconds = (performance.now() - t0) / 1000
  return {
    tokensPerSecond: tokens / seconds,
    cpuPerToken: (target.cpu() - cpu0) / tokens,
    clientCpu: selfCpu() - self0,
    serverCpu: target.cpu() - cpu0,
    bytesPerToken: bytes / tokens,
  }
}

/** PACED.streams clients streaming paced answers; latency per token from the provider's send stamp. */
async function paced(target: Target, provider: Provider) {
  let tokens = 0
  const latencies: number[] = []
  const cpu0 = target.cpu()
  const deadline = performance.now() + PACED.seconds * 1000
  await Promise.all(
    Array.from({ length: PACED.streams }, async () => {
      while (performance.now() < deadline) {
        try {
          const response = await send(target, provider, `paced n=${PACED.tokens} every=${PACED.everyMs}`)
          const read = await drain(response, (text) => {
            const now = performance.timeOrigin + performance.now()
            for (const match of text.matchAll(/t(\d+\.\d+) /g)) latencies.push(now - Number(match[1]))
          })
          if (response.status !== 200 || !read.tail.includes(ending(target, provider))) failed(`${target.name} paced ${response.status}`)
          else tokens += PACED.tokens
        } catch (error) {
          failed(`${target.name} paced ${(error as Error).message}`)
        }
      }
    }),
  )
  latencies.sort((a, b) => a - b)
  const at = (q: number) => latencies[Math.floor(latencies.length * q)] ?? Number.NaN
  return { cpuPerToken: (target.cpu() - cpu0) / tokens, p50: at(0.5), p99: at(0.99) }
}

/** HELD.streams streams that send one token, go silent, then finish: alive, and memory per stream. */
async function held(target: Target) {
  const before = target.rss()
  let first = 0
  let finished = 0
  const streams = Array.from({ length: HELD.streams }, async () => {
    try {
      const response = await send(target, "anthropic", `held n=3 every=${HELD.silenceMs}`, upstreamFetch as typeof fetch)
      let counted = false
      const read = await drain(response, () => {
        if (!counted) first++
        counted = true
      })
      if (response.status === 200 && read.tail.includes(ending(target, "anthropic"))) finished++
      else failed(`${target.name} held ${response.status}`)
    } catch (error) {
      failed(`${target.name} held ${(error as Error).message}`)
    }
  })
  const openBy = performance.now() + HELD.silenceMs * 0.8
  while (first < HELD.streams && performance.now() < openBy) await Bun.sleep(50)
  const open = target.rss()
  await Promise.all(streams)
  // sidechat collects garbage after an idle second; give memory three to come back.
  await Bun.sleep(3000)
  return { opened: first, finished, perStream: (open - before) / Math.max(1, first), before, after: target.rss() }
}

const median = (list: number[]) => list.sort((a, b) => a - b)[Math.floor(list.length / 2)] ?? Number.NaN

/** Spawn → exit of the bare binary told to exit at once (BARE_EXIT): what the runtime alone costs, median. */
async function startAndExit(binary: string) {
  const runs: number[] = []
  for (let i = 0; i < (QUICK ? 5 : 11); i++) {
    const t0 = performance.now()
    await Bun.spawn([binary], { env: { PATH: process.env.PATH ?? "", BARE_EXIT: "1" }, stdout: "ignore", stderr: "ignore" }).exited
    runs.push(performance.now() - t0)
  }
  return median(runs)
}

/**
 * A compiled binary's cold start, medians: spawn → first 200 on /health, and spawn → first
 * streamed token (mock). `tokens: false` skips the second (the bare binary has no /chat).
 */
async function coldStart(binary: string, tokens = true) {
  const runs = QUICK ? 5 : 11
  const health: number[] = []
  const token: number[] = []
  for (let i = 0; i < runs * 2; i++) {
    const port = freePort()
    const t0 = performance.now()
    const child = Bun.spawn([binary], {
      env: { PATH: process.env.PATH ?? "", PORT: String(port), LOG_LEVEL: "warn", MOCK_DELAY_MS: "0" },
      stdout: "ignore",
      stderr: "ignore",
    })
    const url = `http://127.0.0.1:${port}`
    const giveUp = t0 + 10_000
    const up = () =>
      fetch(`${url}/health`).then(
        (r) => r.ok,
        () => false,
      )
    if (i % 2 === 0 || !tokens) {
      while (!(await up()) && performance.now() < giveUp) await Bun.sleep(0.5)
      if (performance.now() < giveUp) health.push(performance.now() - t0)
      else failed("the binary did not answer /health within 10 s")
    } else {
      while (performance.now() < giveUp) {
        const response = await fetch(`${url}/chat`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ messages: [{ role: "user", content: "hi" }] }),
        }).catch(() => undefined)
        if (!response) {
          await Bun.sleep(0.5)
          continue
        }
        const reader = (response.body as ReadableStream<Uint8Array>).getReader()
        await reader.read()
        token.push(performance.now() - t0)
        await reader.cancel()
        break
      }
    }
    child.kill()
    await child.exited
  }
  return { health: median(health), token: tokens ? median(token) : Number.NaN }
}

// ------------------------------------------------------------------ run

const provider = await start(`${ROOT}/bench/provider.ts`, {})
const unlimited = { RATE_LIMIT_PER_MINUTE: "0", MAX_STREAMS_PER_CLIENT: "0", PROVIDER_MAX_RETRIES: "0" }
const sidechatEnv = {
  ...unlimited,
  ANTHROPIC_API_KEY: "sk-ant-bench-000000000000",
  ANTHROPIC_BASE_URL: provider.url,
  OPENAI_API_KEY: "sk-bench-000000000000",
  OPENAI_BASE_URL: `${provider.url}/v1`,
}
const sidechatChild = await start(`${ROOT}/index.ts`, sidechatEnv, 65_536)
const proxyChild = await start(`${ROOT}/bench/proxy.ts`, { PROVIDER_URL: provider.url, BUN_CONFIG_MAX_HTTP_REQUESTS: "65535" }, 65_536)
const sidechat: Target = { name: "sidechat", url: sidechatChild.url, kind: "sidechat", cpu: sidechatChild.cpu, rss: sidechatChild.rss }
const proxy: Target = { name: "proxy", url: proxyChild.url, kind: "native", cpu: proxyChild.cpu, rss: proxyChild.rss }
const direct: Target = { name: "direct", url: provider.url, kind: "native", cpu: provider.cpu, rss: provider.rss }

console.log(
  `sidechat benchmark${QUICK ? " (--quick)" : ""}, Bun ${Bun.version}, ${navigator.hardwareConcurrency} cores shared by all processes`,
)
const pct = (value: number) => `${(value * 100).toFixed(1)}%`
const times = (value: number) => `${value.toFixed(2)}×`

await fullSpeed(sidechat, "anthropic", 8) // warm-up
await fullSpeed(proxy, "anthropic", 8)
for (const which of wanted("full") ? (["anthropic", "openai"] as const) : []) {
  console.log(`\nfull speed, ${which} framing, ${FULL_TOKENS}-token answers, ${FULL_SECONDS} s per level`)
  console.log("clients   proxy tok/s   sidechat tok/s   % of proxy   CPU/token × proxy   bytes/token (AG-UI)   load client CPU share")
  for (const clients of LEVELS) {
    const base = await fullSpeed(proxy, which, clients)
    const ours = await fullSpeed(sidechat, which, clients)
    const share = ours.clientCpu / (ours.clientCpu + ours.serverCpu + 1e-9)
    console.log(
      `${String(clients).padStart(7)}   ${base.tokensPerSecond.toFixed(0).padStart(11)}   ${ours.tokensPerSecond.toFixed(0).padStart(14)}   ${pct(ours.tokensPerSecond / base.tokensPerSecond).padStart(10)}   ${times(ours.cpuPerToken / base.cpuPerToken).padStart(17)}   ${ours.bytesPerToken.toFixed(1).padStart(19)}   ${pct(share).padStart(21)}`,
    )
  }
}

if (wanted("paced")) {
  console.log(
    `\npaced: ${PACED.streams} streams, one token every ${PACED.everyMs} ms, ${PACED.seconds} s; latency = arrival - the provider's send stamp`,
  )
  console.log("provider    CPU/token × proxy   p50 / p99: direct      proxy                sidechat             sidechat added")
  for (const which of ["anthropic", "openai"] as const) {
    const base = await paced(proxy, which)
    const straight = await paced(direct, which)
    const ours = await paced(sidechat, which)
    const pair = (r: { p50: number; p99: number }) => `${r.p50.toFixed(2)} / ${r.p99.toFixed(2)} ms`.padEnd(20)
    const added = `${(ours.p50 - straight.p50).toFixed(2)} / ${(ours.p99 - straight.p99).toFixed(2)} ms`
    console.log(
      `${which.padEnd(10)}  ${times(ours.cpuPerToken / base.cpuPerToken).padStart(17)}   ${pair(straight)} ${pair(base)} ${pair(ours)} ${added}`,
    )
  }
}

// The compiled binary, built from this tree (held streams and cold start run it).
const binary = `${ROOT}/dist/sidechat`
const build = (args: string[]) => Bun.spawn([process.execPath, ...args], { cwd: ROOT, stdout: "ignore", stderr: "inherit" }).exited
if ((wanted("held") || wanted("cold")) && (await build(["run", "build"])) !== 0) {
  console.error("the binary did not build: held streams and cold start need it")
  process.exit(1)
}

if (wanted("held")) {
  console.log(`\nheld: ${HELD.streams} streams, one token, ${HELD.silenceMs / 1000} s of provider silence, then the rest`)
  const binaryChild = await start(binary, sidechatEnv, 65_536)
  const compiled: Target = { name: "binary", url: binaryChild.url, kind: "sidechat", cpu: binaryChild.cpu, rss: binaryChild.rss }
  try {
    await fullSpeed(compiled, "anthropic", 8) // warm-up, as the others had
    for (const target of [proxy, sidechat, compiled]) {
      const result = await held(target)
      console.log(
        `${target.name.padEnd(9)} opened ${result.opened}, finished ${result.finished}; ${(result.perStream / 1024).toFixed(1)} KiB per open stream; RSS ${(result.before / 2 ** 20).toFixed(0)} → ${(result.after / 2 ** 20).toFixed(0)} MiB 3 s after they closed`,
      )
    }
  } finally {
    await binaryChild.stop()
  }
}

if (wanted("cold")) {
  // The floor: a compiled binary that only binds Bun.serve, built with the same flags.
  const bare = `${ROOT}/dist/bench-bare`
  await build(["build", "--compile", "--minify", "--bytecode", "--format=esm", "bench/bare.ts", "--outfile", bare])
  const runtime = await startAndExit(bare)
  const floor = await coldStart(bare, false)
  const cold = await coldStart(binary)
  console.log(`\ncold start, compiled, medians: spawn → /health, spawn → first streamed token (mock)`)
  console.log(`runtime alone          ${runtime.toFixed(1)} ms (spawn → exit of a binary that exits at once)`)
  console.log(`bare Bun.serve binary  ${floor.health.toFixed(1)} ms`)
  console.log(
    `sidechat               ${cold.health.toFixed(1)} ms (${times(cold.health / floor.health)}), ${cold.token.toFixed(1)} ms (${times(cold.token / floor.health)})`,
  )
}

await Promise.all([sidechatChild.stop(), proxyChild.stop(), provider.stop()])
if (errors) console.log(`\n${errors} streams failed: a benchmark with errors measures nothing`)
process.exit(errors ? 1 : 0)

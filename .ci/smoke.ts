// Smoke test for the compiled binary: with no key it serves /health and a mock chat; in front of a
// fake provider on 127.0.0.1 it holds 1,000 simultaneous streams.
import { upstreamFetch } from "../upstream/transport"

import { existsSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"

const binary = resolve(process.argv[2] ?? "./dist/sidechat")
const children: Bun.Subprocess[] = []
const fail = (message: string): never => {
  for (const child of children) child.kill()
  console.error(`smoke: FAIL: ${message}`)
  process.exit(1)
}

async function start(env: Record<string, string>, cwd?: string): Promise<string> {
  const port = 10000 + Math.floor(Math.random() * 22000)
  children.push(
    Bun.spawn([binary], {
      cwd,
      env: { PATH: process.env.PATH ?? "", PORT: String(port), HOST: "127.0.0.1", ...env },
      stdout: "ignore",
      stderr: "inherit",
    }),
  )
  const base = `http://127.0.0.1:${port}`
  for (let i = 0; i < 100; i++) {
    const health = await fetch(`${base}/health`).catch(() => undefined)
    if (health?.status === 200) return base
    await Bun.sleep(50)
  }
  return fail("the binary did not answer /health")
}

const chat = (base: string, content: string, signal?: AbortSignal) =>
  upstreamFetch(`${base}/chat`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ messages: [{ role: "user", content }] }),
    signal,
  })

try {
  const mock = await start({ MOCK_DELAY_MS: "1" })
  const status = (await (await fetch(`${mock}/health`)).json()) as { providers: Record<string, string> }
  if (status.providers.anthropic !== "mock") fail(`expected the mock provider, got ${JSON.stringify(status)}`)
  const body = await (await chat(mock, "hello binary")).text()
  if (!body.includes("hello binary") || !body.endsWith("data: [DONE]\n\n")) fail(`unexpected chat stream:\n${body}`)

  // The binary reads .env from its working directory, and on purpose not bunfig.toml (a preload
  // there would run code inside sidechat).
  const dir = mkdtempSync(join(tmpdir(), "sidechat-smoke-"))
  writeFileSync(join(dir, ".env"), "DEFAULT_PROVIDER=openai\n")
  writeFileSync(join(dir, "preload.ts"), `require("node:fs").writeFileSync(${JSON.stringify(join(dir, "preloaded"))}, "yes")\n`)
  writeFileSync(join(dir, "bunfig.toml"), 'preload = ["./preload.ts"]\n')
  const local = await start({}, dir)
  const seen = (await (await fetch(`${local}/health`)).json()) as { defaultProvider: string }
  if (seen.defaultProvider !== "openai") fail(`.env in the working directory was not read: ${JSON.stringify(seen)}`)
  if (existsSync(join(dir, "preloaded"))) fail("bunfig.toml in the working directory was read (its preload ran)")

  // Tracing lives in a chunk of its own that loads only when an endpoint is set; it must load.
  let spans = 0
  const receiver = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(request) {
      const body = (await request.json()) as { resourceSpans?: { scopeSpans: { spans: unknown[] }[] }[] }
      for (const resource of body.resourceSpans ?? []) for (const scope of resource.scopeSpans) spans += scope.spans.length
      return Response.json({})
    },
  })
  const traced = await start({
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}`,
    OTEL_BSP_SCHEDULE_DELAY: "50",
    MOCK_DELAY_MS: "0",
  })
  await (await chat(traced, "trace me")).text()
  for (let i = 0; i < 60 && spans === 0; i++) await Bun.sleep(50)
  receiver.stop(true)
  if (spans === 0) fail("the binary sent no span to the OTLP receiver")

  let reached = 0
  const head = `event: message_start\ndata: ${JSON.stringify({ type: "message_start", message: { id: "m", type: "message", role: "assistant", model: "smoke", content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 1, output_tokens: 1 } } })}\n\n`
  const provider = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 0,
    fetch() {
      reached++
      return new Response(new ReadableStream({ start: (c) => c.enqueue(new TextEncoder().encode(head)) }), {
        headers: { "content-type": "text/event-stream" },
      })
    },
  })
  const live = await start({
    ANTHROPIC_API_KEY: "sk-ant-smoke-000000000000000000",
    ANTHROPIC_BASE_URL: `http://127.0.0.1:${provider.port}`,
    PROVIDER_MAX_RETRIES: "0",
    // One load client on one address: per-client limits would refuse it.
    RATE_LIMIT_PER_MINUTE: "0",
    MAX_STREAMS_PER_CLIENT: "0",
  })
  const controller = new AbortController()
  const streams = Array.from({ length: 1000 }, () => chat(live, "many", controller.signal).catch(() => undefined))
  const deadline = Date.now() + 20_000
  while (reached < 1000 && Date.now() < deadline) await Bun.sleep(50)
  controller.abort()
  await Promise.all(streams)
  provider.stop(true)
  if (reached < 1000) fail(`only ${reached} of 1000 simultaneous streams reached the provider`)
  console.log(
    `smoke: ok (${binary}: /health, a mock chat of ${body.length} bytes, .env read and bunfig.toml not, a span exported, 1000 simultaneous streams)`,
  )
} finally {
  for (const child of children) child.kill()
}

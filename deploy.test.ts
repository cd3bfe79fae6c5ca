// The deploy recipes with the real things: Debian's nginx and Caddy started on 127.0.0.1 in front of
// a real sidechat process, with deploy/nginx.conf and deploy/Caddyfile as shipped (only their
// ports rewritten); the systemd unit checked by systemd-analyze; the Dockerfile's promises checked
// against the binary and the configuration.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseConfig } from "./config"
import { type FakeProvider, type Seen, startFakeProvider } from "./fixtures/fake-provider"
import { type SidechatProcess, spawnSidechat } from "./fixtures/process"
import { dataOf, readUntil, TEST_KEYS } from "./fixtures/sidechat"

const which = (name: string) => Bun.which(name, { PATH: `${process.env.PATH}:/usr/sbin:/sbin` }) ?? undefined
const SILENCE_MS = 15_000
const TEXT = await Bun.file(new URL("fixtures/anthropic-text.sse", import.meta.url)).text()
const events = TEXT.split("\n\n").filter(Boolean)
/** message_start, the block's start and its first delta; then the provider is silent for a while. */
const HEAD = `${events.slice(0, 4).join("\n\n")}\n\n`
const TAIL = `${events.slice(4).join("\n\n")}\n\n`

let fake: FakeProvider
let sidechat: SidechatProcess
/** When the provider sent its last byte, per request. */
const finishedAt = new Map<Seen, number>()

beforeAll(async () => {
  fake = startFakeProvider()
  fake.respond((seen) => {
    const silence = JSON.stringify(seen.body).includes("silence") ? SILENCE_MS : 0
    const encoder = new TextEncoder()
    return new Response(
      new ReadableStream({
        async start(controller) {
          controller.enqueue(encoder.encode(HEAD))
          if (JSON.stringify(seen.body).includes("forever")) return
          await Bun.sleep(silence || 300)
          controller.enqueue(encoder.encode(TAIL))
          finishedAt.set(seen, performance.now())
          controller.close()
        },
      }),
      { headers: { "content-type": "text/event-stream" } },
    )
  })
  sidechat = await spawnSidechat({ ...TEST_KEYS, ANTHROPIC_BASE_URL: fake.url, LOG_FORMAT: "json", HEARTBEAT_MS: "2000" })
})
afterAll(async () => {
  await sidechat?.stop()
  fake?.stop()
})

const port = () => 10_000 + Math.floor(Math.random() * 22_000)
const body = (content: string) =>
  JSON.stringify({ threadId: "t", runId: `r-${content}`, messages: [{ id: "u", role: "user", content }], tools: [], context: [] })

/** Waits until a proxy answers /health through itself. */
async function reachable(url: string, proxy: Bun.Subprocess, log: () => string) {
  for (let i = 0; i < 200; i++) {
    if (proxy.exitCode !== null) throw new Error(`the proxy exited (${proxy.exitCode}):\n${log()}`)
    const ok = await fetch(`${url}/health`).then(
      (r) => r.ok,
      () => false,
    )
    if (ok) return
    await Bun.sleep(50)
  }
  throw new Error(`the proxy did not answer:\n${log()}`)
}

/**
 * `hangUpMs`: how soon a client's hang-up reaches the provider. nginx notices at once; Caddy 2.6
 * only when a write to the gone client fails, which sidechat's heartbeat (every 2 s here) causes.
 */
type Proxy = {
  name: string
  binary?: string
  hangUpMs: number
  start: (listen: number, upstream: string) => Promise<{ url: string; stop: () => void }>
}

const PROXIES: Proxy[] = [
  {
    name: "nginx (deploy/nginx.conf)",
    binary: which("nginx"),
    hangUpMs: 3000,
    async start(listen, upstream) {
      const dir = mkdtempSync(join(tmpdir(), "sidechat-nginx-"))
      const recipe = readFileSync(new URL("deploy/nginx.conf", import.meta.url), "utf8")
        .replace("server 127.0.0.1:8080;", `server ${upstream};`)
        .replace("listen 80;", `listen 127.0.0.1:${listen};`)
      writeFileSync(join(dir, "sidechat.conf"), recipe)
      const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((kind) => `${kind}_temp_path ${dir}/${kind};`).join(" ")
      writeFileSync(
        join(dir, "nginx.conf"),
        `worker_processes 1; daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events {}
http { access_log off; ${temp} include ${dir}/sidechat.conf; }
`,
      )
      const child = Bun.spawn([this.binary as string, "-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")], {
        stdout: "ignore",
        stderr: "pipe",
      })
      const url = `http://127.0.0.1:${listen}`
      await reachable(url, child, () => (existsSync(join(dir, "error.log")) ? readFileSync(join(dir, "error.log"), "utf8") : ""))
      return { url, stop: () => child.kill() }
    },
  },
  {
    name: "Caddy (deploy/Caddyfile)",
    binary: which("caddy"),
    hangUpMs: 10_000,
    async start(listen, upstream) {
      const dir = mkdtempSync(join(tmpdir(), "sidechat-caddy-"))
      const recipe = readFileSync(new URL("deploy/Caddyfile", import.meta.url), "utf8")
        .replace(":80 {", `http://127.0.0.1:${listen} {`)
        .replace("reverse_proxy 127.0.0.1:8080", `reverse_proxy ${upstream}`)
      writeFileSync(join(dir, "Caddyfile"), `{\n\tadmin off\n}\n${recipe}`)
      const env = { PATH: process.env.PATH ?? "", HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir }
      const child = Bun.spawn([this.binary as string, "run", "--config", join(dir, "Caddyfile"), "--adapter", "caddyfile"], {
        env,
        stdout: "ignore",
        stderr: "pipe",
      })
      const lines: string[] = []
      void new Response(child.stderr).text().then((text) => lines.push(text))
      const url = `http://127.0.0.1:${listen}`
      await reachable(url, child, () => lines.join(""))
      return { url, stop: () => child.kill() }
    },
  },
]

for (const proxy of PROXIES) {
  if (!proxy.binary)
    console.warn(`deploy.test.ts: SKIPPED ${proxy.name}: not installed (apt-get install ${proxy.name.split(" ")[0]?.toLowerCase()})`)
  describe.skipIf(!proxy.binary)(`through ${proxy.name}`, () => {
    let front: { url: string; stop: () => void }
    beforeAll(async () => {
      front = await proxy.start(port(), new URL(sidechat.url).host)
    })
    afterAll(() => front?.stop())

    const chat = (content: string, headers: Record<string, string> = {}, signal?: AbortSignal) =>
      fetch(`${front.url}/chat`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: body(content),
        signal,
      })

    test(
      "a stream arrives as it is made and survives a 15 s provider silence",
      async () => {
        const before = fake.seen.length
        const response = await chat("silence please")
        expect(response.status).toBe(200)
        expect(response.headers.get("content-encoding")).toBeNull()
        const reader = (response.body as ReadableStream<Uint8Array>).getReader()
        const decoder = new TextDecoder()
        let text = ""
        let firstTokenAt = 0
        let pings = 0
        for (;;) {
          const { done, value } = await reader.read()
          if (done) break
          const chunk = decoder.decode(value, { stream: true })
          pings += chunk.split(": ping").length - 1
          text += chunk
          if (!firstTokenAt && text.includes("TEXT_MESSAGE_CONTENT")) firstTokenAt = performance.now()
        }
        const seen = fake.seen[before] as Seen
        // The first token came through while the provider was still silent, long before it finished.
        expect(firstTokenAt).toBeGreaterThan(0)
        expect((finishedAt.get(seen) ?? 0) - firstTokenAt).toBeGreaterThan(SILENCE_MS - 3000)
        expect(pings).toBeGreaterThanOrEqual(5)
        const types = dataOf(text).map((event) => (event as { type: string }).type)
        expect(types.at(-1)).toBe("RUN_FINISHED")
      },
      SILENCE_MS + 15_000,
    )

    test(`a client that hangs up mid-stream closes the provider request (within ${proxy.hangUpMs / 1000} s)`, async () => {
      const before = fake.seen.length
      const controller = new AbortController()
      await readUntil(await chat("forever", {}, controller.signal), 1)
      controller.abort()
      const closed = fake.seen[before]?.closed
      const late = Bun.sleep(proxy.hangUpMs).then(() => "still open")
      expect(await Promise.race([closed?.then(() => "closed"), late])).toBe("closed")
    }, 15_000)

    test("the request id passes through: the client's own, or one the proxy made", async () => {
      const given = await chat("short", { "x-request-id": "frontend-id-123" })
      await given.text()
      await Bun.sleep(100)
      expect(sidechat.requests().at(-1)?.requestId).toBe("frontend-id-123")
      expect(given.headers.get("x-request-id")).toBe("frontend-id-123")
      const made = await chat("short")
      await made.text()
      await Bun.sleep(100)
      const id = sidechat.requests().at(-1)?.requestId
      expect(id).toBeString()
      expect(id).not.toBe("frontend-id-123")
      expect(made.headers.get("x-request-id")).toBe(id as string)
    })
  })
}

describe("the systemd unit (deploy/sidechat.service)", () => {
  const analyze = which("systemd-analyze")
  if (!analyze) console.warn("deploy.test.ts: SKIPPED the systemd unit checks: systemd-analyze is not installed (apt-get install systemd)")
  /** The unit as shipped, pointed at a binary that exists here (verify checks ExecStart). */
  const unit = () => {
    const dir = mkdtempSync(join(tmpdir(), "sidechat-unit-"))
    const text = readFileSync(new URL("deploy/sidechat.service", import.meta.url), "utf8")
      .replace("ExecStart=/usr/local/bin/sidechat", `ExecStart=${process.execPath}`)
      .replace("EnvironmentFile=/etc/sidechat/sidechat.env", `EnvironmentFile=${dir}/sidechat.env`)
    writeFileSync(join(dir, "sidechat.env"), "PORT=8080\n")
    writeFileSync(join(dir, "sidechat.service"), text)
    return join(dir, "sidechat.service")
  }
  const run = async (args: string[]) => {
    const child = Bun.spawn([analyze as string, ...args], { stdout: "pipe", stderr: "pipe" })
    const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
    return { stdout, stderr, code }
  }

  test.skipIf(!analyze)("systemd-analyze verify accepts every line (no unknown key, no bad value)", async () => {
    const { stderr, code } = await run(["verify", unit()])
    expect(stderr).toBe("")
    expect(code).toBe(0)
  })

  test.skipIf(!analyze)("systemd-analyze security rates its exposure OK or better", async () => {
    const { stdout, stderr } = await run(["security", "--offline=true", "--no-pager", unit()])
    const exposure = Number((stdout + stderr).match(/Overall exposure level for sidechat\.service: ([\d.]+)/)?.[1])
    expect(exposure).toBeLessThanOrEqual(4)
  })

  test("the file-descriptor limit it sets is what MAX_STREAMS needs, and the settings file is the documented one", () => {
    const text = readFileSync(new URL("deploy/sidechat.service", import.meta.url), "utf8")
    expect(Number(text.match(/^LimitNOFILE=(\d+)$/m)?.[1])).toBeGreaterThanOrEqual(2 * 20_000 + 128)
    expect(text).toMatch(/^EnvironmentFile=\/etc\/sidechat\/sidechat\.env$/m)
    expect(text).not.toMatch(/^MemoryDenyWriteExecute=yes/m)
  })
})

describe("under MemoryDenyWriteExecute's kernel rule (PR_SET_MDWE)", () => {
  const python = which("python3")
  const probe = "import ctypes, sys; sys.exit(ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0)"
  const supported = Boolean(python) && Bun.spawnSync([python as string, "-c", probe]).exitCode === 0
  if (!supported) console.warn("deploy.test.ts: SKIPPED the MDWE check: no python3, or a kernel without PR_SET_MDWE (Linux 6.3+)")
  test.skipIf(!supported)("sidechat still starts and streams, its JIT held back", async () => {
    const script = `import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0 or libc.prctl(66, 0, 0, 0, 0) != 1: sys.exit("PR_SET_MDWE did not apply")
os.execv(sys.argv[1], sys.argv[1:])`
    const dir = mkdtempSync(join(tmpdir(), "sidechat-mdwe-"))
    writeFileSync(join(dir, "mdwe.py"), script)
    const wrapper = join(dir, "sidechat-mdwe")
    writeFileSync(wrapper, `#!/bin/sh\nexec ${python} ${join(dir, "mdwe.py")} ${process.execPath} run ${import.meta.dir}/index.ts\n`, {
      mode: 0o755,
    })
    const server = await spawnSidechat({ MOCK_DELAY_MS: "0" }, wrapper)
    try {
      const response = await fetch(`${server.url}/chat`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: body("hi"),
      })
      const types = dataOf(await response.text()).map((event) => (event as { type: string }).type)
      expect(types.at(-1)).toBe("RUN_FINISHED")
    } finally {
      await server.stop()
    }
  })
})

describe("the Dockerfile", () => {
  const text = readFileSync(new URL("Dockerfile", import.meta.url), "utf8")
  const runtime = text.slice(text.lastIndexOf("\nFROM "))

  test("its settings parse, and the drain fits inside Docker's 10 s stop timeout", () => {
    const block = runtime.match(/^ENV ((?:.*\\\n)*.*)$/m)?.[1] ?? ""
    const env = Object.fromEntries(block.split(/\s*\\\n\s*|\s+/).map((pair) => pair.split("=") as [string, string]))
    expect(Object.keys(env)).toContain("SHUTDOWN_GRACE_MS")
    const parsed = parseConfig(env)
    if (!parsed.ok) throw new Error(parsed.problems.join("; "))
    expect(parsed.value.host).toBe("0.0.0.0")
    expect(parsed.value.shutdownGraceMs).toBeLessThan(10_000)
    expect(runtime).toMatch(/^EXPOSE (\d+)$/m)
    expect(runtime.match(/^EXPOSE (\d+)$/m)?.[1]).toBe(String(parsed.value.port))
  })

  test("it runs as a non-root user, stops with SIGTERM, and checks health with the binary itself (no shell in the image)", () => {
    expect(runtime).toMatch(/^USER (?!root|0\b)\S+$/m)
    expect(runtime).toMatch(/^STOPSIGNAL SIGTERM$/m)
    const check = JSON.parse(runtime.match(/^HEALTHCHECK .* CMD (\[.*\])$/m)?.[1] ?? "null") as string[]
    expect(check.slice(1)).toEqual(["--healthcheck"])
    expect(runtime).toContain(`COPY --from=build /src/dist/sidechat ${check[0]}`)
    expect(JSON.parse(runtime.match(/^ENTRYPOINT (\[.*\])$/m)?.[1] ?? "null")).toEqual([check[0]])
    expect(text).toContain("npx bun run build")
  })
})

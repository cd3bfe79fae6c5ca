// Provider calls through an egress proxy: NO_PROXY as curl reads it, then Debian's tinyproxy on
// 127.0.0.1 in front of providers on 127.0.0.1, for the transport alone (a CONNECT tunnel to a TLS
// provider, a plain-HTTP provider in absolute form, refusals) and for a sidechat process started
// with HTTPS_PROXY, as an operator behind a corporate proxy runs it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { spawnSidechat } from "../fixtures/process"
import { bypassed, proxyFor } from "./proxy"
import { upstreamFetch } from "./transport"

describe("which requests go through the proxy", () => {
  const direct = (url: string, ...noProxy: string[]) => bypassed(new URL(url), noProxy)

  test("NO_PROXY names a host and every name under it, by port when it gives one", () => {
    expect(direct("https://api.example.com/v1", "example.com")).toBe(true)
    expect(direct("https://example.com/v1", ".example.com")).toBe(true)
    expect(direct("https://API.Example.COM/v1", "example.com")).toBe(true)
    expect(direct("https://badexample.com/v1", "example.com")).toBe(false)
    expect(direct("https://example.com.evil.net/v1", "example.com")).toBe(false)
    expect(direct("https://api.example.com/v1", "example.com:443")).toBe(true)
    expect(direct("https://api.example.com:8443/v1", "example.com:443")).toBe(false)
    expect(direct("http://10.1.2.3:11434/v1", "10.0.0.0/8")).toBe(true)
    expect(direct("http://11.1.2.3:11434/v1", "10.0.0.0/8")).toBe(false)
    expect(direct("http://192.168.7.9/v1", "192.168.7.9")).toBe(true)
    expect(direct("http://127.0.0.1/v1", "0.0.1")).toBe(false)
    expect(direct("https://api.example.com./v1", "example.com")).toBe(true)
    expect(direct("https://api.example.com/v1", "example.com.")).toBe(true)
    expect(direct("http://[::1]:8000/v1", "::1")).toBe(true)
    expect(direct("http://[::1]:8000/v1", "[::1]:8000")).toBe(true)
    expect(direct("http://[::1]:8001/v1", "[::1]:8000")).toBe(false)
    expect(direct("https://anything.dev/v1", "localhost", "*")).toBe(true)
    expect(direct("https://api.anthropic.com/v1")).toBe(false)
  })

  test("an https:// provider takes HTTPS_PROXY, an http:// one HTTP_PROXY; credentials are decoded", () => {
    const https = new URL("http://us%40er:p%3Ass@proxy.corp:3128")
    const via = proxyFor(new URL("https://api.anthropic.com/v1/messages"), { https, noProxy: [] })
    expect(via).toMatchObject({ hostname: "proxy.corp", port: 3128, name: "proxy.corp:3128" })
    expect(Buffer.from(via?.authorization?.split(" ")[1] ?? "", "base64").toString()).toBe("us@er:p:ss")
    expect(proxyFor(new URL("http://10.0.0.5:11434/v1"), { https, noProxy: [] })).toBeUndefined()
    expect(proxyFor(new URL("http://10.0.0.5:11434/v1"), { http: new URL("http://proxy.corp"), noProxy: [] })).toMatchObject({ port: 80 })
    expect(proxyFor(new URL("https://api.anthropic.com/v1"), { https, noProxy: ["anthropic.com"] })).toBeUndefined()
  })
})

const which = (name: string) => Bun.which(name, { PATH: `${process.env.PATH}:/usr/sbin:/sbin` }) ?? undefined
const tinyproxy = which("tinyproxy")
const dir = mkdtempSync(join(tmpdir(), "sidechat-proxy-"))
const openssl =
  spawnSync(
    "openssl",
    [
      ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"],
      ...["-keyout", join(dir, "localhost.key"), "-out", join(dir, "localhost.pem"), "-subj", "/CN=localhost"],
      ...["-addext", "subjectAltName=DNS:localhost"],
    ],
    { stdio: "ignore" },
  ).status === 0
if (!tinyproxy || !openssl) console.warn("proxy.test.ts: tinyproxy or openssl is missing, so the tests through a proxy are skipped")

const EVENTS = readFileSync(new URL("../fixtures/anthropic-text.sse", import.meta.url), "utf8")

describe.skipIf(!tinyproxy || !openssl)("through tinyproxy", () => {
  let proxyPort = 0
  let proxyLog = ""
  let stopProxy = () => {}
  /** What each provider saw: the request line's target and whether a proxy credential reached it. */
  const seen: { url: string; proxyAuthorization: string | null }[] = []
  const answer = (request: Request) => {
    seen.push({ url: request.url, proxyAuthorization: request.headers.get("proxy-authorization") })
    // `/long`: 16 MiB, in many writes.
    if (!request.url.endsWith("/long")) return new Response(EVENTS, { headers: { "content-type": "text/event-stream" } })
    let left = 256
    const piece = "x".repeat(64 * 1024)
    return new Response(new ReadableStream<string>({ pull: (controller) => (left-- ? controller.enqueue(piece) : controller.close()) }))
  }
  const serveTls = () =>
    Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: Bun.file(join(dir, "localhost.pem")), key: Bun.file(join(dir, "localhost.key")) },
      fetch: answer,
    })
  const tlsProvider = serveTls()
  const plainProvider = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: answer })
  const ca = readFileSync(join(dir, "localhost.pem"), "utf8")
  const proxyUrl = (credentials = "sidechat:s3cret") => new URL(`http://${credentials ? `${credentials}@` : ""}127.0.0.1:${proxyPort}`)

  beforeAll(async () => {
    for (let attempt = 0; attempt < 5 && !proxyPort; attempt++) {
      const port = 20_000 + Math.floor(Math.random() * 20_000)
      writeFileSync(
        join(dir, "tinyproxy.conf"),
        `Port ${port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 50\nAllow 127.0.0.1\nBasicAuth sidechat s3cret\nLogLevel Connect\n`,
      )
      const child = Bun.spawn([tinyproxy as string, "-d", "-c", join(dir, "tinyproxy.conf")], { stdout: "pipe", stderr: "pipe" })
      for (const stream of [child.stdout, child.stderr])
        void (async () => {
          for await (const bytes of stream) proxyLog += new TextDecoder().decode(bytes)
        })()
      for (let wait = 0; wait < 100 && child.exitCode === null; wait++) {
        const up = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).then(
          (socket) => (socket.end(), true),
          () => false,
        )
        if (up) {
          proxyPort = port
          stopProxy = () => child.kill()
          break
        }
        await Bun.sleep(50)
      }
      if (!proxyPort) child.kill()
    }
    if (!proxyPort) throw new Error(`tinyproxy did not start:\n${proxyLog}`)
  })
  afterAll(() => {
    stopProxy()
    tlsProvider.stop(true)
    plainProvider.stop(true)
  })

  const post = (url: string, proxy: URL, extra: { ca?: string; noProxy?: string[] } = {}) =>
    upstreamFetch(
      url,
      { method: "POST", body: "{}", headers: { "content-type": "application/json" } },
      { stallMs: 5000, ...(extra.ca && { ca: extra.ca }), proxy: { https: proxy, http: proxy, noProxy: extra.noProxy ?? [] } },
    )

  test("an https:// provider is reached through a CONNECT tunnel, which the next request reuses", async () => {
    const url = `https://localhost:${tlsProvider.port}/v1/messages`
    const before = seen.length
    const first = await post(url, proxyUrl(), { ca })
    expect(first.status).toBe(200)
    expect(await first.text()).toBe(EVENTS)
    expect(await (await post(url, proxyUrl(), { ca })).text()).toBe(EVENTS)
    // Two requests, one tunnel; the proxy's credentials stayed with the proxy.
    expect(proxyLog.split(`CONNECT localhost:${tlsProvider.port} `).length - 1).toBe(1)
    expect(seen.slice(before)).toEqual([
      { url, proxyAuthorization: null },
      { url, proxyAuthorization: null },
    ])
  })

  test("the provider's certificate is checked inside the tunnel as on a direct connection", async () => {
    // A provider of its own: no tunnel to it is pooled yet, so this one's handshake decides.
    const other = serveTls()
    try {
      const untrusted = await post(`https://localhost:${other.port}/v1/messages`, proxyUrl()).catch((error) => error)
      expect(String(untrusted)).toContain("certificate")
      expect(await (await post(`https://localhost:${other.port}/v1/messages`, proxyUrl(), { ca })).text()).toBe(EVENTS)
    } finally {
      other.stop(true)
    }
  })

  test("a proxy that refuses the tunnel, or cannot be reached, fails the request and says which and why", async () => {
    const refused = await post(`https://localhost:${tlsProvider.port}/v1/messages`, proxyUrl("sidechat:wrong"), { ca }).catch(
      (error) => error,
    )
    expect(String(refused)).toMatch(
      new RegExp(`the proxy 127\\.0\\.0\\.1:${proxyPort} refused a tunnel to localhost:${tlsProvider.port}: 40[17]`),
    )
    expect(String(refused)).not.toContain("wrong")
    const gone = await post(`https://localhost:${tlsProvider.port}/v1/messages`, new URL("http://127.0.0.1:1"), { ca }).catch(
      (error) => error,
    )
    expect(String(gone)).toContain("could not connect to the proxy 127.0.0.1:1")
  })

  test("a tunnel keeps nothing of what it carried", async () => {
    const url = `https://localhost:${tlsProvider.port}/long`
    const heap = () => {
      Bun.gc(true)
      return process.memoryUsage().heapUsed
    }
    expect((await (await post(url, proxyUrl(), { ca })).text()).length).toBe(16 * 1024 * 1024)
    const before = heap()
    const body = await (await post(url, proxyUrl(), { ca })).text()
    expect(body.length).toBe(16 * 1024 * 1024)
    // The tunnel is pooled, alive; 16 MiB went through it (more than 16 MiB kept, were it kept).
    expect(heap() - before).toBeLessThan(8 * 1024 * 1024)
  })

  test("an abort closes a tunnel the proxy never answers", async () => {
    let closed = 0
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {}, close: () => void closed++ } })
    try {
      const controller = new AbortController()
      const proxy = { https: new URL(`http://127.0.0.1:${silent.port}`), noProxy: [] }
      const pending = upstreamFetch(
        `https://localhost:${tlsProvider.port}/v1/messages`,
        { method: "POST", body: "{}", signal: controller.signal },
        { stallMs: 5000, ca, proxy },
      )
      await Bun.sleep(50)
      controller.abort()
      expect(String(await pending.catch((error) => error))).toContain("AbortError")
      for (let wait = 0; wait < 100 && !closed; wait++) await Bun.sleep(10)
      expect(closed).toBe(1)
    } finally {
      silent.stop(true)
    }
  })

  test("an http:// provider is asked in absolute form through the proxy", async () => {
    const url = `http://127.0.0.1:${plainProvider.port}/v1/chat/completions`
    const response = await post(url, proxyUrl())
    expect(await response.text()).toBe(EVENTS)
    expect(proxyLog).toContain(`POST ${url} HTTP/1.1`)
    expect(seen.at(-1)).toEqual({ url, proxyAuthorization: null })
    // The proxy's 407 is its own refusal, not the provider's answer.
    const refused = await upstreamFetch(
      url,
      { method: "POST", body: "{}" },
      { stallMs: 5000, proxy: { http: proxyUrl(""), noProxy: [] } },
    ).catch((error) => error)
    expect(String(refused)).toContain(`the proxy 127.0.0.1:${proxyPort} refused a request to 127.0.0.1:${plainProvider.port}: 407`)
  })

  test("a host NO_PROXY names is reached directly, even when the proxy is down", async () => {
    const dead = new URL("http://127.0.0.1:1")
    const response = await post(`https://localhost:${tlsProvider.port}/v1/direct`, dead, { ca, noProxy: ["localhost"] })
    expect(await response.text()).toBe(EVENTS)
  })

  test("sidechat started with HTTPS_PROXY streams through it, and logs why when the proxy refuses", async () => {
    const start = (credentials: string) =>
      spawnSidechat({
        ANTHROPIC_API_KEY: "sk-ant-test-0000000000000000",
        ANTHROPIC_BASE_URL: `https://localhost:${tlsProvider.port}`,
        HTTPS_PROXY: proxyUrl(credentials).href,
        NO_PROXY: "example.internal",
        NODE_EXTRA_CA_CERTS: join(dir, "localhost.pem"),
        PROVIDER_MAX_RETRIES: "0",
      })
    const chat = (url: string) =>
      fetch(`${url}/chat`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ messages: [{ role: "user", content: "hi" }] }),
      }).then((response) => response.text())
    const tunnels = () => proxyLog.split(`CONNECT localhost:${tlsProvider.port} `).length - 1
    const before = tunnels()
    const sidechat = await start("sidechat:s3cret")
    try {
      const text = await chat(sidechat.url)
      expect(text).toContain("naïve café")
      expect(tunnels()).toBe(before + 1)
      const banner = sidechat.stdout.find((line) => line.includes("egress proxy")) ?? ""
      expect(banner).toContain(`https:// via http://sidechat:***@127.0.0.1:${proxyPort}, except NO_PROXY example.internal`)
      expect(sidechat.stdout.join("\n")).not.toContain("s3cret")
    } finally {
      await sidechat.stop()
    }
    const refused = await start("sidechat:wrong")
    try {
      expect(await chat(refused.url)).toContain("provider_unreachable")
      expect(refused.requests().at(-1)).toMatchObject({
        code: "provider_unreachable",
        reason: expect.stringMatching(/^the proxy 127\.0\.0\.1:\d+ refused a tunnel to localhost:\d+: 40[17]/),
      })
    } finally {
      await refused.stop()
    }
  })
})

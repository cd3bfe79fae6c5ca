// The transport alone, against providers on 127.0.0.1 that write exact bytes: HTTP/1.1 framing
// (sliced at any byte), connection reuse, failures, aborts, backpressure and TLS verification.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { spawnSync } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { chunk, eventStreamHead, type RawProvider, startRawProvider } from "../fixtures/raw-provider"
import { rawBody, UpstreamClosedError, UpstreamStalledError, upstreamFetch } from "./transport"

let raw: RawProvider
beforeAll(async () => {
  raw = await startRawProvider()
})
afterAll(() => raw.stop())

const post = (path = "/v1/messages", init: RequestInit = {}) =>
  upstreamFetch(`${raw.url}${path}`, { method: "POST", body: '{"hi":1}', headers: { "content-type": "application/json" }, ...init })

/**
 * Reads a raw body to its end as the hot path does, releasing each read once it is decoded: the
 * text, how many reads it took, and how many released chunks still held bytes (their memory kept).
 */
async function readAll(response: Response) {
  const body = rawBody(response)
  if (!body) throw new Error("no raw body")
  const decoder = new TextDecoder()
  let text = ""
  let reads = 0
  let kept = 0
  for (let chunks = await body.read(); chunks; chunks = await body.read()) {
    reads++
    for (const bytes of chunks) text += decoder.decode(bytes, { stream: true })
    body.release(chunks)
    kept += chunks.filter((bytes) => bytes.byteLength > 0).length
  }
  return { text, reads, kept }
}

/** Writes `text` in slices of `size` bytes, each its own TCP segment. */
async function writeSliced(socket: import("node:net").Socket, text: string, size: number) {
  socket.setNoDelay(true)
  const bytes = Buffer.from(text)
  for (let at = 0; at < bytes.byteLength; at += size) {
    socket.write(bytes.subarray(at, at + size))
    await Bun.sleep(1)
  }
}

const EVENTS = 'data: {"a":"Grüße 東京 👋🏽"}\n\ndata: {"b":2}\n\n'

describe("framing", () => {
  for (const size of [1, 7]) {
    for (const framing of ["chunked", "length", "close"] as const) {
      test(`a ${framing} body written ${size} byte(s) at a time arrives whole`, async () => {
        const body = framing === "chunked" ? chunk(EVENTS.slice(0, 20)) + chunk(EVENTS.slice(20)) + "0\r\n\r\n" : EVENTS
        const head = eventStreamHead(framing === "length" ? { length: Buffer.byteLength(EVENTS) } : framing)
        raw.respond((socket) => {
          void writeSliced(socket, head + body, size).then(() => framing === "close" && socket.end())
        })
        const response = await post()
        expect(response.status).toBe(200)
        expect(response.headers.get("content-type")).toBe("text/event-stream")
        // Each read is freed once decoded, and what arrives after it is still whole.
        expect(await readAll(response)).toMatchObject({ text: EVENTS, kept: 0 })
      })
    }
  }

  test("chunk extensions, trailers and a 100 Continue ahead of the answer are read past", async () => {
    raw.respond((socket) =>
      socket.write(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" +
          "5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: 1\r\n\r\n",
      ),
    )
    // One network read held the head and the body: releasing the body frees that read.
    expect(await readAll(await post())).toMatchObject({ text: "hello world", kept: 0 })
  })

  test("chunk sizes in either case, with leading zeros, spaces, extensions or bare LFs, read as the grammar says", async () => {
    const sized = (size: string, data: string, end = "\r\n") => `${size}${end}${data}${end}`
    const pieces = [
      sized("A", "0123456789"),
      sized("1a", "abcdefghijklmnopqrstuvwxyz"),
      sized("10", "0123456789abcdef"),
      sized("00000B;x=1", "hello world"),
      sized("3 ;y", "abc"),
      sized("2", "de", "\n"),
    ]
    const body = `${pieces.join("")}0\r\n\r\n`
    raw.respond((socket) => socket.write(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${body}`))
    expect((await readAll(await post())).text).toBe("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefhello worldabcde")
    // Nine digits, or data not followed by its line end, are malformed; what came before still arrives.
    // So are extensions past the line limit, whether or not the line arrives in one read.
    for (const bad of ["000000001\r\nx\r\n0\r\n\r\n", "1\r\nxy\r\n0\r\n\r\n", `1;${"e".repeat(5000)}\r\nx\r\n0\r\n\r\n`]) {
      raw.respond((socket) => socket.write(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${chunk("ok")}${bad}`))
      const body = rawBody(await post())
      expect(new TextDecoder().decode((await body?.read())?.[0])).toBe("ok")
      expect(await body?.read().catch((caught) => caught)).toBeInstanceOf(UpstreamClosedError)
    }
  })

  test("release frees the transport's own reads and nothing else", async () => {
    raw.respond((socket) => socket.write(`${eventStreamHead("chunked")}${chunk("hello")}0\r\n\r\n`))
    const body = rawBody(await post())
    const chunks = (await body?.read()) ?? []
    expect(new TextDecoder().decode(chunks[0])).toBe("hello")
    const foreign = new Uint8Array(16)
    body?.release([...chunks, foreign])
    expect(chunks.map((bytes) => bytes.byteLength)).toEqual(chunks.map(() => 0))
    expect(foreign.byteLength).toBe(16)
  })

  test("an error status is read whole, for the SDK to build its error from", async () => {
    const body = JSON.stringify({ type: "error", error: { type: "rate_limit_error", message: "slow down" } })
    raw.respond((socket) =>
      socket.write(`HTTP/1.1 429 Too Many Requests\r\nretry-after: 3\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`),
    )
    const response = await post()
    expect([response.status, response.statusText, response.headers.get("retry-after")]).toEqual([429, "Too Many Requests", "3"])
    expect(rawBody(response)).toBeUndefined()
    expect(await response.json()).toEqual(JSON.parse(body))
  })

  test("the request as sent: method, path and query, host, length, the caller's headers, no compression", async () => {
    const sent = new Promise<string>((resolve) => {
      const server = Bun.listen({
        hostname: "127.0.0.1",
        port: 0,
        socket: {
          data(socket, bytes) {
            resolve(new TextDecoder().decode(bytes))
            socket.end("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            server.stop()
          },
        },
      })
      const headers = { "x-api-key": "k", "accept-encoding": "gzip, br" }
      void upstreamFetch(`http://127.0.0.1:${server.port}/v1/messages?beta=true`, { method: "POST", body: "{}", headers })
    })
    const request = await sent
    expect(request).toStartWith("POST /v1/messages?beta=true HTTP/1.1\r\nhost: 127.0.0.1:")
    expect(request).toContain("\r\nx-api-key: k\r\n")
    expect(request).toContain("\r\ncontent-length: 2\r\n")
    expect(request).toContain("\r\naccept-encoding: identity\r\n")
    expect(request).not.toContain("gzip")
    expect(request).toEndWith("\r\n\r\n{}")
  })
})

describe("connections", () => {
  test("a finished response's connection serves the next request; a close-delimited one does not", async () => {
    raw.respond((socket) => socket.write(`${eventStreamHead("chunked")}${chunk("x")}0\r\n\r\n`))
    const before = raw.connections()
    for (let i = 0; i < 3; i++) expect((await readAll(await post())).text).toBe("x")
    expect(raw.connections() - before).toBeLessThanOrEqual(1)
    raw.respond((socket) => socket.end(`${eventStreamHead("close")}y`))
    const middle = raw.connections()
    for (let i = 0; i < 2; i++) expect((await readAll(await post())).text).toBe("y")
    expect(raw.connections() - middle).toBeGreaterThanOrEqual(1)
  })

  test("a pooled connection the provider closed is replaced without the caller noticing", async () => {
    raw.respond((socket, request) => {
      socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
      // The provider drops every connection right after its first answer, as an idle timeout would.
      if (request.onConnection === 1) setTimeout(() => socket.destroy(), 5)
    })
    expect(await (await post()).text()).toBe("ok")
    await Bun.sleep(30)
    expect(await (await post()).text()).toBe("ok")
  })

  test("a reset mid-body ends the body with UpstreamClosedError after the bytes before it", async () => {
    raw.respond((socket) => {
      socket.write(eventStreamHead("chunked") + chunk("before "))
      setTimeout(() => socket.resetAndDestroy(), 20)
    })
    const body = rawBody(await post())
    expect(body).toBeDefined()
    const first = await body?.read()
    expect(new TextDecoder().decode(first?.[0])).toBe("before ")
    const error = await body?.read().catch((caught) => caught)
    expect(error).toBeInstanceOf(UpstreamClosedError)
  })

  test("a reset ends a close-delimited body as a failure, not as its end", async () => {
    raw.respond((socket) => {
      socket.write(`${eventStreamHead("close")}partial-`)
      setTimeout(() => socket.resetAndDestroy(), 20)
    })
    const body = rawBody(await post())
    expect(new TextDecoder().decode((await body?.read())?.[0])).toBe("partial-")
    expect(await body?.read().catch((caught) => caught)).toBeInstanceOf(UpstreamClosedError)
  })

  test("a body finished while its reader was behind leaves a socket that serves the next request", async () => {
    const big = "a".repeat(100 * 1024)
    raw.respond((socket, request) =>
      socket.write(
        request.onConnection === 1
          ? `HTTP/1.1 200 OK\r\ncontent-length: ${big.length}\r\n\r\n${big}`
          : "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
      ),
    )
    const behind = rawBody(await post())
    await Bun.sleep(100)
    const next = post().then((response) => response.text())
    expect(await Promise.race([next, Bun.sleep(2000).then(() => "no answer within 2 s")])).toBe("ok")
    behind?.cancel()
  })

  test("malformed chunk sizes and oversized heads are errors, not hangs; what came before still arrives", async () => {
    raw.respond((socket) => socket.write(`${eventStreamHead("chunked")}${chunk("hello ")}zz\r\nhello\r\n`))
    const body = rawBody(await post())
    expect(new TextDecoder().decode((await body?.read())?.[0])).toBe("hello ")
    expect(await body?.read().catch((caught) => caught)).toBeInstanceOf(UpstreamClosedError)
    raw.respond((socket) => socket.write(`HTTP/1.1 200 OK\r\nx-big: ${"a".repeat(70_000)}\r\n\r\n`))
    expect(await post().catch((caught) => caught)).toBeInstanceOf(UpstreamClosedError)
  })

  test("a connection refused rejects with its code", async () => {
    const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } })
    const port = server.port
    server.stop(true)
    const error = (await upstreamFetch(`http://127.0.0.1:${port}/`).catch((caught) => caught)) as NodeJS.ErrnoException
    expect(error.code).toBe("ECONNREFUSED")
  })

  test("an abort before the head, or while the body streams, closes the provider's connection", async () => {
    raw.respond(() => {})
    const controller = new AbortController()
    const open = raw.open()
    const pending = post("/v1/messages", { signal: controller.signal })
    await Bun.sleep(20)
    controller.abort()
    expect(((await pending.catch((caught) => caught)) as Error).name).toBe("AbortError")
    raw.respond((socket) => socket.write(eventStreamHead("chunked") + chunk("a")))
    const streaming = new AbortController()
    const body = rawBody(await post("/v1/messages", { signal: streaming.signal }))
    expect((await body?.read())?.length).toBe(1)
    const next = body?.read().catch((caught) => caught)
    streaming.abort()
    expect(((await next) as Error).name).toBe("AbortError")
    for (let i = 0; i < 50 && raw.open() > open; i++) await Bun.sleep(10)
    expect(raw.open()).toBe(open)
  })

  test("an abort while a pooled connection is being taken still aborts", async () => {
    raw.respond((socket) => socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"))
    expect(await (await post()).text()).toBe("ok")
    const controller = new AbortController()
    const pending = post("/v1/messages", { signal: controller.signal })
    controller.abort()
    expect(((await pending.catch((caught) => caught)) as Error).name).toBe("AbortError")
  })

  test("a provider silent for the stall limit ends the body with UpstreamStalledError", async () => {
    raw.respond((socket) => socket.write(eventStreamHead("chunked") + chunk("a")))
    const response = await upstreamFetch(`${raw.url}/v1/messages`, { method: "POST", body: "{}" }, { stallMs: 100 })
    const body = rawBody(response)
    await body?.read()
    const started = performance.now()
    expect(await body?.read().catch((caught) => caught)).toBeInstanceOf(UpstreamStalledError)
    expect(performance.now() - started).toBeGreaterThanOrEqual(90)
  })

  test("a reader that falls behind pauses the socket, and still gets every byte in order", async () => {
    // The provider is its own process, so what it still holds back is not our event loop's doing.
    const piece = "0123456789abcdef".repeat(1024)
    const pieces = 2048
    const script = `
      const piece = "0123456789abcdef".repeat(1024)
      const server = require("node:net").createServer((socket) => {
        socket.write("HTTP/1.1 200 OK\\r\\ncontent-length: ${piece.length * pieces}\\r\\n\\r\\n")
        for (let i = 0; i < ${pieces}; i++) socket.write(piece)
        setTimeout(() => console.log("held " + socket.writableLength), 300)
      }).listen(0, "127.0.0.1", () => console.log("port " + server.address().port))`
    const child = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "inherit" })
    const lines = (async function* () {
      let text = ""
      for await (const bytes of child.stdout) {
        text += new TextDecoder().decode(bytes)
        for (let end = text.indexOf("\n"); end >= 0; end = text.indexOf("\n")) {
          yield text.slice(0, end)
          text = text.slice(end + 1)
        }
      }
    })()
    try {
      const port = (await lines.next()).value?.split(" ")[1]
      const body = rawBody(await upstreamFetch(`http://127.0.0.1:${port}/`, { method: "POST", body: "{}" }))
      // 32 MiB sent and nothing read for 300 ms: most of it must still wait on the provider's side.
      const held = Number((await lines.next()).value?.split(" ")[1])
      expect(held).toBeGreaterThan(16 * 1024 * 1024)
      let size = 0
      let bad = 0
      let first: number | undefined
      for (let chunks = await body?.read(); chunks; chunks = await body?.read()) {
        first ??= chunks.reduce((sum, bytes) => sum + bytes.byteLength, 0)
        for (const bytes of chunks) {
          for (let i = 0; i < bytes.byteLength; i += 997) if (bytes[i] !== piece.charCodeAt((size + i) % piece.length)) bad++
          size += bytes.byteLength
        }
      }
      expect([size, bad]).toEqual([piece.length * pieces, 0])
      // What waited for the reader is what arrived before the pause: about 64 KiB, not megabytes.
      expect(first).toBeLessThan(1024 * 1024)
    } finally {
      child.kill()
    }
  })
})

describe("TLS", () => {
  const dir = mkdtempSync(join(tmpdir(), "sidechat-tls-"))
  const made = (name: string) =>
    spawnSync(
      "openssl",
      [
        ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"],
        ...["-keyout", join(dir, `${name}.key`), "-out", join(dir, `${name}.pem`), "-subj", `/CN=${name}`],
        ...["-addext", `subjectAltName=DNS:${name}`],
      ],
      { stdio: "ignore" },
    ).status === 0
  const openssl = made("localhost") && made("other.invalid")
  if (!openssl) console.warn("transport.test.ts: openssl is missing, so the TLS tests are skipped")

  const serve = (name: string) =>
    Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: Bun.file(join(dir, `${name}.pem`)), key: Bun.file(join(dir, `${name}.key`)) },
      fetch: (request) => {
        // `/long`: many events in many writes, so the body spans many TLS records and reads.
        if (!request.url.endsWith("/long")) return new Response(EVENTS, { headers: { "content-type": "text/event-stream" } })
        let left = 400
        const body = new ReadableStream<string>({
          async pull(controller) {
            if (left-- === 0) return controller.close()
            controller.enqueue(EVENTS.repeat(20))
            if (left % 50 === 0) await Bun.sleep(1)
          },
        })
        return new Response(body, { headers: { "content-type": "text/event-stream" } })
      },
    })

  test.skipIf(!openssl)("a provider whose certificate is trusted streams over TLS", async () => {
    const server = serve("localhost")
    try {
      const ca = await Bun.file(join(dir, "localhost.pem")).text()
      const response = await upstreamFetch(
        `https://localhost:${server.port}/v1/messages`,
        { method: "POST", body: "{}" },
        { stallMs: 5000, ca },
      )
      expect((await readAll(response)).text).toBe(EVENTS)
      // A long body: every read is released once decoded, and what follows still arrives whole.
      const long = await readAll(
        await upstreamFetch(`https://localhost:${server.port}/long`, { method: "POST", body: "{}" }, { stallMs: 5000, ca }),
      )
      expect(long.reads).toBeGreaterThan(5)
      expect(long).toMatchObject({ text: EVENTS.repeat(20 * 400), kept: 0 })
    } finally {
      server.stop(true)
    }
  })

  test.skipIf(!openssl)("an untrusted certificate, or one for another name, is refused before a byte is sent", async () => {
    const server = serve("other.invalid")
    try {
      const url = `https://localhost:${server.port}/v1/messages`
      const untrusted = await upstreamFetch(url, { method: "POST", body: "{}" }).catch((caught) => caught)
      expect(String(untrusted)).toContain("certificate")
      const ca = await Bun.file(join(dir, "other.invalid.pem")).text()
      const misnamed = await upstreamFetch(url, { method: "POST", body: "{}" }, { stallMs: 5000, ca }).catch((caught) => caught)
      expect(misnamed).toBeInstanceOf(Error)
      expect(misnamed).not.toBeInstanceOf(Response)
    } finally {
      server.stop(true)
    }
  })
})

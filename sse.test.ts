import { describe, expect, test } from "bun:test"
import net from "node:net"
import { streamResponse } from "./sse"

/** Frames that never come: a provider that has gone quiet. */
async function* quiet(): AsyncGenerator<string> {
  await new Promise(() => {})
}

const options = { headers: {}, trailer: "", fail: () => "", heartbeat: "hb\n", heartbeatMs: 80 }

/** Reads a body until `count` heartbeats have arrived. */
async function heartbeats(reader: ReadableStreamDefaultReader<Uint8Array>, count: number) {
  let text = ""
  while (text.split("hb\n").length - 1 < count) {
    const { done, value } = await reader.read()
    if (done) throw new Error(`the stream ended after: ${text}`)
    text += new TextDecoder().decode(value)
  }
  return text
}

describe("heartbeats", () => {
  test("every quiet stream gets its own, and one stream ending does not stop another's", async () => {
    const first = (streamResponse(quiet(), options).body as ReadableStream<Uint8Array>).getReader()
    const second = (streamResponse(quiet(), options).body as ReadableStream<Uint8Array>).getReader()
    expect(await heartbeats(first, 1)).toBe("hb\n")
    expect(await heartbeats(second, 1)).toBe("hb\n")
    await first.cancel()
    expect(await heartbeats(second, 2)).toBe("hb\nhb\n")
    await second.cancel()
    // A stream opened after all the others ended starts the beat again.
    const third = (streamResponse(quiet(), options).body as ReadableStream<Uint8Array>).getReader()
    expect(await heartbeats(third, 1)).toBe("hb\n")
    await third.cancel()
  })

  test("a stream that writes is not sent heartbeats", async () => {
    async function* steady(): AsyncGenerator<string> {
      for (let i = 0; i < 8; i++) {
        yield `f${i}\n`
        await Bun.sleep(20)
      }
    }
    const text = await new Response(streamResponse(steady(), { ...options, heartbeatMs: 400 }).body).text()
    expect(text).toBe("f0\nf1\nf2\nf3\nf4\nf5\nf6\nf7\n")
  })
})

describe("a client that reads slowly", () => {
  test("holds the source back, then gets every frame in order and the trailer last", async () => {
    const FRAME = 64 * 1024
    const COUNT = 400
    let produced = 0
    let ended: string | undefined
    let cleaned = false
    async function* frames(): AsyncGenerator<string> {
      try {
        for (let i = 0; i < COUNT; i++) {
          produced++
          const head = `#${String(i).padStart(4, "0")}:`
          yield `${head}${"x".repeat(FRAME - head.length - 1)}\n`
          if (i % 8 === 0) await Bun.sleep(0)
        }
      } finally {
        cleaned = true
      }
    }
    const server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: (request) =>
        streamResponse(frames(), {
          ...options,
          trailer: "END\n",
          heartbeatMs: 60_000,
          signal: request.signal,
          onClose: (end) => (ended = end),
        }),
    })
    const received: Buffer[] = []
    const socket = net.connect(server.port as number, "127.0.0.1", () =>
      socket.write("GET / HTTP/1.1\r\nhost: sidechat\r\nconnection: close\r\n\r\n"),
    )
    socket.on("data", (data: Buffer) => received.push(data))
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()))
    await Bun.sleep(30)
    socket.pause()
    await Bun.sleep(500)
    // 25 MiB in all; held back while the client reads nothing (socket buffers hold a few MiB).
    expect(produced).toBeLessThan(COUNT / 2)
    socket.resume()
    await closed
    server.stop(true)
    const raw = Buffer.concat(received).toString()
    let body = ""
    // The chunked body, unframed.
    for (let at = raw.indexOf("\r\n\r\n") + 4; ; ) {
      const newline = raw.indexOf("\r\n", at)
      const size = Number.parseInt(raw.slice(at, newline), 16)
      if (!size) break
      body += raw.slice(newline + 2, newline + 2 + size)
      at = newline + 2 + size + 2
    }
    const lines = body.split("\n")
    expect(lines.length).toBe(COUNT + 2)
    for (let i = 0; i < COUNT; i++) expect(lines[i]?.slice(0, 6)).toBe(`#${String(i).padStart(4, "0")}:`)
    expect(lines[COUNT]).toBe("END")
    expect(ended).toBe("complete")
    expect(cleaned).toBe(true)
  })
})

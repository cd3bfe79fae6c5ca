import { describe, expect, test } from "bun:test"
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

import { anthropicConverter, openaiConverter } from "../converter"
import { anthropicBatches, contentDeltaReader, openaiBatches, plainContentDelta, plainTextDelta } from "./raw"
import { describe, expect, test } from "bun:test"
import { errorPart } from "./errors"
import { createEventParser } from "./events"
import { loadAnthropic, loadOpenAI } from "./sdks"
import { UpstreamClosedError } from "./transport"

const encoder = new TextEncoder()
type SseEvent = { event?: string; data: string }

/** The events one read completes, with their data copied out. */
function push(parser: ReturnType<typeof createEventParser>, bytes: Uint8Array): SseEvent[] {
  const events: SseEvent[] = []
  parser.push(bytes, (event, text, start, end) => {
    const data = text.slice(start, end)
    events.push(event === undefined ? { data } : { event, data })
  })
  return events
}

/** Feeds `text` in reads of `size` bytes (splitting lines, CRLF pairs and UTF-8 sequences). */
function parse(text: string, size = Number.POSITIVE_INFINITY): SseEvent[] {
  const bytes = encoder.encode(text)
  const parser = createEventParser()
  const events: SseEvent[] = []
  const step = Number.isFinite(size) ? size : bytes.length
  for (let at = 0; at < bytes.length; at += step) events.push(...push(parser, bytes.subarray(at, at + step)))
  return events
}

const STREAM = 'event: a\ndata: {"x":"é👋🏽"}\n\n: a comment\n\ndata: one\ndata: two\n\nevent: b\ndata:nospace\nid: 7\nretry: 10\n\n'
const EXPECTED: SseEvent[] = [{ event: "a", data: '{"x":"é👋🏽"}' }, { data: "one\ntwo" }, { event: "b", data: "nospace" }]

describe("the event-stream parser", () => {
  test.each([Number.POSITIVE_INFINITY, 1, 2, 3, 7])("gives the same events whatever the read size (%p)", (size) => {
    expect(parse(STREAM, size)).toEqual(EXPECTED)
  })

  test.each([1, 2, 5])("CRLF and lone CR end lines too, even split across reads (%p)", (size) => {
    expect(parse(STREAM.replaceAll("\n", "\r\n"), size)).toEqual(EXPECTED)
    expect(parse(STREAM.replaceAll("\n", "\r"), size)).toEqual(EXPECTED)
  })

  test.each([Number.POSITIVE_INFINITY, 1, 3])("event names that repeat, change, or extend one another come out as sent (%p)", (size) => {
    const names = ["delta", "delta", "delts", "delta_2", "delt", "delta", "", "delta"]
    const stream = names.map((name, i) => `event: ${name}\ndata: ${i}\n\n`).join("")
    expect(parse(stream, size)).toEqual(names.map((event, i) => ({ event, data: String(i) })))
  })

  test("random streams give the same events in random reads as in one", () => {
    const pieces = ["data: ", "data:", "data", "event: ", "event:", ": c", "id: 1", "x", "é", "👋", '{"a":1}', "", " ", "[DONE]"]
    const ends = ["\n", "\n", "\n", "\r\n", "\r"]
    let seed = 11
    const random = (below: number) => (seed = (seed * 48271) % 2147483647) % below
    for (let round = 0; round < 3000; round++) {
      let stream = ""
      for (let lines = 1 + random(14); lines > 0; lines--) {
        for (let count = random(4); count > 0; count--) stream += pieces[random(pieces.length)]
        stream += ends[random(ends.length)]
      }
      const bytes = encoder.encode(stream)
      const parser = createEventParser()
      const events: SseEvent[] = []
      const most = [3, 9, 40][round % 3] as number
      for (let at = 0, size = 1; at < bytes.length; at += size, size = 1 + random(most))
        events.push(...push(parser, bytes.subarray(at, at + size)))
      expect(events).toEqual(parse(stream))
    }
  })

  test("an event without its blank line at the end is dropped, as the SDKs drop it", () => {
    expect(parse("data: done\n\ndata: cut")).toEqual([{ data: "done" }])
  })

  test("a blank line with no data dispatches nothing; an empty data line is an empty event", () => {
    expect(parse("event: x\n\ndata:\n\n")).toEqual([{ data: "" }])
  })

  test("a line that never ends is refused past its limit instead of growing memory", () => {
    const parser = createEventParser()
    const chunk = encoder.encode("x".repeat(1024 * 1024))
    expect(() => {
      for (let i = 0; i < 5; i++) push(parser, chunk)
    }).toThrow(SyntaxError)
  })

  test("UTF-8 cut between reads, valid or not, decodes as the whole body would", () => {
    // Valid sequences of every length, and broken ones: a stray continuation, a cut-short lead, an invalid lead.
    const pieces = [[0x61], [0xc3, 0xa9], [0xe2, 0x82, 0xac], [0xf0, 0x9f, 0x91, 0x8b], [0x80], [0xe2, 0x82], [0xff], [0xf0, 0x80, 0x80]]
    let seed = 7
    const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647
    for (let round = 0; round < 50; round++) {
      const content = Array.from({ length: 12 }, () => pieces[Math.floor(random() * pieces.length)] as number[]).flat()
      const bytes = new Uint8Array([...encoder.encode("data: "), ...content, 10, 10])
      const whole = new TextDecoder().decode(new Uint8Array(content))
      for (const size of [1, 2, 3, 4, 5]) {
        const parser = createEventParser()
        const events: SseEvent[] = []
        for (let at = 0; at < bytes.length; at += size) events.push(...push(parser, bytes.subarray(at, at + size)))
        expect(events).toEqual([{ data: whole }])
      }
    }
  })

  test("a CR that ends one read still pairs with an LF after an empty read", () => {
    const parser = createEventParser()
    const events = [
      ...push(parser, encoder.encode("data: a\r")),
      ...push(parser, new Uint8Array()),
      ...push(parser, encoder.encode("\ndata: b\n\n")),
    ]
    expect(events).toEqual([{ data: "a\nb" }])
  })
})

describe("plainTextDelta: the text-delta shortcut agrees with the full parse or steps aside", () => {
  const full = (data: string) => {
    const parts = anthropicConverter().step(JSON.parse(data))
    return parts.flatMap((part) => (part.type === "text" ? [part.delta] : [])).join("")
  }
  const delta = (literal: string, index = "0") =>
    `{"type":"content_block_delta","index":${index},"delta":{"type":"text_delta","text":${literal}}}`

  test("every string literal in the exact shape gives the parsed text", () => {
    for (const literal of ['"Hello"', '""', '"a\\"}}"', '"\\u00e9\\ud83d\\udc4b\\n\\t\\\\"', '"東京 👋🏽"', '"}},\\"x\\":1"']) {
      const data = delta(literal, "12")
      expect(plainTextDelta(data)).toBe(full(data))
    }
  })

  test("anything else takes the full path", () => {
    const others = [
      delta("1"),
      delta("null"),
      delta('"a","extra":"b"'),
      delta('"a"', ""),
      delta('"a"', "-1"),
      delta('"unterminated'),
      delta('"raw\ttab"'),
      delta('"in"side"'),
      delta('"'),
      '{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}',
      '{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "spaced"}}',
      '{"index":0,"type":"content_block_delta","delta":{"type":"text_delta","text":"reordered"}}',
    ]
    for (const data of others) expect(plainTextDelta(data)).toBeUndefined()
  })

  test("read in place, inside a longer read, it answers as it does for the event alone", () => {
    const datas = [
      delta('"Hello"', "3"),
      delta('""'),
      delta('"a\\"}}"'),
      delta('"东京"'),
      delta('"unterminated'),
      delta("1"),
      '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"',
      '{"type":"content_block_delta","index":',
      "",
    ]
    for (const data of datas) {
      const alone = plainTextDelta(data)
      // What follows the event in the read could complete a pattern that the event alone does not.
      for (const after of ["", "\n\n", '"}}\n\n', `0,"delta":{"type":"text_delta","text":"x"}}\n\n`]) {
        const read = `event: content_block_delta\ndata: ${data}${after}`
        const start = read.indexOf("data: ") + 6
        expect(plainTextDelta(read, start, start + data.length)).toBe(alone)
      }
    }
  })
})

describe("plainContentDelta: the OpenAI content shortcut agrees with the full parse or steps aside", () => {
  const head = '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732000000,"model":"gpt-4o-mini","system_fingerprint":"fp_1"'
  const chunk = (literal: string, choiceTail = ',"logprobs":null,"finish_reason":null', tail = ',"usage":null') =>
    `${head},"choices":[{"index":0,"delta":{"content":${literal}}${choiceTail}}]${tail}}`
  /** A converter past its first chunk, optionally inside reasoning. */
  const started = (reasoning: boolean) => {
    const converter = openaiConverter()
    converter.step(JSON.parse(chunk('""', "", "")))
    if (reasoning) converter.step(JSON.parse(`${head},"choices":[{"index":0,"delta":{"reasoning_content":"hm"},"finish_reason":null}]}`))
    return converter
  }

  test.each([false, true])("every accepted chunk gives the parts the full step gives (inside reasoning: %p)", (reasoning) => {
    const accepted = [
      chunk('"Hello"'),
      chunk('""'),
      chunk('"a\\"}]"'),
      chunk('"\\u00e9\\ud83d\\udc4b\\n\\t\\\\"'),
      chunk('"東京 👋🏽"'),
      chunk('"x"', "", ""),
      chunk('"x"', ',"finish_reason":null', ',"usage":null,"obfuscation":"a1B2"'),
      chunk('"x"', ',"logprobs":null,"finish_reason":null', ',"service_tier":"default","n":-3'),
    ]
    for (const data of accepted) {
      const text = plainContentDelta(data)
      expect(text).toBeString()
      const out: unknown[] = []
      expect(started(reasoning).text(text as string, out as never)).toBe(true)
      expect(out).toEqual(started(reasoning).step(JSON.parse(data)))
    }
  })

  test("every plain content chunk of the OpenAI fixtures takes the shortcut, and agrees", async () => {
    type Chunk = { error?: unknown; usage?: unknown; choices?: { index: number; delta: object; finish_reason: unknown }[] }
    /** A chunk whose only effect is a content delta, judged from its parsed form. */
    const plain = ({ usage, choices }: Chunk) =>
      !usage &&
      choices?.length === 1 &&
      choices[0]?.index === 0 &&
      choices[0].finish_reason === null &&
      Object.keys(choices[0].delta).join() === "content" &&
      typeof (choices[0].delta as { content?: unknown }).content === "string"
    let taken = 0
    let expectedTaken = 0
    for (const name of ["openai-text", "openai-reasoning", "openai-length", "openai-tools-parallel", "openai-refusal", "openai-error"]) {
      const text = await Bun.file(new URL(`../fixtures/${name}.sse`, import.meta.url)).text()
      const events = parse(text).filter(({ data }) => data !== "[DONE]")
      const converter = openaiConverter()
      const shortcut = openaiConverter()
      for (const [index, { data }] of events.entries()) {
        const chunk = JSON.parse(data) as Chunk
        // An error chunk ends the stream (the decoder throws); the first one must start it.
        if (chunk.error) break
        if (plain(chunk) && index > 0) expectedTaken++
        const expected = converter.step(chunk as never)
        const content = plainContentDelta(data)
        const out: unknown[] = []
        if (content !== undefined && shortcut.text(content, out as never)) taken++
        else out.push(...shortcut.step(JSON.parse(data)))
        expect(out).toEqual(expected)
      }
    }
    expect(taken).toBe(expectedTaken)
    expect(taken).toBeGreaterThan(0)
  })

  test("a stream's reader, which remembers the last plain chunk's head and tail, answers as the full check does", () => {
    const stream = [
      chunk('"one"'),
      chunk('"two"'),
      chunk('"with \\"quote\\""'),
      chunk('"x\\"}],\\"usage\\":null}"'),
      chunk('"stop"', ',"logprobs":null,"finish_reason":"stop"'),
      chunk('"three"'),
      chunk('"a"', ',"logprobs":null,"finish_reason":null', ',"usage":{"prompt_tokens":1}'),
      chunk('"four"'),
      chunk('"ob"', ',"finish_reason":null', ',"obfuscation":"k2"'),
      chunk('"ob2"', ',"finish_reason":null', ',"obfuscation":"k3"'),
      chunk('"five"').replace('"id":"chatcmpl-1"', '"id":"chatcmpl-2"'),
      chunk('"tab\there"'),
      chunk('"six"').replace('"gpt-4o-mini"', '"gpt-4o-mini","x":{"y":1}'),
      chunk('"seven"'),
    ]
    const reader = contentDeltaReader()
    const answers = stream.map((data) => reader(data))
    expect(answers).toEqual(stream.map((data) => plainContentDelta(data)))
    expect(answers.filter((answer) => answer !== undefined)).toHaveLength(10)
    // Read in place, inside longer reads, it answers the same.
    const inPlace = contentDeltaReader()
    for (const [i, data] of stream.entries()) {
      const read = `data: ${stream[i - 1] ?? ""}\n\ndata: ${data}\n\ndata: ${chunk('"next"')}\n\n`
      const start = read.lastIndexOf(data)
      expect(inPlace(read, start, start + data.length)).toBe(answers[i])
      // Told to end right after the literal, it is no text, though the rest of the chunk follows in the read.
      const afterLiteral = data.indexOf('"}', data.indexOf('"content":"') + 11) + 1
      expect(inPlace(read, start, start + afterLiteral)).toBeUndefined()
    }
    // A fresh reader whose first chunk fails after a plain head: a truncated chunk then is no text.
    const fresh = contentDeltaReader()
    const cut = chunk('"cut"')
    expect(fresh(chunk('"x","refusal":null'))).toBeUndefined()
    expect(fresh(cut.slice(0, cut.indexOf('"cut"') + 5))).toBeUndefined()
  })

  test("anything else takes the full path", () => {
    const others = [
      chunk('"a"', ',"logprobs":null,"finish_reason":"stop"'),
      chunk('"a"', ',"logprobs":null,"finish_reason":null', ',"usage":{"prompt_tokens":1}'),
      chunk('"a"', ',"logprobs":null,"finish_reason":null', ',"error":"boom"'),
      chunk('"a"', ',"logprobs":null,"finish_reason":null', ',"usage":null,"x":"[bracket]"'),
      chunk('"a","refusal":null'),
      chunk('"a"', ',"logprobs":{"content":[]},"finish_reason":null'),
      chunk('"a"', ',"finish_reason":null},{"index":1,"delta":{"content":"b"},"finish_reason":null'),
      chunk("null"),
      chunk("1"),
      chunk('"unterminated'),
      chunk('"raw\ttab"'),
      chunk('"in"side"'),
      `{"error":{"message":"x"}${chunk('"a"').slice(head.length)}`,
      `{"id":"[odd]"${chunk('"a"').slice(head.length)}`,
      `{"choices":[{"index":0,"delta":{"content":"first"},"finish_reason":null}]}`,
      chunk('"a"').replace('"index":0', '"index":1'),
      chunk('"a"').replace('{"content":', '{"role":"assistant","content":'),
      chunk('"a"').replaceAll(":", ": "),
      // Malformed or odd server output the full path treats otherwise (an error, a throw, no parts).
      `{"id":"c","\\u0065rror":"boom"${chunk('"a"').slice(head.length)}`,
      `{id:"c"${chunk('"a"').slice(head.length)}`,
      chunk('"a"', ',"logprobs":null,"finish_reason":null', ',"choices":null'),
      chunk('"a"', ',"logprobs":null,"finish_reason":null', ',"choices":7'),
      chunk('"a"', ',"logprobs":null,"finish_reason":null', ',"usage":5'),
      chunk('"a"').replace('"created":1732000000', '"usage":"x"'),
      // Too long to be a token's chunk (and to check field by field): the full path.
      chunk(`"${"x".repeat(20_000)}"`),
    ]
    for (const data of others) expect(plainContentDelta(data)).toBeUndefined()
  })
})

describe("a provider response without a body", () => {
  test("ends the stream as interrupted, for both providers", async () => {
    const [Anthropic, OpenAI] = await Promise.all([loadAnthropic(), loadOpenAI()])
    for (const batches of [anthropicBatches(new Response(null), Anthropic), openaiBatches(new Response(null), OpenAI)]) {
      const thrown = await batches[Symbol.asyncIterator]()
        .next()
        .then(
          () => undefined,
          (error: unknown) => error,
        )
      expect(thrown).toBeInstanceOf(UpstreamClosedError)
      expect(errorPart(thrown, "Anthropic").code).toBe("stream_interrupted")
    }
  })
})

describe("the streaming path over the transport", () => {
  test("hands each network read back once it is decoded, and yields the same parts", async () => {
    const { eventStreamHead, startRawProvider } = await import("../fixtures/raw-provider")
    const { rawBody, upstreamFetch } = await import("./transport")
    const Anthropic = await loadAnthropic()
    const raw = await startRawProvider()
    const events = [
      { type: "message_start", message: { model: "m", usage: { input_tokens: 1, output_tokens: 0 } } },
      { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } },
      { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Grüße " } },
      { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "👋🏽" } },
      { type: "content_block_stop", index: 0 },
      { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: 2 } },
      { type: "message_stop" },
    ]
    const bytes = Buffer.from(events.map((event) => `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`).join(""))
    // Three network reads, cut inside an event and inside UTF-8 sequences (ü, then 👋).
    const cuts = [0, bytes.indexOf("Gr") + 3, bytes.indexOf("👋") + 2, bytes.byteLength]
    raw.respond(async (socket) => {
      socket.setNoDelay(true)
      socket.write(eventStreamHead("chunked"))
      for (let i = 1; i < cuts.length; i++) {
        await Bun.sleep(5)
        const piece = bytes.subarray(cuts[i - 1], cuts[i])
        socket.write(Buffer.concat([Buffer.from(`${piece.byteLength.toString(16)}\r\n`), piece, Buffer.from("\r\n")]))
      }
      socket.write("0\r\n\r\n")
    })
    try {
      const response = await upstreamFetch(`${raw.url}/v1/messages`, { method: "POST", body: "{}" })
      const body = rawBody(response)
      if (!body) throw new Error("no raw body")
      const released: Uint8Array[] = []
      const release = body.release
      body.release = (chunks) => {
        released.push(...chunks)
        release(chunks)
      }
      const parts = []
      for await (const batch of anthropicBatches(response, Anthropic)) parts.push(...batch)
      expect(parts.filter((part) => part.type === "text").map((part) => (part as { delta: string }).delta)).toEqual(["Grüße ", "👋🏽"])
      expect(parts.at(-1)?.type).toBe("finish")
      expect(released.length).toBeGreaterThanOrEqual(3)
      expect(released.every((bytes) => bytes.byteLength === 0)).toBe(true)
    } finally {
      raw.stop()
    }
  })
})

import { anthropicConverter } from "../converter"
import { plainTextDelta } from "./raw"
import { describe, expect, test } from "bun:test"
import { createEventParser, type SseEvent } from "./events"

const encoder = new TextEncoder()
/** Feeds `text` in reads of `size` bytes (splitting lines, CRLF pairs and UTF-8 sequences). */
function parse(text: string, size = Number.POSITIVE_INFINITY): SseEvent[] {
  const bytes = encoder.encode(text)
  const parser = createEventParser()
  const events: SseEvent[] = []
  const step = Number.isFinite(size) ? size : bytes.length
  for (let at = 0; at < bytes.length; at += step) events.push(...parser.push(bytes.subarray(at, at + step)))
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
      for (let i = 0; i < 5; i++) parser.push(chunk)
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
        for (let at = 0; at < bytes.length; at += size) events.push(...parser.push(bytes.subarray(at, at + size)))
        expect(events).toEqual([{ data: whole }])
      }
    }
  })

  test("a CR that ends one read still pairs with an LF after an empty read", () => {
    const parser = createEventParser()
    const events = [
      ...parser.push(encoder.encode("data: a\r")),
      ...parser.push(new Uint8Array()),
      ...parser.push(encoder.encode("\ndata: b\n\n")),
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
})

// Resumable runs held in memory: the log gives back exactly what was appended, from any offset and
// across its sealed blocks; the caps drop the oldest first and say so; a finished run lets go of its
// stream; the thread's answer is assembled right however its deltas arrive.
import { describe, expect, test } from "bun:test"
import { heapStats } from "bun:jsc"
import { createRunLog, type Logged } from "./log"
import { answerBuilder } from "./thread"
import { createRuns } from "./index"

const meta = { runId: "r", threadId: "t", capability: "c".repeat(16), owner: "o" }
const event = (seq: number) => JSON.stringify({ type: "TEXT_MESSAGE_CONTENT", delta: `w${seq}\n"é` })

/** Strings alive on the heap, after full collections. */
function strings(): number {
  // Twice: the second collection frees what the first one's finalizers let go of.
  Bun.gc(true)
  Bun.gc(true)
  return heapStats().objectTypeCounts.string ?? 0
}

/** Appends `count` events in batches of the given sizes, in turn. */
function fill(log: ReturnType<typeof createRunLog>, count: number, sizes = [1, 7, 64, 3, 130]) {
  for (let seq = 0, turn = 0; seq < count; turn++) {
    const size = Math.min(sizes[turn % sizes.length] as number, count - seq)
    log.append(Array.from({ length: size }, (_, i) => event(seq + i)))
    seq += size
  }
}

/** Everything a reader gets after `after` from a finished log. */
async function readAll(log: ReturnType<typeof createRunLog>, after: number): Promise<Logged[]> {
  const out: Logged[] = []
  for await (const batch of log.tail(after, new AbortController().signal)) out.push(...batch)
  return out
}

describe("a run's log", () => {
  test("gives back every event from any offset, within and across sealed blocks", async () => {
    const log = createRunLog(meta, 1 << 30)
    fill(log, 300)
    log.end()
    expect(log.nextSeq()).toBe(300)
    for (const after of [-1, 0, 62, 63, 64, 127, 200, 255, 256, 298, 299]) {
      const read = await readAll(log, after)
      expect(read.map(({ seq }) => seq)).toEqual(Array.from({ length: 299 - after }, (_, i) => after + 1 + i))
      expect(read.every(({ seq, json }) => json === event(seq))).toBe(true)
    }
  })

  test("a live reader gets each batch as it is appended, then the end", async () => {
    const log = createRunLog(meta, 1 << 30)
    const seen: number[] = []
    const reading = (async () => {
      for await (const batch of log.tail(-1, new AbortController().signal)) seen.push(...batch.map(({ seq }) => seq))
    })()
    for (let seq = 0; seq < 200; seq += 10) {
      log.append(Array.from({ length: 10 }, (_, i) => event(seq + i)))
      await Bun.sleep(0)
    }
    log.end()
    await reading
    expect(seen).toEqual(Array.from({ length: 200 }, (_, i) => i))
  })

  test("past its cap the oldest block goes; a reader behind it gets run_truncated, not a gap", async () => {
    const perEvent = event(0).length
    const log = createRunLog(meta, 150 * perEvent)
    fill(log, 400)
    log.end()
    // Whole blocks dropped: what is held starts on a block boundary, within the cap plus one open block.
    expect(log.firstSeq() % 64).toBe(0)
    expect(log.firstSeq()).toBeGreaterThan(0)
    expect(log.bytes()).toBeLessThanOrEqual(150 * perEvent + 64 * (perEvent + 1))
    expect(log.nextSeq()).toBe(400)
    const behind = await readAll(log, -1)
    expect(behind).toHaveLength(1)
    expect(JSON.parse((behind[0] as Logged).json)).toMatchObject({ type: "RUN_ERROR", code: "run_truncated" })
    const held = await readAll(log, log.firstSeq() - 1)
    expect(held.map(({ seq }) => seq)).toEqual(Array.from({ length: 400 - log.firstSeq() }, (_, i) => log.firstSeq() + i))
  })

  test.each([
    ["one event at a time, the cap just under a sealed block", 64, 1, 0],
    ["a batch that seals a block a reader is inside", 60, 11, 4],
  ])("a reader that had read everything is never cut off by the cap: %s", async (_, before, batch, slack) => {
    const perEvent = event(0).length
    const log = createRunLog(meta, (before + slack) * perEvent + 10)
    const seen: number[] = []
    const reading = (async () => {
      for await (const got of log.tail(-1, new AbortController().signal)) seen.push(...got.map(({ seq }) => seq))
    })()
    for (let seq = 0; seq < before; seq++) {
      log.append([event(seq)])
      await Bun.sleep(0)
    }
    log.append(Array.from({ length: batch }, (_, i) => event(before + i)))
    await Bun.sleep(0)
    log.append([event(before + batch)])
    log.end()
    await reading
    expect(seen).toEqual(Array.from({ length: before + batch + 1 }, (_, i) => i))
    // The cap still holds once a later batch lets the old block go.
    expect(log.firstSeq()).toBe(64)
  })

  test("a cap smaller than a block never cuts off a caught-up reader either, however large the batch", async () => {
    const log = createRunLog(meta, 1024)
    const seen: number[] = []
    const reading = (async () => {
      for await (const got of log.tail(-1, new AbortController().signal)) seen.push(...got.map(({ seq }) => seq))
    })()
    log.append([event(0)])
    await Bun.sleep(0)
    // A batch alone well over the cap.
    log.append(Array.from({ length: 40 }, (_, i) => event(1 + i)))
    await Bun.sleep(0)
    log.append([event(41)])
    log.end()
    await reading
    expect(seen).toEqual(Array.from({ length: 42 }, (_, i) => i))
    expect(log.firstSeq()).toBeGreaterThan(0)
  })

  test("a cap smaller than a block drops unsealed events one by one, and keeps the last", async () => {
    const log = createRunLog(meta, 1)
    fill(log, 10, [1, 2])
    log.end()
    expect(log.firstSeq()).toBe(9)
    const read = await readAll(log, 8)
    expect(read).toEqual([{ seq: 9, json: event(9) }])
  })
})

describe("a thread's answer", () => {
  test("text, thinking and interleaved tool arguments come out whole, however many deltas", () => {
    const answer = answerBuilder("a")
    const text = Array.from({ length: 1000 }, (_, i) => `t${i} `)
    answer.push({ type: "TEXT_MESSAGE_START", messageId: "m1" })
    answer.push({ type: "REASONING_START" })
    for (const delta of text.slice(0, 300)) answer.push({ type: "REASONING_MESSAGE_CONTENT", delta })
    for (const delta of text) answer.push({ type: "TEXT_MESSAGE_CONTENT", delta })
    // Read half way: what is pending shows, and later deltas still join it.
    expect(answer.message().parts.at(-1)).toEqual({ type: "text", content: text.join("") })
    for (const delta of text) answer.push({ type: "TEXT_MESSAGE_CONTENT", delta })
    answer.push({ type: "TOOL_CALL_START", toolCallId: "x", toolCallName: "f" })
    answer.push({ type: "TOOL_CALL_START", toolCallId: "y", toolCallName: "g" })
    for (let i = 0; i < 600; i++) answer.push({ type: "TOOL_CALL_ARGS", toolCallId: i % 2 ? "y" : "x", delta: i < 2 ? '{"n":[' : `${i},` })
    answer.push({ type: "TOOL_CALL_ARGS", toolCallId: "x", delta: "0]}" })
    answer.push({ type: "TOOL_CALL_END", toolCallId: "x" })
    const args = (odd: number) => `{"n":[${Array.from({ length: 299 }, (_, i) => `${2 * i + 2 + odd},`).join("")}`
    const message = answer.message()
    expect(message.id).toBe("m1")
    expect(message.parts).toEqual([
      { type: "thinking", content: text.slice(0, 300).join("") },
      { type: "text", content: text.join("") + text.join("") },
      { type: "tool-call", id: "x", name: "f", arguments: `${args(0)}0]}`, state: "input-complete", input: { n: expect.any(Array) } },
      { type: "tool-call", id: "y", name: "g", arguments: args(1), state: "input-streaming" },
    ])
    expect(answer.bytes()).toBe(64 * 4 + [...text.slice(0, 300), ...text, ...text].join("").length + (args(0).length + 3 + args(1).length))
  })
  test("a long answer is held as a few strings, not one per delta", () => {
    const answer = answerBuilder("a")
    const before = strings()
    // Fresh strings, as parsed from the provider's stream: each would stay alive in a `+=` rope.
    for (let i = 0; i < 50_000; i++) answer.push({ type: "TEXT_MESSAGE_CONTENT", delta: ` w${i}` })
    const held = strings() - before
    expect(held).toBeLessThan(2_000)
    expect(answer.message().parts[0]).toMatchObject({ type: "text" })
  })
})

describe("the runs held", () => {
  const config = { ttlMs: 60_000, graceMs: 60_000, maxRunBytes: 1 << 30, maxBytes: 200_000 }
  const history = (n: number) => [{ id: `u${n}`, role: "user", content: `${n} ${"x".repeat(30_000)}` }]

  test.each(["live", ""])("threads count against the cap: the oldest idle ones go, a live run's thread stays (runId %p)", (runId) => {
    const runs = createRuns(config)
    const live = runs.start("o", { runId, threadId: "t-live", messages: history(0) })
    if (live === "exists") throw new Error("exists")
    for (let n = 1; n <= 10; n++) {
      const started = runs.start("o", { runId: `r${n}`, threadId: `t${n}`, messages: history(n) })
      if (started === "exists") throw new Error("exists")
      started.record([{ type: "TEXT_MESSAGE_CONTENT", messageId: "m", delta: "answer" }])
      started.end()
    }
    // Each start looks at the cap, its own messages counted.
    runs.start("o", { runId: "last", threadId: "t-last", messages: history(11) })
    const stats = runs.stats()
    expect(stats.bytes + stats.threadBytes).toBeLessThanOrEqual(config.maxBytes)
    expect(runs.thread("o", "t-live")).toMatchObject({ activeRun: runId })
    expect(runs.thread("o", "t1")).toBeUndefined()
    expect(runs.thread("o", "t10")).toMatchObject({
      messages: [{ role: "user" }, { role: "assistant", parts: [{ type: "text", content: "answer" }] }],
    })
    live.end()
  })

  test("a finished run's answer is joined: no delta stays a string of its own", async () => {
    const runs = createRuns({ ...config, maxBytes: 1 << 30 })
    const before = strings()
    for (let n = 0; n < 100; n++) {
      const started = runs.start("o", { runId: `r${n}`, threadId: `t${n}`, messages: [] })
      if (started === "exists") throw new Error("exists")
      // Fewer deltas than a block: without a join at the end, each would stay.
      for (let i = 0; i < 200; i++) started.record([{ type: "TEXT_MESSAGE_CONTENT", messageId: "m", delta: ` w${n}.${i}` }])
      started.end()
    }
    // Each run keeps a few strings (ids, keys, its log's unsealed events' JSON), not one per delta.
    expect((strings() - before) / 100).toBeLessThan(60)
    expect((await runs.thread("o", "t7"))?.messages[0]).toMatchObject({ parts: [{ content: expect.stringContaining(" w7.199") }] })
  })

  test("a refused request (discard) leaves its thread as it was", () => {
    const runs = createRuns(config)
    const first = runs.start("o", { runId: "r1", threadId: "t", messages: history(1) })
    if (first === "exists") throw new Error("exists")
    first.record([{ type: "TEXT_MESSAGE_CONTENT", messageId: "m", delta: "kept" }])
    first.end()
    const refused = runs.start("o", { runId: "r2", threadId: "t", messages: history(2) })
    if (refused === "exists") throw new Error("exists")
    refused.discard()
    expect(runs.thread("o", "t")).toMatchObject({ messages: [{ id: "u1" }, { parts: [{ content: "kept" }] }] })
    // Two refused requests on the thread, given back in either order: still the kept thread.
    for (const order of [
      [0, 1],
      [1, 0],
    ]) {
      const refusedToo = [4, 5].map((n) => runs.start("o", { runId: `r${n}${order}`, threadId: "t", messages: history(n) }))
      for (const index of order) (refusedToo[index] as Exclude<(typeof refusedToo)[number], "exists">).discard()
      expect(runs.thread("o", "t")).toMatchObject({ messages: [{ id: "u1" }, { parts: [{ content: "kept" }] }] })
    }
    // A refused request before a run that goes ahead: the new run's thread stands.
    const refusedFirst = runs.start("o", { runId: "r6", threadId: "t", messages: history(6) })
    const goesAhead = runs.start("o", { runId: "r7", threadId: "t", messages: history(7) })
    if (refusedFirst === "exists" || goesAhead === "exists") throw new Error("exists")
    refusedFirst.discard()
    goesAhead.end()
    expect(runs.thread("o", "t")).toMatchObject({ messages: [{ id: "u7" }] })
    const alone = runs.start("o", { runId: "r3", threadId: "new", messages: history(3) })
    if (alone === "exists") throw new Error("exists")
    alone.discard()
    expect(runs.thread("o", "new")).toBeUndefined()
  })

  test("a stop that comes before the stream can be stopped takes effect once it can", () => {
    const runs = createRuns(config)
    const started = runs.start("o", { runId: "r", threadId: "t", messages: history(1) })
    if (started === "exists") throw new Error("exists")
    expect(runs.stop("o", "r")).toBe(true)
    const reasons: string[] = []
    runs.control(started.log, (reason) => void reasons.push(reason))
    expect(reasons).toEqual(["stopped"])
    started.end()
  })

  test("a finished run lets go of its stream: its stop, and all the stop reaches, can be collected", async () => {
    const runs = createRuns(config)
    const collected = Promise.withResolvers<void>()
    const registry = new FinalizationRegistry<string>(() => collected.resolve())
    const started = (() => {
      const started = runs.start("o", { runId: "r", threadId: "t", messages: history(1) })
      if (started === "exists") throw new Error("exists")
      // The stream's state, as chat.ts's stop reaches it.
      const stream = { buffers: new Uint8Array(1 << 20) }
      registry.register(stream, "stream")
      runs.control(started.log, () => void stream.buffers.fill(0))
      started.log.onReaders(() => void stream.buffers.fill(1))
      return started
    })()
    started.end()
    for (let i = 0; i < 20; i++) {
      Bun.gc(true)
      await Bun.sleep(10)
      if (await Promise.race([collected.promise.then(() => true), Bun.sleep(0).then(() => false)])) break
    }
    expect(await Promise.race([collected.promise.then(() => "collected"), Bun.sleep(100).then(() => "still held")])).toBe("collected")
    expect((await runs.find("o", "r"))?.ended()).toBe(true)
  })
})

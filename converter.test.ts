import { describe, expect, test } from "bun:test"
import { verifyEvents } from "@ag-ui/client"
import type { BaseEvent } from "@ag-ui/core"
import { from as observe, lastValueFrom, toArray } from "rxjs"
import { collect, expectJsonl, fixtureNames, from, replay, replayRaw } from "./fixtures/replay"
import { anthropicConverter, openaiConverter } from "./converter"
import { type Part, fixedCtx } from "./parts"
import { type ChatRequest, REDACTED_PREFIX } from "./request"
import { type AguiEvent, toAgui } from "./wire/agui"
import { ndjsonFrame, type Output, sseFrame } from "./sse"
import { wireFor } from "./wire"
import { toLegacy } from "./wire/legacy"

const run = { threadId: "T", runId: "R", model: "fixture-model" }
const agui = (parts: Part[]) => collect(toAgui(from(parts), fixedCtx(), run))
/** AG-UI's own validator; rejects with the first ordering violation. */
const verify = (events: AguiEvent[]) => lastValueFrom(observe(events as BaseEvent[]).pipe(verifyEvents(false), toArray()))

const names = fixtureNames()
/** A stream's outputs as the text they send (bytes pieces decoded in place). */
const sent = (outputs: Output[]) =>
  outputs
    .flat()
    .map((piece) => (typeof piece === "string" ? piece : Buffer.from(piece).toString()))
    .join("")
const slicings = ["whole", 1, 7] as const

const text = (parts: Part[]) => parts.flatMap((p) => (p.type === "text" ? [p.delta] : [])).join("")
const reasoning = (parts: Part[]) => parts.flatMap((p) => (p.type === "reasoning" ? [p.delta] : [])).join("")
const last = (parts: Part[]) => parts.at(-1)

describe("transcripts replay the same whatever the read size", () => {
  for (const name of names) {
    test(name, async () => {
      const [whole, ...sliced] = await Promise.all(slicings.map((slicing) => replay(name, slicing)))
      expect(whole?.length).toBeGreaterThan(1)
      for (const parts of sliced) expect(parts).toEqual(whole as Part[])
    })
  }
})

describe("the hot path (raw body → events → parts per read) yields exactly what the SDK's iterator does", () => {
  for (const name of names) {
    test(name, async () => {
      const reference = await replay(name, "whole")
      for (const slicing of slicings) expect(await replayRaw(name, slicing)).toEqual(reference)
    })
  }

  test("batched encoding frames every fixture exactly as event-by-event encoding does, for both generations", async () => {
    for (const name of names) {
      const parts = await replay(name, "whole")
      const request: ChatRequest = {
        generation: "agui",
        provider: "anthropic",
        model: "fixture-model",
        messages: [],
        tools: [],
        thinkingBudget: 0,
        threadId: "T",
        runId: "R",
      }
      for (const [generation, transport] of [
        ["legacy", "sse"],
        ["agui", "sse"],
        ["agui", "ndjson"],
      ] as const) {
        const wire = wireFor(generation, transport)
        const frame = transport === "sse" ? sseFrame : ndjsonFrame
        // One batch per part and all parts in one batch must frame the same bytes.
        const single = sent(await collect(wire.encode(from(parts.map((part) => [part])), fixedCtx(), request)))
        const batched = sent(await collect(wire.encode(from([parts]), fixedCtx(), request)))
        const events = generation === "agui" ? await agui(parts) : await collect(toLegacy(from(parts), fixedCtx(), "fixture-model"))
        expect(single).toBe(events.map(frame).join(""))
        expect(batched).toBe(single)
      }
    }
  })
})

test("text that needs escaping, or not, frames as JSON.stringify frames it, for both generations", async () => {
  const texts = [
    "plain words ",
    'a "quote"',
    "back\\slash",
    "line\nbreak\ttab",
    "\u0001\u001f",
    "東京 👋🏽",
    "\ud83d",
    "\u2028\u2029",
    "",
    "ü",
    // Halves of a surrogate pair in separate deltas: lone in an AG-UI event; together in legacy content.
    "cut \ud83d",
    "\udc4b pair",
    "\udc4b lone",
    "x".repeat(600),
  ]
  const parts: Part[] = texts.map((delta) => ({ type: "text", delta }))
  const request = { model: "fixture-model", threadId: "T", runId: "R" }
  // Legacy content grows with each delta and restarts after a tool call, and thinking grows across
  // blocks (joined by a blank line); their bytes must follow.
  const thinking: Part[] = [
    { type: "reasoning-start" },
    ...texts.slice(0, 8).map((delta): Part => ({ type: "reasoning", delta })),
    { type: "reasoning-end" },
    { type: "reasoning-start" },
    ...texts.slice(8).map((delta): Part => ({ type: "reasoning", delta })),
    { type: "reasoning-end" },
  ]
  const withTool: Part[] = [...thinking, ...parts.slice(0, 5), { type: "tool-start", id: "t1", name: "f" }, ...parts.slice(5)]
  for (const transport of ["sse", "ndjson"] as const) {
    const legacy = sent(await collect(wireFor("legacy", transport).encode(from(withTool.map((part) => [part])), fixedCtx(), request)))
    const chunks = await collect(toLegacy(from(withTool), fixedCtx(), "fixture-model"))
    expect(chunks.filter((chunk) => chunk.type === "content").map((chunk) => chunk.content)).toEqual([
      ...texts.slice(0, 5).map((_, i) => texts.slice(0, i + 1).join("")),
      ...texts.slice(5).map((_, i) => texts.slice(5, 5 + i + 1).join("")),
    ])
    expect(chunks.filter((chunk) => chunk.type === "thinking").at(-1)?.content).toBe(
      `${texts.slice(0, 8).join("")}\n\n${texts.slice(8).join("")}`,
    )
    expect(legacy).toBe(chunks.map(transport === "sse" ? sseFrame : ndjsonFrame).join(""))
  }
  for (const transport of ["sse", "ndjson"] as const) {
    const framed = sent(await collect(wireFor("agui", transport).encode(from(parts.map((part) => [part])), fixedCtx(), request)))
    const events = await collect(toAgui(from(parts), fixedCtx(), { threadId: "T", runId: "R", model: "fixture-model" }))
    expect(framed).toBe(events.map(transport === "sse" ? sseFrame : ndjsonFrame).join(""))
  }
})

describe("legacy chunks match the stored expectations", () => {
  for (const name of names) {
    test(name, async () => {
      for (const slicing of slicings) {
        const chunks = await collect(toLegacy(from(await replay(name, slicing)), fixedCtx(), "fixture-model"))
        expect(chunks).toEqual((await expectJsonl(name, "legacy", chunks)) as typeof chunks)
      }
    })
  }
})

describe("AG-UI events match the stored expectations and pass verifyEvents", () => {
  for (const name of names) {
    test(name, async () => {
      for (const slicing of slicings) {
        const events = await agui(await replay(name, slicing))
        expect(events).toEqual((await expectJsonl(name, "agui", events)) as AguiEvent[])
        expect(await verify(events)).toHaveLength(events.length)
      }
    })
  }

  test("verifyEvents is strict enough to notice a broken stream", async () => {
    const events = await agui(await replay("anthropic-text", "whole"))
    const broken = events.filter((event) => event.type !== "TEXT_MESSAGE_END")
    await expect(verify(broken)).rejects.toThrow()
  })

  test("an error before any output is RUN_STARTED then RUN_ERROR, and valid", async () => {
    const events = await agui([{ type: "error", code: "provider_overloaded", message: "busy" }])
    expect(events.map((e) => e.type)).toEqual(["RUN_STARTED", "RUN_ERROR"])
    expect(events[1]).toEqual({
      type: "RUN_ERROR",
      message: "busy",
      code: "provider_overloaded",
      metadata: { tanstack: { threadId: "T", runId: "R" } },
    })
    expect(await verify(events)).toHaveLength(2)
  })
})

describe("AG-UI encoding rules (WIRE.md §3)", () => {
  test("each thinking block gets its own step; signatures and redacted data become encrypted values", async () => {
    const events = await agui(await replay("anthropic-thinking", "whole"))
    const steps = events.filter((e) => e.type === "STEP_STARTED").map((e) => e.stepName)
    expect(new Set(steps).size).toBe(3)
    const values = events.filter((e) => e.type === "REASONING_ENCRYPTED_VALUE").map((e) => String(e.encryptedValue))
    expect(values[0]).toStartWith("EqQB")
    expect(values[1]).toStartWith(`${REDACTED_PREFIX}EmwK`)
    expect(values[2]).toStartWith("ErUB")
  })

  test("client tools: TOOL_CALL_* first, then one CUSTOM tool-input-available each, then RUN_FINISHED(tool_calls)", async () => {
    const events = await agui(await replay("anthropic-tools-parallel", 7))
    const tail = events.slice(-3)
    expect(tail.map((e) => e.type)).toEqual(["CUSTOM", "CUSTOM", "RUN_FINISHED"])
    expect(tail[0]).toEqual({
      type: "CUSTOM",
      name: "tool-input-available",
      value: { toolCallId: "toolu_01A", toolName: "getLocation", input: { precise: true } },
    })
    expect(tail[2]).toMatchObject({ metadata: { tanstack: { finishReason: "tool_calls" } } })
    const starts = events.filter((e) => e.type === "TOOL_CALL_START")
    expect(starts.every((e) => e.parentMessageId === "msg_1")).toBe(true)
  })

  test("max_tokens finishes with finishReason length, not an error", async () => {
    const events = await agui(await replay("anthropic-max-tokens", "whole"))
    expect(events.at(-1)).toMatchObject({ type: "RUN_FINISHED", metadata: { tanstack: { finishReason: "length" } } })
    expect(events.some((e) => e.type === "RUN_ERROR")).toBe(false)
  })

  test("usage is the spec array with cached and reasoning tokens when known", async () => {
    expect((await agui(await replay("openai-text", "whole"))).at(-1)?.usage).toEqual([
      { inputTokens: 25, outputTokens: 15, totalTokens: 40, cachedInputTokens: 4 },
    ])
    expect((await agui(await replay("openai-reasoning", "whole"))).at(-1)?.usage).toEqual([
      { inputTokens: 14, outputTokens: 30, totalTokens: 44, reasoningTokens: 22 },
    ])
  })

  test("text resuming after a reasoning block gets a new message id", async () => {
    const events = await agui([
      { type: "text", delta: "Part one." },
      { type: "reasoning-start" },
      { type: "reasoning", delta: "hmm" },
      { type: "reasoning-end", signature: "sig" },
      { type: "text", delta: "Part two." },
      { type: "finish", reason: "stop", usage: { inputTokens: 1, outputTokens: 1 } },
    ])
    const ids = events.filter((e) => e.type === "TEXT_MESSAGE_START").map((e) => e.messageId)
    expect(ids).toEqual(["msg_1", "msg_2"])
    expect(await verify(events)).toHaveLength(events.length)
  })
})

describe("what the transcripts mean", () => {
  test("multi-byte text survives 1-byte reads", async () => {
    for (const provider of ["anthropic", "openai"]) {
      expect(text(await replay(`${provider}-text`, 1))).toBe("Grüße aus 東京 👋🏽 — naïve café.")
    }
  })

  test("finish reasons are mapped for both providers", async () => {
    const finish = async (name: string) => {
      const part = last(await replay(name, "whole"))
      return part?.type === "finish" ? part.reason : part?.type
    }
    expect(await finish("anthropic-text")).toBe("stop")
    expect(await finish("anthropic-tools-parallel")).toBe("tool_calls")
    expect(await finish("anthropic-max-tokens")).toBe("length")
    expect(await finish("anthropic-refusal")).toBe("content_filter")
    expect(await finish("openai-text")).toBe("stop")
    expect(await finish("openai-tools-parallel")).toBe("tool_calls")
    expect(await finish("openai-length")).toBe("length")
    expect(await finish("openai-refusal")).toBe("content_filter")
  })

  test("usage: Anthropic input from message_start (cache reads included), OpenAI from the trailing chunk", async () => {
    const usage = async (name: string) => {
      const part = last(await replay(name, 7))
      return part?.type === "finish" ? part.usage : undefined
    }
    expect(await usage("anthropic-text")).toEqual({ inputTokens: 25, outputTokens: 15, cachedInputTokens: 4 })
    expect(await usage("openai-text")).toEqual({ inputTokens: 25, outputTokens: 15, cachedInputTokens: 4 })
    expect(await usage("openai-reasoning")).toEqual({ inputTokens: 14, outputTokens: 30, reasoningTokens: 22 })
  })

  test("parallel tool calls keep their own arguments", async () => {
    for (const name of ["anthropic-tools-parallel", "openai-tools-parallel"]) {
      const ends = (await replay(name, 1)).filter((p) => p.type === "tool-end")
      expect(ends.map((p) => p.type === "tool-end" && [p.name, p.input])).toEqual([
        ["getLocation", { precise: true }],
        ["getTime", { tz: "Europe/Zürich" }],
      ])
    }
  })

  test("thinking keeps blocks, signatures and redacted data apart", async () => {
    const parts = await replay("anthropic-thinking", 7)
    const ends = parts.filter((p) => p.type === "reasoning-end")
    expect(parts.filter((p) => p.type === "reasoning-start")).toHaveLength(3)
    expect(ends[0]).toEqual({
      type: "reasoning-end",
      signature: "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds0a8Ahf2bZbnYmMfK6y6O8gPm4TNYQ==",
    })
    expect(ends[1]).toMatchObject({ redacted: expect.stringMatching(/^EmwK/) })
    expect(ends[2]).toEqual({ type: "reasoning-end", signature: "ErUBCkYIBRgCIkCsecondBlockSignature0xyz==" })
    expect(reasoning(await replay("openai-reasoning", 1))).toBe("6 × 7 is 42.")
  })

  test("a provider error mid-stream becomes one final error part after the partial text", async () => {
    for (const name of ["anthropic-error", "openai-error"]) {
      const parts = await replay(name, 1)
      expect(text(parts)).toBe("Partial answer")
      expect(parts.filter((p) => p.type === "error")).toHaveLength(1)
      expect(last(parts)?.type).toBe("error")
    }
    expect(last(await replay("anthropic-error", "whole"))).toMatchObject({ code: "provider_overloaded" })
  })

  test("a stream that stops without message_stop is reported, not silently cut", async () => {
    expect(last(await replay("anthropic-cut", 1))).toMatchObject({ type: "error", code: "stream_interrupted" })
  })
})

test("a text field that is not a string is no text, and both wires stream on", async () => {
  const openai = openaiConverter()
  const base = { id: "c", object: "chat.completion.chunk", created: 1, model: "m" }
  const chunk = (delta: object) => ({ ...base, choices: [{ index: 0, delta, finish_reason: null }] }) as never
  const anthropic = anthropicConverter()
  const parts: Part[] = [
    ...openai.step(chunk({ role: "assistant", content: "" })),
    ...openai.step(chunk({ reasoning: { text: "structured" } })),
    ...openai.step(chunk({ content: 7 })),
    ...openai.step(chunk({ content: "text" })),
    ...anthropic.step({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: 5 } } as never),
    ...anthropic.step({ type: "content_block_delta", index: 0, delta: { type: "thinking_delta", thinking: {} } } as never),
    ...anthropic.step({ type: "content_block_start", index: 1, content_block: { type: "text", text: 5 } } as never),
  ]
  expect(parts).toEqual([
    { type: "start", model: "m" },
    { type: "text", delta: "text" },
  ])
  const finish: Part = { type: "finish", reason: "stop", usage: { inputTokens: 1, outputTokens: 1 } }
  const request = { model: "m", threadId: "T", runId: "R" }
  for (const generation of ["legacy", "agui"] as const) {
    const text = sent(await collect(wireFor(generation, "sse").encode(from([[...parts, finish]]), fixedCtx(), request)))
    expect(text).toContain('"text"')
  }
})

describe("legacy encoding rules (WIRE.md §2)", () => {
  const encode = (parts: Part[]) => collect(toLegacy(from(parts), fixedCtx(), "m"))

  test("content restarts after a tool call so the client opens a new text part", async () => {
    const chunks = await encode([
      { type: "text", delta: "Before." },
      { type: "tool-start", id: "t1", name: "x" },
      { type: "tool-end", id: "t1", name: "x", input: {} },
      { type: "text", delta: "After." },
    ])
    expect(chunks.filter((c) => c.type === "content").map((c) => c.content)).toEqual(["Before.", "After."])
  })

  test("tool-input-available follows done, once per call, in call order", async () => {
    const chunks = await encode(await replay("openai-tools-parallel", "whole"))
    const types = chunks.map((c) => c.type)
    expect(types.slice(-3)).toEqual(["done", "tool-input-available", "tool-input-available"])
    expect(chunks.at(-1)).toMatchObject({ toolCallId: "call_B", toolName: "getTime", input: { tz: "Europe/Zürich" } })
  })

  test("tool arguments are sent as increments that concatenate to the whole", async () => {
    const chunks = await encode(await replay("openai-tools-parallel", 7))
    const args = (id: string) =>
      chunks
        .filter((c) => c.type === "tool_call" && (c.toolCall as { id: string }).id === id)
        .map((c) => (c.toolCall as { function: { arguments: string } }).function.arguments)
        .join("")
    expect(JSON.parse(args("call_A"))).toEqual({ precise: true })
    expect(JSON.parse(args("call_B"))).toEqual({ tz: "Europe/Zürich" })
  })

  test("nothing follows an error chunk", async () => {
    const chunks = await encode([
      { type: "text", delta: "a" },
      { type: "error", code: "provider_error", message: "boom" },
      { type: "text", delta: "b" },
    ])
    expect(chunks.map((c) => c.type)).toEqual(["content", "error"])
    expect(chunks[1]).toMatchObject({ error: { message: "boom", code: "provider_error" } })
  })
})

// Async-generator converters: provider stream events in, provider-neutral parts out.
import type Anthropic from "@anthropic-ai/sdk"
import type OpenAI from "openai"
import type { FinishReason, Part, Usage } from "./parts"
import { unreachable } from "./parts"
import { parseArguments, isInvalidArguments } from "./request"

/** The provider's stream ended cleanly but before its last event; `guard` turns this into `stream_interrupted`. */
export class StreamInterruptedError extends Error {
  override readonly name = "StreamInterruptedError"
  constructor() {
    super("The provider's stream ended before the response was complete.")
  }
}

// ---------------------------------------------------------------- Anthropic

type AnthropicBlock =
  | { kind: "text" }
  | { kind: "thinking"; signature: string }
  | { kind: "tool"; id: string; name: string; json: string }
  | { kind: "other" }

type AnthropicState = {
  blocks: Map<number, AnthropicBlock>
  stopReason: Anthropic.StopReason | null
  usage: Usage
  finished: boolean
}

/**
 * A converter as a step machine: `step` turns one provider event into parts; `end` gives the
 * parts that close the stream, and throws StreamInterruptedError after them when it ended early.
 */
export type Converter<E> = { step(event: E): Part[]; end(): Iterable<Part> }

/** Converts the Anthropic SDK's raw stream events (`messages.create({ stream: true })`). */
export async function* fromAnthropic(events: AsyncIterable<Anthropic.RawMessageStreamEvent>): AsyncGenerator<Part> {
  const converter = anthropicConverter()
  for await (const event of events) yield* converter.step(event)
  yield* converter.end()
}

export function anthropicConverter(): Converter<Anthropic.RawMessageStreamEvent> {
  const state: AnthropicState = { blocks: new Map(), stopReason: null, usage: { inputTokens: 0, outputTokens: 0 }, finished: false }
  return {
    step: (event) => anthropicStep(state, event),
    *end() {
      if (!state.finished) throw new StreamInterruptedError()
    },
  }
}

function anthropicStep(state: AnthropicState, event: Anthropic.RawMessageStreamEvent): Part[] {
  switch (event.type) {
    case "message_start": {
      const usage = event.message.usage
      const cached = usage.cache_read_input_tokens ?? 0
      state.usage.inputTokens = usage.input_tokens + cached + (usage.cache_creation_input_tokens ?? 0)
      state.usage.outputTokens = usage.output_tokens
      if (cached) state.usage.cachedInputTokens = cached
      return [{ type: "start", model: event.message.model }]
    }
    case "content_block_start": {
      const block = event.content_block
      switch (block.type) {
        case "text":
          state.blocks.set(event.index, { kind: "text" })
          return textOf(block.text) ? [{ type: "text", delta: block.text }] : []
        case "thinking":
          state.blocks.set(event.index, { kind: "thinking", signature: block.signature ?? "" })
          return textOf(block.thinking)
            ? [{ type: "reasoning-start" }, { type: "reasoning", delta: block.thinking }]
            : [{ type: "reasoning-start" }]
        case "redacted_thinking":
          state.blocks.set(event.index, { kind: "other" })
          return [{ type: "reasoning-start" }, { type: "reasoning-end", redacted: block.data }]
        case "tool_use":
          state.blocks.set(event.index, { kind: "tool", id: block.id, name: block.name, json: "" })
          return [{ type: "tool-start", id: block.id, name: block.name }]
        default:
          // Server tools and their results are executed by Anthropic; nothing for the client to run.
          state.blocks.set(event.index, { kind: "other" })
          return []
      }
    }
    case "content_block_delta": {
      const block = state.blocks.get(event.index)
      const delta = event.delta
      switch (delta.type) {
        case "text_delta":
          return textOf(delta.text) ? [{ type: "text", delta: delta.text }] : []
        case "thinking_delta":
          return textOf(delta.thinking) ? [{ type: "reasoning", delta: delta.thinking }] : []
        case "signature_delta":
          if (block?.kind === "thinking") block.signature += delta.signature
          return []
        case "input_json_delta":
          if (block?.kind !== "tool" || !delta.partial_json) return []
          block.json += delta.partial_json
          return [{ type: "tool-args", id: block.id, delta: delta.partial_json }]
        case "citations_delta":
          return []
        default:
          return unreachable(delta)
      }
    }
    case "content_block_stop": {
      const block = state.blocks.get(event.index)
      state.blocks.delete(event.index)
      if (block?.kind === "thinking") return [{ type: "reasoning-end", ...(block.signature && { signature: block.signature }) }]
      if (block?.kind === "tool") {
        const input = parseArguments(block.json)
        return [{ type: "tool-end", id: block.id, name: block.name, input: isInvalidArguments(input) ? {} : input }]
      }
      return []
    }
    case "message_delta":
      if (event.delta.stop_reason) state.stopReason = event.delta.stop_reason
      state.usage.outputTokens = event.usage.output_tokens ?? state.usage.outputTokens
      // Input tokens come from message_start; a delta only fills them in when that had none.
      if (event.usage.input_tokens && !state.usage.inputTokens) state.usage.inputTokens = event.usage.input_tokens
      return []
    case "message_stop":
      state.finished = true
      return [{ type: "finish", reason: anthropicFinishReason(state.stopReason), usage: { ...state.usage } }]
    default:
      return unreachable(event)
  }
}

/** https://docs.anthropic.com/en/api/handling-stop-reasons */
export function anthropicFinishReason(reason: Anthropic.StopReason | null): FinishReason {
  switch (reason) {
    case "tool_use":
      return "tool_calls"
    case "max_tokens":
    case "model_context_window_exceeded":
      return "length"
    case "refusal":
      return "content_filter"
    case "end_turn":
    case "stop_sequence":
    case "pause_turn":
    case null:
      return "stop"
    default:
      return "stop"
  }
}

// ---------------------------------------------------------------- OpenAI Chat Completions

type OpenAIToolCall = { id?: string; name?: string; args: string; started: boolean }

type OpenAIState = {
  started: boolean
  reasoning: boolean
  refused: boolean
  tools: Map<number, OpenAIToolCall>
  finishReason?: string
  usage: Usage
}

/** DeepSeek-style servers stream thinking beside the text; OpenAI's own types do not name it. */
type CompatDelta = OpenAI.ChatCompletionChunk.Choice.Delta & { reasoning_content?: string | null; reasoning?: string | null }

/**
 * A provider's text field as text: what is not a string (an OpenAI-compatible server's structured
 * `reasoning`, a malformed event) is no text, so every part's delta is a string.
 */
function textOf(value: unknown): string {
  return typeof value === "string" ? value : ""
}

/** Converts OpenAI (or OpenAI-compatible) Chat Completions chunks, requested with `include_usage`. */
export async function* fromOpenAI(chunks: AsyncIterable<OpenAI.ChatCompletionChunk>): AsyncGenerator<Part> {
  const converter = openaiConverter()
  for await (const chunk of chunks) yield* converter.step(chunk)
  yield* converter.end()
}

/**
 * `text` takes a chunk whose only effect is a content delta, as `step` would, without the chunk
 * (the streaming path's shortcut); false before the first chunk, which `step` must see.
 */
export type OpenAIConverter = Converter<OpenAI.ChatCompletionChunk> & { text(delta: string, out: Part[]): boolean }

export function openaiConverter(): OpenAIConverter {
  const state: OpenAIState = {
    started: false,
    reasoning: false,
    refused: false,
    tools: new Map(),
    usage: { inputTokens: 0, outputTokens: 0 },
  }
  return {
    step: (chunk) => openaiStep(state, chunk),
    text(delta, out) {
      if (!state.started) return false
      if (!delta) return true
      closeReasoning(state, out)
      out.push({ type: "text", delta })
      return true
    },
    *end() {
      if (state.reasoning) yield { type: "reasoning-end" }
      if (state.finishReason === undefined) throw new StreamInterruptedError()
      const started = [...state.tools.values()].some((t) => t.started)
      yield {
        type: "finish",
        reason: state.refused ? "content_filter" : openaiFinishReason(state.finishReason, started),
        usage: state.usage,
      }
    },
  }
}

function openaiStep(state: OpenAIState, chunk: OpenAI.ChatCompletionChunk): Part[] {
  const parts: Part[] = []
  if (!state.started) {
    state.started = true
    parts.push({ type: "start", model: chunk.model })
  }
  if (chunk.usage) {
    const details = chunk.usage
    state.usage = { inputTokens: details.prompt_tokens, outputTokens: details.completion_tokens }
    const cached = details.prompt_tokens_details?.cached_tokens
    const reasoning = details.completion_tokens_details?.reasoning_tokens
    if (cached) state.usage.cachedInputTokens = cached
    if (reasoning) state.usage.reasoningTokens = reasoning
  }
  const choice = chunk.choices[0]
  if (!choice) return parts
  const delta = choice.delta as CompatDelta
  const thinking = textOf(delta.reasoning_content ?? delta.reasoning)
  if (thinking) {
    if (!state.reasoning) parts.push({ type: "reasoning-start" })
    state.reasoning = true
    parts.push({ type: "reasoning", delta: thinking })
  }
  const text = textOf(delta.content) + textOf(delta.refusal)
  if (textOf(delta.refusal)) state.refused = true
  if (text || delta.tool_calls?.length) closeReasoning(state, parts)
  if (text) parts.push({ type: "text", delta: text })
  for (const fragment of delta.tool_calls ?? []) {
    const call = state.tools.get(fragment.index) ?? { args: "", started: false }
    state.tools.set(fragment.index, call)
    call.id ||= fragment.id ?? undefined
    call.name ||= fragment.function?.name ?? undefined
    const args = fragment.function?.arguments ?? ""
    call.args += args
    if (!call.started && call.id && call.name) {
      // Fragments can arrive before the id and name; they are kept and sent once the call is named.
      call.started = true
      parts.push({ type: "tool-start", id: call.id, name: call.name })
      if (call.args) parts.push({ type: "tool-args", id: call.id, delta: call.args })
    } else if (call.started && call.id && args) parts.push({ type: "tool-args", id: call.id, delta: args })
  }
  if (choice.finish_reason) {
    state.finishReason = choice.finish_reason
    closeReasoning(state, parts)
    for (const call of state.tools.values()) {
      if (!call.started || !call.id || !call.name) continue
      const input = parseArguments(call.args)
      parts.push({ type: "tool-end", id: call.id, name: call.name, input: isInvalidArguments(input) ? {} : input })
    }
  }
  return parts
}

function closeReasoning(state: OpenAIState, parts: Part[]) {
  if (!state.reasoning) return
  state.reasoning = false
  parts.push({ type: "reasoning-end" })
}

/** https://platform.openai.com/docs/api-reference/chat/object#chat/object-choices */
export function openaiFinishReason(reason: string, calledTools: boolean): FinishReason {
  if (calledTools) return "tool_calls"
  switch (reason) {
    case "length":
      return "length"
    case "content_filter":
      return "content_filter"
    default:
      return "stop"
  }
}

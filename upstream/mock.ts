// The built-in mock provider: a fake Anthropic or OpenAI endpoint behind an injected `fetch`, so a
// mocked reply goes through the real SDK, converter and wire path exactly as a live one does.

type Tool = { name: string; schema: Record<string, unknown> }
/** What the mock was asked, read back from the real SDK request body. */
type Ask = { text: string; tools: Tool[]; toolResults: string[]; turn: number; model: string }

type Step =
  | { kind: "thinking"; text: string; signature: string }
  | { kind: "text"; text: string }
  | { kind: "tool"; id: string; name: string; input: unknown }
  | { kind: "error"; message: string }
type Script = { steps: Step[]; stop: "end_turn" | "tool_use" | "max_tokens"; httpError?: boolean }

/**
 * Picks the reply from the last user message: "think" streams thinking first, a declared tool's
 * name (or "tool") calls tools, "long" stops at max_tokens, "error" fails mid-stream and
 * "overload" fails before the first byte. Tool results are summarised; anything else is echoed.
 */
export function scriptFor(ask: Ask): Script {
  const text = ask.text.toLowerCase()
  if (ask.toolResults.length)
    return { steps: [{ kind: "text", text: `The tools answered: ${ask.toolResults.join("; ")}. That is all I needed.` }], stop: "end_turn" }
  if (text.includes("overload")) return { steps: [], stop: "end_turn", httpError: true }
  if (text.includes("error"))
    return {
      steps: [
        { kind: "text", text: "Here is the start of an answer that " },
        { kind: "error", message: "Overloaded" },
      ],
      stop: "end_turn",
    }
  const named = ask.tools.filter((tool) => text.includes(tool.name.toLowerCase()))
  const called = named.length ? named : text.includes("tool") ? ask.tools.slice(0, 1) : []
  if (called.length)
    return {
      steps: [
        { kind: "text", text: called.length > 1 ? "Let me call those tools." : `Let me call ${called[0]?.name}.` },
        ...called.map(
          (tool, i): Step => ({ kind: "tool", id: `toolu_mock_${ask.turn}_${i}`, name: tool.name, input: sampleInput(tool.schema) }),
        ),
      ],
      stop: "tool_use",
    }
  const steps: Step[] = []
  if (text.includes("think"))
    steps.push({
      kind: "thinking",
      text: `The user wrote "${ask.text}". A short, friendly answer will do.`,
      signature: `mock-signature-${ask.turn}`,
    })
  if (text.includes("long"))
    return {
      steps: [...steps, { kind: "text", text: "This answer is far too long for the token limit, so it stops right" }],
      stop: "max_tokens",
    }
  steps.push({
    kind: "text",
    text: `Hello from sidechat's mock provider (${ask.model}). You said: “${ask.text}”. Set ANTHROPIC_API_KEY or OPENAI_API_KEY for a real model.`,
  })
  return { steps, stop: "end_turn" }
}

/** A deterministic value that satisfies a simple JSON Schema's required properties. */
export function sampleInput(schema: Record<string, unknown>): unknown {
  switch (schema.type) {
    case "object": {
      const properties = (schema.properties ?? {}) as Record<string, Record<string, unknown>>
      const required = (schema.required ?? Object.keys(properties)) as string[]
      return Object.fromEntries(required.filter((key) => properties[key]).map((key) => [key, sampleInput(properties[key] ?? {})]))
    }
    case "string":
      return Array.isArray(schema.enum) ? schema.enum[0] : "example"
    case "number":
    case "integer":
      return 1
    case "boolean":
      return true
    case "array":
      return []
    default:
      return Array.isArray(schema.enum) ? schema.enum[0] : {}
  }
}

const words = (text: string) => text.match(/\S+\s*|\s+/g) ?? []

type Event = { event?: string; data: unknown; paced?: boolean }

function anthropicEvents(script: Script, ask: Ask): Event[] {
  const events: Event[] = []
  const out = (data: Record<string, unknown>, paced = false) => events.push({ event: data.type as string, data, paced })
  const usage = { input_tokens: ask.text.length, output_tokens: 1 }
  out({
    type: "message_start",
    message: {
      id: `msg_mock_${ask.turn}`,
      type: "message",
      role: "assistant",
      model: ask.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage,
    },
  })
  events.push({ event: "ping", data: { type: "ping" } })
  for (const [index, step] of script.steps.entries()) {
    switch (step.kind) {
      case "thinking":
        out({ type: "content_block_start", index, content_block: { type: "thinking", thinking: "", signature: "" } })
        for (const piece of words(step.text))
          out({ type: "content_block_delta", index, delta: { type: "thinking_delta", thinking: piece } }, true)
        out({ type: "content_block_delta", index, delta: { type: "signature_delta", signature: step.signature } })
        break
      case "text":
        out({ type: "content_block_start", index, content_block: { type: "text", text: "" } })
        for (const piece of words(step.text)) out({ type: "content_block_delta", index, delta: { type: "text_delta", text: piece } }, true)
        break
      case "tool": {
        out({ type: "content_block_start", index, content_block: { type: "tool_use", id: step.id, name: step.name, input: {} } })
        const json = JSON.stringify(step.input)
        const half = Math.ceil(json.length / 2)
        for (const piece of [json.slice(0, half), json.slice(half)])
          out({ type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json: piece } }, true)
        break
      }
      case "error":
        events.push({ event: "error", data: { type: "error", error: { type: "overloaded_error", message: step.message } } })
        return events
    }
    out({ type: "content_block_stop", index })
  }
  out({
    type: "message_delta",
    delta: { stop_reason: script.stop, stop_sequence: null },
    usage: { output_tokens: script.steps.length * 12 },
  })
  out({ type: "message_stop" })
  return events
}

function openaiEvents(script: Script, ask: Ask): Event[] {
  const events: Event[] = []
  const base = { id: `chatcmpl-mock-${ask.turn}`, object: "chat.completion.chunk", created: 1_700_000_000, model: ask.model }
  const out = (delta: Record<string, unknown>, finish: string | null = null, paced = true) =>
    events.push({ data: { ...base, choices: [{ index: 0, delta, finish_reason: finish }] }, paced })
  out({ role: "assistant", content: "" }, null, false)
  let tools = 0
  for (const step of script.steps) {
    switch (step.kind) {
      case "thinking":
        for (const piece of words(step.text)) out({ reasoning_content: piece })
        break
      case "text":
        for (const piece of words(step.text)) out({ content: piece })
        break
      case "tool": {
        const index = tools++
        out({
          tool_calls: [{ index, id: step.id.replace("toolu", "call"), type: "function", function: { name: step.name, arguments: "" } }],
        })
        out({ tool_calls: [{ index, function: { arguments: JSON.stringify(step.input) } }] })
        break
      }
      case "error":
        events.push({ data: { error: { message: step.message, type: "server_error" } } })
        return events
    }
  }
  out({}, { end_turn: "stop", tool_use: "tool_calls", max_tokens: "length" }[script.stop], false)
  const completion = script.steps.length * 12
  events.push({
    data: {
      ...base,
      choices: [],
      usage: { prompt_tokens: ask.text.length, completion_tokens: completion, total_tokens: ask.text.length + completion },
    },
  })
  events.push({ data: "[DONE]" })
  return events
}

type Body = Record<string, unknown> & { messages?: Record<string, unknown>[]; tools?: Record<string, unknown>[]; model?: string }

function askFromAnthropic(body: Body): Ask {
  const messages = body.messages ?? []
  const last = messages.at(-1)
  const blocks = (Array.isArray(last?.content) ? last.content : [{ type: "text", text: last?.content }]) as Record<string, unknown>[]
  return {
    text: blocks
      .filter((b) => b.type === "text")
      .map((b) => String(b.text ?? ""))
      .join(" "),
    toolResults: blocks.filter((b) => b.type === "tool_result").map((b) => String(b.content)),
    tools: (body.tools ?? []).map((t) => ({ name: String(t.name), schema: (t.input_schema ?? {}) as Record<string, unknown> })),
    turn: messages.filter((m) => m.role === "assistant").length + 1,
    model: String(body.model),
  }
}

function askFromOpenAI(body: Body): Ask {
  const messages = body.messages ?? []
  const results: string[] = []
  for (let i = messages.length - 1; i >= 0 && messages[i]?.role === "tool"; i--) results.unshift(String(messages[i]?.content))
  const last = messages.at(-1)
  const content = last?.content
  const text =
    typeof content === "string"
      ? content
      : Array.isArray(content)
        ? content.map((p) => String((p as { text?: string }).text ?? "")).join(" ")
        : ""
  return {
    text: results.length ? "" : text,
    toolResults: results,
    tools: (body.tools ?? []).map((t) => {
      const fn = (t.function ?? {}) as Record<string, unknown>
      return { name: String(fn.name), schema: (fn.parameters ?? {}) as Record<string, unknown> }
    }),
    turn: messages.filter((m) => m.role === "assistant").length + 1,
    model: String(body.model),
  }
}

/** A `fetch` that answers like the named provider's streaming endpoint, paced `delayMs` per token. */
export function mockFetch(flavour: "anthropic" | "openai", delayMs: number) {
  return async (_input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const body = JSON.parse(String(init.body ?? "{}")) as Body
    const ask = flavour === "anthropic" ? askFromAnthropic(body) : askFromOpenAI(body)
    const script = scriptFor(ask)
    if (script.httpError) {
      const error =
        flavour === "anthropic"
          ? { type: "error", error: { type: "overloaded_error", message: "Overloaded" } }
          : { error: { message: "Overloaded", type: "server_error" } }
      return Response.json(error, { status: flavour === "anthropic" ? 529 : 503, headers: { "retry-after": "1" } })
    }
    const events = flavour === "anthropic" ? anthropicEvents(script, ask) : openaiEvents(script, ask)
    const signal = init.signal
    const encoder = new TextEncoder()
    let next = 0
    // A reader's cancel can land while a paced pull sleeps; nothing may touch the controller after it.
    let cancelled = false
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const event = events[next++]
        if (!event) return controller.close()
        if (event.paced && delayMs) await Bun.sleep(delayMs)
        if (cancelled) return
        if (signal?.aborted) return controller.error(new DOMException("aborted", "AbortError"))
        const data = typeof event.data === "string" ? event.data : JSON.stringify(event.data)
        controller.enqueue(encoder.encode(`${event.event ? `event: ${event.event}\n` : ""}data: ${data}\n\n`))
      },
      cancel() {
        cancelled = true
      },
    })
    return new Response(stream, { headers: { "content-type": "text/event-stream" } })
  }
}

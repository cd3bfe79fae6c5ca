// Hydration (WIRE.md §3.10): what a persisted ChatClient gets back for a thread. Only what sidechat
// saw: the thread's messages as the last request sent them, plus the answer it streamed, both as
// UIMessages with `parts` (the client's persistence shows nothing for AG-UI wire messages).

type TextPart = { type: "text"; content: string }
type ThinkingPart = { type: "thinking"; content: string; signature?: string }
type ToolCallPart = { type: "tool-call"; id: string; name: string; arguments: string; state: string; input?: unknown; output?: unknown }
type ToolResultPart = { type: "tool-result"; toolCallId: string; content: string; state: "complete" | "error" }
export type UIPart = TextPart | ThinkingPart | ToolCallPart | ToolResultPart
export type UIMessage = { id: string; role: "user" | "assistant"; parts: UIPart[] }

type WireMessage = {
  id?: string
  role?: string
  content?: unknown
  toolCalls?: { id: string; function: { name: string; arguments: string } }[]
  toolCallId?: string
  encryptedValue?: string
  error?: string
}

/** RunAgentInput.messages (wire form) as UIMessages: reasoning rows join the next assistant, tool rows their call. */
export function fromWireMessages(messages: unknown[]): UIMessage[] {
  const out: UIMessage[] = []
  let thinking: ThinkingPart[] = []
  const calls = new Map<string, { message: UIMessage; part: ToolCallPart }>()
  for (const raw of messages as WireMessage[]) {
    const id = raw.id ?? `m${out.length}`
    switch (raw.role) {
      case "user": {
        const text = textOf(raw.content)
        out.push({ id, role: "user", parts: text ? [{ type: "text", content: text }] : [] })
        break
      }
      case "reasoning":
        thinking.push({ type: "thinking", content: textOf(raw.content), ...(raw.encryptedValue && { signature: raw.encryptedValue }) })
        break
      case "assistant": {
        const message: UIMessage = { id, role: "assistant", parts: thinking }
        thinking = []
        const text = textOf(raw.content)
        if (text) message.parts.push({ type: "text", content: text })
        for (const call of raw.toolCalls ?? []) {
          const part: ToolCallPart = {
            type: "tool-call",
            id: call.id,
            name: call.function.name,
            arguments: call.function.arguments,
            state: "input-complete",
            input: parse(call.function.arguments),
          }
          message.parts.push(part)
          calls.set(call.id, { message, part })
        }
        out.push(message)
        break
      }
      case "tool": {
        const call = calls.get(raw.toolCallId ?? "")
        if (!call) break
        const content = textOf(raw.content)
        call.part.output = parse(content)
        call.part.state = "complete"
        call.message.parts.push({ type: "tool-result", toolCallId: call.part.id, content, state: raw.error ? "error" : "complete" })
        break
      }
    }
  }
  return out
}

/** What a thread's messages weigh, roughly, in bytes: their text, plus a little per part. */
export function sizeOf(messages: UIMessage[]): number {
  let bytes = 0
  for (const message of messages)
    for (const part of message.parts)
      bytes += PART_BYTES + ("content" in part ? part.content.length : 0) + ("arguments" in part ? part.arguments.length : 0)
  return bytes
}

const PART_BYTES = 64
/** Deltas waiting to join their part's text at once. */
const BLOCK = 256

export type AnswerBuilder = {
  /** Takes the next logged event; only events that shape the answer change anything. */
  push(event: { type: string; [key: string]: unknown }): void
  /** The answer so far. */
  message(): UIMessage
  /** Joins the deltas still waiting: the run is over, and they would each stay a string of their own. */
  settle(): void
  /** What it weighs, as `sizeOf` counts. */
  bytes(): number
}

/**
 * The answer a run streamed, built from its AG-UI events as they are logged. Deltas wait in a list
 * and join their part's text a block at a time: thousands of `+=` would keep every delta and a
 * rope node per delta alive, some 28 times the text itself.
 */
export function answerBuilder(id: string): AnswerBuilder {
  const message: UIMessage = { id, role: "assistant", parts: [] }
  const calls = new Map<string, ToolCallPart>()
  const last = () => message.parts.at(-1)
  let bytes = 0
  // The part whose text the pending deltas extend.
  let target: TextPart | ThinkingPart | ToolCallPart | undefined
  let pending: string[] = []
  const settle = () => {
    if (!target || !pending.length) return
    const text = pending.join("")
    pending = []
    if (target.type === "tool-call") target.arguments += text
    else target.content += text
  }
  const append = (part: TextPart | ThinkingPart | ToolCallPart, delta: string) => {
    if (target !== part) settle()
    target = part
    pending.push(delta)
    bytes += delta.length
    if (pending.length >= BLOCK) settle()
  }
  const add = (part: UIPart) => {
    message.parts.push(part)
    bytes += PART_BYTES
  }
  return {
    message() {
      settle()
      return message
    },
    bytes: () => bytes,
    settle,
    push(event) {
      switch (event.type) {
        case "TEXT_MESSAGE_START":
          if (!message.parts.length) message.id = String(event.messageId)
          return
        case "TEXT_MESSAGE_CONTENT": {
          let part = last()
          if (part?.type !== "text") add((part = { type: "text", content: "" }))
          append(part, String(event.delta))
          return
        }
        case "REASONING_START":
          add({ type: "thinking", content: "" })
          return
        case "REASONING_MESSAGE_CONTENT": {
          const part = last()
          if (part?.type === "thinking") append(part, String(event.delta))
          return
        }
        case "TOOL_CALL_START": {
          const part: ToolCallPart = {
            type: "tool-call",
            id: String(event.toolCallId),
            name: String(event.toolCallName),
            arguments: "",
            state: "input-streaming",
          }
          calls.set(part.id, part)
          add(part)
          return
        }
        case "TOOL_CALL_ARGS": {
          const part = calls.get(String(event.toolCallId))
          if (part) append(part, String(event.delta))
          return
        }
        case "TOOL_CALL_END": {
          const part = calls.get(String(event.toolCallId))
          if (!part) return
          settle()
          part.state = "input-complete"
          part.input = parse(part.arguments)
          return
        }
      }
    },
  }
}

function textOf(content: unknown): string {
  if (typeof content === "string") return content
  if (!Array.isArray(content)) return ""
  return content
    .map((part) =>
      part && typeof part === "object" && (part as { type?: string }).type === "text"
        ? String((part as { text?: unknown }).text ?? "")
        : "",
    )
    .join("")
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

// Request schemas (TypeBox) and the one validator that turns a failure into a path and a reason.
import { type Static, type TSchema, Type as T } from "@sinclair/typebox"
import { type TypeCheck, TypeCompiler } from "@sinclair/typebox/compiler"
import { Value } from "@sinclair/typebox/value"

export const MAX_TOOLS = 64
export const MAX_TOOL_DESCRIPTION = 4096
export const MAX_TOOL_PARAMETERS_BYTES = 16 * 1024

export const ToolDecl = T.Object({
  name: T.String({ pattern: "^[a-zA-Z0-9_-]{1,64}$" }),
  description: T.Optional(T.String({ maxLength: MAX_TOOL_DESCRIPTION })),
  parameters: T.Optional(T.Record(T.String(), T.Unknown())),
})
export type ToolDecl = Static<typeof ToolDecl>
export const ToolList = T.Array(ToolDecl, { maxItems: MAX_TOOLS })

const ImageSource = T.Object({
  type: T.Union([T.Literal("url"), T.Literal("data")]),
  value: T.String({ minLength: 1 }),
  mimeType: T.Optional(T.String()),
})
/** Text parts say `content` on the legacy wire and `text` on AG-UI; both are accepted. */
export const ContentPart = T.Union([
  T.Object({ type: T.Literal("text"), content: T.Optional(T.String()), text: T.Optional(T.String()) }),
  T.Object({ type: T.Literal("image"), source: ImageSource }),
])
export type ContentPart = Static<typeof ContentPart>

const WireToolCall = T.Object({
  id: T.String({ minLength: 1 }),
  type: T.Optional(T.Literal("function")),
  function: T.Object({ name: T.String({ minLength: 1 }), arguments: T.String() }),
})

/** Provider choice and options, read from `data` (legacy) or `forwardedProps` (AG-UI). */
export const ChatOptions = T.Object({
  provider: T.Optional(T.String()),
  model: T.Optional(T.String()),
  tools: T.Optional(ToolList),
  thinking: T.Optional(T.Union([T.Boolean(), T.Object({ budgetTokens: T.Integer({ minimum: 0 }) })])),
  maxTokens: T.Optional(T.Integer({ minimum: 1 })),
})
export type ChatOptions = Static<typeof ChatOptions>

export const LegacyMessage = T.Object({
  role: T.Union([T.Literal("system"), T.Literal("user"), T.Literal("assistant"), T.Literal("tool")]),
  content: T.Optional(T.Union([T.String(), T.Null(), T.Array(ContentPart)])),
  name: T.Optional(T.String()),
  toolCalls: T.Optional(T.Array(WireToolCall)),
  toolCallId: T.Optional(T.String({ minLength: 1 })),
})
export type LegacyMessage = Static<typeof LegacyMessage>

/** What `@tanstack/ai-client` 0.0.x POSTs (WIRE.md §2.1); the adapter body may add top-level keys. */
export const LegacyRequest = T.Object({
  messages: T.Array(LegacyMessage, { minItems: 1 }),
  data: T.Optional(ChatOptions),
  provider: T.Optional(T.String()),
  model: T.Optional(T.String()),
})
export type LegacyRequest = Static<typeof LegacyRequest>

export type Invalid = { path: string; message: string }
export type Checked<V> = { ok: true; value: V } | { ok: false; error: Invalid }

/** Each validator's compile step, in the order they were made (see `compileNext`). */
const compileSteps: (() => void)[] = []

/**
 * Compiles a schema once, on its second use or when `compileNext` reaches it (compiling them all
 * up front took about 8 ms of start-up). Its first use walks the schema instead: about 1 ms
 * against 6-10 ms for a cold compile, which a first request after start-up would wait for. Both
 * give the same verdict and the same errors (`fuzz.test.ts` holds them to it). The returned check
 * names the first failing path and why.
 */
export function validator<S extends TSchema>(schema: S): (value: unknown) => Checked<Static<S>> {
  let compiled: TypeCheck<S> | undefined
  let used = false
  const compile = () => (compiled ??= TypeCompiler.Compile(schema))
  compileSteps.push(compile)
  return (value) => {
    const walk = !compiled && !used
    used = true
    if (walk ? Value.Check(schema, value) : compile().Check(value)) return { ok: true, value }
    const first = (walk ? Value.Errors(schema, value) : compile().Errors(value)).First()
    if (!first) return { ok: false, error: { path: "", message: "invalid" } }
    return { ok: false, error: { path: toPath(first.path), message: describe(first.schema, first.value, first.message) } }
  }
}

/** Compiles the next validator not compiled yet, for warming up between requests; false when none is left. */
export function compileNext(): boolean {
  const step = compileSteps.shift()
  step?.()
  return step !== undefined
}

/** `/messages/0/role` → `messages[0].role`. */
export function toPath(pointer: string): string {
  return pointer
    .split("/")
    .slice(1)
    .map((segment) => segment.replaceAll("~1", "/").replaceAll("~0", "~"))
    .reduce((path, segment) => (/^\d+$/.test(segment) ? `${path}[${segment}]` : path ? `${path}.${segment}` : segment), "")
}

function describe(schema: TSchema, value: unknown, fallback: string): string {
  const got = value === undefined ? "it is missing" : `got ${preview(value)}`
  const options = (schema.anyOf as TSchema[] | undefined)?.map((option) => option.const)
  if (options?.length && options.every((option) => option !== undefined))
    return `must be one of ${options.map((option) => JSON.stringify(option)).join(", ")}; ${got}`
  if (schema.pattern && typeof value === "string") return `must match ${schema.pattern}; ${got}`
  if (typeof schema.maxItems === "number" && Array.isArray(value) && value.length > schema.maxItems)
    return `at most ${schema.maxItems} items allowed; got ${value.length}`
  if (typeof schema.minItems === "number" && Array.isArray(value)) return `must not be empty`
  if (typeof schema.maxLength === "number" && typeof value === "string" && value.length > schema.maxLength)
    return `at most ${schema.maxLength} characters allowed; got ${value.length}`
  return `${fallback.replace(/^Expected/, "expected")}; ${got}`
}

export function preview(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

export const checkToolList = validator(ToolList)

// ---------------------------------------------------------------- AG-UI (current client, WIRE.md §3.1)

const AguiRole = T.Union(["developer", "system", "user", "assistant", "tool", "reasoning", "activity"].map((role) => T.Literal(role)))

const InputContent = T.Union([
  T.Object({ type: T.Literal("text"), text: T.String() }),
  T.Object({ type: T.Literal("image"), source: ImageSource }),
])

/** Client-declared tools are untrusted text: names, descriptions, schemas and count are capped. */
export const AguiTool = T.Object({
  name: T.String({ pattern: "^[a-zA-Z0-9_-]{1,64}$" }),
  description: T.String({ maxLength: MAX_TOOL_DESCRIPTION }),
  parameters: T.Optional(T.Record(T.String(), T.Unknown())),
})

export const RunAgentInput = T.Object({
  threadId: T.String(),
  runId: T.String(),
  parentRunId: T.Optional(T.String()),
  state: T.Optional(T.Unknown()),
  messages: T.Array(T.Object({ id: T.String(), role: AguiRole, metadata: T.Optional(T.Record(T.String(), T.Unknown())) }), { minItems: 1 }),
  tools: T.Array(AguiTool, { maxItems: MAX_TOOLS }),
  context: T.Array(T.Object({ description: T.String(), value: T.String() }), { maxItems: 64 }),
  forwardedProps: T.Optional(T.Record(T.String(), T.Unknown())),
  data: T.Optional(T.Record(T.String(), T.Unknown())),
  resume: T.Optional(
    T.Array(
      T.Object({
        interruptId: T.String(),
        status: T.Union([T.Literal("resolved"), T.Literal("cancelled")]),
        payload: T.Optional(T.Unknown()),
      }),
    ),
  ),
})
export type RunAgentInput = Static<typeof RunAgentInput>

/** Each role's own fields, checked after the common ones so errors name the exact field. */
export const AguiMessageByRole = {
  developer: T.Object({ content: T.String() }),
  system: T.Object({ content: T.String() }),
  user: T.Object({ content: T.Union([T.String(), T.Array(InputContent)]), name: T.Optional(T.String()) }),
  assistant: T.Object({ content: T.Optional(T.String()), toolCalls: T.Optional(T.Array(WireToolCall)), name: T.Optional(T.String()) }),
  tool: T.Object({ content: T.String(), toolCallId: T.String({ minLength: 1 }), error: T.Optional(T.String()) }),
  reasoning: T.Object({ content: T.String(), encryptedValue: T.Optional(T.String()) }),
  activity: T.Object({}),
}
export type AguiMessageByRole = { [R in keyof typeof AguiMessageByRole]: Static<(typeof AguiMessageByRole)[R]> }

// Wire formats: how parts are encoded and framed for each client generation and transport.
import type { Ctx, ErrorPart, Part } from "../parts"
import type { ChatRequest, Generation } from "../request"
import { ndjsonFrame, sseFrame } from "../sse"
import { aguiError, toAgui } from "./agui"
import { legacyError, toLegacy } from "./legacy"

export type Transport = "sse" | "ndjson"
type Extra = (final: Part, model: string) => Record<string, unknown>

export type Wire = {
  /** `extra` adds to the final event's metadata where the generation has any (AG-UI's `metadata.tanstack`). */
  encode(parts: AsyncIterable<Part>, ctx: Ctx, request: ChatRequest, extra?: Extra): AsyncIterable<unknown>
  /** The one final event for a stream whose encoding broke off after it started. */
  failure(error: ErrorPart, ctx: Ctx, request: ChatRequest, extra?: Extra): unknown
  frame(event: unknown): string
  /** Written after the last event of a stream. */
  trailer: string
  /** Written while the provider is quiet; must be invisible to this generation's parser. */
  heartbeat: string
  contentType: string
}

const legacy = (parts: AsyncIterable<Part>, ctx: Ctx, request: ChatRequest, extra?: Extra) => toLegacy(parts, ctx, request.model, extra)
const runOf = (request: ChatRequest, extra?: Extra) => ({
  threadId: request.threadId ?? "",
  runId: request.runId ?? "",
  model: request.model,
  extra,
})
const agui = (parts: AsyncIterable<Part>, ctx: Ctx, request: ChatRequest, extra?: Extra) => toAgui(parts, ctx, runOf(request, extra))

export function wireFor(generation: Generation, transport: Transport): Wire {
  const sse = transport === "sse"
  switch (generation) {
    case "legacy":
      // Legacy clients warn on every comment line but drop blank lines silently (WIRE.md §2.2).
      return {
        encode: legacy,
        failure: (error, ctx, request, extra) => {
          extra?.(error, request.model)
          return legacyError({ id: ctx.newId("chatcmpl"), model: request.model, timestamp: ctx.now() }, error)
        },
        frame: sse ? sseFrame : ndjsonFrame,
        trailer: sse ? "data: [DONE]\n\n" : "",
        heartbeat: "\n",
        contentType: sse ? "text/event-stream" : "application/x-ndjson",
      }
    case "agui":
      // Current clients skip comment lines; NDJSON readers skip blank ones. Never `[DONE]` or
      // `id:` here: the first stops reading, the second turns on resumability (WIRE.md §6.7-8).
      return {
        encode: agui,
        failure: (error, _ctx, request, extra) => aguiError(runOf(request, extra), error),
        frame: sse ? sseFrame : ndjsonFrame,
        trailer: "",
        heartbeat: sse ? ": ping\n\n" : "\n",
        contentType: sse ? "text/event-stream" : "application/x-ndjson",
      }
  }
}

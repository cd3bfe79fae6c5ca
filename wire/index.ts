// Wire formats: how parts are encoded and framed for each client generation and transport.
import type { Ctx, ErrorPart, Part } from "../parts"
import type { ChatRequest, Generation } from "../request"
import { ndjsonFrame, type Output, sseFrame } from "../sse"
import { type AguiEvent, aguiEncoder, aguiError, aguiFramer } from "./agui"
import { encodeBatches, encodeEventBatches, type Guard } from "./encoder"
import { legacyEncoder, legacyError, legacyFramer } from "./legacy"

export type Transport = "sse" | "ndjson"
type Extra = (final: Part, model: string) => Record<string, unknown>
/** What the wire needs of a request: the model asked for and the run's ids (not the messages). */
export type RunRef = Pick<ChatRequest, "model" | "threadId" | "runId">

export type Wire = {
  /**
   * Batches of parts (one network read each) become framed events, one output per batch.
   * `extra` adds to the final event's metadata where the generation has any (AG-UI's `metadata.tanstack`).
   */
  encode(batches: AsyncIterable<Part[]>, ctx: Ctx, request: RunRef, extra?: Extra, guard?: Guard): AsyncIterable<Output>
  /** The framed final event for a stream whose encoding broke off after it started. */
  failure(error: ErrorPart, ctx: Ctx, request: RunRef, extra?: Extra): string
  /** Written after the last event of a stream. */
  trailer: string
  /** Written while the provider is quiet; must be invisible to this generation's parser. */
  heartbeat: string
  contentType: string
}

const runOf = (request: RunRef, extra?: Extra) => ({
  threadId: request.threadId ?? "",
  runId: request.runId ?? "",
  model: request.model,
  extra,
})

/** A resumable run's AG-UI events, a batch per network read, and its final event should encoding break. */
export function aguiEvents(
  batches: AsyncIterable<Part[]>,
  ctx: Ctx,
  request: RunRef,
  extra?: Extra,
  guard?: Guard,
): AsyncIterable<AguiEvent[]> {
  return encodeEventBatches(batches, aguiEncoder(ctx, runOf(request, extra)), guard)
}

export function aguiFailure(error: ErrorPart, request: RunRef, extra?: Extra): AguiEvent {
  return aguiError(runOf(request, extra), error)
}

export function wireFor(generation: Generation, transport: Transport): Wire {
  const sse = transport === "sse"
  const frame = sse ? sseFrame : ndjsonFrame
  const contentType = sse ? "text/event-stream" : "application/x-ndjson"
  switch (generation) {
    case "legacy":
      // Legacy clients warn on every comment line but drop blank lines silently (WIRE.md §2.2).
      return {
        encode: (batches, ctx, request, extra, guard) =>
          encodeBatches(batches, legacyEncoder(ctx, request.model, extra), legacyFramer(frame), guard),
        failure: (error, ctx, request, extra) => {
          extra?.(error, request.model)
          return frame(legacyError({ id: ctx.newId("chatcmpl"), model: request.model, timestamp: ctx.now() }, error))
        },
        trailer: sse ? "data: [DONE]\n\n" : "",
        heartbeat: "\n",
        contentType,
      }
    case "agui":
      // Current clients skip comment lines; NDJSON readers skip blank ones. Never `[DONE]` or
      // `id:` here: the first stops reading, the second turns on resumability (WIRE.md §6.7-8).
      return {
        encode: (batches, ctx, request, extra, guard) =>
          encodeBatches(batches, aguiEncoder(ctx, runOf(request, extra)), aguiFramer(frame), guard),
        failure: (error, _ctx, request, extra) => frame(aguiError(runOf(request, extra), error)),
        trailer: "",
        heartbeat: sse ? ": ping\n\n" : "\n",
        contentType,
      }
  }
}

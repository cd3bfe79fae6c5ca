// The HTTP side of resumable runs: a run's log streamed from an offset (the first response, a
// reconnect, a join), the thread for hydration, and DELETE for an explicit stop.
import { httpError } from "../edge/http-error"
import type { HttpError } from "../request"
import { streamResponse, type StreamEnd } from "../sse"
import { frameLogged, parseEventId, type RunLog, type Runs } from "./index"

export type Reader = { sse: boolean; heartbeatMs: number; headers: Record<string, string>; onClose?: (end: StreamEnd) => void }

/** The log after `after` (-1: from the start), tailed until the run ends or the client leaves. */
export function tailResponse(log: RunLog, after: number, request: Request, reader: Reader): Response {
  // The reader detaches when the response ends for any reason, not only when the request aborts.
  const closed = new AbortController()
  const signal = AbortSignal.any([request.signal, closed.signal])
  async function* frames() {
    for await (const batch of log.tail(after, signal)) yield frameLogged(log, batch, reader.sse)
  }
  return streamResponse(frames(), {
    trailer: "",
    // The log holds only encoded events, so reading it cannot fail halfway through an event.
    fail: () => "",
    headers: {
      "content-type": reader.sse ? "text/event-stream" : "application/x-ndjson",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-accel-buffering": "no",
      ...reader.headers,
    },
    heartbeat: reader.sse ? ": ping\n\n" : "\n",
    heartbeatMs: reader.heartbeatMs,
    signal: request.signal,
    onClose: (end) => {
      closed.abort()
      reader.onClose?.(end)
    },
  })
}

type Found = { ok: true; log: RunLog; after: number } | { ok: false; error: HttpError }

const missing = (what: string): HttpError => ({
  status: 404,
  code: "run_not_found",
  message: `${what} is unknown or has expired here; send the message again`,
})
const notFound = (what: string): Found => ({ ok: false, error: missing(what) })

/**
 * A reconnect: the same POST again with Last-Event-ID. The id's capability names the run (the
 * body's runId must agree); a run started with a bearer token takes only that token back.
 */
export async function findReconnect(runs: Runs, lastEventId: string, runId: string | undefined, owner: string): Promise<Found> {
  const id = parseEventId(lastEventId)
  const log = id && (await runs.byCapability(id.capability))
  if (!id || !log || log.runId !== runId || (log.owner.startsWith("t") && log.owner !== owner))
    return notFound(`run ${JSON.stringify(runId ?? "")}`)
  if (id.seq + 1 < log.firstSeq()) return gone()
  return { ok: true, log, after: id.seq }
}

/** GET /chat?runId=…&offset=-1 (joinRun), or with Last-Event-ID; GET /chat?threadId=… (hydration). */
export async function readRun(
  runs: Runs,
  request: Request,
  url: URL,
  owner: string,
  respond: typeof tailResponse,
  reader: Reader,
): Promise<Response> {
  const threadId = url.searchParams.get("threadId")
  const runId = url.searchParams.get("runId")
  if (threadId !== null && runId === null) return hydrate(runs, url, owner, threadId)
  const lastEventId = request.headers.get("last-event-id")
  const offset = url.searchParams.get("offset")
  if (!runId || (lastEventId === null && offset === null))
    return httpError({
      status: 400,
      code: "invalid_request",
      message: "GET /chat needs ?runId= with ?offset=-1 (join) or Last-Event-ID (resume), or ?threadId= (hydration)",
    })
  let found: Found
  if (lastEventId !== null) found = await findReconnect(runs, lastEventId, runId, owner)
  else {
    const log = await runs.find(owner, runId)
    const after = Number(offset)
    found = !log
      ? notFound(`run ${JSON.stringify(runId)}`)
      : Number.isInteger(after) && after >= -1
        ? { ok: true, log, after }
        : badOffset(offset)
  }
  return found.ok ? respond(found.log, found.after, request, reader) : httpError(found.error)
}

function gone(): Found {
  return {
    ok: false,
    error: { status: 410, code: "run_truncated", message: "this run's early events are no longer held; send the message again" },
  }
}

function badOffset(offset: string | null): Found {
  return {
    ok: false,
    error: { status: 400, code: "invalid_request", message: `offset=${JSON.stringify(offset)}: expected -1 or an event's number` },
  }
}

/** The thread as UIMessages, newest last; `limit` and `before` (a message id) page backwards. */
async function hydrate(runs: Runs, url: URL, owner: string, threadId: string): Promise<Response> {
  const thread = await runs.thread(owner, threadId)
  if (!thread) return Response.json({ messages: [], activeRun: null, interrupts: null, page: { truncated: false } })
  let messages = thread.messages
  const before = url.searchParams.get("before")
  if (before) {
    const at = messages.findIndex((message) => message.id === before)
    if (at >= 0) messages = messages.slice(0, at)
  }
  const limit = Number(url.searchParams.get("limit") ?? "")
  const truncated = Number.isInteger(limit) && limit > 0 && messages.length > limit
  if (truncated) messages = messages.slice(-limit)
  return Response.json({
    messages,
    activeRun: thread.activeRun ? { runId: thread.activeRun } : null,
    interrupts: null,
    page: truncated ? { truncated: true, cursor: messages[0]?.id } : { truncated: false },
  })
}

/** DELETE /chat?runId=…: the run's owner stops it at once (TanStack's stop() only hangs up). */
export async function stopRun(runs: Runs, url: URL, owner: string): Promise<Response> {
  const runId = url.searchParams.get("runId")
  if (!runId) return httpError({ status: 400, code: "invalid_request", message: "DELETE /chat needs ?runId=" })
  if (!(await runs.stop(owner, runId))) return httpError(missing(`run ${JSON.stringify(runId)}`))
  return new Response(null, { status: 204 })
}

// Framing and the streamed Response: events in, bytes out, heartbeats while the source is quiet.

/** Frames one event: its JSON between `before` and `after` (which a caller may use to frame JSON it already has). */
export type Frame = ((event: unknown) => string) & { before: string; after: string }

const framing = (before: string, after: string): Frame =>
  Object.assign((event: unknown) => `${before}${JSON.stringify(event)}${after}`, { before, after })

/** One event as one `data:` line (with the space legacy clients require) and a blank line, LF only. */
export const sseFrame = framing("data: ", "\n\n")

/** One event per line for `fetchHttpStream`. */
export const ndjsonFrame = framing("", "\n")

/**
 * What one step writes: text, or text and bytes in order. Bytes are for what a frame already holds
 * encoded (a legacy chunk's content, which grows with the answer and is resent in every chunk).
 */
export type Output = string | (string | Uint8Array)[]

export type StreamEnd = "complete" | "cancelled" | "failed"

export type StreamOptions = {
  headers: Record<string, string>
  /** Written after the last event when the source completes. */
  trailer: string
  /** The final bytes when the source throws: the generation's error event (and trailer). */
  fail: (error: unknown) => string
  /** What to write when nothing else was written for `heartbeatMs`; chosen per wire generation. */
  heartbeat: string
  heartbeatMs: number
  /** The client's request signal: its abort ends the stream even if the body is never cancelled. */
  signal?: AbortSignal
  /** Runs once when the stream ends, however it ends; `error` is what the source threw. */
  onClose?: (end: StreamEnd, error?: unknown) => void
}

/**
 * Streams framed events as a Response whose body is a direct stream: what a step writes goes into
 * the socket's own buffer (strings are encoded there), with no queue and no chunk copies in
 * JavaScript. What one synchronous step writes (a network read's batch of frames) is flushed in a
 * microtask right after it: not in a later turn of the event loop, where it would wait behind
 * every other stream's read (under 100 paced streams that wait doubled the added latency per
 * token, p50 and p99). A client's departure (the body cancelled, the request aborted, or a socket
 * that takes no more) returns the source iterator, so every generator's `finally` upstream runs.
 * A throw from the source ends the stream with `fail`'s bytes, never a cut.
 */
export function streamResponse(frames: AsyncIterable<Output>, options: StreamOptions): Response {
  const iterator = frames[Symbol.asyncIterator]()
  /** The body's sink once its consumer pulls; what is written before that waits in `early`. */
  let sink: ReadableStreamDirectController | undefined
  let early: (string | Uint8Array)[] = []
  /** Ends the consumer's pull, which holds the body open while it is pending. */
  let release = () => {}
  const released = new Promise<void>((resolve) => (release = resolve))
  /** The socket's buffer is full: the source waits until it drains. */
  let backlog: Promise<unknown> | undefined
  let wake: (() => void) | undefined
  let scheduled = false
  let lastWrite = performance.now()
  let stopBeating: (() => void) | undefined
  let closed = false
  /** The source ended before the consumer pulled: the pull writes what waits and ends the body. */
  let endedEarly = false

  const finish = (end: StreamEnd, error?: unknown) => {
    if (closed) return false
    closed = true
    stopBeating?.()
    options.signal?.removeEventListener("abort", leave)
    wake?.()
    options.onClose?.(end, error)
    return true
  }
  /** The client left: stop writing and let the source clean up behind it. */
  function leave() {
    if (!finish("cancelled")) return
    // What was never written goes (a legacy chunk's pieces may view a whole answer).
    early = []
    release()
    iterator.return?.().catch(() => {})
  }
  /** A write or flush the socket could not take yet: the source waits for it (its outcome is ours to handle). */
  const pending = (result: unknown) => {
    if (!(result instanceof Promise)) return false
    backlog = result.catch(() => {})
    return true
  }
  const put = (piece: string | Uint8Array) => {
    if (!sink) return void early.push(piece)
    const taken = sink.write(piece)
    // A sink whose socket has gone takes nothing.
    if (!pending(taken) && taken === 0 && piece.length) leave()
  }
  const flush = () => {
    scheduled = false
    if (closed || !sink) return
    pending(sink.flush())
  }
  const write = (output: Output) => {
    lastWrite = performance.now()
    try {
      if (typeof output === "string") put(output)
      else for (const piece of output) if (!closed) put(piece)
    } catch {
      return leave()
    }
    if (scheduled) return
    scheduled = true
    queueMicrotask(flush)
  }
  const end = () => {
    try {
      sink?.close()
    } catch {
      // Already gone with its consumer; nothing left to close.
    }
    release()
  }
  const close = (how: StreamEnd, error?: unknown) => {
    if (!finish(how, error)) return
    if (sink) end()
    else endedEarly = true
  }

  const pump = async () => {
    try {
      for (;;) {
        // Backpressure: a slow reader stops us asking the provider for more.
        const waiting = backlog
        if (waiting) {
          backlog = undefined
          // `backlog` never rejects (see `pending`); a departure wakes the pump too.
          await new Promise<void>((resolve) => {
            wake = resolve
            void waiting.then(() => resolve())
          })
          wake = undefined
        }
        if (closed) return
        const next = await iterator.next()
        if (closed) return
        if (next.done) break
        write(next.value)
      }
      write(options.trailer)
      close("complete")
    } catch (error) {
      if (closed) return
      write(safely(() => options.fail(error)))
      close("failed", error)
    }
  }

  if (options.signal?.aborted) queueMicrotask(leave)
  else {
    options.signal?.addEventListener("abort", leave, { once: true })
    stopBeating = everyBeat(options.heartbeatMs / 2, () => {
      if (performance.now() - lastWrite >= options.heartbeatMs) write(options.heartbeat)
    })
    void pump()
  }

  const source: Bun.DirectUnderlyingSource = {
    type: "direct",
    pull(controller) {
      if (sink) return released
      sink = controller
      const waiting = early
      early = []
      for (const piece of waiting) put(piece)
      if (endedEarly) end()
      else flush()
      return released
    },
    cancel() {
      leave()
    },
  }
  // Bun's types for the global constructor resolve to the standard overloads only.
  return new Response(new ReadableStream(source as unknown as UnderlyingDefaultSource<Uint8Array>), { headers: options.headers })
}

/** The heartbeat checks of every open stream, by interval: one timer per interval, not one per stream. */
const beats = new Map<number, { checks: Set<() => void>; timer: ReturnType<typeof setInterval> }>()

/** Runs `check` every `everyMs` until the returned function is called. */
function everyBeat(everyMs: number, check: () => void): () => void {
  let group = beats.get(everyMs)
  if (!group) {
    const checks = new Set<() => void>()
    const timer = setInterval(() => {
      for (const each of checks) each()
    }, everyMs)
    group = { checks, timer }
    beats.set(everyMs, group)
  }
  const { checks, timer } = group
  checks.add(check)
  return () => {
    checks.delete(check)
    if (checks.size) return
    clearInterval(timer)
    beats.delete(everyMs)
  }
}

function safely(render: () => string): string {
  try {
    return render()
  } catch {
    return ""
  }
}

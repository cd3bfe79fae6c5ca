// Framing and the streamed Response: events in, bytes out, heartbeats while the source is quiet.

/** One event as one `data:` line (with the space legacy clients require) and a blank line, LF only. */
export const sseFrame = (event: unknown) => `data: ${JSON.stringify(event)}\n\n`

/** One event per line for `fetchHttpStream`. */
export const ndjsonFrame = (event: unknown) => `${JSON.stringify(event)}\n`

export type StreamOptions = {
  headers: Record<string, string>
  /** Turns one event into its bytes on the wire. */
  frame: (event: unknown) => string
  /** Written after the last event when the source completes. */
  trailer: string
  /** What to write when nothing else was written for `heartbeatMs`; chosen per wire generation. */
  heartbeat: string
  heartbeatMs: number
  /** Runs once when the stream ends, however it ends. */
  onClose?: (outcome: "complete" | "cancelled" | "failed") => void
}

/**
 * Streams events as a Response. Frames produced in the same turn of the event loop (one network
 * read from the provider usually yields many) are written as one chunk. Cancelling the body (a
 * client disconnect) returns the source iterator, so every generator's `finally` upstream runs.
 */
export function streamResponse(events: AsyncIterable<unknown>, options: StreamOptions): Response {
  const encoder = new TextEncoder()
  const iterator = events[Symbol.asyncIterator]()
  let controller: ReadableStreamDefaultController<Uint8Array>
  let buffer = ""
  let scheduled: ReturnType<typeof setImmediate> | undefined
  let lastWrite = performance.now()
  let timer: ReturnType<typeof setInterval> | undefined
  let wake: (() => void) | undefined
  let closed = false

  const finish = (outcome: "complete" | "cancelled" | "failed") => {
    if (closed) return false
    closed = true
    clearInterval(timer)
    clearImmediate(scheduled)
    wake?.()
    options.onClose?.(outcome)
    return true
  }
  const flush = () => {
    scheduled = undefined
    if (!buffer || closed) return
    const chunk = encoder.encode(buffer)
    buffer = ""
    lastWrite = performance.now()
    try {
      controller.enqueue(chunk)
    } catch {
      finish("cancelled")
    }
  }
  const write = (text: string) => {
    buffer += text
    scheduled ??= setImmediate(flush)
  }

  const pump = async () => {
    try {
      for (;;) {
        // Backpressure: a slow reader stops us asking the provider for more.
        if ((controller.desiredSize ?? 1) <= 0) await new Promise<void>((resolve) => (wake = resolve))
        if (closed) return
        const next = await iterator.next()
        if (next.done) break
        write(options.frame(next.value))
      }
      buffer += options.trailer
      flush()
      if (finish("complete")) controller.close()
    } catch (error) {
      flush()
      if (finish("failed")) controller.error(error)
    }
  }

  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c
      timer = setInterval(() => {
        if (!buffer && performance.now() - lastWrite >= options.heartbeatMs) write(options.heartbeat)
      }, options.heartbeatMs / 2)
      void pump()
    },
    pull() {
      wake?.()
      wake = undefined
    },
    async cancel() {
      finish("cancelled")
      await iterator.return?.()
    },
  })
  return new Response(body, { headers: options.headers })
}

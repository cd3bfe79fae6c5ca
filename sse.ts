// Framing and the streamed Response: frames in, bytes out, heartbeats while the source is quiet.

/** One event as one `data:` line (with the space legacy clients require) and a blank line, LF only. */
export const sseFrame = (event: unknown) => `data: ${JSON.stringify(event)}\n\n`

/** One event per line for `fetchHttpStream`. */
export const ndjsonFrame = (event: unknown) => `${JSON.stringify(event)}\n`

export type StreamOptions = {
  headers: Record<string, string>
  /** What to write when nothing else was written for `heartbeatMs`; chosen per wire generation. */
  heartbeat: string
  heartbeatMs: number
  /** Runs once when the stream ends, however it ends. */
  onClose?: (outcome: "complete" | "cancelled" | "failed") => void
}

/**
 * Streams frames as a Response. Cancelling the body (a client disconnect) returns the source
 * iterator, so every generator's `finally` upstream runs and the provider request is aborted.
 */
export function streamResponse(frames: AsyncIterable<string>, options: StreamOptions): Response {
  const encoder = new TextEncoder()
  const iterator = frames[Symbol.asyncIterator]()
  const beat = encoder.encode(options.heartbeat)
  let lastWrite = performance.now()
  let timer: ReturnType<typeof setInterval> | undefined
  let closed = false
  const close = (outcome: "complete" | "cancelled" | "failed") => {
    if (closed) return
    closed = true
    clearInterval(timer)
    options.onClose?.(outcome)
  }

  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      timer = setInterval(() => {
        if (performance.now() - lastWrite < options.heartbeatMs) return
        try {
          controller.enqueue(beat)
          lastWrite = performance.now()
        } catch {
          close("cancelled")
        }
      }, options.heartbeatMs / 2)
    },
    async pull(controller) {
      try {
        const next = await iterator.next()
        if (next.done) {
          close("complete")
          controller.close()
          return
        }
        controller.enqueue(encoder.encode(next.value))
        lastWrite = performance.now()
      } catch (error) {
        close("failed")
        controller.error(error)
      }
    },
    async cancel() {
      close("cancelled")
      await iterator.return?.()
    },
  })
  return new Response(body, { headers: options.headers })
}

// What every wire generation's encoder is: a step machine from parts to that generation's events.
import { type ErrorPart, isContent, type Part } from "../parts"
import type { Output } from "../sse"

export type Encoder<E> = {
  /** The events that open a stream, before any part. */
  open(): E[]
  /** Appends the events for `part` to `out`; true once the stream's final event is among them. */
  push(part: Part, out: E[]): boolean
}

/** An encoder over a stream of parts, one event at a time: what fixtures and tests compare. */
export async function* encodeParts<E>(parts: AsyncIterable<Part>, encoder: Encoder<E>): AsyncGenerator<E> {
  yield* encoder.open()
  for await (const part of parts) {
    const out: E[] = []
    const ended = encoder.push(part, out)
    yield* out
    if (ended) return
  }
}

/** After headers: a provider failure becomes one final error part, and the first content is told. */
export type Guard = { classify: (error: unknown) => ErrorPart; onContent?: () => void }

/**
 * The streaming path: one batch of parts (one network read's worth) becomes one output of frames,
 * so a read crosses one async step here instead of one per event. With `guard`, a throw from the
 * batches is the stream's final error event, in the same step (no extra generator per read).
 */
export function encodeBatches<E>(batches: AsyncIterable<Part[]>, encoder: Encoder<E>, frame: (event: E) => Output, guard?: Guard) {
  // Named, so a profile shows it by name: with `frame` inlined, it is most of a token's output cost.
  return encodeWith(batches, encoder, guard, function renderBatch(events): Output | undefined {
    if (events.length === 1) return frame(events[0] as E)
    const pieces: (string | Uint8Array)[] = []
    let text = true
    for (const event of events) {
      const framed = frame(event)
      if (typeof framed === "string") pieces.push(framed)
      else {
        text = false
        for (const piece of framed) pieces.push(piece)
      }
    }
    // Joined at once into one flat string, not grown frame by frame into a rope to be flattened.
    if (text) return pieces.length ? pieces.join("") : undefined
    return pieces.length ? pieces : undefined
  })
}

/** The same, events unframed: a resumable run logs each one with its own id. */
export function encodeEventBatches<E>(batches: AsyncIterable<Part[]>, encoder: Encoder<E>, guard?: Guard) {
  return encodeWith(batches, encoder, guard, (events) => (events.length ? [...events] : undefined))
}

async function* encodeWith<E, T>(
  batches: AsyncIterable<Part[]>,
  encoder: Encoder<E>,
  guard: Guard | undefined,
  render: (events: E[]) => T | undefined,
): AsyncGenerator<T> {
  const opened = render(encoder.open())
  if (opened !== undefined) yield opened
  const source = batches[Symbol.asyncIterator]()
  let open = true
  let waiting = guard?.onContent !== undefined
  const out: E[] = []
  try {
    for (;;) {
      let batch: Part[]
      try {
        const next = await source.next()
        if (next.done) {
          open = false
          return
        }
        batch = next.value
      } catch (error) {
        open = false
        if (!guard) throw error
        batch = [guard.classify(error)]
      }
      if (waiting && batch.some(isContent)) {
        waiting = false
        guard?.onContent?.()
      }
      out.length = 0
      let ended = false
      for (const part of batch) if ((ended = encoder.push(part, out))) break
      const rendered = render(out)
      if (rendered !== undefined) yield rendered
      if (ended) return
    }
  } finally {
    // Left early (the client went, or the final event came): the source cleans up behind us.
    if (open) await source.return?.()
  }
}

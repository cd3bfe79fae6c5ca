// What every wire generation's encoder is: a step machine from parts to that generation's events.
import type { Part } from "../parts"

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

/**
 * The streaming path: one batch of parts (one network read's worth) becomes one string of frames,
 * so a read crosses one async step here instead of one per event.
 */
export async function* encodeBatches<E>(
  batches: AsyncIterable<Part[]>,
  encoder: Encoder<E>,
  frame: (event: E) => string,
): AsyncGenerator<string> {
  let text = ""
  for (const event of encoder.open()) text += frame(event)
  if (text) yield text
  const out: E[] = []
  for await (const batch of batches) {
    out.length = 0
    let ended = false
    for (const part of batch) if ((ended = encoder.push(part, out))) break
    text = ""
    for (const event of out) text += frame(event)
    if (text) yield text
    if (ended) return
  }
}

/** The same as `encodeBatches`, events unframed: a resumable run logs each one with its own id. */
export async function* encodeEventBatches<E>(batches: AsyncIterable<Part[]>, encoder: Encoder<E>): AsyncGenerator<E[]> {
  const opened = encoder.open()
  if (opened.length) yield opened
  for await (const batch of batches) {
    const out: E[] = []
    let ended = false
    for (const part of batch) if ((ended = encoder.push(part, out))) break
    if (out.length) yield out
    if (ended) return
  }
}

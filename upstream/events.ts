// A provider's event stream, bytes to events, one network read at a time: the tight replacement for
// the SDKs' per-line async decoding on the streaming path. The SDKs still build, send and
// authenticate the request and classify its HTTP errors.

/**
 * One event, told as it completes: its name, and its data as `text[start, end)`. A single-line
 * data field is that line's place in the network read, so a reader that needs only part of it
 * (a text delta's literal) slices only that part.
 */
export type OnEvent = (event: string | undefined, text: string, start: number, end: number) => void

/** A line longer than this without an end is not an event stream. */
const MAX_PENDING = 4 * 1024 * 1024

/**
 * An incremental `text/event-stream` parser (the WHATWG rules sidechat's providers use): lines end
 * in LF, CRLF or CR; `event:` names the event, `data:` lines are joined with LF, a blank line
 * dispatches, `:` lines are comments. An event without its blank line at the end is dropped, as
 * the SDKs drop it. A throw from `onEvent` ends the stream: the parser is not used after it.
 */
export function createEventParser() {
  const decoder = new TextDecoder()
  let pending = ""
  let event: string | undefined
  /** The data so far, once copied out of a read. */
  let data: string | undefined
  /** A first data line not yet copied: `lineOf[lineStart, lineEnd)`, in this read. */
  let lineOf: string | undefined
  let lineStart = 0
  let lineEnd = 0
  /** A CR ended the last chunk: an LF opening the next one belongs to it. */
  let lastWasCR = false
  /** The last event name read, reused while the names repeat. */
  let lastName = ""

  const append = (value: string) => {
    data = data === undefined ? value : `${data}\n${value}`
    if (data.length > MAX_PENDING) throw new SyntaxError(`an event of over ${MAX_PENDING} characters`)
  }
  /** Copies the first data line out of its read: another line joins it, or the read ends. */
  const copyLine = () => {
    if (lineOf === undefined) return
    const value = lineOf.slice(lineStart, lineEnd)
    lineOf = undefined
    append(value)
  }
  /** The line `all[start, end)`: fields are sliced straight out of the read, and a repeated event name is reused. */
  const line = (all: string, start: number, end: number, onEvent: OnEvent) => {
    if (end === start) {
      if (lineOf !== undefined) onEvent(event, lineOf, lineStart, lineEnd)
      else if (data !== undefined) onEvent(event, data, 0, data.length)
      event = undefined
      data = undefined
      lineOf = undefined
      return
    }
    if (all.startsWith("data: ", start)) {
      if (data === undefined && lineOf === undefined && end - start - 6 <= MAX_PENDING) {
        lineOf = all
        lineStart = start + 6
        lineEnd = end
        return
      }
      copyLine()
      return append(all.slice(start + 6, end))
    }
    if (all.startsWith("event: ", start)) {
      // A new name is copied: a slice would keep the whole read it came from alive for the stream.
      event =
        end - start - 7 === lastName.length && all.startsWith(lastName, start + 7)
          ? lastName
          : (lastName = Buffer.from(all.slice(start + 7, end)).toString())
      return
    }
    const text = all.slice(start, end)
    const colon = text.indexOf(":")
    const field = colon < 0 ? text : text.slice(0, colon)
    let value = colon < 0 ? "" : text.slice(colon + 1)
    if (value.charCodeAt(0) === 32) value = value.slice(1)
    if (field === "data") {
      copyLine()
      append(value)
    } else if (field === "event") event = value
  }

  return {
    /** Tells `onEvent` each event these bytes complete, in order. */
    push(bytes: Uint8Array, onEvent: OnEvent): void {
      let text = decoder.decode(bytes, { stream: true })
      if (!text) return
      if (lastWasCR && text.charCodeAt(0) === 10) text = text.slice(1)
      lastWasCR = false
      const all = pending ? pending + text : text
      let start = 0
      // Providers end lines with LF; CR and CRLF take the careful path.
      if (all.indexOf("\r") < 0) {
        for (let end = all.indexOf("\n"); end >= 0; end = all.indexOf("\n", start)) {
          line(all, start, end, onEvent)
          start = end + 1
        }
      } else {
        for (let i = 0; i < all.length; i++) {
          const code = all.charCodeAt(i)
          if (code !== 10 && code !== 13) continue
          line(all, start, i, onEvent)
          if (code === 13) {
            if (i + 1 === all.length) lastWasCR = true
            else if (all.charCodeAt(i + 1) === 10) i++
          }
          start = i + 1
        }
      }
      // An event still open holds no place in a read that is gone.
      copyLine()
      pending = start < all.length ? all.slice(start) : ""
      if (pending.length > MAX_PENDING) throw new SyntaxError(`an event-stream line of over ${MAX_PENDING} characters`)
    },
  }
}

// A provider's event stream, bytes to events, one network read at a time: the tight replacement for
// the SDKs' per-line async decoding on the streaming path. The SDKs still build, send and
// authenticate the request and classify its HTTP errors.

export type SseEvent = { event?: string; data: string }

/** A line longer than this without an end is not an event stream. */
const MAX_PENDING = 4 * 1024 * 1024

/**
 * An incremental `text/event-stream` parser (the WHATWG rules sidechat's providers use): lines end
 * in LF, CRLF or CR; `event:` names the event, `data:` lines are joined with LF, a blank line
 * dispatches, `:` lines are comments. An event without its blank line at the end is dropped, as
 * the SDKs drop it.
 */
export function createEventParser() {
  const decoder = new TextDecoder()
  let pending = ""
  let event: string | undefined
  let data: string | undefined
  /** A CR ended the last chunk: an LF opening the next one belongs to it. */
  let lastWasCR = false
  /** The last event name read, reused while the names repeat. */
  let lastName = ""

  const append = (value: string) => {
    data = data === undefined ? value : `${data}\n${value}`
    if (data.length > MAX_PENDING) throw new SyntaxError(`an event of over ${MAX_PENDING} characters`)
  }
  /** The line `all[start, end)`: fields are sliced straight out of the read, and a repeated event name is reused. */
  const line = (all: string, start: number, end: number, out: SseEvent[]) => {
    if (end === start) {
      if (data !== undefined) out.push(event === undefined ? { data } : { event, data })
      event = undefined
      data = undefined
      return
    }
    if (all.startsWith("data: ", start)) return append(all.slice(start + 6, end))
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
    if (field === "data") append(value)
    else if (field === "event") event = value
  }

  return {
    /** The events completed by these bytes. */
    push(bytes: Uint8Array): SseEvent[] {
      let text = decoder.decode(bytes, { stream: true })
      if (!text) return []
      if (lastWasCR && text.charCodeAt(0) === 10) text = text.slice(1)
      lastWasCR = false
      const all = pending ? pending + text : text
      const out: SseEvent[] = []
      let start = 0
      // Providers end lines with LF; CR and CRLF take the careful path.
      if (all.indexOf("\r") < 0) {
        for (let end = all.indexOf("\n"); end >= 0; end = all.indexOf("\n", start)) {
          line(all, start, end, out)
          start = end + 1
        }
      } else {
        for (let i = 0; i < all.length; i++) {
          const code = all.charCodeAt(i)
          if (code !== 10 && code !== 13) continue
          line(all, start, i, out)
          if (code === 13) {
            if (i + 1 === all.length) lastWasCR = true
            else if (all.charCodeAt(i + 1) === 10) i++
          }
          start = i + 1
        }
      }
      pending = start < all.length ? all.slice(start) : ""
      if (pending.length > MAX_PENDING) throw new SyntaxError(`an event-stream line of over ${MAX_PENDING} characters`)
      return out
    },
  }
}

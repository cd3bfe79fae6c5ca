// One run's event log, in memory: what a resumable run has sent, kept so a client can reconnect
// (replay after an offset) or join (replay from the start), and tailed while the run is live.

export type Logged = { seq: number; json: string }

export type RunLog = {
  readonly runId: string
  readonly threadId: string
  /** An unguessable secret per run; event ids carry it, so a reconnect proves it saw this stream. */
  readonly capability: string
  /** The owner's key: a hash of the bearer token or of the browser's owner cookie ("" for neither). */
  readonly owner: string
  append(events: string[]): void
  end(): void
  ended(): boolean
  /** The sequence number the next event gets; events before `firstSeq()` were dropped (size cap). */
  nextSeq(): number
  firstSeq(): number
  bytes(): number
  endedAt(): number | undefined
  /**
   * Events after `after`, a batch at a time, waiting for more until the run ends or `signal`
   * aborts. Attaches a reader for as long as it runs (see `onReaders`).
   */
  tail(after: number, signal: AbortSignal): AsyncGenerator<Logged[]>
  /** Told the number of attached readers whenever it changes. */
  onReaders(listener: (readers: number) => void): void
}

/** Events sealed together into one string: a long run is a few hundred strings, not tens of thousands. */
const BLOCK = 64

/**
 * A log that drops its oldest events past `maxBytes`; the events a live reader needs are never lost.
 * Events wait in `open` until a block is full, then are joined by newlines (never inside JSON
 * text) into one sealed string, which a reader splits again only when it reads that far back.
 */
export function createRunLog(meta: { runId: string; threadId: string; capability: string; owner: string }, maxBytes: number): RunLog {
  const sealed: string[] = []
  let open: string[] = []
  let first = 0
  let size = 0
  let done = false
  let finishedAt: number | undefined
  let readers = 0
  const listeners: ((readers: number) => void)[] = []
  let wake: (() => void)[] = []
  const notify = () => {
    const waiting = wake
    wake = []
    for (const resolve of waiting) resolve()
  }
  const attached = (delta: number) => {
    readers += delta
    for (const listener of listeners) listener(readers)
  }
  const held = () => sealed.length * BLOCK + open.length
  /** Events `from` to `to` (exclusive), each sealed block they reach split once. */
  const range = (from: number, to: number): Logged[] => {
    const out: Logged[] = []
    let block = -1
    let split: string[] = []
    for (let seq = from; seq < to; seq++) {
      const at = seq - first
      const inBlock = Math.floor(at / BLOCK)
      if (inBlock < sealed.length) {
        if (inBlock !== block) split = (sealed[(block = inBlock)] as string).split("\n")
        out.push({ seq, json: split[at % BLOCK] as string })
      } else out.push({ seq, json: open[at - sealed.length * BLOCK] as string })
    }
    return out
  }

  return {
    ...meta,
    append(batch) {
      if (done || !batch.length) return
      // A reader that had read everything is never cut off by what this batch adds.
      const unread = first + held()
      for (const json of batch) {
        open.push(json)
        size += json.length
        if (open.length === BLOCK) {
          sealed.push(open.join("\n"))
          size += BLOCK - 1
          open = []
        }
      }
      // The oldest block at a time, once all of it was there before this batch; a cap smaller than
      // a block takes the unsealed events one by one, also only those from before this batch.
      while (size > maxBytes && held() > 1) {
        if (sealed.length) {
          if (first + BLOCK > unread) break
          size -= (sealed.shift() as string).length
          first += BLOCK
        } else {
          if (first >= unread) break
          size -= (open.shift() as string).length
          first++
        }
      }
      notify()
    },
    end() {
      if (done) return
      done = true
      finishedAt = Date.now()
      notify()
      // Readers of a finished log change nothing; the listeners (and all they hold) can go.
      listeners.length = 0
    },
    ended: () => done,
    nextSeq: () => first + held(),
    firstSeq: () => first,
    bytes: () => size,
    endedAt: () => finishedAt,
    onReaders: (listener) => void listeners.push(listener),
    async *tail(after, signal) {
      attached(1)
      let next = after + 1
      try {
        for (;;) {
          if (signal.aborted) return
          // A reader so far behind that the size cap dropped what it needs next: no silent gap.
          if (next < first) {
            yield [{ seq: next, json: JSON.stringify(truncated(meta)) }]
            return
          }
          const end = first + held()
          if (next < end) {
            const batch = range(next, end)
            next = end
            yield batch
            continue
          }
          if (done) return
          await new Promise<void>((resolve) => {
            const aborted = () => resolve()
            signal.addEventListener("abort", aborted, { once: true })
            wake.push(() => {
              signal.removeEventListener("abort", aborted)
              resolve()
            })
          })
        }
      } finally {
        attached(-1)
      }
    },
  }
}

function truncated(meta: { threadId: string; runId: string }) {
  return {
    type: "RUN_ERROR",
    message: "this run outgrew the log kept for it (RESUMABLE_MAX_RUN_BYTES) while this client was behind",
    code: "run_truncated",
    metadata: { tanstack: { threadId: meta.threadId, runId: meta.runId } },
  }
}

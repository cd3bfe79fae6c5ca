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

/** A log that drops its oldest events past `maxBytes`; the events a live reader needs are never lost. */
export function createRunLog(meta: { runId: string; threadId: string; capability: string; owner: string }, maxBytes: number): RunLog {
  const events: string[] = []
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

  return {
    ...meta,
    append(batch) {
      if (done || !batch.length) return
      for (const json of batch) {
        events.push(json)
        size += json.length
      }
      while (size > maxBytes && events.length > 1) {
        size -= (events.shift() as string).length
        first++
      }
      notify()
    },
    end() {
      if (done) return
      done = true
      finishedAt = Date.now()
      notify()
    },
    ended: () => done,
    nextSeq: () => first + events.length,
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
          const end = first + events.length
          if (next < end) {
            const batch: Logged[] = []
            for (let seq = next; seq < end; seq++) batch.push({ seq, json: events[seq - first] as string })
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

// Resumable runs (RESUMABLE=memory; WIRE.md §3.10): each AG-UI run's events are logged and tagged
// with ids, so a client can reconnect after a drop (the same POST with Last-Event-ID), another tab
// can join (GET ?runId=&offset=-1), and a persisted client can hydrate a thread (GET ?threadId=).
// Only the run's owner may do any of this: the bearer token's holder, or with auth off the browser
// holding the owner cookie; a reconnect also proves itself with the run's capability in its ids.
import { createRunLog, type Logged, type RunLog } from "./log"
import { type AnswerBuilder, answerBuilder, fromWireMessages, sizeOf, type UIMessage } from "./thread"

export type { RunLog } from "./log"

type RunsConfig = { ttlMs: number; graceMs: number; maxRunBytes: number; maxBytes: number }

const OWNER_COOKIE = "sidechat_owner"

type Maybe<T> = T | undefined | Promise<T | undefined>
export type LoggedEvent = { type: string; [key: string]: unknown }

export type Started = {
  log: RunLog
  /** Logs a batch of events (the thread's answer is built from them too); returns their JSON as logged. */
  record: (events: LoggedEvent[]) => string[]
  /** The run is over: its log ends, its thread has no live run, its grace timer stops. */
  end: () => void
  /** The request was refused before the run began: it is forgotten. */
  discard: () => void
  /** Whether this run is the only one of its id across instances (always, without Redis). */
  claim: () => Promise<boolean>
}
/** `stopAsked`: a DELETE came before the stream could be stopped (`control`); it is stopped then. */
type Entry = { log: RunLog; stop: (reason: "stopped" | "abandoned") => void; timer?: ReturnType<typeof setTimeout>; stopAsked?: boolean }
/**
 * `bytes`: what the messages weigh (the answer counts its own). Until its run ends, a thread keeps
 * the one it replaced (`previous`), so that a refused request (`discarded`) can put it back.
 */
type Thread = {
  messages: UIMessage[]
  bytes: number
  answer?: AnswerBuilder
  activeRun?: string
  touched: number
  previous?: Thread
  discarded?: boolean
}

export type Runs = {
  config: RunsConfig
  /** Starts a run's log, or says the owner already has a run of that id. `end` once it is over. */
  start(owner: string, input: { runId: string; threadId: string; messages: unknown[] }): Started | "exists"
  /**
   * Lets `stop` end the run's provider request: an explicit stop, or no reader for the grace
   * period (unless `readElsewhere` says another instance still has one).
   */
  control(log: RunLog, stop: Entry["stop"], readElsewhere?: () => Promise<boolean>): void
  find(owner: string, runId: string): Maybe<RunLog>
  /** The run whose ids carry this capability (a reconnect's Last-Event-ID). */
  byCapability(capability: string): Maybe<RunLog>
  /** DELETE: ends a live run at once; false when there is no such run of this owner. */
  stop(owner: string, runId: string): boolean | Promise<boolean>
  /** `at`: when the thread last changed, so two copies (instances) can be told apart. */
  thread(owner: string, threadId: string): Maybe<{ messages: UIMessage[]; activeRun: string | undefined; at?: number }>
  /** Runs and threads held right now, and their bytes (metrics, /ready). */
  stats(): { runs: number; live: number; bytes: number; threads: number; threadBytes: number }
}

const hash = (text: string) => Bun.SHA256.hash(text, "hex").slice(0, 32)
/** `bytes` random bytes as base64url text (Web Crypto; node:crypto would load Node's streams at start-up). */
const randomText = (bytes: number) => Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("base64url")
const keyOf = (owner: string, id: string) => `${owner}\n${id}`

export function createRuns(config: RunsConfig): Runs {
  const runs = new Map<string, Entry>()
  const capabilities = new Map<string, string>()
  const threads = new Map<string, Thread>()

  const drop = (key: string) => {
    const entry = runs.get(key)
    if (entry) capabilities.delete(entry.log.capability)
    runs.delete(key)
  }
  const threadBytes = (thread: Thread) => thread.bytes + (thread.answer?.bytes() ?? 0)
  /** Whether the thread's run is still streaming: its thread stays, whatever its age or the cap. */
  const busy = (key: string, thread: Thread) => {
    const run = thread.activeRun !== undefined && runs.get(keyOf(key.slice(0, key.indexOf("\n")), thread.activeRun))
    return run ? !run.log.ended() : false
  }
  /**
   * Finished runs past their TTL go, and threads untouched for as long; then, while logs and threads
   * together are over the cap, the oldest finished runs and idle threads. Live runs and their threads stay.
   */
  const evict = () => {
    const now = Date.now()
    let total = 0
    for (const [key, { log }] of runs) {
      const endedAt = log.endedAt()
      if (endedAt !== undefined && now - endedAt > config.ttlMs) drop(key)
      else total += log.bytes()
    }
    for (const [key, thread] of threads) {
      if (now - thread.touched > config.ttlMs && !busy(key, thread)) threads.delete(key)
      else total += threadBytes(thread)
    }
    if (total <= config.maxBytes) return
    const idle: { at: number; bytes: number; forget: () => void }[] = []
    for (const [key, { log }] of runs) {
      const endedAt = log.endedAt()
      if (endedAt !== undefined) idle.push({ at: endedAt, bytes: log.bytes(), forget: () => drop(key) })
    }
    for (const [key, thread] of threads)
      if (!busy(key, thread)) idle.push({ at: thread.touched, bytes: threadBytes(thread), forget: () => threads.delete(key) })
    idle.sort((a, b) => a.at - b.at)
    for (const { bytes, forget } of idle) {
      if (total <= config.maxBytes) break
      total -= bytes
      forget()
    }
  }
  const sweeper = setInterval(evict, Math.min(60_000, Math.max(1000, config.ttlMs / 4)))
  sweeper.unref?.()

  return {
    config,
    start(owner, input) {
      const key = keyOf(owner, input.runId)
      const endedAt = runs.get(key)?.log.endedAt()
      // An id is taken until its run expires (the sweeper may not have dropped it yet).
      if (endedAt !== undefined && Date.now() - endedAt > config.ttlMs) drop(key)
      else if (runs.has(key)) return "exists"
      const log = createRunLog({ ...input, capability: randomText(12), owner }, config.maxRunBytes)
      const entry: Entry = { log, stop: () => {} }
      runs.set(key, entry)
      capabilities.set(log.capability, key)
      const threadKey = keyOf(owner, input.threadId)
      const answer = answerBuilder(`${input.runId}-answer`)
      const messages = fromWireMessages(input.messages)
      const thread: Thread = {
        messages,
        bytes: sizeOf(messages),
        answer,
        activeRun: input.runId,
        touched: Date.now(),
        previous: threads.get(threadKey),
      }
      threads.set(threadKey, thread)
      // With this run's messages counted: a long history may push older runs and threads out.
      evict()
      return {
        log,
        record(events) {
          const json = events.map((event) => {
            answer.push(event)
            return JSON.stringify(event)
          })
          log.append(json)
          thread.touched = Date.now()
          return json
        },
        end() {
          log.end()
          answer.settle()
          thread.previous = undefined
          clearTimeout(entry.timer)
          // The stream is over: nothing of it (its stop reaches all of it) is kept for the TTL.
          entry.timer = undefined
          entry.stop = () => {}
          if (thread.activeRun === input.runId) thread.activeRun = undefined
          thread.touched = Date.now()
        },
        claim: async () => true,
        discard() {
          clearTimeout(entry.timer)
          drop(key)
          log.end()
          // A refused request leaves the thread as it was: the last one whose request was not refused.
          thread.discarded = true
          if (threads.get(threadKey) === thread) {
            let back = thread.previous
            while (back?.discarded) back = back.previous
            if (back) threads.set(threadKey, back)
            else threads.delete(threadKey)
          }
        },
      }
    },
    control(log, stop, readElsewhere) {
      const entry = runs.get(keyOf(log.owner, log.runId))
      if (entry?.log !== log || log.ended()) return
      entry.stop = stop
      if (entry.stopAsked) return stop("stopped")
      // Until a reader attaches, and whenever the last one leaves, the grace period runs.
      let readers = 0
      const abandon = (): ReturnType<typeof setTimeout> => {
        const timer = setTimeout(async () => {
          if (log.ended()) return
          const elsewhere = readElsewhere ? await readElsewhere().catch(() => false) : false
          // A reader may have come (or this timer been replaced) while Redis was asked.
          if (entry.timer !== timer || readers > 0 || log.ended()) return
          if (elsewhere) entry.timer = abandon()
          else entry.stop("abandoned")
        }, config.graceMs)
        return timer
      }
      entry.timer = abandon()
      log.onReaders((count) => {
        readers = count
        clearTimeout(entry.timer)
        entry.timer = count === 0 && !log.ended() ? abandon() : undefined
      })
    },
    find: (owner, runId) => runs.get(keyOf(owner, runId))?.log,
    byCapability(capability) {
      const key = capabilities.get(capability)
      return key === undefined ? undefined : runs.get(key)?.log
    },
    stop(owner, runId) {
      const entry = runs.get(keyOf(owner, runId))
      if (!entry) return false
      if (entry.log.ended()) return true
      entry.stopAsked = true
      entry.stop("stopped")
      return true
    },
    thread(owner, threadId) {
      const thread = threads.get(keyOf(owner, threadId))
      if (!thread) return undefined
      const active = thread.activeRun !== undefined && runs.get(keyOf(owner, thread.activeRun))
      if (thread.activeRun !== undefined && (!active || active.log.ended())) thread.activeRun = undefined
      const answer = thread.answer?.message()
      const answered = answer?.parts.length ? [answer] : []
      return { messages: [...thread.messages, ...answered], activeRun: thread.activeRun, at: thread.touched }
    },
    stats() {
      let live = 0
      let bytes = 0
      for (const { log } of runs.values()) {
        if (!log.ended()) live++
        bytes += log.bytes()
      }
      let held = 0
      for (const thread of threads.values()) held += threadBytes(thread)
      return { runs: runs.size, live, bytes, threads: threads.size, threadBytes: held }
    },
  }
}

/**
 * Who owns what a request starts or reads: the bearer token's holder; with auth off, the browser
 * holding the owner cookie (a new one is handed out when there is none). A client that keeps no
 * cookies gets a new owner each time: it can still reconnect (by capability), but not join,
 * hydrate or stop by id.
 */
export function ownerOf(request: Request, token: string | undefined): { owner: string; cookie?: string } {
  if (token) return { owner: `t${hash(token)}` }
  const cookie = request.headers
    .get("cookie")
    ?.split(";")
    .map((pair) => pair.trim().split("="))
    .find(([name]) => name === OWNER_COOKIE)?.[1]
  if (cookie && /^[A-Za-z0-9_-]{16,64}$/.test(cookie)) return { owner: `c${hash(cookie)}` }
  const fresh = randomText(18)
  return { owner: `c${hash(fresh)}`, cookie: `${OWNER_COOKIE}=${fresh}; Path=/; HttpOnly; SameSite=Lax; Max-Age=2592000` }
}

/** An event id is `<capability>.<seq>`; Last-Event-ID gives it back. */
export function parseEventId(id: string): { capability: string; seq: number } | undefined {
  const match = /^([A-Za-z0-9_-]{16})\.(\d{1,12})$/.exec(id.trim())
  return match ? { capability: match[1] as string, seq: Number(match[2]) } : undefined
}

/** Logged events framed with their ids: `id:` lines for SSE, `{id, chunk}` envelopes for NDJSON. */
export function frameLogged(log: RunLog, batch: Logged[], sse: boolean): string {
  let text = ""
  for (const { seq, json } of batch)
    text += sse ? `id: ${log.capability}.${seq}\ndata: ${json}\n\n` : `{"id":"${log.capability}.${seq}","chunk":${json}}\n`
  return text
}

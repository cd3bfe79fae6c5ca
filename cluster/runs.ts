// Resumable runs across instances (RESUMABLE=redis): each run is kept in this process as with
// RESUMABLE=memory, and mirrored to Redis as it streams, so a reconnect, a join or a hydration that
// reaches another instance behind the load balancer is answered from Redis, tailing the run the
// first instance is still producing.
//
// Keys (all under sidechat:, all with a TTL):
//   log:<capability>      a Stream, one entry per batch of events (one network read's worth):
//                         ID 0-<last seq+1>, fields f <first seq> e <json> e <json> …; `end` last
//   run:<capability>      a hash: runId, threadId, owner
//   runid:<owner>:<runId> the capability, for joins by runId
//   live:<capability>     present while the producing instance is alive (refreshed)
//   readers:<capability>  readers attached on other instances (the grace period counts them)
//   thread:<owner>:<id>   the thread's messages and its live run, as JSON, for hydration
// Channel sidechat:stop carries a DELETE to the instance that produces the run.
import type { Logged, RunLog } from "../runs/log"
import type { Runs } from "../runs"
import type { UIMessage } from "../runs/thread"
import type { Logger } from "../observe/log"
import type { Redis } from "./redis"

const LIVE_SECONDS = 15
/** Takes a runId for one instance and writes the run's meta with it, so whoever finds the id finds the run. */
const CLAIM = `
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], 'runId', ARGV[3], 'threadId', ARGV[4], 'owner', ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
`
type Entry = [string, string[]]

export function createClusterRuns(local: Runs, redis: Redis, logger: Pick<Logger, "warn">): Runs {
  const ttl = String(Math.ceil(local.config.ttlMs / 1000))
  const maxEntries = String(Math.max(1000, Math.floor(local.config.maxRunBytes / 64)))
  /** Fire and forget: a mirror write that fails only costs this run its cross-instance resume. */
  const write = (command: string, args: string[]) => redis.send(command, args, 2000)

  redis.subscribe("sidechat:stop", (capability) => {
    const log = local.byCapability(capability) as RunLog | undefined
    if (log) local.stop(log.owner, log.runId)
  })

  /** A run another instance produces, read from its Redis log. */
  const remote = async (capability: string): Promise<RunLog | undefined> => {
    if (!redis.up()) return undefined
    try {
      const meta = (await redis.send("HGETALL", [`sidechat:run:${capability}`])) as Record<string, string> | null
      if (!meta?.runId) return undefined
      const first = (await redis.send("XRANGE", [`sidechat:log:${capability}`, "-", "+", "COUNT", "1"])) as Entry[]
      const firstSeq = first[0]?.[1][0] === "f" ? Number(first[0][1][1]) : 0
      return remoteLog({ capability, runId: meta.runId, threadId: meta.threadId ?? "", owner: meta.owner ?? "" }, firstSeq, redis)
    } catch {
      return undefined
    }
  }

  return {
    config: local.config,
    start(owner, input) {
      const started = local.start(owner, input)
      if (started === "exists" || !redis.up()) return started
      const { log } = started
      const cap = log.capability
      const keys = {
        run: `sidechat:run:${cap}`,
        log: `sidechat:log:${cap}`,
        live: `sidechat:live:${cap}`,
        runId: `sidechat:runid:${owner}:${input.runId}`,
        thread: `sidechat:thread:${owner}:${input.threadId}`,
      }
      let mirrored = true
      let claimed = false
      let heartbeat: ReturnType<typeof setInterval> | undefined
      // A mirror that failed once is given up: readers elsewhere learn the run is gone (no `live`
      // key) instead of waiting on a log that stopped.
      const fail = (error: unknown) => {
        if (!mirrored) return
        mirrored = false
        clearInterval(heartbeat)
        void write("DEL", [keys.live]).catch(() => {})
        logger.warn("sidechat: a run's Redis mirror failed; it can be resumed on this instance only", { runId: log.runId, error })
      }
      // Every key lives while the run does (refreshed with the `live` key) and for the TTL after it.
      const alive = () =>
        Promise.all([
          write("SET", [keys.live, "1", "EX", String(LIVE_SECONDS)]),
          ...[keys.run, keys.log, keys.runId, keys.thread].map((key) => write("EXPIRE", [key, ttl])),
        ]).catch(fail)
      const mirror = () => {
        write("SET", [keys.thread, JSON.stringify({ ...local.thread(owner, input.threadId), at: Date.now() }), "EX", ttl])
          .then(alive)
          .catch(fail)
        heartbeat = setInterval(alive, (LIVE_SECONDS * 1000) / 3)
      }
      return {
        log,
        /** The runId is taken with SET NX: of two instances starting the same run, one wins. */
        async claim() {
          const args = [CLAIM, "2", keys.runId, keys.run, cap, ttl, input.runId, input.threadId, owner]
          const taken = await redis.send("EVAL", args).then(
            (answer) => answer === 1,
            (error) => (fail(error), true),
          )
          claimed = taken
          if (taken && mirrored) mirror()
          return taken
        },
        record(events) {
          const seq = log.nextSeq()
          const logged = started.record(events)
          if (!mirrored || !logged.length) return logged
          const fields = ["f", String(seq), ...logged.flatMap((json) => ["e", json])]
          write("XADD", [keys.log, "MAXLEN", "~", maxEntries, `0-${seq + logged.length}`, ...fields]).catch(fail)
          return logged
        },
        discard() {
          started.discard()
          clearInterval(heartbeat)
          if (!claimed) return
          void write("DEL", [keys.run, keys.runId, keys.live, keys.log]).catch(() => {})
          // The claim mirrored this request's thread; the thread goes back to what it was here.
          if (!mirrored) return
          const thread = local.thread(owner, input.threadId) as ReturnType<typeof local.thread> & object
          void (
            thread ? write("SET", [keys.thread, JSON.stringify({ ...thread, at: Date.now() }), "EX", ttl]) : write("DEL", [keys.thread])
          ).catch(() => {})
        },
        end() {
          started.end()
          clearInterval(heartbeat)
          if (!mirrored) return
          const thread = local.thread(owner, input.threadId)
          void Promise.all([
            write("XADD", [keys.log, `0-${log.nextSeq() + 1}`, "end", "1"]),
            write("EXPIRE", [keys.log, ttl]),
            write("SET", [keys.thread, JSON.stringify({ ...thread, at: Date.now() }), "EX", ttl]),
            write("DEL", [keys.live]),
          ]).catch(fail)
        },
      }
    },
    control(log, stop) {
      // Readers on other instances count too: the grace period only ends a run nobody reads anywhere.
      local.control(
        log,
        stop,
        async () =>
          redis.up() && Number(await redis.send("ZCOUNT", [`sidechat:readers:${log.capability}`, String(Date.now()), "+inf"])) > 0,
      )
    },
    async find(owner, runId) {
      const here = await local.find(owner, runId)
      if (here || !redis.up()) return here
      const cap = (await redis.send("GET", [`sidechat:runid:${owner}:${runId}`]).catch(() => null)) as string | null
      return cap ? remote(cap) : undefined
    },
    async byCapability(capability) {
      return (await local.byCapability(capability)) ?? remote(capability)
    },
    async stop(owner, runId) {
      if (await local.stop(owner, runId)) return true
      const log = await this.find(owner, runId)
      if (!log) return false
      await redis.send("PUBLISH", ["sidechat:stop", log.capability]).catch(() => {})
      return true
    },
    async thread(owner, threadId) {
      const here = await local.thread(owner, threadId)
      if (!redis.up()) return here
      const json = (await redis.send("GET", [`sidechat:thread:${owner}:${threadId}`]).catch(() => null)) as string | null
      if (!json) return here
      const thread = JSON.parse(json) as { messages: UIMessage[]; activeRun?: string; at?: number }
      // The newer of the two: a later run of the thread may have happened on another instance.
      if (here && (here.at ?? 0) >= (thread.at ?? 0)) return here
      const live =
        thread.activeRun !== undefined && (await redis.send("GET", [`sidechat:runid:${owner}:${thread.activeRun}`]).catch(() => null))
      const running = live && (await redis.send("EXISTS", [`sidechat:live:${live}`]).catch(() => 0))
      return { messages: thread.messages, activeRun: running ? thread.activeRun : undefined, at: thread.at }
    },
    stats: local.stats,
  }
}

/** Tails a run's Redis Stream on a connection of its own, counted as a reader of that run. */
function remoteLog(meta: { capability: string; runId: string; threadId: string; owner: string }, firstSeq: number, redis: Redis): RunLog {
  const key = `sidechat:log:${meta.capability}`
  const readers = `sidechat:readers:${meta.capability}`
  const unsupported = () => {
    throw new Error("a remote run is read-only")
  }
  return {
    ...meta,
    append: unsupported,
    end: unsupported,
    ended: () => false,
    nextSeq: () => firstSeq,
    firstSeq: () => firstSeq,
    bytes: () => 0,
    endedAt: () => undefined,
    onReaders: () => {},
    async *tail(after, signal) {
      const connection = await redis.dedicated()
      const close = () => connection.close()
      signal.addEventListener("abort", close, { once: true })
      // This reader, in a set scored by when it lapses: a crashed instance's readers lapse by themselves.
      const me = crypto.randomUUID()
      const present = () =>
        Promise.all([redis.send("ZADD", [readers, String(Date.now() + 20_000), me]), redis.send("EXPIRE", [readers, "60"])]).catch(() => {})
      // An entry's ID is its last event's seq + 1: the first entry past the cursor holds after + 1.
      let cursor = `0-${after + 1}`
      let next = after + 1
      try {
        if (signal.aborted) return
        await present()
        for (;;) {
          const answer = (await withTimeout(
            connection.send("XREAD", ["COUNT", "512", "BLOCK", "5000", "STREAMS", key, cursor]),
            8000,
          )) as Record<string, Entry[]> | null
          if (signal.aborted) return
          void present()
          const entries = answer?.[key] ?? []
          if (!entries.length) {
            // The producing instance is gone and the run never ended: say so, once, and stop.
            if (!(await redis.send("EXISTS", [`sidechat:live:${meta.capability}`]).catch(() => 1))) {
              yield [
                {
                  seq: next,
                  json: JSON.stringify(endedBy(meta, "run_abandoned", "the instance streaming this run stopped before it ended")),
                },
              ]
              return
            }
            continue
          }
          const batch: Logged[] = []
          for (const [id, fields] of entries) {
            cursor = id
            if (fields[0] === "end") {
              if (batch.length) yield batch
              return
            }
            const first = Number(fields[1])
            for (let i = 3; i < fields.length; i += 2) {
              const seq = first + (i - 3) / 2
              if (seq < next) continue
              // Trimmed (MAXLEN) past what this reader needs next: no silent gap.
              if (seq > next) {
                yield [
                  ...batch,
                  { seq: next, json: JSON.stringify(endedBy(meta, "run_truncated", "this run's log was trimmed past this reader")) },
                ]
                return
              }
              batch.push({ seq, json: fields[i] as string })
              next = seq + 1
            }
          }
          if (batch.length) yield batch
        }
      } catch (error) {
        if (!signal.aborted) throw error
      } finally {
        signal.removeEventListener("abort", close)
        connection.close()
        await redis.send("ZREM", [readers, me]).catch(() => {})
      }
    },
  }
}

/** Rejects when `promise` has not settled within `ms` (a stalled Redis must not hold a reader forever). */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

function endedBy(meta: { threadId: string; runId: string }, code: string, message: string) {
  return {
    type: "RUN_ERROR",
    message,
    code,
    metadata: { tanstack: { threadId: meta.threadId, runId: meta.runId } },
  }
}

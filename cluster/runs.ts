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
      let mirrored = true
      const fail = (error: unknown) => {
        if (!mirrored) return
        mirrored = false
        logger.warn("sidechat: a run's Redis mirror failed; it can be resumed on this instance only", { runId: log.runId, error })
      }
      const alive = () => write("SET", [`sidechat:live:${cap}`, "1", "EX", String(LIVE_SECONDS)]).catch(fail)
      void Promise.all([
        write("HSET", [`sidechat:run:${cap}`, "runId", input.runId, "threadId", input.threadId, "owner", owner]),
        write("EXPIRE", [`sidechat:run:${cap}`, ttl]),
        write("SET", [`sidechat:runid:${owner}:${input.runId}`, cap, "EX", ttl]),
        write("SET", [`sidechat:thread:${owner}:${input.threadId}`, JSON.stringify(local.thread(owner, input.threadId)), "EX", ttl]),
        alive(),
      ]).catch(fail)
      const heartbeat = setInterval(alive, (LIVE_SECONDS * 1000) / 3)
      return {
        log,
        record(events) {
          const seq = log.nextSeq()
          started.record(events)
          if (!mirrored || !events.length) return
          const fields = ["f", String(seq), ...events.flatMap((json) => ["e", json])]
          write("XADD", [`sidechat:log:${cap}`, "MAXLEN", "~", maxEntries, `0-${seq + events.length}`, ...fields]).catch(fail)
        },
        discard() {
          started.discard()
          clearInterval(heartbeat)
          const keys = [`sidechat:run:${cap}`, `sidechat:runid:${owner}:${input.runId}`, `sidechat:live:${cap}`, `sidechat:log:${cap}`]
          void write("DEL", keys).catch(() => {})
        },
        end() {
          started.end()
          clearInterval(heartbeat)
          if (!mirrored) return
          const thread = local.thread(owner, input.threadId)
          void Promise.all([
            write("XADD", [`sidechat:log:${cap}`, `0-${log.nextSeq() + 1}`, "end", "1"]),
            write("EXPIRE", [`sidechat:log:${cap}`, ttl]),
            write("SET", [`sidechat:thread:${owner}:${input.threadId}`, JSON.stringify(thread), "EX", ttl]),
            write("DEL", [`sidechat:live:${cap}`]),
          ]).catch(fail)
        },
      }
    },
    control(log, stop) {
      // Readers on other instances count too: the grace period only ends a run nobody reads anywhere.
      local.control(log, stop, async () => redis.up() && Number(await redis.send("GET", [`sidechat:readers:${log.capability}`])) > 0)
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
      if (here || !redis.up()) return here
      const json = (await redis.send("GET", [`sidechat:thread:${owner}:${threadId}`]).catch(() => null)) as string | null
      if (!json) return undefined
      const thread = JSON.parse(json) as { messages: UIMessage[]; activeRun?: string }
      const live = thread.activeRun && (await redis.send("GET", [`sidechat:runid:${owner}:${thread.activeRun}`]).catch(() => null))
      const running = live && (await redis.send("EXISTS", [`sidechat:live:${live}`]).catch(() => 0))
      return { messages: thread.messages, activeRun: running ? thread.activeRun : undefined }
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
      await redis.send("INCR", [readers]).catch(() => {})
      // An entry's ID is its last event's seq + 1: the first entry past the cursor holds after + 1.
      let cursor = `0-${after + 1}`
      try {
        for (;;) {
          const answer = (await connection.send("XREAD", ["COUNT", "512", "BLOCK", "5000", "STREAMS", key, cursor])) as Record<
            string,
            Entry[]
          > | null
          if (signal.aborted) return
          const entries = answer?.[key] ?? []
          if (!entries.length) {
            void redis.send("EXPIRE", [readers, "60"]).catch(() => {})
            // The producing instance is gone and the run never ended: say so, once, and stop.
            if (!(await redis.send("EXISTS", [`sidechat:live:${meta.capability}`]).catch(() => 1))) {
              yield [{ seq: Number.MAX_SAFE_INTEGER, json: JSON.stringify(lostRun(meta)) }]
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
              if (seq > after) batch.push({ seq, json: fields[i] as string })
            }
          }
          yield batch
        }
      } catch (error) {
        if (!signal.aborted) throw error
      } finally {
        signal.removeEventListener("abort", close)
        connection.close()
        await redis.send("DECR", [readers]).catch(() => {})
      }
    },
  }
}

function lostRun(meta: { threadId: string; runId: string }) {
  return {
    type: "RUN_ERROR",
    message: "the instance streaming this run stopped before it ended",
    code: "run_abandoned",
    metadata: { tanstack: { threadId: meta.threadId, runId: meta.runId } },
  }
}

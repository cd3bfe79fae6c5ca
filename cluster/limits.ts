// Cluster-wide limits on Redis (REDIS_URL): the per-client stream cap and token bucket of
// edge/limits.ts, kept in Redis by one atomic script, so N replicas allow what one would. The
// total cap (MAX_STREAMS) protects each process and stays local. While Redis is down or slow,
// every instance decides alone, as without Redis.
import type { Limits } from "../config"
import { type Admission, type Admit, admitted, type LocalAdmit, refuse } from "../edge/limits"
import type { Redis } from "./redis"

/**
 * KEYS: the client's open-stream count, its bucket. ARGV: per-client cap, tokens per ms, burst,
 * the count's TTL in seconds. Redis's own clock keeps the replicas' clocks out of it.
 * Returns {0, open} when admitted, {1, open} when at the stream cap, {2, seconds} when over the rate.
 */
const ADMIT = `
local open = tonumber(redis.call('GET', KEYS[1]) or '0')
local cap = tonumber(ARGV[1])
if cap > 0 and open >= cap then return {1, open} end
local rate = tonumber(ARGV[2])
if rate > 0 then
  local burst = tonumber(ARGV[3])
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local bucket = redis.call('HMGET', KEYS[2], 'tokens', 'at')
  local tokens = tonumber(bucket[1]) or burst
  local at = tonumber(bucket[2]) or now
  tokens = math.min(burst, tokens + (now - at) * rate)
  if tokens < 1 then return {2, math.ceil((1 - tokens) / rate / 1000)} end
  redis.call('HSET', KEYS[2], 'tokens', tostring(tokens - 1), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[2], math.ceil(burst / rate) + 1000)
end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return {0, open + 1}
`
/** A count that expired while its streams were open must not go below zero. */
const RELEASE = "if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then return redis.call('DECR', KEYS[1]) end return 0"

export function createSharedLimits(local: LocalAdmit, redis: Redis, limits: Limits, streamTtlSeconds: number): Admit {
  const perMs = limits.ratePerMinute / 60_000
  return {
    active: local.active,
    async admit(client): Promise<Admission> {
      if (!redis.up() || (!limits.maxStreamsPerClient && !limits.ratePerMinute)) return local.admit(client)
      const slot = local.admitTotal()
      if (!slot.ok) return slot
      const keys = [`sidechat:open:${client}`, `sidechat:bucket:${client}`]
      let answer: [number, number]
      try {
        const args = [
          ADMIT,
          "2",
          ...keys,
          String(limits.maxStreamsPerClient),
          String(perMs),
          String(limits.rateBurst),
          String(streamTtlSeconds),
        ]
        answer = (await redis.send("EVAL", args)) as [number, number]
      } catch {
        // A command that timed out may still have run: give its count back (never below zero).
        void redis.send("EVAL", [RELEASE, "1", keys[0] as string], 2000).catch(() => {})
        slot.release()
        return local.admit(client)
      }
      const [verdict, value] = answer
      if (verdict === 1) {
        slot.release()
        return refuse(
          429,
          "too_many_streams",
          `this client already has ${value} streams open (MAX_STREAMS_PER_CLIENT, across instances)`,
          1,
        )
      }
      if (verdict === 2) {
        slot.release()
        return refuse(
          429,
          "too_many_requests",
          `request rate over ${limits.ratePerMinute} per minute (RATE_LIMIT_PER_MINUTE, across instances)`,
          value,
        )
      }
      return admitted(() => {
        slot.release()
        void redis.send("EVAL", [RELEASE, "1", keys[0] as string]).catch(() => {})
      })
    },
  }
}

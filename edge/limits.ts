// Abuse limits per client: streams open at once (per client and in total) and a token-bucket
// request rate. One instance keeps its own counts; the refusals say when to come back.
import type { Limits } from "../config"

export type Refusal = {
  status: 429 | 503
  code: "too_many_streams" | "server_busy" | "too_many_requests"
  message: string
  retryAfter: number
}

export type Admission = { ok: true; release: () => void } | { ok: false; refusal: Refusal }

export type Admit = {
  /** Admits one stream for `client`, or says why not; `release` must run once when it ends. */
  admit(client: string): Admission | Promise<Admission>
  /** Streams open right now. */
  active(): number
}

type Bucket = { tokens: number; at: number }

export type LocalAdmit = Admit & {
  admit(client: string): Admission
  /** Only this process's total (MAX_STREAMS): what cluster-wide limits leave to each instance. */
  admitTotal(): Admission
}

export function createLimits(limits: Limits, now: () => number = performance.now.bind(performance)): LocalAdmit {
  const open = new Map<string, number>()
  const buckets = new Map<string, Bucket>()
  let total = 0
  const perMs = limits.ratePerMinute / 60_000
  let swept = now()

  /** Takes one token from the client's bucket; the wait in seconds until one is there, or 0. */
  const take = (client: string): number => {
    if (!limits.ratePerMinute) return 0
    const t = now()
    // Full buckets carry no information: drop them now and then, so memory follows active clients.
    if (t - swept > 60_000) {
      for (const [key, bucket] of buckets) if (bucket.tokens + (t - bucket.at) * perMs >= limits.rateBurst) buckets.delete(key)
      swept = t
    }
    const bucket = buckets.get(client) ?? { tokens: limits.rateBurst, at: t }
    bucket.tokens = Math.min(limits.rateBurst, bucket.tokens + (t - bucket.at) * perMs)
    bucket.at = t
    buckets.set(client, bucket)
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return 0
    }
    return Math.ceil((1 - bucket.tokens) / perMs / 1000)
  }

  return {
    active: () => total,
    admitTotal() {
      if (total >= limits.maxStreams)
        return refuse(503, "server_busy", `this server is at its limit of ${limits.maxStreams} open streams (MAX_STREAMS)`, 1)
      total++
      return admitted(() => total--)
    },
    admit(client) {
      const mine = open.get(client) ?? 0
      if (limits.maxStreamsPerClient && mine >= limits.maxStreamsPerClient)
        return refuse(429, "too_many_streams", `this client already has ${mine} streams open (MAX_STREAMS_PER_CLIENT)`, 1)
      if (total >= limits.maxStreams)
        return refuse(503, "server_busy", `this server is at its limit of ${limits.maxStreams} open streams (MAX_STREAMS)`, 1)
      const wait = take(client)
      if (wait)
        return refuse(429, "too_many_requests", `request rate over ${limits.ratePerMinute} per minute (RATE_LIMIT_PER_MINUTE)`, wait)
      open.set(client, mine + 1)
      total++
      return admitted(() => {
        total--
        const left = (open.get(client) ?? 1) - 1
        if (left) open.set(client, left)
        else open.delete(client)
      })
    },
  }
}

/** An admission whose `release` gives the slot back once, however often it is called. */
export function admitted(giveBack: () => void): Admission {
  let released = false
  return {
    ok: true,
    release() {
      if (released) return
      released = true
      giveBack()
    },
  }
}

export function refuse(status: Refusal["status"], code: Refusal["code"], message: string, retryAfter: number): Admission {
  return { ok: false, refusal: { status, code, message, retryAfter } }
}

/**
 * Who a request counts against: its bearer token (hashed, so no token is kept) when auth is on,
 * else its IP address; behind a trusted reverse proxy, the last hop of X-Forwarded-For.
 */
export function clientOf(request: Request, peer: string | undefined, token: string | undefined, trustProxy: boolean): string {
  if (token) return `token:${Bun.hash(token).toString(36)}`
  const forwarded = trustProxy ? request.headers.get("x-forwarded-for")?.split(",").at(-1)?.trim() : undefined
  return `ip:${forwarded || peer || "unknown"}`
}

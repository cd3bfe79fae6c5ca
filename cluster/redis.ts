// The one Redis connection many sidechat instances share state through (REDIS_URL): resumable
// run logs, threads and cluster-wide limits. Bun's built-in client speaks every command needed
// (streams, blocking reads, scripts, pub/sub) through `send`. Redis is never on a chat's critical
// path for long: a command that does not answer within `timeoutMs` fails, and callers fall back
// (local limits, runs kept in this process). Reconnecting is automatic, every second.
import { RedisClient } from "bun"
import type { Logger } from "../observe/log"

export type Redis = {
  /** Whether the connection is up right now. */
  up(): boolean
  /** Sends one command; rejects at once while down, or after `timeoutMs` without an answer. */
  send(command: string, args: string[], timeoutMs?: number): Promise<unknown>
  /** A connection of its own, for a blocking read (XREAD BLOCK); the caller closes it. */
  dedicated(): Promise<RedisClient>
  /** Runs `listener` for each message on `channel`, across reconnects. */
  subscribe(channel: string, listener: (message: string) => void): void
  close(): void
}

export function createRedis(url: string, logger: Logger, timeoutMs = 250): Redis {
  const options = { enableOfflineQueue: false, autoReconnect: false, connectionTimeout: 2000 }
  const client = new RedisClient(url, options)
  const subscriber = new RedisClient(url, options)
  const channels = new Map<string, (message: string) => void>()
  let connected = false
  let warned = false
  let closed = false
  let retry: ReturnType<typeof setTimeout> | undefined
  const where = safeUrl(url)

  const schedule = () => {
    if (!closed) retry ??= setTimeout(connect, 1000)
  }
  const down = (message: string, error?: unknown) => {
    connected = false
    if (!warned)
      logger.warn(`sidechat: ${message}: runs stay in this process and limits are local until it is back`, { redis: where, error })
    warned = true
    schedule()
  }
  async function connect() {
    retry = undefined
    try {
      if (!client.connected) await client.connect()
      if (!subscriber.connected) {
        await subscriber.connect()
        // Bun keeps a channel's listeners across reconnects: drop them before subscribing again.
        for (const [channel, listener] of channels) {
          try {
            // Throws (synchronously) outside subscriber mode, which a fresh connection is in.
            await subscriber.unsubscribe(channel)
          } catch {}
          await subscriber.subscribe(channel, listener)
        }
      }
      if (!client.connected || !subscriber.connected) throw new Error("a connection dropped while connecting")
      if (!connected) logger.info(`sidechat: Redis at ${where} is up: runs and limits are shared`, { redis: where })
      connected = true
      warned = false
    } catch (error) {
      down(`Redis at ${where} is unreachable`, error)
    }
  }
  const lost = () => {
    if (closed) return
    if (connected) down(`lost Redis at ${where}`)
    else schedule()
  }
  client.onclose = lost
  subscriber.onclose = lost
  void connect()

  return {
    up: () => connected,
    async send(command, args, timeout = timeoutMs) {
      if (!connected) throw new Error("Redis is down")
      let timer: ReturnType<typeof setTimeout> | undefined
      try {
        return await Promise.race([
          client.send(command, args),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`Redis did not answer ${command} within ${timeout} ms`)), timeout)
          }),
        ])
      } finally {
        clearTimeout(timer)
      }
    },
    async dedicated() {
      const own = new RedisClient(url, options)
      try {
        await own.connect()
      } catch (error) {
        own.close()
        throw error
      }
      return own
    },
    subscribe(channel, listener) {
      channels.set(channel, listener)
      if (subscriber.connected) void subscriber.subscribe(channel, listener).catch(lost)
    },
    close() {
      closed = true
      clearTimeout(retry)
      client.close()
      subscriber.close()
    },
  }
}

/** The URL without its password, for logs. */
function safeUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = "****"
    return parsed.toString()
  } catch {
    return "(unparsable REDIS_URL)"
  }
}

// Bearer auth: any of the configured tokens opens every route except the probes.
// Bun's own SHA-256 and the global crypto's timingSafeEqual: node:crypto would load Node's stream
// modules at start-up (a few ms) for nothing.
const digest = (text: string) => Bun.SHA256.hash(text) as Uint8Array

export type Auth = {
  /** Whether auth is on at all. */
  enabled: boolean
  /** The token the request presents, when it matches one of the configured ones; else undefined. */
  check(request: Request): string | undefined
}

/**
 * Compares SHA-256 digests with `timingSafeEqual`, so neither a token's length nor its first
 * differing byte shows in the time an answer takes. Every configured token is compared, always,
 * so the time does not say which one matched either (rotation keeps two or more).
 */
export function createAuth(tokens: readonly string[]): Auth {
  const digests = tokens.map(digest)
  return {
    enabled: digests.length > 0,
    check(request) {
      const header = request.headers.get("authorization") ?? ""
      const presented = /^Bearer +(.+)$/i.exec(header)?.[1]?.trim()
      if (!presented) return undefined
      const candidate = digest(presented)
      let matched = false
      for (const known of digests) matched = crypto.timingSafeEqual(candidate, known) || matched
      return matched ? presented : undefined
    },
  }
}

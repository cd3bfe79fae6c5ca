// CORS: an allow-list of exact origins or patterns; credentials only ever go to a listed origin.

/**
 * An origin pattern is `scheme://host[:port]` where `*` stands for one host label
 * (`https://*.example.com`) or for any port (`http://localhost:*`). `*` alone allows every origin,
 * without credentials. Matching is on the parsed origin, so `http://localhost:3000.evil.com`
 * or `http://allowed.test.evil.com` never pass for `http://localhost:*` or `http://allowed.test`.
 */
export type Cors = {
  /** Headers for a request from `origin`: {} without an Origin, undefined for a refused origin. */
  headersFor(origin: string | null): Record<string, string> | undefined
  /** The preflight's allowed request headers. */
  allowHeaders: string
}

export function createCors(patterns: readonly string[], extraHeaders: readonly string[] = []): Cors {
  const anyOrigin = patterns.includes("*")
  const matchers = patterns.filter((pattern) => pattern !== "*").map(originMatcher)
  return {
    allowHeaders: ["authorization", "content-type", "x-run-id", "x-request-id", "last-event-id", ...extraHeaders].join(", "),
    headersFor(origin): Record<string, string> | undefined {
      if (!origin) return {}
      if (matchers.some((matches) => matches(origin)))
        return { "access-control-allow-origin": origin, "access-control-allow-credentials": "true", vary: "Origin" }
      if (anyOrigin) return { "access-control-allow-origin": "*", vary: "Origin" }
      return undefined
    },
  }
}

function originMatcher(pattern: string): (origin: string) => boolean {
  const label = "[a-z0-9-]+"
  const [, scheme = "", host = "", port] = /^([a-z][a-z0-9+.-]*):\/\/([^/:]+|\[[^\]]+\])(?::(\d+|\*))?\/?$/i.exec(pattern) ?? []
  const hostSource = host
    .toLowerCase()
    .split(".")
    .map((part) => (part === "*" ? label : part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")))
    .join("\\.")
  const portSource = port === "*" ? "(:\\d{1,5})?" : port ? `:${port}` : ""
  const source = new RegExp(`^${scheme.toLowerCase()}://${hostSource}${portSource}$`)
  return (origin) => source.test(origin.toLowerCase())
}

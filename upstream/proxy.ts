// An egress proxy for provider calls, from the variables every HTTP tool reads: HTTPS_PROXY for
// https:// providers (a CONNECT tunnel, TLS end to end with the provider), HTTP_PROXY for http://
// ones (requests in absolute form), NO_PROXY for the hosts that are reached directly.

/** The proxies in use, parsed by config (`parseEgressProxy`). */
export type EgressProxy = { https?: URL; http?: URL; noProxy: string[] }

/**
 * Where a request's connection goes instead of its origin, and what the proxy is told. `name` is
 * the proxy as messages show it; `key` also tells apart connections made with other credentials.
 */
export type Via = { hostname: string; port: number; authorization?: string; name: string; key: string }

/** The proxy for `url`, or undefined when it is reached directly. */
export function proxyFor(url: URL, proxy: EgressProxy | undefined): Via | undefined {
  const through = url.protocol === "https:" ? proxy?.https : proxy?.http
  if (!through || bypassed(url, proxy?.noProxy ?? [])) return undefined
  const user = decodeURIComponent(through.username)
  const password = decodeURIComponent(through.password)
  return {
    hostname: unbracket(through.hostname),
    port: Number(through.port) || 80,
    ...((user || password) && { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` }),
    name: through.host,
    key: `${through.host} as ${user || "-"}:${password}`,
  }
}

/**
 * NO_PROXY as curl reads it: `*` is every host; `example.com` and `.example.com` are that host and
 * every name under it; `host:port` only on that port; an IP address is itself, and an IPv4 block
 * in CIDR form (`10.0.0.0/8`) is every address in it. Names are compared without case or a
 * trailing dot.
 */
export function bypassed(url: URL, noProxy: readonly string[]): boolean {
  const host = unbracket(url.hostname).toLowerCase().replace(/\.$/, "")
  const address = ipv4(host) !== undefined || host.includes(":")
  const port = Number(url.port) || (url.protocol === "https:" ? 443 : 80)
  return noProxy.some((entry) => {
    if (entry === "*") return true
    const { name, entryPort } = splitPort(entry.toLowerCase())
    if (entryPort !== undefined && entryPort !== port) return false
    const cidr = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(name)
    if (cidr) return inBlock(host, cidr[1] as string, Number(cidr[2]))
    const domain = (name.startsWith(".") ? name.slice(1) : name).replace(/\.$/, "")
    // An address is only ever itself: `0.0.1` names no part of 127.0.0.1.
    return host === domain || (!address && host.endsWith(`.${domain}`))
  })
}

function splitPort(entry: string): { name: string; entryPort?: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry)
  if (bracketed) return { name: bracketed[1] as string, entryPort: bracketed[2] ? Number(bracketed[2]) : undefined }
  const colon = entry.lastIndexOf(":")
  // More than one colon without brackets: an IPv6 address with no port.
  if (colon < 0 || entry.indexOf(":") !== colon || !/^\d+$/.test(entry.slice(colon + 1))) return { name: entry }
  return { name: entry.slice(0, colon), entryPort: Number(entry.slice(colon + 1)) }
}

function inBlock(host: string, base: string, bits: number): boolean {
  const address = ipv4(host)
  const network = ipv4(base)
  if (address === undefined || network === undefined || bits > 32) return false
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0
  return (address & mask) >>> 0 === (network & mask) >>> 0
}

function ipv4(text: string): number | undefined {
  const parts = text.split(".")
  if (parts.length !== 4 || !parts.every((part) => /^\d{1,3}$/.test(part) && Number(part) <= 255)) return undefined
  return parts.reduce((sum, part) => sum * 256 + Number(part), 0)
}

/** A URL's hostname without IPv6 brackets: `[::1]` → `::1`. */
export const unbracket = (hostname: string) => (hostname.startsWith("[") ? hostname.slice(1, -1) : hostname)

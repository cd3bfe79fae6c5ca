// Small pieces the rest of sidechat uses with its configuration: JSON files named by a setting,
// key masking, model patterns, and which providers are live.
import type { Config, ProviderName } from "./index"

export type Loaded<V> = { ok: true; value: V } | { ok: false; problem: string }

/**
 * Reads a JSON file named by a setting (TOOLS_FILE, PRICES_FILE) and hands it to `check`; every
 * problem names the setting and the path. No path: `empty`.
 */
export async function loadJsonSetting<V>(
  name: string,
  path: string | undefined,
  empty: V,
  check: (json: unknown) => Loaded<V> | Promise<Loaded<V>>,
): Promise<Loaded<V>> {
  if (!path) return { ok: true, value: empty }
  const file = Bun.file(path)
  if (!(await file.exists())) return { ok: false, problem: `${name}=${path}: no such file` }
  let json: unknown
  try {
    json = await file.json()
  } catch (error) {
    return { ok: false, problem: `${name}=${path}: not JSON (${(error as Error).message})` }
  }
  const checked = await check(json)
  return checked.ok ? checked : { ok: false, problem: `${name}=${path}: ${checked.problem}` }
}

/** Shows enough of a key to recognise it and never enough to use it. */
export function maskKey(key: string): string {
  if (key.length < 16) return "****"
  return `${key.slice(0, 7)}…${key.slice(-4)}`
}

/** Everything between a URL-like value's scheme and its last `@`, line breaks included, as `***`. */
export const maskBeforeAt = (text: string) => text.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^]*@/i, "$1***@")

/**
 * A URL as logs and --print-config may show it: a password becomes `***`, and a user name with no
 * password (some services put the key there) becomes `***` too. Anything that is not a URL is
 * masked up to its last `@` (`maskBeforeAt`).
 */
export function maskUrl(text: string): string {
  if (!URL.canParse(text)) return maskBeforeAt(text)
  const url = new URL(text)
  if (!url.username && !url.password) return text
  if (url.password) url.password = "***"
  else url.username = "***"
  // `http://host:3128/` reads as `http://host:3128`.
  return url.pathname === "/" && !url.search && !url.hash ? url.href.slice(0, -1) : url.href
}

/** `*` matches any run of characters; everything else is literal. */
export function matchesPattern(pattern: string, value: string): boolean {
  if (!pattern.includes("*")) return pattern === value
  const source = pattern.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
  return new RegExp(`^${source.join(".*")}$`).test(value)
}

export function matchesAny(patterns: readonly string[], value: string): boolean {
  return patterns.some((pattern) => matchesPattern(pattern, value))
}

/** Whether a provider is served live, by the mock, or not at all under this config. */
export function providerMode(config: Config, provider: ProviderName): "live" | "mock" | "off" {
  if (provider === "mock") return "mock"
  if (config.mock === "all") return "mock"
  if (config[provider].apiKey) return "live"
  return config.mock === "auto" ? "mock" : "off"
}

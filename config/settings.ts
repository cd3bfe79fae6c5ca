// The settings that are more than one value: each parsed from the environment into its part of
// Config, its problems appended to the list parseConfig reports.
import type { Config, ModelSettings } from "./index"
import { maskBeforeAt, providerMode } from "./helpers"

export function parseResumable(
  str: (name: string) => string | undefined,
  int: (name: string, fallback: number, min: number, max: number) => number,
  problems: string[],
): Config["resumable"] {
  const mode = str("RESUMABLE") ?? "off"
  const settings = {
    ttlMs: int("RESUMABLE_TTL", 600, 1, 7 * 86_400) * 1000,
    graceMs: int("RESUMABLE_GRACE_MS", 5000, 0, 3_600_000),
    maxRunBytes: int("RESUMABLE_MAX_RUN_BYTES", 4 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    maxBytes: int("RESUMABLE_MAX_BYTES", 256 * 1024 * 1024, 1024 * 1024, 64 * 1024 * 1024 * 1024),
  }
  if (mode === "memory") return { ...settings, shared: false }
  if (mode === "redis") {
    if (!str("REDIS_URL")) problems.push("RESUMABLE=redis needs REDIS_URL")
    return { ...settings, shared: true }
  }
  if (mode !== "off") problems.push(`RESUMABLE=${JSON.stringify(mode)}: expected off, memory or redis`)
  return undefined
}

export function parseRedisUrl(url: string | undefined, problems: string[]): string | undefined {
  if (url === undefined) return undefined
  if (!/^(redis|rediss|valkey|valkeys|redis\+unix|valkey\+unix):\/\//.test(url) || !URL.canParse(url))
    problems.push("REDIS_URL: expected redis://[user:password@]host:port[/db] (or rediss:// for TLS)")
  return url
}

const API_ROUTES = ["/chat", "/health", "/ready", "/metrics", "/providers"]

/**
 * PLAYGROUND=auto (the default) serves the page only where it can only be a demo or a developer's
 * machine: HOST is a loopback address, or the default provider is the mock. `on` and `off` decide.
 */
export function parsePlayground(mode = "auto", path = "/", config: Config, problems: string[]): string | undefined {
  if (!["auto", "on", "off"].includes(mode)) problems.push(`PLAYGROUND=${JSON.stringify(mode)}: expected auto, on or off`)
  if (!/^\/[A-Za-z0-9._~\-/]*$/.test(path) || API_ROUTES.includes(path))
    problems.push(`PLAYGROUND_PATH=${JSON.stringify(path)}: expected a path such as / or /playground, not one of ${API_ROUTES.join(", ")}`)
  const loopback = /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/.test(config.host)
  const on = mode === "on" || (mode === "auto" && (loopback || providerMode(config, config.defaultProvider) === "mock"))
  return on ? path : undefined
}

/**
 * The standard OpenTelemetry variables: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as it is,
 * OTEL_EXPORTER_OTLP_ENDPOINT gets `/v1/traces` appended (as the specification says).
 */
export function parseOtel(
  env: Record<string, string | undefined>,
  str: (name: string) => string | undefined,
  int: (name: string, fallback: number, min: number, max: number) => number,
  problems: string[],
): Config["otel"] {
  const traces = str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
  const base = str("OTEL_EXPORTER_OTLP_ENDPOINT")
  const endpoint = traces ?? (base && `${base.replace(/\/+$/, "")}/v1/traces`)
  if (!endpoint) return undefined
  if (!URL.canParse(endpoint)) {
    problems.push(
      `${traces ? "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" : "OTEL_EXPORTER_OTLP_ENDPOINT"}=${JSON.stringify(traces ?? base)}: not a URL`,
    )
    return undefined
  }
  const headers: Record<string, string> = {}
  for (const pair of (env.OTEL_EXPORTER_OTLP_HEADERS ?? "").split(",").filter((item) => item.trim())) {
    const at = pair.indexOf("=")
    if (at < 1) problems.push("OTEL_EXPORTER_OTLP_HEADERS: expected key=value pairs separated by commas")
    else headers[decodeURIComponent(pair.slice(0, at).trim())] = decodeURIComponent(pair.slice(at + 1).trim())
  }
  return {
    endpoint,
    headers,
    serviceName: str("OTEL_SERVICE_NAME") ?? "sidechat",
    scheduleDelayMs: int("OTEL_BSP_SCHEDULE_DELAY", 5000, 10, 600_000),
  }
}

/** `FALLBACK=openai` or `FALLBACK=openai:gpt-5.4-mini`. */
export function parseFallback(raw: string | undefined, problems: string[]): Config["fallback"] {
  if (raw === undefined) return undefined
  const [provider, ...model] = raw.split(":")
  if (provider !== "anthropic" && provider !== "openai" && provider !== "mock") {
    problems.push(`FALLBACK=${JSON.stringify(raw)}: expected <provider> or <provider>:<model> with provider anthropic, openai or mock`)
    return undefined
  }
  return { provider, ...(model.length && { model: model.join(":") }) }
}

export function parseModelSettings(raw: string | undefined, problems: string[]): Record<string, ModelSettings> {
  if (raw === undefined) return {}
  let parsed: unknown
  try {
    parsed = JSON.parse(raw)
  } catch {
    problems.push('MODEL_SETTINGS: not JSON (expected {"model": {"maxTokens": 2048, "temperature": 0.2}})')
    return {}
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    problems.push("MODEL_SETTINGS: expected a JSON object keyed by model name")
    return {}
  }
  const settings: Record<string, ModelSettings> = {}
  for (const [model, entry] of Object.entries(parsed)) {
    const { maxTokens, temperature, thinkingBudget, ...rest } = (entry ?? {}) as Record<string, unknown>
    const bad = (field: string, value: unknown) =>
      problems.push(`MODEL_SETTINGS["${model}"].${field}=${JSON.stringify(value)}: not a valid value`)
    for (const field of Object.keys(rest)) bad(field, rest[field])
    if (maxTokens !== undefined && !(Number.isInteger(maxTokens) && (maxTokens as number) > 0)) bad("maxTokens", maxTokens)
    if (temperature !== undefined && !(typeof temperature === "number" && temperature >= 0 && temperature <= 2))
      bad("temperature", temperature)
    if (thinkingBudget !== undefined && !(Number.isInteger(thinkingBudget) && (thinkingBudget as number) >= 0))
      bad("thinkingBudget", thinkingBudget)
    settings[model] = { maxTokens, temperature, thinkingBudget } as ModelSettings
  }
  return settings
}

/**
 * The egress proxy for provider calls, from the variables every HTTP tool reads (upper or lower
 * case; upper wins). A proxy is spoken to in plain HTTP: `http://[user:password@]host[:port]`.
 */
export function parseEgressProxy(str: (name: string) => string | undefined, problems: string[]): Config["egressProxy"] {
  const proxy = (name: string) => {
    const raw = str(name) ?? str(name.toLowerCase())
    if (raw === undefined) return undefined
    // `host:port` alone is a plain HTTP proxy, as curl reads it.
    const full = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`
    const url = URL.canParse(full) ? new URL(full) : undefined
    // Masked more than maskUrl would: a value that failed here may not split where a URL does.
    const shown = maskBeforeAt(raw)
    if (url?.protocol === "http:" && url.hostname && (url.pathname === "/" || url.pathname === "") && !url.search && !url.hash) {
      if (decodable(url.username) && decodable(url.password)) return url
      problems.push(`${name}: its user or password is not valid percent-encoding (write % as %25); got ${JSON.stringify(shown)}`)
      return undefined
    }
    problems.push(`${name}: expected http://[user:password@]host[:port] (a proxy spoken to in plain HTTP); got ${JSON.stringify(shown)}`)
    return undefined
  }
  const https = proxy("HTTPS_PROXY")
  const http = proxy("HTTP_PROXY")
  if (!https && !http) return undefined
  const noProxy = (str("NO_PROXY") ?? str("no_proxy") ?? "")
    .split(/[\s,]+/)
    .map((entry) => entry.trim())
    .filter(Boolean)
  return { ...(https && { https }), ...(http && { http }), noProxy }
}

function decodable(text: string): boolean {
  try {
    decodeURIComponent(text)
    return true
  } catch {
    return false
  }
}

// Configuration: parsed once from the environment at startup, every problem listed at once.

export type ProviderName = "anthropic" | "openai" | "mock"
export const PROVIDERS: readonly ProviderName[] = ["anthropic", "openai", "mock"]

/** `auto`: providers without a key are served by the mock; `off`: never mock; `all`: mock everything. */
export type MockMode = "auto" | "off" | "all"

export type ModelSettings = { maxTokens?: number; temperature?: number; thinkingBudget?: number }

export type ProviderConfig = {
  apiKey?: string
  baseURL?: string
  model: string
  maxTokens: number
  temperature?: number
}

export type Config = {
  port: number
  host: string
  anthropic: ProviderConfig & { thinkingBudget: number; maxThinkingBudget: number }
  openai: ProviderConfig & { reasoningModels: string[] }
  defaultProvider: ProviderName
  allowedModels: string[]
  modelSettings: Record<string, ModelSettings>
  corsOrigins: string[]
  maxBodyBytes: number
  toolsFile?: string
  mock: MockMode
  mockDelayMs: number
  heartbeatMs: number
  providerMaxRetries: number
  providerTimeoutMs: number
  providerStallMs: number
  /** Bearer tokens that may call /chat (and every route but /health and /ready); empty: no auth. */
  authTokens: string[]
  /** `off`: BYOK headers are ignored; `optional`: used when sent; `required`: no key, no chat. */
  byok: ByokMode
  /** Resumable runs (RESUMABLE=memory): logged, tagged with ids, replayable; undefined when off. */
  resumable?: { ttlMs: number; graceMs: number; maxRunBytes: number; maxBytes: number; shared: boolean }
  /** REDIS_URL: runs (RESUMABLE=redis) and limits shared by every instance that uses it. */
  redisUrl?: string
  /** The path the playground page is served at, or undefined when it is off (PLAYGROUND). */
  playground?: string
  limits: Limits
  timeouts: { firstTokenMs: number; maxDurationMs: number }
  /** Where a provider request goes when its provider fails before the first byte. */
  fallback?: { provider: ProviderName; model?: string }
  /** `in-band`: a provider failure before the first byte is a started stream with one error event. */
  providerErrors: "in-band" | "status"
  shutdownGraceMs: number
  /** Whether X-Forwarded-For's last hop names the client (only behind a reverse proxy). */
  trustProxy: boolean
  logLevel: "debug" | "info" | "warn" | "error"
  /** Unset: pretty on a terminal, JSON otherwise. */
  logFormat?: "json" | "pretty"
  /** Debugging only: log the messages of each request at debug level. */
  logContent: boolean
  pricesFile?: string
  /** OpenTelemetry export, on when an OTLP endpoint is set. */
  otel?: { endpoint: string; headers: Record<string, string>; serviceName: string; scheduleDelayMs: number }
}

export type ByokMode = "off" | "optional" | "required"

export type Limits = {
  maxMessages: number
  maxInputChars: number
  maxTokens: number
  maxStreams: number
  /** 0 is off. */
  maxStreamsPerClient: number
  /** Token bucket per client: `ratePerMinute` refills, `rateBurst` is the bucket's size; 0 is off. */
  ratePerMinute: number
  rateBurst: number
}

export const MOCK_MODEL = "sidechat-mock"

export type ConfigResult = { ok: true; value: Config; warnings: string[] } | { ok: false; problems: string[] }

/** Parses the environment; nothing else in sidechat reads it. */
export function parseConfig(env: Record<string, string | undefined>): ConfigResult {
  const problems: string[] = []
  const warnings: string[] = []
  const str = (name: string) => {
    const value = env[name]?.trim()
    return value ? value : undefined
  }
  const int = (name: string, fallback: number, min: number, max: number) => {
    const raw = str(name)
    if (raw === undefined) return fallback
    const value = Number(raw)
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name}=${JSON.stringify(raw)}: expected a whole number from ${min} to ${max}`)
      return fallback
    }
    return value
  }
  const num = (name: string, min: number, max: number) => {
    const raw = str(name)
    if (raw === undefined) return undefined
    const value = Number(raw)
    if (!Number.isFinite(value) || value < min || value > max) {
      problems.push(`${name}=${JSON.stringify(raw)}: expected a number from ${min} to ${max}`)
      return undefined
    }
    return value
  }
  const oneOf = <T extends string>(name: string, allowed: readonly T[], fallback: T): T => {
    const raw = str(name)
    if (raw === undefined) return fallback
    if ((allowed as readonly string[]).includes(raw)) return raw as T
    problems.push(`${name}=${JSON.stringify(raw)}: expected ${allowed.join(", ")}`)
    return fallback
  }
  const list = (name: string) =>
    str(name)
      ?.split(",")
      .map((item) => item.trim())
      .filter(Boolean)
  const key = (name: string, prefix: string, checkPrefix: boolean) => {
    const value = str(name)
    if (value === undefined) return undefined
    if (value.startsWith("op://")) {
      problems.push(
        `${name} is a 1Password reference (op://…), not a key: start sidechat with \`op run --env-file=.env -- bun run index.ts\` so 1Password resolves it`,
      )
      return undefined
    }
    if (checkPrefix && !value.startsWith(prefix))
      warnings.push(`${name} (${maskKey(value)}) does not start with "${prefix}"; is it the right key?`)
    return value
  }

  const anthropicBaseURL = str("ANTHROPIC_BASE_URL")
  const openaiBaseURL = str("OPENAI_BASE_URL")
  for (const [name, url] of [
    ["ANTHROPIC_BASE_URL", anthropicBaseURL],
    ["OPENAI_BASE_URL", openaiBaseURL],
  ] as const) {
    if (url !== undefined && !URL.canParse(url)) problems.push(`${name}=${JSON.stringify(url)}: not a URL`)
  }

  const maxTokens = int("MAX_TOKENS", 1024, 1, 1_000_000)
  const temperature = num("TEMPERATURE", 0, 2)
  const anthropic = {
    apiKey: key("ANTHROPIC_API_KEY", "sk-ant-", anthropicBaseURL === undefined),
    baseURL: anthropicBaseURL,
    model: str("ANTHROPIC_MODEL") ?? "claude-sonnet-4-6",
    maxTokens: int("ANTHROPIC_MAX_TOKENS", maxTokens, 1, 1_000_000),
    temperature: num("ANTHROPIC_TEMPERATURE", 0, 1) ?? (temperature === undefined ? undefined : Math.min(temperature, 1)),
    thinkingBudget: int("ANTHROPIC_THINKING_BUDGET", 0, 0, 1_000_000),
    maxThinkingBudget: int("MAX_THINKING_BUDGET", 16_000, 0, 1_000_000),
  }
  if (anthropic.thinkingBudget > 0 && anthropic.thinkingBudget < 1024)
    problems.push(`ANTHROPIC_THINKING_BUDGET=${anthropic.thinkingBudget}: Anthropic needs at least 1024 (or 0 for off)`)
  const openai = {
    apiKey: key("OPENAI_API_KEY", "sk-", openaiBaseURL === undefined),
    baseURL: openaiBaseURL,
    model: str("OPENAI_MODEL") ?? "gpt-5.4-mini",
    maxTokens: int("OPENAI_MAX_TOKENS", maxTokens, 1, 1_000_000),
    temperature: num("OPENAI_TEMPERATURE", 0, 2) ?? temperature ?? 0.7,
    reasoningModels: list("OPENAI_REASONING_MODELS") ?? ["o1*", "o3*", "o4*", "gpt-5*"],
  }

  const mock = (str("MOCK") ?? "auto") as MockMode
  if (!["auto", "off", "all"].includes(mock)) problems.push(`MOCK=${JSON.stringify(mock)}: expected auto, off or all`)

  const fallbackProvider: ProviderName = anthropic.apiKey ? "anthropic" : openai.apiKey ? "openai" : "mock"
  const defaultProvider = (str("DEFAULT_PROVIDER") ?? fallbackProvider) as ProviderName
  if (!PROVIDERS.includes(defaultProvider))
    problems.push(`DEFAULT_PROVIDER=${JSON.stringify(defaultProvider)}: expected one of ${PROVIDERS.join(", ")}`)

  const modelSettings = parseModelSettings(str("MODEL_SETTINGS"), problems)
  const cors = list("CORS_ORIGINS") ?? ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"]
  for (const origin of cors)
    if (origin !== "*" && !/^[a-z][a-z0-9+.-]*:\/\/([^/:*]+|\*(\.[^/:*]+)+|\[[^\]]+\])(:(\d+|\*))?\/?$/i.test(origin))
      problems.push(`CORS_ORIGINS: ${JSON.stringify(origin)} is not scheme://host[:port] (with * for one host label or any port)`)

  const value: Config = {
    port: int("PORT", 8080, 0, 65535),
    host: str("HOST") ?? "127.0.0.1",
    anthropic,
    openai,
    defaultProvider,
    allowedModels: list("ALLOWED_MODELS") ?? [anthropic.model, openai.model],
    modelSettings,
    corsOrigins: cors,
    maxBodyBytes: int("MAX_BODY_BYTES", 4 * 1024 * 1024, 1024, 256 * 1024 * 1024),
    toolsFile: str("TOOLS_FILE"),
    mock,
    mockDelayMs: int("MOCK_DELAY_MS", 25, 0, 10_000),
    heartbeatMs: int("HEARTBEAT_MS", 5000, 100, 9000),
    providerMaxRetries: int("PROVIDER_MAX_RETRIES", 2, 0, 10),
    providerTimeoutMs: int("PROVIDER_TIMEOUT_MS", 600_000, 1000, 3_600_000),
    providerStallMs: int("PROVIDER_STALL_MS", 300_000, 100, 3_600_000),
    authTokens: list("AUTH_TOKEN") ?? [],
    byok: oneOf("BYOK", ["off", "optional", "required"] as const, "off"),
    limits: {
      maxMessages: int("MAX_MESSAGES", 1000, 1, 100_000),
      maxInputChars: int("MAX_INPUT_CHARS", 2_000_000, 1, 100_000_000),
      maxTokens: int("MAX_TOKENS_LIMIT", 64_000, 1, 1_000_000),
      maxStreams: int("MAX_STREAMS", 20_000, 1, 1_000_000),
      maxStreamsPerClient: int("MAX_STREAMS_PER_CLIENT", 100, 0, 1_000_000),
      ratePerMinute: int("RATE_LIMIT_PER_MINUTE", 300, 0, 1_000_000),
      rateBurst: int("RATE_LIMIT_BURST", 60, 1, 1_000_000),
    },
    timeouts: {
      firstTokenMs: int("FIRST_TOKEN_TIMEOUT_MS", 120_000, 100, 3_600_000),
      maxDurationMs: int("MAX_DURATION_MS", 1_800_000, 100, 86_400_000),
    },
    fallback: parseFallback(str("FALLBACK"), problems),
    providerErrors: oneOf("PROVIDER_ERRORS", ["in-band", "status"] as const, "in-band"),
    shutdownGraceMs: int("SHUTDOWN_GRACE_MS", 25_000, 0, 3_600_000),
    trustProxy: oneOf("TRUST_PROXY", ["off", "on"] as const, "off") === "on",
    logLevel: oneOf("LOG_LEVEL", ["debug", "info", "warn", "error"] as const, "info"),
    logFormat: str("LOG_FORMAT") === undefined ? undefined : oneOf("LOG_FORMAT", ["json", "pretty"] as const, "json"),
    logContent: oneOf("LOG_CONTENT", ["off", "on"] as const, "off") === "on",
    pricesFile: str("PRICES_FILE"),
    otel: parseOtel(env, str, int, problems),
    resumable: parseResumable(str, int, problems),
    redisUrl: parseRedisUrl(str("REDIS_URL"), problems),
  }
  value.playground = parsePlayground(str("PLAYGROUND"), str("PLAYGROUND_PATH"), value, problems)
  for (const token of value.authTokens)
    if (token.length < 16) problems.push(`AUTH_TOKEN: every token needs at least 16 characters; one has ${token.length}`)
  return problems.length ? { ok: false, problems } : { ok: true, value, warnings }
}

function parseResumable(
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

function parseRedisUrl(url: string | undefined, problems: string[]): string | undefined {
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
function parsePlayground(mode = "auto", path = "/", config: Config, problems: string[]): string | undefined {
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
function parseOtel(
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
function parseFallback(raw: string | undefined, problems: string[]): Config["fallback"] {
  if (raw === undefined) return undefined
  const [provider, ...model] = raw.split(":")
  if (provider !== "anthropic" && provider !== "openai" && provider !== "mock") {
    problems.push(`FALLBACK=${JSON.stringify(raw)}: expected <provider> or <provider>:<model> with provider anthropic, openai or mock`)
    return undefined
  }
  return { provider, ...(model.length && { model: model.join(":") }) }
}

function parseModelSettings(raw: string | undefined, problems: string[]): Record<string, ModelSettings> {
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

// Configuration: parsed once from the environment at startup, every problem listed at once.
import { maskKey } from "./helpers"
import type { EgressProxy } from "../upstream/proxy"
import { parseEgressProxy, parseFallback, parseModelSettings, parseOtel, parsePlayground, parseRedisUrl, parseResumable } from "./settings"

export { type Loaded, loadJsonSetting, maskKey, maskUrl, matchesAny, matchesPattern, providerMode } from "./helpers"

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
  /** HTTPS_PROXY, HTTP_PROXY and NO_PROXY: provider calls through an egress proxy; undefined when none is set. */
  egressProxy?: EgressProxy
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
    egressProxy: parseEgressProxy(str, problems),
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

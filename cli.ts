// The command line and start-up: --help, --version, --print-config, flags for the main settings;
// then the configuration is checked, the server starts, and signals drain it.
// Precedence: flags > environment > .env (Bun loads it without overriding the environment) > defaults.
import { type Config, type Loaded, loadJsonSetting, maskKey, maskUrl, parseConfig } from "./config"
import { httpError } from "./edge/http-error"
import { health, providerModes, ready } from "./edge/probes"
import type { Handler } from "./index"
import { createLogger, type Logger } from "./observe/log"
import { loadPrices } from "./observe/prices"
import pkg from "./package.json"
import playground from "./playground/index.html"
import type { ToolDecl } from "./schema"

/** Each flag sets the environment variable of the same name; secrets have no flag (argv is public). */
const FLAGS = {
  port: "PORT",
  host: "HOST",
  "default-provider": "DEFAULT_PROVIDER",
  "allowed-models": "ALLOWED_MODELS",
  "cors-origins": "CORS_ORIGINS",
  mock: "MOCK",
  byok: "BYOK",
  fallback: "FALLBACK",
  "provider-errors": "PROVIDER_ERRORS",
  "tools-file": "TOOLS_FILE",
  "shutdown-grace-ms": "SHUTDOWN_GRACE_MS",
} as const

export type Command =
  | { kind: "serve"; env: Record<string, string | undefined>; printConfig: boolean; healthcheck: boolean }
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "error"; message: string }

/** The flags that take no value, by name; short ones may be grouped (`-hv`). */
const SWITCHES: Record<string, string> = {
  "-h": "help",
  "--help": "help",
  "-v": "version",
  "--version": "version",
  "--print-config": "print-config",
  "--healthcheck": "healthcheck",
}

/**
 * `--flag value`, `--flag=value`, the switches above, and `--` to end the flags (nothing may
 * follow it). Written here rather than taken from node:util's parseArgs, because loading node:util
 * costs about 5 ms before the port is bound. As parseArgs does, a separate value may not start
 * with a dash: `--port -1` is refused, `--port=-1` is a value.
 */
function parseFlags(argv: string[]): { values: Record<string, string | true> } | { error: string } {
  const values: Record<string, string | true> = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === "--") {
      const rest = argv[i + 1]
      return rest === undefined ? { values } : { error: `unexpected argument '${rest}'` }
    }
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1
    const name = eq === -1 ? arg : arg.slice(0, eq)
    const grouped = /^-[a-z]{2,}$/.test(name) ? [...name.slice(1)].map((letter) => `-${letter}`) : [name]
    if (grouped.every((one) => Object.hasOwn(SWITCHES, one))) {
      if (eq !== -1) return { error: `${name} takes no value` }
      for (const one of grouped) values[SWITCHES[one] as string] = true
    } else if (name.startsWith("--") && Object.hasOwn(FLAGS, name.slice(2))) {
      const value = eq === -1 ? argv[++i] : arg.slice(eq + 1)
      if (value === undefined || (eq === -1 && value.startsWith("--"))) return { error: `${name} needs a value` }
      if (eq === -1 && value.startsWith("-")) return { error: `${name} needs a value (${name}=${value} for one that starts with a dash)` }
      values[name.slice(2)] = value
    } else {
      return { error: arg.startsWith("-") ? `unknown flag ${name}` : `unexpected argument '${arg}'` }
    }
  }
  return { values }
}

export function parseCommand(argv: string[], env: Record<string, string | undefined>): Command {
  const parsed = parseFlags(argv)
  if ("error" in parsed) return { kind: "error", message: `${parsed.error}; see --help` }
  const { values } = parsed
  if (values.help) return { kind: "help" }
  if (values.version) return { kind: "version" }
  const overrides: Record<string, string> = {}
  for (const [flag, name] of Object.entries(FLAGS)) {
    const value = values[flag]
    if (typeof value === "string") overrides[name] = value
  }
  const printConfig = values["print-config"] === true
  return { kind: "serve", env: { ...env, ...overrides }, printConfig, healthcheck: values.healthcheck === true }
}

export function usage(version: string): string {
  const flags = Object.entries(FLAGS)
    .map(([flag, name]) => `  --${flag.padEnd(20)} sets ${name}`)
    .join("\n")
  return `sidechat ${version}: a chat-streaming sidecar for TanStack AI frontends

Usage: sidechat [flags]          (in development: bun run index.ts [flags])

  -h, --help               this text
  -v, --version            the version
  --print-config           the effective configuration, secrets masked, then exit
  --healthcheck            exit 0 if the sidechat on this HOST and PORT answers /health, else 1
                           (a container HEALTHCHECK with no shell or curl in the image)
${flags}

Every setting is an environment variable (see env.example); a .env file in the working
directory is read too. Flags win over the environment, which wins over .env. API keys and
AUTH_TOKEN have no flags, because a command line is visible to every user of the machine.`
}

/** The effective configuration as JSON, with every secret masked. */
export function printableConfig(config: Config): string {
  const { egressProxy: proxy, otel } = config
  const masked = {
    ...config,
    anthropic: { ...config.anthropic, apiKey: config.anthropic.apiKey && maskKey(config.anthropic.apiKey) },
    openai: { ...config.openai, apiKey: config.openai.apiKey && maskKey(config.openai.apiKey) },
    authTokens: config.authTokens.map(maskKey),
    // Credentials in URLs, and the OTLP headers (where a collector's key goes), are secrets too.
    egressProxy: proxy && { ...proxy, https: proxy.https && maskUrl(proxy.https.href), http: proxy.http && maskUrl(proxy.http.href) },
    redisUrl: config.redisUrl && maskUrl(config.redisUrl),
    otel: otel && {
      ...otel,
      endpoint: maskUrl(otel.endpoint),
      headers: Object.fromEntries(Object.keys(otel.headers).map((name) => [name, "***"])),
    },
  }
  return JSON.stringify(masked, null, 2)
}

/** Reads TOOLS_FILE: a JSON array of `{ name, description, parameters }` declared to every provider call. */
export function loadServerTools(path: string | undefined): Promise<Loaded<ToolDecl[]>> {
  return loadJsonSetting("TOOLS_FILE", path, [] as ToolDecl[], async (json) => {
    const checked = (await import("./schema")).checkToolList(json)
    return checked.ok ? checked : { ok: false, problem: `${checked.error.path || "(root)"} ${checked.error.message}` }
  })
}

/**
 * Each stream holds two descriptors (the client's socket and the provider's). Bun raises the soft
 * open-file limit to the hard one at start-up; past it, accept() fails for everyone. So MAX_STREAMS
 * is kept under what the limit allows, and the start-up log says what caps it.
 */
async function withinFileLimit(config: Config, logger: Logger): Promise<Config> {
  const limit = await openFileLimit()
  if (limit === undefined) return config
  const capacity = Math.max(1, Math.floor((limit - 128) / 2))
  if (config.limits.maxStreams <= capacity) return config
  logger.info(
    `sidechat: the open-file limit (${limit}) allows about ${capacity} streams, two descriptors each: MAX_STREAMS is ${capacity}, not ${config.limits.maxStreams}; raise the limit (ulimit -n, systemd LimitNOFILE=) for more`,
    { openFileLimit: limit, maxStreams: capacity },
  )
  return { ...config, limits: { ...config.limits, maxStreams: capacity } }
}

/** The process's open-file limit (Linux), or undefined where it cannot be read. */
async function openFileLimit(): Promise<number | undefined> {
  const limits = await Bun.file("/proc/self/limits")
    .text()
    .catch(() => "")
  const line = limits.match(/^Max open files\s+(\d+|unlimited)/m)?.[1]
  return line === undefined || line === "unlimited" ? undefined : Number(line)
}

/** Whether the server this configuration describes answers /health within 2 s. */
async function healthy(config: Config): Promise<boolean> {
  const host = ["0.0.0.0", "::", "[::]"].includes(config.host)
    ? "127.0.0.1"
    : config.host.includes(":") && !config.host.startsWith("[")
      ? `[${config.host}]`
      : config.host
  const response = await fetch(`http://${host}:${config.port}/health`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined)
  return response?.status === 200
}

/** `bun run index.ts` and the binary start here. */
export async function main() {
  const command = parseCommand(process.argv.slice(2), Bun.env)
  if (command.kind === "help") return console.log(usage(pkg.version))
  if (command.kind === "version") return console.log(pkg.version)
  // Until the configuration is read, the format comes from LOG_FORMAT as given, else the terminal.
  const asked = command.kind === "serve" ? command.env.LOG_FORMAT : undefined
  const boot = createLogger({
    level: "info",
    format: asked === "json" || asked === "pretty" ? asked : "auto",
  })
  if (command.kind === "error") {
    boot.error(`sidechat: ${command.message}`)
    process.exit(2)
  }
  const parsed = parseConfig(command.env)
  if (!parsed.ok) {
    boot.error(`sidechat: cannot start:\n${parsed.problems.map((p) => `  - ${p}`).join("\n")}`, { problems: parsed.problems })
    process.exit(1)
  }
  if (command.printConfig) return console.log(printableConfig(parsed.value))
  if (command.healthcheck) process.exit((await healthy(parsed.value)) ? 0 : 1)
  const logger = createLogger({
    level: parsed.value.logLevel,
    format: parsed.value.logFormat ?? "auto",
  })
  let config = parsed.value
  const [tools, prices] = await Promise.all([loadServerTools(config.toolsFile), loadPrices(config.pricesFile)])
  const problems = [tools, prices].flatMap((loaded) => (loaded.ok ? [] : [loaded.problem]))
  if (!tools.ok || !prices.ok) {
    logger.error(`sidechat: cannot start:\n${problems.map((p) => `  - ${p}`).join("\n")}`, { problems })
    process.exit(1)
  }
  for (const warning of parsed.warnings) logger.warn(`sidechat: ${warning}`)
  // Containment: a throw that escapes one stream's machinery is a bug to see, not a reason to end
  // every other stream; the process logs it loudly and carries on.
  process.on("uncaughtException", (error) => logger.error("BUG: uncaught exception (sidechat carries on)", { error }))
  process.on("unhandledRejection", (error) => logger.error("BUG: unhandled rejection (sidechat carries on)", { error }))

  // The port is bound before the request path is loaded (schemas, routes: most of the start-up
  // time), so /health answers at once; /ready says "starting" and every other request waits for
  // the load. The provider SDKs load after it (see the end of main).
  const startedAt = Date.now()
  let handler: Handler | undefined
  const loaded = Promise.withResolvers<Handler>()
  const early = (request: Request, srv: Bun.Server<undefined>) => {
    const path = new URL(request.url).pathname
    const state = { providers: providerModes(config), startedAt, activeStreams: 0, draining: false, starting: true }
    if (request.method === "GET" && path === "/health") return health(config, state)
    if (request.method === "GET" && path === "/ready") return ready(config, state)
    return loaded.promise.then((serve) => serve(request, srv))
  }
  let server: Bun.Server<undefined>
  try {
    server = Bun.serve({
      port: config.port,
      hostname: config.host,
      // Bun's own limit answers with an empty 413 no client can read; readJson answers every size.
      maxRequestBodySize: Number.MAX_SAFE_INTEGER,
      // The playground page and its bundled script and styles (see playground/); everything else is ours.
      routes: config.playground ? { [config.playground]: playground } : {},
      development: false,
      // Bun turns SO_REUSEPORT on with development off; a second sidechat on a taken port must fail, not share it.
      reusePort: false,
      fetch: (request, srv) => (handler ? handler(request, srv) : early(request, srv)),
      error(error) {
        logger.error("BUG: Bun.serve caught an error", { error })
        return httpError({ status: 500, code: "internal_error", message: "sidechat failed while handling the request" })
      },
    })
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    logger.error(`sidechat: cannot listen on ${config.host}:${config.port}: ${reason}`, { host: config.host, port: config.port })
    process.exit(1)
  }

  // Read after binding: the first file read costs a few milliseconds. What it changes (MAX_STREAMS)
  // matters only to the handler, made below.
  config = await withinFileLimit(config, logger)

  // The request path loads a module group at a time, with a turn of the event loop between
  // groups, so a probe is answered while the rest loads. The provider SDKs come after the handler
  // (below), the default provider's first; a request that needs one sooner loads it itself.
  const step = <T>(load: () => T | Promise<T>) => new Promise((resolve) => setImmediate(resolve)).then(load)
  await step(() => import("./schema"))
  // Loaded only when configured: without tracing, no OpenTelemetry module is evaluated.
  const tracing = config.otel ? await (await import("./observe/trace")).createTracing(config.otel, pkg.version) : undefined
  const [{ createHandler }, { createObserver }, { createProviders }] = await step(() =>
    Promise.all([import("./index"), import("./observe"), import("./upstream")]),
  )
  const observer = createObserver({ config, logger, prices: prices.value, tracing })
  const providers = createProviders(config)
  const redis = config.redisUrl ? (await import("./cluster/redis")).createRedis(config.redisUrl, logger) : undefined
  handler = createHandler({ config, providers, serverTools: tools.value, observer, startedAt, redis })
  loaded.resolve(handler)

  let stopping = false
  const stop = async (signal: string) => {
    if (stopping) {
      logger.warn(`sidechat: ${signal} again: exiting now`, { signal })
      process.exit(1)
    }
    stopping = true
    logger.info(`sidechat: ${signal}: draining (up to ${config.shutdownGraceMs} ms for open streams)`, {
      signal,
      graceMs: config.shutdownGraceMs,
    })
    await handler?.shutdown(config.shutdownGraceMs)
    await server.stop(true)
    redis?.close()
    await tracing?.shutdown()
    logger.info("sidechat: stopped")
    process.exit(0)
  }
  process.on("SIGTERM", () => void stop("SIGTERM"))
  process.on("SIGINT", () => void stop("SIGINT"))

  const url = `http://${server.hostname}:${server.port}`
  const mask = (key?: string) => (key ? maskKey(key) : undefined)
  logger.info(`sidechat ${pkg.version} listening on ${url}`, { version: pkg.version, url })
  logger.info(`  anthropic: ${providers.modes.anthropic}, default model ${config.anthropic.model}`, {
    provider: "anthropic",
    mode: providers.modes.anthropic,
    key: mask(config.anthropic.apiKey),
    model: config.anthropic.model,
  })
  logger.info(
    `  openai:    ${providers.modes.openai}, default model ${config.openai.model}${config.openai.baseURL ? ` at ${config.openai.baseURL}` : ""}`,
    {
      provider: "openai",
      mode: providers.modes.openai,
      key: mask(config.openai.apiKey),
      model: config.openai.model,
      baseURL: config.openai.baseURL,
    },
  )
  const mocked = providers.modes[config.defaultProvider] === "mock"
  logger.info(`  default provider: ${config.defaultProvider}${mocked ? " (mocked: no key set, replies are canned)" : ""}`, {
    defaultProvider: config.defaultProvider,
    mocked,
  })
  const tokens = config.authTokens.length
  logger.info(`  auth: ${tokens ? `bearer (${tokens} token${tokens > 1 ? "s" : ""})` : "off"}, BYOK: ${config.byok}`, {
    auth: tokens > 0,
    byok: config.byok,
    tracing: config.otel ? maskUrl(config.otel.endpoint) : "off",
    prices: prices.value.length,
  })
  const proxy = config.egressProxy
  if (proxy) {
    const via = (["https", "http"] as const).flatMap((scheme) => (proxy[scheme] ? [`${scheme}:// via ${maskUrl(proxy[scheme].href)}`] : []))
    const except = proxy.noProxy.length ? `, except NO_PROXY ${proxy.noProxy.join(",")}` : ""
    logger.info(`  egress proxy: ${via.join(", ")}${except}`, {
      httpsProxy: proxy.https && maskUrl(proxy.https.href),
      httpProxy: proxy.http && maskUrl(proxy.http.href),
      noProxy: proxy.noProxy,
    })
  }
  if (tools.value.length)
    logger.info(`  server tools: ${tools.value.map((tool) => tool.name).join(", ")}`, { tools: tools.value.map((t) => t.name) })

  // Last, a step at a time between requests, what the first request would otherwise make itself:
  // the SDKs and their clients, and each schema's compiled check (together about 10 ms of its time
  // once the SDKs are loaded).
  await providers.warm?.(step, { report: (error) => logger.error("sidechat: a provider SDK did not load", { error }) })
  const { compileNext } = await import("./schema")
  while (await step(compileNext));
}

if (import.meta.main) await main()

// The command line: --help, --version, --print-config, and flags for the main settings.
// Precedence: flags > environment > .env (Bun loads it without overriding the environment) > defaults.
import { parseArgs } from "node:util"
import { type Config, maskKey } from "./config"

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
  | { kind: "serve"; env: Record<string, string | undefined>; printConfig: boolean }
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "error"; message: string }

export function parseCommand(argv: string[], env: Record<string, string | undefined>): Command {
  const options = Object.fromEntries(Object.keys(FLAGS).map((flag) => [flag, { type: "string" as const }]))
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        ...options,
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "v" },
        "print-config": { type: "boolean" },
      },
      allowPositionals: false,
    })
  } catch (error) {
    return { kind: "error", message: `${(error as Error).message}; see --help` }
  }
  const { values } = parsed
  if (values.help) return { kind: "help" }
  if (values.version) return { kind: "version" }
  const overrides: Record<string, string> = {}
  for (const [flag, name] of Object.entries(FLAGS)) {
    const value = values[flag]
    if (typeof value === "string") overrides[name] = value
  }
  return { kind: "serve", env: { ...env, ...overrides }, printConfig: values["print-config"] === true }
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
${flags}

Every setting is an environment variable (see env.example); a .env file in the working
directory is read too. Flags win over the environment, which wins over .env. API keys and
AUTH_TOKEN have no flags, because a command line is visible to every user of the machine.`
}

/** The effective configuration as JSON, with every secret masked. */
export function printableConfig(config: Config): string {
  const masked = {
    ...config,
    anthropic: { ...config.anthropic, apiKey: config.anthropic.apiKey && maskKey(config.anthropic.apiKey) },
    openai: { ...config.openai, apiKey: config.openai.apiKey && maskKey(config.openai.apiKey) },
    authTokens: config.authTokens.map(maskKey),
  }
  return JSON.stringify(masked, null, 2)
}

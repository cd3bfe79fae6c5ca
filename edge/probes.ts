// What sidechat says about itself, from configuration and counters alone, never by calling a
// provider. The probes carry no token: /health says the process is up, /ready whether to send it
// traffic. /providers (behind auth) tells a frontend, such as the playground, what it may ask for.
import { type Config, MOCK_MODEL, PROVIDERS, type ProviderName, providerMode } from "../config"
import pkg from "../package.json"

export type ProbeState = {
  providers: Record<ProviderName, "live" | "mock" | "off">
  startedAt: number
  activeStreams: number
  draining: boolean
  /** True while the process is bound but still loading its request path (see cli.ts). */
  starting?: boolean
  /** Whether the shared Redis is reachable, when REDIS_URL is set. */
  redis?: boolean
  /** Resumable runs held, when RESUMABLE is on. */
  runs?: { runs: number; live: number; bytes: number }
}

export function providerModes(config: Config): Record<ProviderName, "live" | "mock" | "off"> {
  return Object.fromEntries(PROVIDERS.map((name) => [name, providerMode(config, name)])) as Record<ProviderName, "live" | "mock" | "off">
}

export function health(config: Config, state: ProbeState): Response {
  return Response.json({
    status: "ok",
    version: pkg.version,
    providers: state.providers,
    defaultProvider: config.defaultProvider,
    uptimeSeconds: Math.round((Date.now() - state.startedAt) / 1000),
    activeStreams: state.activeStreams,
  })
}

export function ready(config: Config, state: ProbeState): Response {
  const status = state.draining ? "draining" : state.starting ? "starting" : "ready"
  const body = {
    status,
    draining: state.draining,
    activeStreams: state.activeStreams,
    providers: state.providers,
    auth: config.authTokens.length > 0,
    byok: config.byok,
    ...(state.redis !== undefined && {
      redis: state.redis ? "up" : "down: runs stay in this process and limits are local until it is back",
    }),
    ...(state.runs && { resumableRuns: state.runs }),
  }
  return Response.json(body, { status: status === "ready" ? 200 : 503 })
}

/** GET /providers: the providers served (live or mocked), each one's default model, and the allowed models. */
export function catalog(config: Config, modes: Record<ProviderName, "live" | "mock" | "off">) {
  return {
    defaultProvider: config.defaultProvider,
    providers: PROVIDERS.filter((name) => modes[name] !== "off").map((name) => ({
      name,
      mode: modes[name],
      defaultModel: name === "mock" ? MOCK_MODEL : config[name].model,
    })),
    models: config.allowedModels,
    /** Whether runs outlive a dropped connection (RESUMABLE): a stop should then also DELETE the run. */
    resumable: Boolean(config.resumable),
  }
}

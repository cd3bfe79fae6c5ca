// The probes carry no token: /health says the process is up, /ready whether to send it traffic.
// Both are answered from configuration and counters alone, never by calling a provider.
import { type Config, PROVIDERS, type ProviderName, providerMode } from "../config"
import pkg from "../package.json"

export type ProbeState = {
  providers: Record<ProviderName, "live" | "mock" | "off">
  startedAt: number
  activeStreams: number
  draining: boolean
  /** True while the process is bound but still loading its request path (see cli.ts). */
  starting?: boolean
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
  }
  return Response.json(body, { status: status === "ready" ? 200 : 503 })
}

// Request parsing: which wire generation a body speaks, and the ChatRequest it becomes.
import type { Config } from "../config"
import type { ToolDecl } from "../schema"
import { parseAguiRequest } from "./agui"
import { parseLegacyRequest } from "./legacy"
import { type ChatRequest, type Generation, type Parsed, queryChoice } from "./resolve"

export * from "./resolve"
export { parseAguiRequest, REDACTED_PREFIX } from "./agui"
export { parseLegacyRequest } from "./legacy"

/**
 * Current clients send `threadId`/`runId`, ids on every message and `X-Run-Id`; legacy ones
 * send none of these (WIRE.md §0). `?wire=legacy|agui` overrides the guess.
 */
export function detectGeneration(body: Record<string, unknown>, headers: Headers, url: URL): Parsed<Generation> {
  const override = queryChoice(url, "wire", ["legacy", "agui"] as const)
  if (!override.ok || override.value) return override as Parsed<Generation>
  const messages = Array.isArray(body.messages) ? (body.messages as Record<string, unknown>[]) : []
  const current =
    typeof body.threadId === "string" ||
    typeof body.runId === "string" ||
    headers.has("x-run-id") ||
    messages.some((message) => typeof message?.id === "string")
  return { ok: true, value: current ? "agui" : "legacy" }
}

export function parseChatBody(generation: Generation, body: unknown, config: Config, serverTools: ToolDecl[]): Parsed<ChatRequest> {
  return generation === "agui" ? parseAguiRequest(body, config, serverTools) : parseLegacyRequest(body, config, serverTools)
}

// Request parsing: which wire generation a body speaks, and the ChatRequest it becomes.
import type { Config } from "../config"
import type { ToolDecl } from "../schema"
import { parseAguiRequest } from "./agui"
import { parseLegacyRequest } from "./legacy"
import type { ChatRequest, Generation, Parsed } from "./resolve"

export * from "./resolve"
export { parseAguiRequest, REDACTED_PREFIX } from "./agui"
export { parseLegacyRequest } from "./legacy"

/**
 * Current clients send `threadId`/`runId`, ids on every message and `X-Run-Id`; legacy ones
 * send none of these (WIRE.md §0). `?wire=legacy|agui` overrides the guess.
 */
export function detectGeneration(body: Record<string, unknown>, headers: Headers, override: string | null): Parsed<Generation> {
  if (override !== null) {
    if (override === "legacy" || override === "agui") return { ok: true, value: override }
    return {
      ok: false,
      error: {
        status: 400,
        code: "invalid_request",
        message: `query parameter ?wire must be "legacy" or "agui"; got "${override}"`,
        path: "?wire",
      },
    }
  }
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

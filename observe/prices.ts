// Usage accounting: an optional price table (PRICES_FILE) turns a request's tokens into an
// estimated cost. Without one there are no cost fields anywhere, never made-up prices.
import { type Loaded, loadJsonSetting, matchesPattern } from "../config"
import type { Usage } from "../parts"

/** US dollars per million tokens; `cached` prices cached input tokens, else they cost as input. */
export type Price = { input: number; output: number; cached?: number }
export type Prices = { model: string; price: Price }[]

/**
 * Reads `{ "<model or * pattern>": { "input": 3, "output": 15, "cached": 0.3 } }`. The first
 * matching entry in file order wins, so exact names go before patterns.
 */
export function loadPrices(path: string | undefined): Promise<Loaded<Prices>> {
  return loadJsonSetting("PRICES_FILE", path, [] as Prices, (json) => {
    if (typeof json !== "object" || json === null || Array.isArray(json)) return { ok: false, problem: "expected an object keyed by model" }
    const prices: Prices = []
    for (const [model, entry] of Object.entries(json)) {
      const { input, output, cached, ...rest } = (entry ?? {}) as Record<string, unknown>
      const fine = (value: unknown) => typeof value === "number" && Number.isFinite(value) && value >= 0
      if (!fine(input) || !fine(output) || (cached !== undefined && !fine(cached)) || Object.keys(rest).length)
        return { ok: false, problem: `"${model}" needs numbers input and output (and optionally cached), per million tokens` }
      prices.push({ model, price: { input, output, ...(cached !== undefined && { cached }) } as Price })
    }
    return { ok: true, value: prices }
  })
}

/** The estimated cost in US dollars, or undefined when the model has no price. */
export function costOf(prices: Prices, model: string, usage: Usage): number | undefined {
  const price = prices.find((entry) => matchesPattern(entry.model, model))?.price
  if (!price) return undefined
  const cached = usage.cachedInputTokens ?? 0
  const dollars = (usage.inputTokens - cached) * price.input + cached * (price.cached ?? price.input) + usage.outputTokens * price.output
  return dollars / 1e6
}

// Fuzzing /chat on a running sidechat process: seeded, mutated bodies of both generations. No 5xx,
// no hang, no crash. The same bodies hold the two ways a schema is checked (walked on a validator's
// first use, compiled after) to one verdict and one first error. Replay one case with
// FUZZ_SEED=<seed> FUZZ_CASE=<n>; FUZZ_CASES sets how many.
import { afterAll, beforeAll, expect, test } from "bun:test"
import { type SidechatProcess, spawnSidechat } from "./fixtures/process"
import { seeded } from "./fixtures/seeded"
import type { TSchema } from "@sinclair/typebox"
import { type TypeCheck, TypeCompiler } from "@sinclair/typebox/compiler"
import { Value } from "@sinclair/typebox/value"
import { AguiMessageByRole, ChatOptions, LegacyRequest, RunAgentInput, ToolList } from "./schema"

const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31))
const CASES = Number(process.env.FUZZ_CASES ?? 5000)
const ONLY = process.env.FUZZ_CASE === undefined ? undefined : Number(process.env.FUZZ_CASE)

const SEEDS: unknown[] = [
  { messages: [{ role: "user", content: "hello" }] },
  {
    messages: [
      { role: "system", content: "be brief" },
      { role: "user", content: [{ type: "text", content: "hi" }] },
    ],
    data: { provider: "openai" },
  },
  {
    messages: [
      { role: "user", content: "weather?" },
      {
        role: "assistant",
        content: "",
        toolCalls: [{ id: "c1", type: "function", function: { name: "getWeather", arguments: '{"city":"Oslo"}' } }],
      },
      { role: "tool", content: '{"tempC":3}', toolCallId: "c1" },
    ],
    data: {
      tools: [{ name: "getWeather", description: "weather", parameters: { type: "object", properties: { city: { type: "string" } } } }],
    },
  },
  {
    threadId: "t",
    runId: "r",
    messages: [{ id: "u", role: "user", content: "think about it" }],
    tools: [],
    context: [],
    forwardedProps: {},
  },
  {
    threadId: "t",
    runId: "r2",
    state: {},
    messages: [
      { id: "u1", role: "user", content: "call a tool" },
      {
        id: "a1",
        role: "assistant",
        content: "",
        toolCalls: [{ id: "c1", type: "function", function: { name: "clock", arguments: "{}" } }],
      },
      { id: "t1", role: "tool", content: "12:00", toolCallId: "c1" },
      { id: "r1", role: "reasoning", content: "hmm" },
    ],
    tools: [{ name: "clock", description: "time", parameters: { type: "object" } }],
    context: [{ description: "locale", value: "en" }],
    forwardedProps: { provider: "anthropic", thinking: { budgetTokens: 2048 }, maxTokens: 100 },
  },
  {
    threadId: "t",
    runId: "r3",
    messages: [
      {
        id: "u",
        role: "user",
        content: [
          { type: "text", text: "see" },
          { type: "image", source: { type: "url", value: "https://x.test/a.png" } },
        ],
      },
    ],
    tools: [],
    context: [],
  },
]

const ODD = [
  "",
  "\u0000",
  "\ud800",
  "\u202e\u200b",
  "👋🏽".repeat(50),
  "x".repeat(300_000),
  "null",
  "[DONE]",
  "data: {}\n\n",
  "__proto__",
  "constructor",
]

function randomValue(random: () => number, depth = 0): unknown {
  const roll = random()
  if (roll < 0.15) return ODD[Math.floor(random() * ODD.length)]
  if (roll < 0.25) return Math.floor(random() * 2 ** 40) * (random() < 0.5 ? -1 : 1)
  if (roll < 0.3) return random() < 0.5 ? 1e308 : -0.5
  if (roll < 0.4) return null
  if (roll < 0.5) return random() < 0.5
  if (roll < 0.6 && depth < 4) return Array.from({ length: Math.floor(random() * 4) }, () => randomValue(random, depth + 1))
  if (roll < 0.7 && depth < 4) return { [ODD[Math.floor(random() * ODD.length)] ?? "k"]: randomValue(random, depth + 1) }
  return String.fromCharCode(...Array.from({ length: Math.floor(random() * 20) }, () => Math.floor(random() * 0xffff)))
}

/** Sets an own property, even one named `__proto__`, as JSON.parse would. */
const put = (target: object, key: string, value: unknown) =>
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true })

/** Walks to a random node of `value` and changes it: a new value, a removed key, an added key. */
function mutate(value: unknown, random: () => number): unknown {
  if (value === null || typeof value !== "object") return randomValue(random)
  const copy: Record<string, unknown> | unknown[] = Array.isArray(value) ? [...value] : { ...(value as Record<string, unknown>) }
  const keys = Object.keys(copy)
  const roll = random()
  if (!keys.length || roll < 0.1) {
    put(copy, ODD[Math.floor(random() * ODD.length)] || "extra", randomValue(random))
    return copy
  }
  const key = keys[Math.floor(random() * keys.length)] as string
  if (roll < 0.25) delete (copy as Record<string, unknown>)[key]
  else if (roll < 0.55) put(copy, key, randomValue(random))
  else put(copy, key, mutate((copy as Record<string, unknown>)[key], random))
  return copy
}

type Case = { body: string; contentType: string }

function fuzzCase(n: number): Case {
  const random = seeded(SEED ^ Math.imul(n + 1, 0x9e3779b1))
  let value = SEEDS[Math.floor(random() * SEEDS.length)]
  for (let i = 0, rounds = 1 + Math.floor(random() * 4); i < rounds; i++) value = mutate(value, random)
  let body = JSON.stringify(value) ?? "null"
  const roll = random()
  if (roll < 0.08) body = body.slice(0, Math.floor(random() * body.length))
  else if (roll < 0.1) body = `${"[".repeat(50_000)}${"]".repeat(50_000)}`
  else if (roll < 0.12) body = `{"messages":${"[".repeat(5000)}1${"]".repeat(5000)}}`
  const contentType =
    random() < 0.05 ? (["text/plain", "application/x-www-form-urlencoded", ""][Math.floor(random() * 3)] ?? "") : "application/json"
  return { body, contentType }
}

let sidechat: SidechatProcess
beforeAll(async () => {
  sidechat = await spawnSidechat({ MOCK_DELAY_MS: "0", RATE_LIMIT_PER_MINUTE: "0", MAX_STREAMS_PER_CLIENT: "0" })
})
afterAll(async () => {
  await sidechat?.stop()
})

test(`fuzz: ${ONLY === undefined ? CASES : 1} mutated /chat bodies get no 5xx, no hang, no crash (FUZZ_SEED=${SEED})`, async () => {
  const cases = ONLY === undefined ? Array.from({ length: CASES }, (_, n) => n) : [ONLY]
  const problems: string[] = []
  const statuses = new Map<number, number>()
  let next = 0
  const worker = async () => {
    while (next < cases.length) {
      const n = cases[next++] as number
      const { body, contentType } = fuzzCase(n)
      const replay = `FUZZ_SEED=${SEED} FUZZ_CASE=${n}`
      try {
        const response = await fetch(`${sidechat.url}/chat`, {
          method: "POST",
          headers: contentType ? { "content-type": contentType } : {},
          body,
          signal: AbortSignal.timeout(10_000),
        })
        const text = await response.text()
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
        if (response.status >= 500) problems.push(`${replay}: ${response.status} ${text.slice(0, 200)}`)
        else if (response.status >= 400) {
          const error = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error
          if (!error?.code || !error.message) problems.push(`${replay}: ${response.status} without code and message: ${text.slice(0, 200)}`)
        }
      } catch (error) {
        problems.push(`${replay}: ${(error as Error).name} ${(error as Error).message}`)
      }
    }
  }
  await Promise.all(Array.from({ length: 16 }, worker))
  console.log(`fuzz: seed ${SEED}, statuses ${JSON.stringify(Object.fromEntries(statuses))}`)
  expect(problems.slice(0, 10)).toEqual([])
  expect(sidechat.alive()).toBe(true)
  expect((await fetch(`${sidechat.url}/health`)).status).toBe(200)
  expect(sidechat.stderr.filter((line) => line.includes("BUG"))).toEqual([])
}, 120_000)

test(`validators: walking a schema and its compiled check agree on ${CASES} mutated bodies (FUZZ_SEED=${SEED})`, () => {
  const schemas: [string, TSchema, (body: Record<string, unknown>) => unknown[]][] = [
    ["RunAgentInput", RunAgentInput, (body) => [body]],
    ["LegacyRequest", LegacyRequest, (body) => [body]],
    ["ChatOptions", ChatOptions, (body) => [body.forwardedProps, body.data, body]],
    ["ToolList", ToolList, (body) => [body.tools, (body.data as Record<string, unknown> | undefined)?.tools]],
    ...Object.entries(AguiMessageByRole).map(([role, schema]): [string, TSchema, (body: Record<string, unknown>) => unknown[]] => [
      `AguiMessageByRole.${role}`,
      schema,
      (body) => (Array.isArray(body.messages) ? body.messages : []),
    ]),
  ]
  const compiled = new Map(schemas.map(([name, schema]) => [name, TypeCompiler.Compile(schema)]))
  const firstError = (errors: { First(): { path: string; message: string } | undefined }) => {
    const first = errors.First()
    return first && { path: first.path, message: first.message }
  }
  let compared = 0
  for (let n = 0; n < CASES; n++) {
    let body: unknown
    try {
      body = JSON.parse(fuzzCase(n).body)
    } catch {
      continue
    }
    if (typeof body !== "object" || body === null) continue
    for (const [name, schema, valuesOf] of schemas) {
      const check = compiled.get(name) as TypeCheck<TSchema>
      for (const value of valuesOf(body as Record<string, unknown>)) {
        const walked = Value.Check(schema, value)
        if (walked !== check.Check(value)) throw new Error(`${name} disagrees on case ${n}: ${JSON.stringify(value)?.slice(0, 300)}`)
        if (!walked)
          expect({ name, n, error: firstError(Value.Errors(schema, value)) }).toEqual({ name, n, error: firstError(check.Errors(value)) })
        compared++
      }
    }
  }
  expect(compared).toBeGreaterThan(CASES)
})

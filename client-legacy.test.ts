// The real legacy client (@tanstack/ai-client 0.0.3) against a running sidechat over HTTP.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { ChatClient, fetchServerSentEvents } from "@tanstack/ai-client-legacy"
import { type FakeProvider, startFakeProvider, transcript } from "./fixtures/fake-provider"
import { type Sidechat, settle, startSidechat, TEST_KEYS } from "./fixtures/sidechat"

let fake: FakeProvider
let sidechat: Sidechat
let mocked: Sidechat

beforeAll(() => {
  fake = startFakeProvider()
  sidechat = startSidechat({ ...TEST_KEYS, ANTHROPIC_BASE_URL: fake.url, OPENAI_BASE_URL: `${fake.url}/v1` })
  mocked = startSidechat({})
})
afterAll(() => {
  sidechat.stop()
  mocked.stop()
  fake.stop()
})

type Part = { type: string; content?: string; name?: string; state?: string; output?: unknown }
const assistantText = (client: ChatClient) =>
  (client.getMessages().at(-1)?.parts as Part[])
    .filter((p) => p.type === "text")
    .map((p) => p.content)
    .join("")

// Client 0.0.x only continues when a tool finishes after the response was read (WIRE.md §2.5).
const slowTool = (name: string, output: unknown, ran: string[]) => ({
  name,
  description: name,
  execute: async () => {
    ran.push(name)
    await Bun.sleep(50)
    return output
  },
})

describe("@tanstack/ai-client 0.0.3", () => {
  for (const provider of ["anthropic", "openai"]) {
    test(`${provider}: a text turn renders exactly`, async () => {
      fake.respond(() => transcript(`${provider}-text`))
      const errors: Error[] = []
      const client = new ChatClient({
        connection: fetchServerSentEvents(`${sidechat.url}/chat`),
        body: { provider },
        onError: (e) => errors.push(e),
      })
      await client.sendMessage("Grüß mich")
      expect(errors).toEqual([])
      expect(assistantText(client)).toBe("Grüße aus 東京 👋🏽 — naïve café.")
      expect(fake.seen.at(-1)?.path).toBe(provider === "openai" ? "/v1/chat/completions" : "/v1/messages")
    })
  }

  test("a parallel client-tool round trip reaches the final answer", async () => {
    let calls = 0
    fake.respond(() => transcript(++calls === 1 ? "anthropic-tools-parallel" : "anthropic-text"))
    const ran: string[] = []
    const client = new ChatClient({
      connection: fetchServerSentEvents(`${sidechat.url}/chat`),
      body: {
        tools: [
          { name: "getLocation", parameters: { type: "object" } },
          { name: "getTime", parameters: { type: "object" } },
        ],
      },
      tools: [slowTool("getLocation", { city: "Oslo" }, ran), slowTool("getTime", { time: "12:00" }, ran)],
    })
    const before = fake.seen.length
    await client.sendMessage("Where and when am I?")
    await settle(() => fake.seen.length - before >= 2 && !client.getIsLoading())
    expect(ran.sort()).toEqual(["getLocation", "getTime"])
    expect(fake.seen.length - before).toBe(2)
    const first = fake.seen[before]?.body as { tools: { name: string }[] }
    expect(first.tools.map((t) => t.name)).toEqual(["getLocation", "getTime"])
    const followUp = fake.seen[before + 1]?.body as {
      messages: { role: string; content: { type: string; tool_use_id?: string; content?: string }[] }[]
    }
    const results = followUp.messages.at(-1)?.content ?? []
    expect(results.map((b) => [b.type, b.tool_use_id, b.content])).toEqual([
      ["tool_result", "toolu_01A", '{"city":"Oslo"}'],
      ["tool_result", "toolu_01B", '{"time":"12:00"}'],
    ])
    expect(assistantText(client)).toContain("Grüße aus 東京")
  })

  test("the mock provider serves a tool round trip with no key", async () => {
    const ran: string[] = []
    const client = new ChatClient({
      connection: fetchServerSentEvents(`${mocked.url}/chat`),
      body: {
        tools: [{ name: "getWeather", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } }],
      },
      tools: [slowTool("getWeather", { tempC: 21 }, ran)],
    })
    await client.sendMessage("What does getWeather say?")
    await settle(() => assistantText(client).includes("The tools answered") && !client.getIsLoading())
    expect(ran).toEqual(["getWeather"])
    expect(assistantText(client)).toContain('The tools answered: {"tempC":21}')
  })

  test("an error mid-stream reaches onError and keeps the partial text", async () => {
    fake.respond(() => transcript("anthropic-error"))
    const errors: Error[] = []
    const client = new ChatClient({ connection: fetchServerSentEvents(`${sidechat.url}/chat`), onError: (e) => errors.push(e) })
    await client.sendMessage("hi")
    expect(errors.map((e) => e.message)).toEqual(["Anthropic is overloaded right now; please try again in a moment"])
    expect(assistantText(client)).toBe("Partial answer")
  })

  test("an error before the first byte shows the provider's real message by default; with PROVIDER_ERRORS=status, the status", async () => {
    const overloaded = () =>
      Response.json(
        { type: "error", error: { type: "overloaded_error", message: "Overloaded" } },
        { status: 529, headers: { "retry-after": "3" } },
      )
    fake.respond(overloaded)
    const errors: Error[] = []
    const client = new ChatClient({ connection: fetchServerSentEvents(`${sidechat.url}/chat`), onError: (e) => errors.push(e) })
    await client.sendMessage("hi")
    expect(errors.map((e) => e.message)).toEqual(["Anthropic is overloaded right now; please try again in 3 s"])
    expect(sidechat.log.at(-1)).toMatch(/^POST \/chat 200 legacy anthropic\/\S+ error provider_overloaded \d+ms$/)

    const statuses = startSidechat({ ...TEST_KEYS, ANTHROPIC_BASE_URL: fake.url, PROVIDER_ERRORS: "status" })
    try {
      const seen: Error[] = []
      const other = new ChatClient({ connection: fetchServerSentEvents(`${statuses.url}/chat`), onError: (e) => seen.push(e) })
      await other.sendMessage("hi")
      expect(seen.map((e) => e.message)).toEqual([expect.stringContaining("503")])
      expect(statuses.log.at(-1)).toMatch(/^POST \/chat 503 legacy anthropic\/\S+ provider_overloaded \d+ms$/)
    } finally {
      statuses.stop()
    }
  })
})

// The real current client (@tanstack/ai-client 0.33.2) against a running sidechat over HTTP.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { toolDefinition } from "@tanstack/ai"
import { ChatClient, fetchHttpStream, fetchServerSentEvents } from "@tanstack/ai-client"
import { z } from "zod"
import { type FakeProvider, startFakeProvider, transcript } from "./fixtures/fake-provider"
import { answerOf, type Sidechat, settle, startSidechat, TEST_KEYS } from "./fixtures/sidechat"

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

type Part = { type: string; content?: string; signature?: string; name?: string; state?: string; output?: unknown }
const lastParts = (client: ChatClient) => (client.getMessages().at(-1)?.parts ?? []) as Part[]

/** A client tool the way apps declare one: a definition with a zod schema, then `.client()`. */
const tool = (name: string, run: () => unknown, ran: string[]) =>
  toolDefinition({ name, description: `the ${name} tool`, inputSchema: z.object({}).passthrough() }).client(async () => {
    ran.push(name)
    return run()
  })

type AnthropicBody = { messages: { role: string; content: { type: string; [key: string]: unknown }[] }[]; tools?: { name: string }[] }

describe("@tanstack/ai-client 0.33.2", () => {
  for (const provider of ["anthropic", "openai"]) {
    test(`${provider}: a text turn renders exactly`, async () => {
      fake.respond(() => transcript(`${provider}-text`))
      const errors: Error[] = []
      const client = new ChatClient({
        connection: fetchServerSentEvents(`${sidechat.url}/chat`),
        forwardedProps: { provider },
        onError: (e) => errors.push(e),
      })
      await client.sendMessage("Grüß mich")
      expect(errors).toEqual([])
      expect(answerOf(client)).toBe("Grüße aus 東京 👋🏽 — naïve café.")
      expect(fake.seen.at(-1)?.path).toBe(provider === "openai" ? "/v1/chat/completions" : "/v1/messages")
    })

    test(`${provider}: a two-tool parallel client-tool round trip continues by itself`, async () => {
      let calls = 0
      fake.respond(() => transcript(++calls === 1 ? `${provider}-tools-parallel` : `${provider}-text`))
      const ran: string[] = []
      const client = new ChatClient({
        connection: fetchServerSentEvents(`${sidechat.url}/chat`),
        forwardedProps: { provider },
        tools: [tool("getLocation", () => ({ city: "Oslo" }), ran), tool("getTime", () => ({ time: "12:00" }), ran)],
      })
      const before = fake.seen.length
      await client.sendMessage("Where and when am I?")
      await settle(() => fake.seen.length - before >= 2 && !client.getIsLoading())
      expect(ran.sort()).toEqual(["getLocation", "getTime"])
      expect(fake.seen.length - before).toBe(2)
      const first = fake.seen[before]?.body as { tools: { name?: string; function?: { name: string } }[] }
      expect(first.tools.map((t) => t.name ?? t.function?.name)).toEqual(["getLocation", "getTime"])
      const followUp = JSON.stringify(fake.seen[before + 1]?.body)
      expect(followUp).toContain("Oslo")
      expect(followUp).toContain("12:00")
      expect(answerOf(client)).toContain("Grüße aus 東京")
    })
  }

  test("a client tool that throws does not wedge the chat", async () => {
    let calls = 0
    fake.respond(() => transcript(++calls === 1 ? "anthropic-tools-parallel" : "anthropic-text"))
    const ran: string[] = []
    const client = new ChatClient({
      connection: fetchServerSentEvents(`${sidechat.url}/chat`),
      tools: [
        tool(
          "getLocation",
          () => {
            throw new Error("no GPS")
          },
          ran,
        ),
        tool("getTime", () => ({ time: "12:00" }), ran),
      ],
    })
    const before = fake.seen.length
    await client.sendMessage("Where am I?")
    await settle(() => fake.seen.length - before >= 2 && !client.getIsLoading())
    const followUp = fake.seen[before + 1]?.body as AnthropicBody
    const results = followUp.messages.at(-1)?.content ?? []
    expect(results.find((b) => b.tool_use_id === "toolu_01A")).toMatchObject({ type: "tool_result", is_error: true })
    await client.sendMessage("Try again")
    await settle(() => !client.getIsLoading())
    expect(fake.seen.length - before).toBe(3)
    expect(lastParts(client).some((p) => p.type === "text")).toBe(true)
  })

  test("a thinking turn shows a thinking part, and the next request carries its signature back", async () => {
    fake.respond(() => transcript("anthropic-thinking"))
    const client = new ChatClient({ connection: fetchServerSentEvents(`${sidechat.url}/chat`), forwardedProps: { thinking: true } })
    await client.sendMessage("What is 6 × 7?")
    const thinking = lastParts(client).filter((p) => p.type === "thinking")
    expect(thinking.map((p) => p.content)).toEqual(["The question is 6 × 7. That is 42.", "", "Double-check: 7 × 6 = 42 ✓"])
    expect(thinking[0]?.signature).toStartWith("EqQB")
    expect((fake.seen.at(-1)?.body as { thinking?: unknown }).thinking).toMatchObject({ type: "enabled" })

    fake.respond(() => transcript("anthropic-text"))
    await client.sendMessage("Thanks!")
    const replayed = (fake.seen.at(-1)?.body as AnthropicBody).messages[1]?.content ?? []
    expect(replayed.map((b) => b.type)).toEqual(["thinking", "redacted_thinking", "thinking", "text"])
    expect(replayed[0]).toMatchObject({ thinking: "The question is 6 × 7. That is 42.", signature: expect.stringMatching(/^EqQB/) })
    expect(replayed[1]).toMatchObject({ data: expect.stringMatching(/^EmwK/) })
  })

  test("an error after the first byte reaches onError and keeps the partial text", async () => {
    fake.respond(() => transcript("anthropic-error"))
    const errors: Error[] = []
    const client = new ChatClient({ connection: fetchServerSentEvents(`${sidechat.url}/chat`), onError: (e) => errors.push(e) })
    await client.sendMessage("hi")
    expect(errors.map((e) => e.message)).toEqual(["Anthropic is overloaded right now; please try again in a moment"])
    expect(answerOf(client)).toBe("Partial answer")
    expect(client.getStatus()).toBe("error")
  })

  test("an error before the first byte shows the provider's real message (in-band by default), and the chat can go on", async () => {
    fake.respond(() =>
      Response.json(
        { type: "error", error: { type: "overloaded_error", message: "Overloaded" } },
        { status: 529, headers: { "retry-after": "7" } },
      ),
    )
    const errors: Error[] = []
    const client = new ChatClient({ connection: fetchServerSentEvents(`${sidechat.url}/chat`), onError: (e) => errors.push(e) })
    await client.sendMessage("hi")
    expect(errors.map((e) => e.message)).toEqual(["Anthropic is overloaded right now; please try again in 7 s"])
    // The access log tells what the user saw: a started stream (200) that ended on the provider's error.
    expect(sidechat.log.at(-1)).toMatch(/^POST \/chat 200 agui anthropic\/\S+ error provider_overloaded \d+ms$/)
    fake.respond(() => transcript("openai-text"))
    await client.sendMessage("again", { provider: "openai" })
    expect(answerOf(client)).toBe("Grüße aus 東京 👋🏽 — naïve café.")
  })

  test("NDJSON through fetchHttpStream renders the same", async () => {
    fake.respond(() => transcript("anthropic-text"))
    const client = new ChatClient({ connection: fetchHttpStream(`${sidechat.url}/chat?transport=ndjson`) })
    await client.sendMessage("hi")
    expect(answerOf(client)).toBe("Grüße aus 東京 👋🏽 — naïve café.")
  })

  test("the mock provider serves text, tools and thinking with no key", async () => {
    const ran: string[] = []
    const client = new ChatClient({
      connection: fetchServerSentEvents(`${mocked.url}/chat`),
      tools: [tool("getWeather", () => ({ tempC: 21 }), ran)],
    })
    await client.sendMessage("Ask getWeather please")
    await settle(() => answerOf(client).includes("The tools answered"))
    expect(ran).toEqual(["getWeather"])
    expect(answerOf(client)).toContain('The tools answered: {"tempC":21}')
    await client.sendMessage("think first")
    expect(lastParts(client).find((p) => p.type === "thinking")?.signature).toBe("mock-signature-3")
  })

  test("the mock provider's errors reach onError, before and after the first byte", async () => {
    const errors: Error[] = []
    const client = new ChatClient({ connection: fetchServerSentEvents(`${mocked.url}/chat`), onError: (e) => errors.push(e) })
    await client.sendMessage("show me an error")
    expect(answerOf(client)).toStartWith("Here is the start of an answer")
    await client.sendMessage("overload now")
    expect(errors.map((e) => e.message)).toEqual([
      "mock is overloaded right now; please try again in a moment",
      "mock is overloaded right now; please try again in 1 s",
    ])
  })

  test("PROVIDER_ERRORS=status: a failure before the first byte is an HTTP status, which the client reduces to its number", async () => {
    const statuses = startSidechat({ ...TEST_KEYS, ANTHROPIC_BASE_URL: fake.url, PROVIDER_ERRORS: "status" })
    try {
      fake.respond(() => Response.json({ type: "error", error: { type: "overloaded_error", message: "Overloaded" } }, { status: 529 }))
      const errors: Error[] = []
      const client = new ChatClient({ connection: fetchServerSentEvents(`${statuses.url}/chat`), onError: (e) => errors.push(e) })
      await client.sendMessage("hi")
      expect(errors.map((e) => e.message)).toEqual([expect.stringContaining("HTTP error! status: 503")])
      expect(statuses.log.at(-1)).toMatch(/^POST \/chat 503 agui anthropic\/\S+ provider_overloaded \d+ms$/)
    } finally {
      statuses.stop()
    }
  })
})

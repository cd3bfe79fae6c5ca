// The playground page in a real browser: Debian's chromium driven by playwright-core, against
// `bun run index.ts` and the compiled binary. Each run leaves a screenshot in artifacts/.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { existsSync, mkdirSync } from "node:fs"
import { type Browser, chromium, type Page } from "playwright-core"
import { type FakeProvider, hangingStream, startFakeProvider } from "./fixtures/fake-provider"
import { type SidechatProcess, spawnSidechat } from "./fixtures/process"
import { TEST_KEYS } from "./fixtures/sidechat"

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"
const BINARY = `${import.meta.dir}/dist/sidechat`
const ARTIFACTS = `${import.meta.dir}/artifacts`
const missing = existsSync(CHROMIUM) ? undefined : `no browser at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`
if (missing) console.warn(`playground.test.ts: SKIPPED: ${missing}`)

const TEXT = await Bun.file(new URL("fixtures/anthropic-text.sse", import.meta.url)).text()
/** message_start and the first text delta: the answer has begun, and then the provider goes quiet. */
const BEGUN = `${TEXT.split("\n\n").slice(0, 4).join("\n\n")}\n\n`

let browser: Browser
let fake: FakeProvider
beforeAll(async () => {
  if (missing) return
  fake = startFakeProvider()
  fake.respond(() => hangingStream(BEGUN))
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] })
  mkdirSync(ARTIFACTS, { recursive: true })
  // Always rebuilt: a binary left over from older code would test that code.
  expect(await Bun.spawn([process.execPath, "run", "build"], { cwd: import.meta.dir, stdout: "ignore" }).exited).toBe(0)
  // The build takes 3 s on a quiet machine; the default 5 s was too little beside other tests.
}, 60_000)
afterAll(async () => {
  await browser?.close()
  fake?.stop()
})

const assistantText = (page: Page) =>
  page
    .locator(".message.assistant .text")
    .allTextContents()
    .then((all) => all.join(""))

for (const [variant, entry] of [
  ["bun run index.ts", undefined],
  ["compiled binary", BINARY],
] as const) {
  describe.skipIf(Boolean(missing))(`the playground (${variant})`, () => {
    let server: SidechatProcess
    let page: Page
    beforeAll(async () => {
      // Anthropic goes to the fake provider (to watch a stop reach it); everything else is the mock.
      const env = { ...TEST_KEYS, ANTHROPIC_BASE_URL: fake.url, DEFAULT_PROVIDER: "mock", MOCK_DELAY_MS: "40", LOG_FORMAT: "json" }
      server = await spawnSidechat(env, entry)
      page = await browser.newPage({ viewport: { width: 420, height: 800 } })
      await page.goto(server.url)
      await page.locator("#composer").waitFor()
    })
    afterAll(async () => {
      await page?.close()
      await server?.stop()
    })

    const ask = async (text: string, provider = "mock") => {
      await page.selectOption("#provider", provider)
      await page.fill("#message", text)
      await page.click("#send")
    }
    const idle = () => page.locator("#stop").waitFor({ state: "hidden" })

    test("lists the providers the server offers, with the mock marked", async () => {
      const options = await page.locator("#provider option").allTextContents()
      expect(options).toEqual(["anthropic", "openai", "mock (mock)"])
      expect(await page.inputValue("#provider")).toBe("mock")
    })

    test("a message streams in and renders", async () => {
      await ask("Hello there")
      // Part of the answer is on screen while the stream is still open.
      await page.waitForFunction(() => {
        const text = document.querySelector(".message.assistant .text")?.textContent ?? ""
        return text.length > 0 && !text.includes("real model") && !(document.getElementById("stop") as HTMLElement).hidden
      })
      await idle()
      expect(await assistantText(page)).toContain("You said: “Hello there”")
      expect(await page.locator(".message.user").last().textContent()).toBe("Hello there")
    })

    test("thinking is shown apart from the answer", async () => {
      await ask("Think about it, then answer")
      await idle()
      const thinking = await page.locator(".message.assistant").last().locator(".thinking").textContent()
      const answer = await page.locator(".message.assistant").last().locator(".text").allTextContents()
      expect(thinking).toContain("A short, friendly answer will do.")
      expect(answer.join("")).toContain("You said:")
      expect(answer.join("")).not.toContain("friendly answer")
    })

    test("the demo tool round trip: the model calls the calculator, the page answers, the model goes on", async () => {
      await ask("Please calculate 1 + 1 with the calculate tool.")
      const call = page.locator(".message.assistant .tool").last()
      await call.waitFor()
      await page.waitForFunction(() => document.body.textContent?.includes("The tools answered"))
      await idle()
      expect(await call.textContent()).toContain('calculate({"operation":"add","a":1,"b":1})')
      expect(await call.textContent()).toContain('{"result":2}')
      expect(await assistantText(page)).toContain('The tools answered: {"result":2}')
      await page.screenshot({ path: `${ARTIFACTS}/playground-${entry ? "binary" : "bun"}.png`, fullPage: true })
    })

    test("an error is shown with its code", async () => {
      await ask("Show me an error, please.")
      await page.locator("#error").waitFor()
      await idle()
      const record = server.requests().at(-1)
      expect(record?.code).toBeString()
      expect(await page.locator("#error").textContent()).toStartWith(`${record?.code}: `)
    })

    test("a refused request shows the server's code and message", async () => {
      await page.selectOption("#provider", "anthropic")
      await page.fill("#model", "no-such-model")
      await page.fill("#message", "Hello?")
      await page.click("#send")
      await page.locator("#error").waitFor()
      expect(await page.locator("#error").textContent()).toStartWith("model_not_allowed: ")
      expect(await page.locator("#token-form").isVisible()).toBe(false)
    })

    test("stop aborts the stream and the server closes its provider request", async () => {
      const before = fake.seen.length
      await ask("Tell me a long story", "anthropic")
      await page.waitForFunction(() => !(document.getElementById("stop") as HTMLElement).hidden)
      await page.waitForFunction(() => document.body.textContent?.includes("Grüße aus"))
      expect(fake.seen.length).toBe(before + 1)
      await page.click("#stop")
      await idle()
      await Promise.race([fake.seen[before]?.closed, Bun.sleep(5000).then(() => Promise.reject(new Error("provider request still open")))])
      for (let i = 0; i < 50 && server.requests().length && server.requests().at(-1)?.end !== "cancelled"; i++) await Bun.sleep(20)
      expect(server.requests().at(-1)).toMatchObject({ end: "cancelled", provider: "anthropic" })
    })
  })
}

describe.skipIf(Boolean(missing))("the playground with AUTH_TOKEN set", () => {
  test("asks for the token, keeps it in memory only, and chats with it", async () => {
    const token = "playground-token-0123456789"
    const server = await spawnSidechat({ AUTH_TOKEN: token, MOCK_DELAY_MS: "0" })
    const page = await browser.newPage()
    try {
      await page.goto(server.url)
      await page.locator("#token-form").waitFor()
      expect(await page.locator("#composer").isVisible()).toBe(false)
      await page.fill("#token", "wrong-token-0123456789")
      await page.click("#token-form button")
      await page.waitForFunction(() => document.getElementById("status")?.textContent?.includes("refused"))
      await page.fill("#token", token)
      await page.click("#token-form button")
      await page.locator("#composer").waitFor()
      await page.fill("#message", "Hello with a token")
      await page.click("#send")
      await page.waitForFunction(() => document.body.textContent?.includes("You said: “Hello with a token”"))
      const stored = await page.evaluate(
        () => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie,
      )
      expect(stored).not.toContain(token)
    } finally {
      await page.close()
      await server.stop()
    }
  })
})

describe.skipIf(Boolean(missing))("the playground with resumable runs", () => {
  test("stop also ends the run on the server (DELETE), so the provider request closes at once, not after the grace period", async () => {
    const server = await spawnSidechat({ ...TEST_KEYS, ANTHROPIC_BASE_URL: fake.url, RESUMABLE: "memory", RESUMABLE_GRACE_MS: "60000" })
    const page = await browser.newPage()
    try {
      await page.goto(server.url)
      await page.locator("#composer").waitFor()
      const before = fake.seen.length
      await page.selectOption("#provider", "anthropic")
      await page.fill("#message", "Tell me a long story")
      await page.click("#send")
      await page.waitForFunction(() => document.body.textContent?.includes("Grüße aus"))
      await page.click("#stop")
      const closed = await Promise.race([fake.seen[before]?.closed.then(() => "closed"), Bun.sleep(5000).then(() => "open")])
      expect(closed).toBe("closed")
    } finally {
      await page.close()
      await server.stop()
    }
  })
})

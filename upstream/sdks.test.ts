import { describe, expect, test } from "bun:test"

const ROOT = new URL("..", import.meta.url).pathname

/**
 * In a process of its own (a test process has loaded both SDKs long before): the providers made
 * from `env` are warmed as sidechat warms them at start-up; which SDKs are loaded then, and a
 * moment later.
 */
async function loadedAfterWarming(env: Record<string, string>) {
  const script = `
    import { parseConfig } from "./config"
    import { createProviders } from "./upstream"
    import { anthropicNow, openaiNow } from "./upstream/sdks"
    const parsed = parseConfig(${JSON.stringify(env)})
    if (!parsed.ok) throw new Error(parsed.problems.join("; "))
    const providers = createProviders(parsed.value)
    const loaded = () => ({ anthropic: Boolean(anthropicNow()), openai: Boolean(openaiNow()) })
    const before = loaded()
    await providers.warm((work) => new Promise((resolve) => setImmediate(resolve)).then(work))
    const warmed = loaded()
    await Bun.sleep(1500)
    console.log(JSON.stringify({ before, warmed, later: loaded() }))
  `
  const child = Bun.spawn([process.execPath, "-e", script], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "" },
    stdout: "pipe",
    stderr: "pipe",
  })
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
  if (code !== 0) throw new Error(`the warm-up script failed: ${err}`)
  return JSON.parse(out)
}

describe("provider SDKs load when needed", () => {
  test("the default provider's SDK is loaded by the warm-up, the other's a moment later; neither before", async () => {
    // No key: every provider is mocked, and the mock provider (the default) is served by Anthropic's SDK.
    expect(await loadedAfterWarming({})).toEqual({
      before: { anthropic: false, openai: false },
      warmed: { anthropic: true, openai: false },
      later: { anthropic: true, openai: true },
    })
  })

  test("a configuration with one provider never loads the other's SDK", async () => {
    expect(await loadedAfterWarming({ OPENAI_API_KEY: "sk-test-0000000000000000", MOCK: "off" })).toEqual({
      before: { anthropic: false, openai: false },
      warmed: { anthropic: false, openai: true },
      later: { anthropic: false, openai: true },
    })
  })
})

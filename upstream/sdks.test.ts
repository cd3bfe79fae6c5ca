import { describe, expect, test } from "bun:test"

const ROOT = new URL("..", import.meta.url).pathname

/**
 * In a process of its own, since which SDK modules are loaded is the process's state: the request
 * path is loaded as sidechat loads it, then the providers made from `env` are warmed as at
 * start-up (the later SDKs 100 ms later). Reported: which SDK modules were evaluated before, right
 * after the warm-up, and once the later ones had time to load.
 */
async function loadedAfterWarming(env: Record<string, string>) {
  const script = `
    import { parseConfig } from "./config"
    import "./index"
    import { createProviders } from "./upstream"
    const parsed = parseConfig(${JSON.stringify(env)})
    if (!parsed.ok) throw new Error(parsed.problems.join("; "))
    const providers = createProviders(parsed.value)
    const evaluated = (name) => Object.keys(require.cache).some((path) => path.includes("/node_modules/" + name + "/"))
    const loaded = () => ({ anthropic: evaluated("@anthropic-ai/sdk"), openai: evaluated("openai") })
    const before = loaded()
    await providers.warm((work) => new Promise((resolve) => setImmediate(resolve)).then(work), { laterMs: 100 })
    const warmed = loaded()
    await Bun.sleep(600)
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

  test("OpenAI as the default provider: its SDK first", async () => {
    const keys = { ANTHROPIC_API_KEY: "sk-ant-test-0000000000000000", OPENAI_API_KEY: "sk-test-0000000000000000" }
    expect(await loadedAfterWarming({ ...keys, DEFAULT_PROVIDER: "openai" })).toEqual({
      before: { anthropic: false, openai: false },
      warmed: { anthropic: false, openai: true },
      later: { anthropic: true, openai: true },
    })
  })

  test("a configuration that serves one provider does not load the other's SDK", async () => {
    expect(await loadedAfterWarming({ OPENAI_API_KEY: "sk-test-0000000000000000", MOCK: "off" })).toEqual({
      before: { anthropic: false, openai: false },
      warmed: { anthropic: false, openai: true },
      later: { anthropic: false, openai: true },
    })
  })
})

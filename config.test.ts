import { describe, expect, test } from "bun:test"
import { parseCommand } from "./cli"
import { maskKey, matchesPattern, parseConfig, providerMode } from "./config"

describe("config", () => {
  test("defaults: port 8080 on 127.0.0.1, mock when no key, localhost CORS", () => {
    const parsed = parseConfig({})
    if (!parsed.ok) throw new Error(parsed.problems.join())
    expect([parsed.value.port, parsed.value.host, parsed.value.defaultProvider]).toEqual([8080, "127.0.0.1", "mock"])
    expect(providerMode(parsed.value, "anthropic")).toBe("mock")
    expect(parsed.value.allowedModels).toEqual([parsed.value.anthropic.model, parsed.value.openai.model])
  })

  test("a 1Password reference is refused with the fix in the message", () => {
    const parsed = parseConfig({ ANTHROPIC_API_KEY: "op://vault/anthropic/key" })
    expect(parsed.ok).toBe(false)
    if (!parsed.ok) expect(parsed.problems[0]).toContain("op run")
  })

  test("every problem is listed at once", () => {
    const parsed = parseConfig({
      PORT: "eighty",
      DEFAULT_PROVIDER: "gemini",
      MOCK: "sometimes",
      MODEL_SETTINGS: "{",
      OPENAI_BASE_URL: "not a url",
    })
    expect(parsed.ok).toBe(false)
    if (!parsed.ok) {
      expect(parsed.problems).toHaveLength(5)
      expect(parsed.problems.join("\n")).toContain("PORT")
    }
  })

  test("an unexpected key prefix warns, masked; a custom base URL silences it", () => {
    const parsed = parseConfig({ ANTHROPIC_API_KEY: "abc-0123456789abcdefghijkl" })
    if (!parsed.ok) throw new Error()
    expect(parsed.warnings).toHaveLength(1)
    expect(parsed.warnings[0]).toContain("abc-012…ijkl")
    expect(parsed.warnings[0]).not.toContain("0123456789abcdefghijkl")
    const custom = parseConfig({ OPENAI_API_KEY: "gsk_0123456789abcdef", OPENAI_BASE_URL: "http://127.0.0.1:11434/v1" })
    expect(custom.ok && custom.warnings).toEqual([])
  })

  test("a configured key is live; MOCK=off turns a missing one off; MOCK=all mocks everything", () => {
    const live = parseConfig({ OPENAI_API_KEY: "sk-0123456789abcdefghij" })
    if (!live.ok) throw new Error()
    expect([providerMode(live.value, "openai"), providerMode(live.value, "anthropic"), live.value.defaultProvider]).toEqual([
      "live",
      "mock",
      "openai",
    ])
    const off = parseConfig({ MOCK: "off" })
    expect(off.ok && providerMode(off.value, "anthropic")).toBe("off")
    const all = parseConfig({ MOCK: "all", OPENAI_API_KEY: "sk-0123456789abcdefghij" })
    expect(all.ok && providerMode(all.value, "openai")).toBe("mock")
  })

  test("PLAYGROUND=auto serves the page on loopback or when the mock is the default, never on an exposed live server", () => {
    const key = { ANTHROPIC_API_KEY: "sk-ant-0123456789abcdefghij" }
    const at = (env: Record<string, string>) => {
      const parsed = parseConfig(env)
      if (!parsed.ok) throw new Error(parsed.problems.join("; "))
      return parsed.value.playground
    }
    expect(at({ ...key })).toBe("/")
    expect(at({ ...key, HOST: "::1" })).toBe("/")
    expect(at({ ...key, HOST: "0.0.0.0" })).toBeUndefined()
    expect(at({ HOST: "0.0.0.0" })).toBe("/")
    expect(at({ ...key, HOST: "0.0.0.0", PLAYGROUND: "on", PLAYGROUND_PATH: "/try" })).toBe("/try")
    expect(at({ PLAYGROUND: "off" })).toBeUndefined()
    const bad = parseConfig({ PLAYGROUND: "maybe", PLAYGROUND_PATH: "/chat" })
    expect(bad.ok ? [] : bad.problems.join("\n")).toMatch(/PLAYGROUND="maybe"[^]*PLAYGROUND_PATH="\/chat"/)
  })

  test("key masking and model patterns", () => {
    expect(maskKey("sk-ant-api03-abcdefghijklmnop")).toBe("sk-ant-…mnop")
    expect(maskKey("short")).toBe("****")
    expect(matchesPattern("claude-*", "claude-opus-4-8")).toBe(true)
    expect(matchesPattern("claude-*", "gpt-5")).toBe(false)
    expect(matchesPattern("gpt-4.1", "gpt-401")).toBe(false)
    expect(matchesPattern("http://localhost:*", "http://localhost:5173")).toBe(true)
  })

  test("the hardening settings: defaults, and every bad value listed", () => {
    const parsed = parseConfig({})
    if (!parsed.ok) throw new Error(parsed.problems.join())
    expect(parsed.value).toMatchObject({
      authTokens: [],
      byok: "off",
      providerErrors: "in-band",
      shutdownGraceMs: 25_000,
      trustProxy: false,
    })
    const bad = parseConfig({
      AUTH_TOKEN: "short",
      BYOK: "maybe",
      FALLBACK: "gemini:pro",
      CORS_ORIGINS: "localhost:3000,https://*.ok.example",
      TRUST_PROXY: "yes",
      MAX_STREAMS: "0",
    })
    expect(bad.ok).toBe(false)
    if (!bad.ok) {
      expect(bad.problems).toHaveLength(6)
      expect(bad.problems.join("\n")).toContain('"localhost:3000"')
    }
    const fallback = parseConfig({ FALLBACK: "openai:gpt-5.4-mini", AUTH_TOKEN: "one-0123456789abcdef, two-0123456789abcdef" })
    if (!fallback.ok) throw new Error(fallback.problems.join())
    expect(fallback.value.fallback).toEqual({ provider: "openai", model: "gpt-5.4-mini" })
    expect(fallback.value.authTokens).toEqual(["one-0123456789abcdef", "two-0123456789abcdef"])
  })

  test("HTTPS_PROXY, HTTP_PROXY (either case) and NO_PROXY; a proxy sidechat cannot speak to is refused", () => {
    const parsed = parseConfig({
      https_proxy: "http://u:p@proxy.corp:3128",
      HTTP_PROXY: "proxy.corp:8080",
      NO_PROXY: "localhost, .internal 10.0.0.0/8",
    })
    if (!parsed.ok) throw new Error(parsed.problems.join())
    const proxy = parsed.value.egressProxy
    expect([proxy?.https?.href, proxy?.http?.href, proxy?.noProxy]).toEqual([
      "http://u:p@proxy.corp:3128/",
      "http://proxy.corp:8080/",
      ["localhost", ".internal", "10.0.0.0/8"],
    ])
    expect(parseConfig({ NO_PROXY: "localhost" })).toMatchObject({ ok: true, value: { egressProxy: undefined } })
    const bad = parseConfig({ HTTPS_PROXY: "https://u:se/cr@t@proxy.corp:3128", HTTP_PROXY: "http://proxy.corp:3128/some/path" })
    // The password never shows, however it is written.
    expect(bad.ok ? [] : bad.problems).toEqual([
      'HTTPS_PROXY: expected http://[user:password@]host[:port] (a proxy spoken to in plain HTTP); got "https://***@proxy.corp:3128"',
      'HTTP_PROXY: expected http://[user:password@]host[:port] (a proxy spoken to in plain HTTP); got "http://proxy.corp:3128/some/path"',
    ])
    // A line break does not end the mask.
    const broken = parseConfig({ HTTPS_PROXY: "http://u:pa\nss-secret@proxy:3128/x" })
    expect(broken.ok ? "" : broken.problems.join()).not.toContain("secret")
    // A stray % would fail every request later; it fails start-up instead, saying how to write it.
    const percent = parseConfig({ HTTPS_PROXY: "http://u:50%off@proxy.corp:3128" })
    expect(percent.ok ? [] : percent.problems).toEqual([
      'HTTPS_PROXY: its user or password is not valid percent-encoding (write % as %25); got "http://***@proxy.corp:3128"',
    ])
  })

  test("env.example parses as it stands, and names every setting config/ reads", async () => {
    const example = await Bun.file(new URL("env.example", import.meta.url)).text()
    const env = Object.fromEntries([...example.matchAll(/^([A-Z_]+)=(.*)$/gm)].map((m) => [m[1], m[2]]))
    const parsed = parseConfig(env)
    expect(parsed.ok ? [] : parsed.problems).toEqual([])
    const files = ["index.ts", "settings.ts", "helpers.ts"].map((name) => Bun.file(new URL(`config/${name}`, import.meta.url)).text())
    const source = (await Promise.all(files)).join("\n")
    const read = [...source.matchAll(/(?:str|int|num|list|key|oneOf)\("([A-Z_]+)"/g)].map((m) => m[1] as string)
    expect(read.length).toBeGreaterThan(30)
    expect(read.filter((name) => !example.includes(name))).toEqual([])
  })

  test("flags: --name value and --name=value set their variable; a bad flag says which and what is wrong", () => {
    const serve = (argv: string[]) => {
      const command = parseCommand(argv, { PORT: "1", HOST: "h" })
      if (command.kind !== "serve") throw new Error(JSON.stringify(command))
      return command
    }
    expect(serve(["--port", "9999", "--mock=all"]).env).toMatchObject({ PORT: "9999", MOCK: "all", HOST: "h" })
    expect(serve(["--cors-origins=a=b"]).env.CORS_ORIGINS).toBe("a=b")
    expect(serve(["--print-config", "--healthcheck"])).toMatchObject({ printConfig: true, healthcheck: true })
    expect(serve([])).toMatchObject({ printConfig: false, healthcheck: false })
    expect(parseCommand(["-h"], {}).kind).toBe("help")
    expect(parseCommand(["--port", "1", "--version"], {}).kind).toBe("version")
    const problem = (argv: string[]) => {
      const command = parseCommand(argv, {})
      return command.kind === "error" ? command.message : command.kind
    }
    expect(problem(["--port"])).toBe("--port needs a value; see --help")
    expect(problem(["--port", "--mock", "all"])).toBe("--port needs a value; see --help")
    expect(problem(["--port", "-1"])).toBe("--port needs a value (--port=-1 for one that starts with a dash); see --help")
    expect(serve(["--port=-1"]).env.PORT).toBe("-1")
    expect(serve(["--port", "2", "--"]).env.PORT).toBe("2")
    expect(problem(["--", "--port"])).toBe("unexpected argument '--port'; see --help")
    expect(parseCommand(["-vh"], {}).kind).toBe("help")
    expect(problem(["-hx"])).toBe("unknown flag -hx; see --help")
    for (const inherited of ["constructor", "--constructor", "--__proto__=x", "--toString", "__proto__"])
      expect(problem([inherited, "x"])).not.toBe("serve")
    expect(problem(["--help=yes"])).toBe("--help takes no value; see --help")
    expect(problem(["--nope", "1"])).toBe("unknown flag --nope; see --help")
    expect(problem(["-x"])).toBe("unknown flag -x; see --help")
    expect(problem(["serve"])).toBe("unexpected argument 'serve'; see --help")
    expect(problem(["--anthropic-api-key", "k"])).toBe("unknown flag --anthropic-api-key; see --help")
  })
})

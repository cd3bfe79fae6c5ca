// Smoke test for the compiled binary: starts it with no key, checks /health and one mock chat.
const binary = process.argv[2] ?? "./dist/sidechat"
const port = 20000 + Math.floor(Math.random() * 20000)
const child = Bun.spawn([binary], {
  env: { PATH: process.env.PATH ?? "", PORT: String(port), HOST: "127.0.0.1", MOCK_DELAY_MS: "1" },
  stdout: "pipe",
  stderr: "inherit",
})
const fail = (message: string): never => {
  child.kill()
  console.error(`smoke: FAIL: ${message}`)
  process.exit(1)
}
try {
  const base = `http://127.0.0.1:${port}`
  let health: Response | undefined
  for (let i = 0; i < 100 && !health; i++) {
    health = await fetch(`${base}/health`).catch(() => undefined)
    if (!health) await Bun.sleep(50)
  }
  if (health?.status !== 200) fail(`/health answered ${health?.status}`)
  const status = (await health?.json()) as { providers: Record<string, string> }
  if (status.providers.anthropic !== "mock") fail(`expected the mock provider, got ${JSON.stringify(status)}`)
  const chat = await fetch(`${base}/chat`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ messages: [{ role: "user", content: "hello binary" }] }),
  })
  const body = await chat.text()
  if (!body.includes("hello binary") || !body.endsWith("data: [DONE]\n\n")) fail(`unexpected chat stream:\n${body}`)
  console.log(`smoke: ok (${binary}: /health and a mock chat of ${body.length} bytes)`)
} finally {
  child.kill()
}

// Benchmark helper, run as its own process: the practical limit, a raw byte pass-through proxy on
// Bun. It forwards the body to the provider and streams the provider's bytes back untouched.
// Started with BUN_CONFIG_MAX_HTTP_REQUESTS raised, so its fetch holds as many streams as sidechat.
const upstream = process.env.PROVIDER_URL ?? ""

const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  hostname: "127.0.0.1",
  idleTimeout: 0,
  async fetch(request) {
    if (request.method !== "POST") return new Response("ok")
    const path = new URL(request.url).pathname
    const response = await fetch(`${upstream}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: await request.text(),
      signal: request.signal,
    })
    return new Response(response.body, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } })
  },
})
console.log(`proxy listening on http://127.0.0.1:${server.port}`)

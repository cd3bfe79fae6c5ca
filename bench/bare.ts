// Benchmark helper: the cold-start floor, a compiled binary that binds Bun.serve and nothing else.
Bun.serve({ port: Number(process.env.PORT), hostname: "127.0.0.1", fetch: () => new Response("ok") })

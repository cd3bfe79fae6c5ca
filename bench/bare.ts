// Benchmark helper: the cold-start floor, a compiled binary that binds Bun.serve and nothing else.
// With BARE_EXIT set it exits at once instead: the runtime's own start and exit, the floor under it.
if (process.env.BARE_EXIT) process.exit(0)
Bun.serve({ port: Number(process.env.PORT), hostname: "127.0.0.1", fetch: () => new Response("ok") })

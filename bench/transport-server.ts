// Benchmark helper: sidechat with the upstream transport named by BENCH_TRANSPORT (sidechat | bun | undici),
// so the transports can be compared in one run. Not for production: index.ts always uses sidechat's own.
import { parseConfig } from "../config"
import { createHandler } from "../index"
import { createObserver } from "../observe"
import { createLogger } from "../observe/log"
import { createProviders } from "../upstream"
import { createTransport, type Fetch } from "../upstream/transport"

const parsed = parseConfig(Bun.env)
if (!parsed.ok) throw new Error(parsed.problems.join("; "))
const config = parsed.value

async function transport(name: string | undefined): Promise<Fetch> {
  switch (name) {
    case "bun":
      return (input, init) => fetch(input, init)
    case "undici": {
      // Resolved from wherever the benchmark runner installed it; not a dependency of sidechat.
      const undici = await import(process.env.UNDICI_PATH ?? "undici")
      const dispatcher = new undici.Agent({ connections: null, pipelining: 1 })
      return (input, init) => undici.fetch(input, { ...init, dispatcher }) as Promise<Response>
    }
    default:
      return createTransport({ stallMs: config.providerStallMs })
  }
}

const providers = createProviders(config, await transport(process.env.BENCH_TRANSPORT))
const observer = createObserver({ config, logger: createLogger({ level: "info", format: "json" }) })
const handler = createHandler({ config, providers, observer })
const server = Bun.serve({ port: config.port, hostname: config.host, fetch: (request, srv) => handler(request, srv) })
console.log(`sidechat (transport ${process.env.BENCH_TRANSPORT ?? "sidechat"}) listening on http://${server.hostname}:${server.port}`)

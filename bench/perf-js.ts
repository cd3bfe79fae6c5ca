// Names the JavaScript in a `perf` profile of Bun, which `perf inject --jit` cannot (Bun names its
// jitdump jit-<pid>-<tid>.dump). Run the server with BUN_JSC_useJITDump=1 and
// BUN_JSC_jitDumpDirectory=<dir>, record it with `perf record -g -p <pid>`, then:
//   perf script -F comm,ip | bun bench/perf-js.ts <dir>/jit-*.dump              shares by JS function
//   perf script -F comm,ip | bun bench/perf-js.ts <dir>/jit-*.dump "JSC-FTL: push"   what it calls
// Only the main thread ("bun") counts; each sample goes to the innermost JS function on its stack,
// so a native call (a string copy, an allocation) counts for the JS that made it.

type Code = { start: bigint; end: bigint; name: string }

/** JIT_CODE_LOAD records of a jitdump: where each piece of code lives and its name. */
function loadCode(dump: Buffer): Code[] {
  const code: Code[] = []
  let at = dump.readUInt32LE(8)
  while (at + 16 <= dump.length) {
    const id = dump.readUInt32LE(at)
    const size = dump.readUInt32LE(at + 4)
    if (size === 0) break
    if (id === 0) {
      const start = dump.readBigUInt64LE(at + 32)
      const nameAt = at + 56
      const name = dump.toString("utf8", nameAt, dump.indexOf(0, nameAt)).replace(/#\w+/, "")
      code.push({ start, end: start + dump.readBigUInt64LE(at + 40), name })
    }
    at += size
  }
  return code.sort((a, b) => (a.start < b.start ? -1 : 1))
}

const [dumpPath, focus] = process.argv.slice(2)
if (!dumpPath) throw new Error("usage: perf script -F comm,ip | bun bench/perf-js.ts <jit dump> [function]")
const code = loadCode(Buffer.from(await Bun.file(dumpPath).arrayBuffer()))

function nameOf(ip: string): string | undefined {
  const at = BigInt(`0x${ip}`)
  let low = 0
  let high = code.length - 1
  let found = -1
  while (low <= high) {
    const middle = (low + high) >> 1
    if ((code[middle] as Code).start <= at) {
      found = middle
      low = middle + 1
    } else high = middle - 1
  }
  const hit = code[found]
  return hit && at < hit.end ? hit.name : undefined
}

const shares = new Map<string, number>()
let samples = 0
for (const block of (await Bun.stdin.text()).split(/\n\s*\n/)) {
  const lines = block.trim().split("\n")
  if (lines[0]?.trim() !== "bun") continue
  samples++
  const ips = lines.slice(1).map((line) => line.trim().split(/\s+/)[0] as string)
  const inner = ips.findIndex((ip) => nameOf(ip) !== undefined)
  const name = inner < 0 ? undefined : nameOf(ips[inner] as string)
  let key: string
  if (focus === undefined) key = name ?? "(no JavaScript on the stack)"
  else if (name !== focus) continue
  else key = inner === 0 ? "(its own code)" : `calls ${ips[inner - 1]}, leaf ${ips[0]}`
  shares.set(key, (shares.get(key) ?? 0) + 1)
}
console.log(`${samples} main-thread samples${focus ? `; under ${focus}:` : ""}`)
for (const [key, count] of [...shares].sort((a, b) => b[1] - a[1]).slice(0, 30))
  console.log(`${((count / samples) * 100).toFixed(1).padStart(5)}%  ${key}`)

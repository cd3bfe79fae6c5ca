// `bun run build:all`: the release set, cross-compiled from the npm registry alone. Each target's
// Bun runtime is the npm package @oven/bun-<platform> at the pinned Bun version, fetched with
// `npm pack` into .cache/ and handed to `--compile-executable-path`, so no build step downloads
// from anywhere else. Every binary's header is checked, and SHA256SUMS is written beside them.
// `--only=linux-arm64,linux-x64-musl` builds a subset.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import pkg from "../package.json"
import { type Format, formatOf } from "./format"

type Target = { name: string; bunTarget: string; npm: string; expect: Format }

const TARGETS: Target[] = [
  { name: "linux-x64", bunTarget: "bun-linux-x64", npm: "linux-x64", expect: { kind: "elf", arch: "x64", libc: "glibc" } },
  {
    name: "linux-x64-baseline",
    bunTarget: "bun-linux-x64-baseline",
    npm: "linux-x64-baseline",
    expect: { kind: "elf", arch: "x64", libc: "glibc" },
  },
  { name: "linux-arm64", bunTarget: "bun-linux-arm64", npm: "linux-aarch64", expect: { kind: "elf", arch: "arm64", libc: "glibc" } },
  { name: "linux-x64-musl", bunTarget: "bun-linux-x64-musl", npm: "linux-x64-musl", expect: { kind: "elf", arch: "x64", libc: "musl" } },
  {
    name: "linux-arm64-musl",
    bunTarget: "bun-linux-arm64-musl",
    npm: "linux-aarch64-musl",
    expect: { kind: "elf", arch: "arm64", libc: "musl" },
  },
  { name: "darwin-x64", bunTarget: "bun-darwin-x64", npm: "darwin-x64", expect: { kind: "macho", arch: "x64" } },
  { name: "darwin-arm64", bunTarget: "bun-darwin-arm64", npm: "darwin-aarch64", expect: { kind: "macho", arch: "arm64" } },
  { name: "windows-x64", bunTarget: "bun-windows-x64", npm: "windows-x64", expect: { kind: "pe", arch: "x64" } },
]

const ROOT = new URL("..", import.meta.url).pathname
const OUT = join(ROOT, "dist/release")
const CACHE = join(ROOT, ".cache/bun-runtimes")
const BUN_VERSION = pkg.devDependencies.bun

const only = process.argv
  .find((arg) => arg.startsWith("--only="))
  ?.slice(7)
  .split(",")
const chosen = only ? TARGETS.filter((target) => only.includes(target.name)) : TARGETS
if (only && chosen.length !== only.length) fail(`unknown target in --only; known: ${TARGETS.map((t) => t.name).join(", ")}`)

function fail(message: string): never {
  console.error(`build:all: ${message}`)
  process.exit(1)
}

async function run(command: string[], cwd = ROOT): Promise<string> {
  const child = Bun.spawn(command, { cwd, stdout: "pipe", stderr: "pipe" })
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
  if (code !== 0) fail(`${command.join(" ")} exited ${code}:\n${stderr || stdout}`)
  return stdout
}

/** The target's Bun runtime from its npm package, fetched once per version. */
async function runtime(target: Target): Promise<string> {
  const dir = join(CACHE, `${target.npm}-${BUN_VERSION}`)
  const executable = join(dir, "package/bin", target.npm.startsWith("windows") ? "bun.exe" : "bun")
  if (await Bun.file(executable).exists()) return executable
  mkdirSync(dir, { recursive: true })
  const tarball = (await run(["npm", "pack", "--silent", `@oven/bun-${target.npm}@${BUN_VERSION}`, "--pack-destination", dir])).trim()
  await run(["tar", "xzf", join(dir, tarball), "-C", dir])
  rmSync(join(dir, tarball))
  if (!(await Bun.file(executable).exists())) fail(`@oven/bun-${target.npm}@${BUN_VERSION} has no ${executable}`)
  return executable
}

rmSync(OUT, { recursive: true, force: true })
mkdirSync(OUT, { recursive: true })
const sums: string[] = []
for (const target of chosen) {
  const started = performance.now()
  const file = `sidechat-${pkg.version}-${target.name}${target.expect.kind === "pe" ? ".exe" : ""}`
  await run([
    process.execPath,
    "build",
    "--compile",
    `--target=${target.bunTarget}`,
    `--compile-executable-path=${await runtime(target)}`,
    "--minify",
    "--bytecode",
    "--format=esm",
    "--splitting",
    "--no-compile-autoload-bunfig",
    "./cli.ts",
    "--outfile",
    join(OUT, file),
  ])
  const bytes = readFileSync(join(OUT, file))
  const found = formatOf(bytes)
  if (JSON.stringify(found) !== JSON.stringify(target.expect))
    fail(`${file}: expected ${JSON.stringify(target.expect)}, found ${JSON.stringify(found) ?? "an unknown format"}`)
  sums.push(`${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}  ${file}`)
  const size = (bytes.length / 2 ** 20).toFixed(0)
  console.log(`${file.padEnd(40)} ${JSON.stringify(found).padEnd(46)} ${size} MiB  ${((performance.now() - started) / 1000).toFixed(1)} s`)
}
writeFileSync(join(OUT, "SHA256SUMS"), `${sums.join("\n")}\n`)
console.log(`dist/release: ${chosen.length} binaries and SHA256SUMS`)

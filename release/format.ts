// What a built binary is, read from its header: ELF (and which libc it loads), Mach-O or PE, and
// the CPU it is for. `bun run build:all` checks every release binary with it.

export type Format = { kind: "elf" | "macho" | "pe"; arch: "x64" | "arm64"; libc?: "glibc" | "musl" }

export function formatOf(bytes: Uint8Array): Format | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (bytes.length < 64) return undefined
  // ELF: e_machine at 18 (little-endian); the interpreter's path names the libc.
  if (view.getUint32(0) === 0x7f454c46) {
    const arch = { 0x3e: "x64", 0xb7: "arm64" }[view.getUint16(18, true)] as Format["arch"] | undefined
    const head = new TextDecoder("latin1").decode(bytes.subarray(0, 8192))
    const libc = head.includes("/ld-musl-") ? "musl" : head.includes("/ld-linux-") ? "glibc" : undefined
    return arch && libc ? { kind: "elf", arch, libc } : undefined
  }
  // Mach-O, 64-bit: the CPU type follows the magic.
  if (view.getUint32(0, true) === 0xfeedfacf) {
    const arch = { 0x01000007: "x64", 0x0100000c: "arm64" }[view.getUint32(4, true)] as Format["arch"] | undefined
    return arch && { kind: "macho", arch }
  }
  // PE: "MZ", then the PE header where e_lfanew points, then the machine.
  if (bytes[0] === 0x4d && bytes[1] === 0x5a) {
    const pe = view.getUint32(0x3c, true)
    if (pe + 6 > bytes.length || view.getUint32(pe) !== 0x50450000) return undefined
    const arch = { 0x8664: "x64", 0xaa64: "arm64" }[view.getUint16(pe + 4, true)] as Format["arch"] | undefined
    return arch && { kind: "pe", arch }
  }
  return undefined
}

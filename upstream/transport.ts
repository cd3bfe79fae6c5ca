// The provider SDKs' `fetch`: HTTP/1.1 over Bun's own sockets, pooled per origin.
// Not Bun's fetch: it allows 256 requests in flight per process unless BUN_CONFIG_MAX_HTTP_REQUESTS
// is set before start-up, which a binary cannot do. Not node:http: in Bun it is a JavaScript layer
// over these same sockets, and it was the largest single cost per network read in profiles.
// A 2xx body is also readable without a web stream: `rawBody` hands the hot path each network
// read's bytes as they arrive. An egress proxy (HTTPS_PROXY, HTTP_PROXY) is honoured as Bun's
// fetch would: see proxy.ts.
import { type EgressProxy, proxyFor, unbracket, type Via } from "./proxy"

/** A pooled socket can die between two requests; that many fresh tries follow before giving up. */
const STALE_SOCKET_RETRIES = 2
/**
 * A pooled socket that fails this soon after the request was written (about one round trip), with
 * no byte back, was closed by the provider before the request reached it. Later, the provider may
 * have started on it, and sending it again could run (and bill) a completion twice.
 */
const STALE_WITHIN_MS = 150
/** Up to 64 KiB may wait for the reader before the socket is paused. */
const BUFFERED = 64 * 1024
/** A response head (status line and headers) larger than this is refused. */
const MAX_HEAD = 64 * 1024
/** A chunked body's size line (with extensions) or trailer line longer than this is refused. */
const MAX_CHUNK_LINE = 4096
/** An error body is read whole for the SDK, up to this much. */
const MAX_ERROR_BODY = 1024 * 1024
/** Idle sockets kept per origin, and how long each may wait for its next request. */
const MAX_IDLE = 256
const IDLE_SECONDS = 30

const abortError = () => new DOMException("The operation was aborted.", "AbortError")

/** The provider's connection ended before its response body did; what arrived before stands. */
export class UpstreamClosedError extends Error {
  override readonly name = "UpstreamClosedError"
  constructor(readonly detail: string) {
    super(`the provider closed the connection before the response ended (${detail})`)
  }
}

/** The provider sent no byte for `ms`; its connection was closed. */
export class UpstreamStalledError extends Error {
  override readonly name = "UpstreamStalledError"
  constructor(readonly ms: number) {
    super(`the provider sent nothing for ${ms} ms`)
  }
}

export type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>

export type TransportOptions = {
  /** A response body that sends no byte for this long is closed with UpstreamStalledError. */
  stallMs: number
  /** Certificates (PEM) to trust instead of the well-known roots Bun ships: a test's own CA. */
  ca?: string
  /** The egress proxy provider calls go through, where NO_PROXY does not exempt them. */
  proxy?: EgressProxy
}

/**
 * A response body read without a web stream: `read` resolves with every chunk that arrived since
 * the last call (one network read or more), or undefined at the end; a failure comes after what
 * arrived before it. `release` hands chunks the reader is done with back to the allocator (they
 * read as empty afterwards). `cancel` closes the connection.
 */
export type RawBody = { read(): Promise<Uint8Array[] | undefined>; release(chunks: Uint8Array[]): void; cancel(): void }

const rawBodies = new WeakMap<Response, RawBody>()
/** Socket reads that are whole buffers, not yet released: only these are freed by `release`. */
const ownReads = new WeakSet<ArrayBufferLike>()

/** The body of a Response this transport made, as bytes per network read; undefined for any other Response. */
export const rawBody = (response: Response): RawBody | undefined => rawBodies.get(response)

/** Enough of `fetch` for the SDKs: string or byte bodies, streamed responses, abort at any point. */
export function createTransport(options: TransportOptions): Fetch {
  return (input, init) => upstreamFetch(input, init, options)
}

/** `createTransport`'s fetch, with a stall limit of five minutes unless told otherwise. */
export async function upstreamFetch(
  input: string | URL | Request,
  init: RequestInit = {},
  transport: TransportOptions = { stallMs: 300_000 },
): Promise<Response> {
  const url = new URL(input instanceof Request ? input.url : input)
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new TypeError(`sidechat cannot fetch ${url.protocol} URLs`)
  const signal = init.signal ?? undefined
  if (signal?.aborted) throw abortError()
  const method = (init.method ?? "GET").toUpperCase()
  const origin = originOf(url, transport)
  const request = await requestBytes(url, method, init, origin)

  // A reused socket that failed right after the write, with no byte back (`stale`), never
  // delivered the request: it is sent again on another.
  for (let attempt = 0; ; attempt++) {
    const connection = takeIdle(origin) ?? (await connect(origin, signal))
    const exchange = new Exchange(connection, method, transport.stallMs, signal)
    let head: Head
    try {
      head = await exchange.send(request)
    } catch (error) {
      if (!exchange.stale || attempt >= STALE_SOCKET_RETRIES || signal?.aborted) throw error
      continue
    }
    // Through a plain-HTTP proxy, a 407 is the proxy's refusal, not the provider's answer.
    if (origin.via && !origin.tls && head.status === 407) {
      exchange.body.cancel()
      throw new Error(`the proxy ${origin.via.name} refused a request to ${url.host}: 407 ${head.statusText}`.trim())
    }
    return toResponse(exchange, head)
  }
}

// ------------------------------------------------------------------ connections

/** Where a request goes: its host, and the proxy its connection goes through, if any. */
type Origin = { key: string; hostname: string; port: number; tls: false | { serverName?: string; ca?: string }; via?: Via }

function originOf(url: URL, { ca, proxy }: TransportOptions): Origin {
  const https = url.protocol === "https:"
  const hostname = unbracket(url.hostname)
  const port = Number(url.port) || (https ? 443 : 80)
  const ip = /^[\d.]+$/.test(hostname) || hostname.includes(":")
  const via = proxyFor(url, proxy)
  return {
    key: `${url.protocol}//${url.host}${via ? ` via ${via.key}` : ""}`,
    hostname,
    port,
    tls: https && { ...(!ip && { serverName: hostname }), ...(ca && { ca }) },
    ...(via && { via }),
  }
}

/** One socket to one origin; it serves one exchange at a time and waits in the pool between them. */
type Connection = {
  socket: Bun.Socket<Connection>
  origin: Origin
  exchange?: Exchange
  /** Served an exchange before: a failure before any byte may be a socket the provider closed. */
  reused: boolean
  closed: boolean
  /** Why the socket failed, when it told us (an error, a refused certificate). */
  failure?: Error
  /** A tunnelled connection waits for its TLS handshake here (see `tunnel`). */
  handshake?: PromiseWithResolvers<void>
}

const idle = new Map<string, Connection[]>()

function takeIdle(origin: Origin): Connection | undefined {
  const list = idle.get(origin.key)
  for (let connection = list?.pop(); connection; connection = list?.pop()) {
    if (connection.closed) continue
    connection.socket.timeout(0)
    return connection
  }
  return undefined
}

function release(connection: Connection): void {
  connection.exchange = undefined
  connection.reused = true
  let list = idle.get(connection.origin.key)
  if (!list) idle.set(connection.origin.key, (list = []))
  if (connection.closed || list.length >= MAX_IDLE) return void connection.socket.end()
  connection.socket.timeout(IDLE_SECONDS)
  list.push(connection)
}

function forget(connection: Connection): void {
  const list = idle.get(connection.origin.key)
  const at = list?.indexOf(connection) ?? -1
  if (at >= 0) list?.splice(at, 1)
}

const handlers: Bun.SocketHandler<Connection, "arraybuffer"> = {
  // Each read as an ArrayBuffer: views into it are cheap. Slicing the default Buffer (or a fresh
  // Uint8Array) makes JSC move its bytes out of the GC heap first, a cost measured per read.
  binaryType: "arraybuffer",
  data(socket, buffer) {
    const { exchange } = socket.data
    // Bytes nobody asked for (on an idle socket): the connection is out of step, so it goes.
    if (exchange) exchange.receive(new Uint8Array(buffer))
    else socket.terminate()
  },
  drain(socket) {
    socket.data.exchange?.drain()
  },
  handshake(socket, verified, error) {
    if (verified) return void socket.data.handshake?.resolve()
    socket.data.failure = new Error(
      `the provider's TLS certificate was refused: ${(error as NodeJS.ErrnoException | undefined)?.code ?? error?.message ?? "unverified"}`,
    )
    socket.terminate()
  },
  error(socket, error) {
    socket.data.failure ??= error
  },
  end(socket) {
    // The provider half-closed: for a close-delimited body, that is its end.
    socket.end()
  },
  close(socket, error) {
    const connection = socket.data
    // A reset arrives here, not through `error`.
    connection.failure ??= error
    connection.closed = true
    forget(connection)
    connection.handshake?.reject(connection.failure ?? new UpstreamClosedError("during the TLS handshake"))
    connection.exchange?.closed(connection.failure)
  },
  timeout(socket) {
    if (socket.data.exchange) return
    forget(socket.data)
    socket.end()
  },
}

async function connect(origin: Origin, signal?: AbortSignal): Promise<Connection> {
  const connection = { origin, reused: false, closed: false } as Connection
  const { via } = origin
  const opening =
    via && origin.tls
      ? tunnel(origin, via, connection, signal)
      : Bun.connect<Connection>({
          // Through a proxy, a plain-HTTP request goes to the proxy, in absolute form (`requestBytes`).
          hostname: via?.hostname ?? origin.hostname,
          port: via?.port ?? origin.port,
          ...(origin.tls && { tls: origin.tls }),
          data: connection,
          socket: connectionHandlers,
        }).catch(via && unreachable(via))
  if (!signal) connection.socket = await opening
  else {
    // An abort while connecting answers at once; the socket, if it still opens, is closed.
    let onAbort: () => void = () => {}
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(abortError())
      signal.addEventListener("abort", onAbort, { once: true })
    })
    try {
      connection.socket = await Promise.race([opening, aborted])
    } catch (error) {
      void opening.then(
        (socket) => socket.terminate(),
        () => {},
      )
      throw error
    } finally {
      signal.removeEventListener("abort", onAbort)
    }
  }
  return connection
}

/** A failed connection to the proxy says so, not just that a connection failed. */
const unreachable = (via: Via) => (error: Error) => {
  throw new Error(`could not connect to the proxy ${via.name}: ${error.message}`, { cause: error })
}

// Bun's types know binaryType for servers only; connect takes it too.
const connectionHandlers = handlers as unknown as Bun.SocketHandler<Connection>

/**
 * TLS to the provider inside a proxy's CONNECT tunnel: the proxy relays bytes it cannot read, and
 * the provider's certificate is checked as on a direct connection. A proxy that refuses (407, 403,
 * 502...) fails the request with its status, which the SDK reports as a connection error. An abort
 * closes the socket at any step (a silent proxy would otherwise hold it).
 */
async function tunnel(origin: Origin, via: Via, connection: Connection, signal?: AbortSignal): Promise<Bun.Socket<Connection>> {
  const target = `${origin.hostname.includes(":") ? `[${origin.hostname}]` : origin.hostname}:${origin.port}`
  const answered = Promise.withResolvers<string>()
  let answer = ""
  // After the proxy's answer, the raw socket's handlers still see every encrypted read: they ignore it.
  let settled = false
  const settle = (outcome: () => void) => {
    if (settled) return
    settled = true
    outcome()
  }
  const raw = await Bun.connect({
    hostname: via.hostname,
    port: via.port,
    socket: {
      data(_, bytes) {
        if (settled) return
        answer += latin1.decode(bytes)
        if (answer.includes("\r\n\r\n")) settle(() => answered.resolve(answer))
        else if (answer.length > MAX_HEAD)
          settle(() => answered.reject(new Error(`the proxy ${via.name} sent an over-long answer to CONNECT`)))
      },
      error: (_, error) => settle(() => answered.reject(error)),
      close: () =>
        settle(() => answered.reject(new Error(`the proxy ${via.name} closed the connection before answering CONNECT ${target}`))),
    },
  }).catch(unreachable(via))
  let tls: Bun.Socket<Connection> | undefined
  const abort = () => {
    settle(() => answered.reject(abortError()))
    ;(tls ?? raw).terminate()
  }
  signal?.addEventListener("abort", abort, { once: true })
  try {
    if (signal?.aborted) abort()
    else
      raw.write(
        `CONNECT ${target} HTTP/1.1\r\nhost: ${target}\r\n${via.authorization ? `proxy-authorization: ${via.authorization}\r\n` : ""}\r\n`,
      )
    const head = await answered.promise
    const status = /^HTTP\/1\.[01] (\d{3})(?: ([^\r]*))?/.exec(head)
    // The provider speaks only after our TLS hello: a byte past the proxy's answer is out of step.
    if (!status?.[1]?.startsWith("2") || !head.endsWith("\r\n\r\n")) {
      const said = status ? `${status[1]} ${status[2] ?? ""}`.trim() : JSON.stringify(head.slice(0, 40))
      throw new Error(`the proxy ${via.name} refused a tunnel to ${target}: ${said}`)
    }
    // Unlike a direct TLS connection, an upgraded socket does not hold writes until its handshake.
    connection.handshake = Promise.withResolvers<void>()
    tls = raw.upgradeTLS<Connection>({ data: connection, tls: origin.tls || {}, socket: connectionHandlers })[1]
    await connection.handshake.promise
    return tls
  } catch (error) {
    ;(tls ?? raw).terminate()
    throw error
  } finally {
    connection.handshake = undefined
    answer = ""
    signal?.removeEventListener("abort", abort)
  }
}

// ------------------------------------------------------------------ one request and its response

type Head = { status: number; statusText: string; headers: Headers }
type Framing = { kind: "none" } | { kind: "length"; left: number } | { kind: "chunked" } | { kind: "close" }

const latin1 = new TextDecoder("latin1")
const CRLFCRLF = [13, 10, 13, 10]

/**
 * One request on one connection: writes it, parses the response head, then de-frames the body
 * (content-length, chunked or close-delimited) into chunks for its reader, per network read.
 */
class Exchange {
  /** A reused socket failed within STALE_WITHIN_MS of the write, with nothing back: sending again is safe. */
  stale = false
  private phase: "head" | "body" | "done" = "head"
  private head: Uint8Array = new Uint8Array(0)
  private framing: Framing = { kind: "none" }
  private keepAlive = false
  private received = false
  private pending?: Uint8Array
  private sentAt = 0
  private onHead?: { resolve: (head: Head) => void; reject: (error: unknown) => void }
  // The body, as its reader sees it.
  private queue: Uint8Array[] = []
  private queued = 0
  private failure?: unknown
  private waiter?: { resolve: (chunks: Uint8Array[] | undefined) => void; reject: (error: unknown) => void }
  private paused = false
  // Chunked framing: the size line being read, bytes left in the current chunk, and what comes next.
  private line = ""
  private chunkLeft = 0
  private chunkState: "size" | "data" | "data-end" | "trailer" = "size"
  // Stall watch: one timer per body, re-armed for what is left rather than reset on every read.
  private lastByte = 0
  private stall?: ReturnType<typeof setTimeout>

  constructor(
    private readonly connection: Connection,
    private readonly method: string,
    private readonly stallMs: number,
    private readonly signal?: AbortSignal,
  ) {
    connection.exchange = this
  }

  send(request: Uint8Array): Promise<Head> {
    this.sentAt = performance.now()
    const head = new Promise<Head>((resolve, reject) => (this.onHead = { resolve, reject }))
    this.signal?.addEventListener("abort", this.abort, { once: true })
    // Aborted while a connection was found or opened: the listener above would never hear it.
    if (this.signal?.aborted) this.abort()
    else if (this.connection.closed) this.closed(this.connection.failure)
    else this.write(request)
    return head
  }

  private write(bytes: Uint8Array): void {
    const written = this.connection.socket.write(bytes)
    if (written >= 0 && written < bytes.byteLength) this.pending = bytes.subarray(written)
  }

  drain(): void {
    const pending = this.pending
    this.pending = undefined
    if (pending) this.write(pending)
  }

  private readonly abort = () => this.finish(abortError(), true)

  receive(bytes: Uint8Array): void {
    this.received = true
    this.lastByte = performance.now()
    // A read that is its whole buffer is ours to free once read (see `release`); a view into a
    // buffer shared with other reads (a pool) is left to the garbage collector.
    if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) ownReads.add(bytes.buffer)
    try {
      if (this.phase === "head") {
        const rest = this.readHead(bytes)
        if (rest === undefined) return
        bytes = rest
      }
      if (this.phase === "body" && bytes.byteLength) this.readBody(bytes)
    } catch (error) {
      // Malformed framing: what was read before it still reaches the reader first.
      this.finish(error, false)
      return
    }
    this.wake()
  }

  /** Accumulates the head; returns what follows it once it is complete (after any 1xx heads). */
  private readHead(bytes: Uint8Array): Uint8Array | undefined {
    let buffer = bytes
    if (this.head.byteLength) {
      // The head so far and this read, copied together: the copy is ours to free as well.
      buffer = concat(this.head, bytes)
      ownReads.add(buffer.buffer)
    }
    for (;;) {
      const end = indexOfSequence(buffer, CRLFCRLF)
      if (end > MAX_HEAD || (end < 0 && buffer.byteLength > MAX_HEAD)) throw new UpstreamClosedError("response head too large")
      if (end < 0) {
        this.head = buffer.slice()
        return undefined
      }
      const head = parseHead(latin1.decode(buffer.subarray(0, end)))
      buffer = buffer.subarray(end + 4)
      // Informational answers (100 Continue, 103 Early Hints) precede the real one.
      if (head.status >= 100 && head.status < 200) continue
      this.head = new Uint8Array(0)
      this.framing = framingOf(head, this.method)
      this.keepAlive = head.keepAlive && this.framing.kind !== "close"
      this.phase = "body"
      this.lastByte = performance.now()
      if (this.framing.kind === "none" || (this.framing.kind === "length" && this.framing.left === 0))
        this.complete(buffer.byteLength === 0)
      this.onHead?.resolve(head)
      this.onHead = undefined
      return buffer
    }
  }

  private readBody(bytes: Uint8Array): void {
    const framing = this.framing
    if (framing.kind === "close") return this.push(bytes)
    if (framing.kind === "length") {
      const take = Math.min(framing.left, bytes.byteLength)
      this.push(bytes.subarray(0, take))
      framing.left -= take
      if (framing.left === 0) this.complete(take === bytes.byteLength)
      return
    }
    if (framing.kind === "chunked") this.readChunked(bytes)
  }

  private readChunked(bytes: Uint8Array): void {
    let at = 0
    while (at < bytes.byteLength && this.phase === "body") {
      if (this.chunkState === "data") {
        const take = Math.min(this.chunkLeft, bytes.byteLength - at)
        this.push(bytes.subarray(at, at + take))
        at += take
        this.chunkLeft -= take
        if (this.chunkLeft === 0) this.chunkState = "data-end"
        continue
      }
      // Size lines, the CRLF after each chunk's data, and trailers are lines.
      const newline = bytes.indexOf(10, at)
      if (newline >= 0 && newline - at <= MAX_CHUNK_LINE && !this.line && this.chunkState !== "trailer") {
        // A whole line in this read: the usual ones are read off the bytes, with no string made.
        const end = newline > at && bytes[newline - 1] === 13 ? newline - 1 : newline
        if (this.chunkState === "data-end") {
          if (end !== at) throw new UpstreamClosedError("malformed chunked encoding")
          this.chunkState = "size"
          at = newline + 1
          continue
        }
        const size = plainHex(bytes, at, end)
        if (size >= 0) {
          this.startChunk(size)
          at = newline + 1
          continue
        }
      }
      const end = newline < 0 ? bytes.byteLength : newline
      this.line += latin1.decode(bytes.subarray(at, end))
      if (this.line.length > MAX_CHUNK_LINE) throw new UpstreamClosedError("malformed chunked encoding")
      at = end + 1
      if (newline < 0) break
      const line = this.line.endsWith("\r") ? this.line.slice(0, -1) : this.line
      this.line = ""
      if (this.chunkState === "data-end") {
        if (line !== "") throw new UpstreamClosedError("malformed chunked encoding")
        this.chunkState = "size"
      } else if (this.chunkState === "size") {
        const size = line.split(";")[0]?.trim() ?? ""
        if (!/^[0-9a-fA-F]{1,8}$/.test(size)) throw new UpstreamClosedError("malformed chunked encoding")
        this.startChunk(Number.parseInt(size, 16))
      } else if (line === "") this.complete(at >= bytes.byteLength)
    }
  }

  /** A size line read: its data follows, or, for size 0, the trailers. */
  private startChunk(size: number): void {
    this.chunkLeft = size
    this.chunkState = size === 0 ? "trailer" : "data"
  }

  private push(bytes: Uint8Array): void {
    if (!bytes.byteLength) return
    this.queue.push(bytes)
    this.queued += bytes.byteLength
    if (this.queued >= BUFFERED && !this.paused && !this.connection.closed) {
      this.paused = true
      this.connection.socket.pause()
    }
  }

  /** The whole response arrived: the socket serves the next request, or closes. */
  private complete(clean = true): void {
    this.phase = "done"
    this.settle()
    // The body is all here: a socket paused for our reader reads again, for whoever uses it next.
    if (this.paused && !this.connection.closed) this.connection.socket.resume()
    this.paused = false
    // An answer that came before the whole request was written (an early 413) leaves the
    // socket out of step: the rest of the request would reach the provider as the next one.
    const inStep = clean && this.pending === undefined
    this.pending = undefined
    if (this.keepAlive && inStep && !this.connection.closed) release(this.connection)
    else this.connection.socket.end()
  }

  /** The socket closed: the end of a close-delimited body, else a failure. */
  closed(failure?: Error): void {
    if (this.phase === "done") return
    if (this.phase === "body" && this.framing.kind === "close" && !failure) {
      this.phase = "done"
      this.settle()
      this.wake()
      return
    }
    this.stale = this.connection.reused && !this.received && !this.signal?.aborted && performance.now() - this.sentAt < STALE_WITHIN_MS
    const detail = (failure as NodeJS.ErrnoException | undefined)?.code ?? failure?.message ?? "socket closed"
    const error = this.phase === "head" && failure ? failure : new UpstreamClosedError(detail)
    this.finish(error, false)
  }

  /** Ends the exchange with `error`: at once (`now`), or after the chunks its reader has not taken yet. */
  private finish(error: unknown, now: boolean): void {
    if (this.phase === "done" && !now) return
    const wasHead = this.phase === "head"
    this.phase = "done"
    this.settle()
    if (!this.connection.closed) this.connection.socket.terminate()
    if (wasHead) {
      this.onHead?.reject(error)
      this.onHead = undefined
      return
    }
    this.failure = error
    if (now) {
      this.queue = []
      this.queued = 0
    }
    this.wake()
  }

  private settle(): void {
    clearTimeout(this.stall)
    this.signal?.removeEventListener("abort", this.abort)
    if (this.connection.exchange === this && this.phase === "done") this.connection.exchange = undefined
  }

  /** Hands the reader what arrived, or the end, or the failure once nothing is left before it. */
  private wake(): void {
    const waiter = this.waiter
    if (!waiter) return
    if (this.queue.length) {
      this.waiter = undefined
      waiter.resolve(this.take())
    } else if (this.failure !== undefined) {
      this.waiter = undefined
      waiter.reject(this.failure)
    } else if (this.phase === "done") {
      this.waiter = undefined
      waiter.resolve(undefined)
    }
  }

  private take(): Uint8Array[] {
    const chunks = this.queue
    this.queue = []
    this.queued = 0
    if (this.paused && !this.connection.closed) {
      this.paused = false
      this.lastByte = performance.now()
      this.connection.socket.resume()
    }
    return chunks
  }

  /** The body's reader side. */
  readonly body: RawBody = {
    read: () => {
      if (this.queue.length) return Promise.resolve(this.take())
      if (this.failure !== undefined) return Promise.reject(this.failure)
      if (this.phase === "done") return Promise.resolve(undefined)
      this.watchStall()
      return new Promise((resolve, reject) => (this.waiter = { resolve, reject }))
    },
    // Bun copies each network read into a buffer of its own, which only a garbage collection would
    // free. By then its allocator has returned the pages to the kernel, so every read wrote into
    // fresh pages, one page fault per 4 KiB: a third of the CPU of a stream at full speed. Freed
    // here, the next read reuses them. Only whole socket reads are freed: every chunk views one
    // read, all of whose chunks reach the reader together.
    release: (chunks) => {
      for (const chunk of chunks) {
        const buffer = chunk.buffer as ArrayBuffer
        if (ownReads.delete(buffer)) buffer.transfer(0)
      }
    },
    cancel: () => {
      if (this.phase !== "done") this.finish(abortError(), true)
      this.waiter = undefined
    },
  }

  /** While the reader waits, a provider silent for `stallMs` ends the body. */
  private watchStall(): void {
    if (this.stall !== undefined || this.phase !== "body") return
    const watch = () => {
      this.stall = undefined
      if (this.phase !== "body") return
      const quiet = performance.now() - this.lastByte
      if (quiet < this.stallMs) this.stall = setTimeout(watch, this.stallMs - quiet)
      // Only a reader waiting on a silent provider is a stall; a reader that is behind is not.
      else if (this.waiter) this.finish(new UpstreamStalledError(this.stallMs), true)
    }
    this.stall = setTimeout(watch, this.stallMs - (performance.now() - this.lastByte))
  }
}

// ------------------------------------------------------------------ bytes in and out

async function requestBytes(url: URL, method: string, init: RequestInit, { via, tls }: Origin): Promise<Uint8Array> {
  const body = await bodyBytes(init.body)
  // To a plain-HTTP proxy, the whole URL, and the proxy's credentials on every request.
  const proxied = via && !tls
  const target = proxied ? `${url.protocol}//${url.host}${url.pathname}${url.search}` : `${url.pathname}${url.search}`
  let head = `${method} ${target} HTTP/1.1\r\nhost: ${url.host}\r\n`
  if (proxied && via.authorization) head += `proxy-authorization: ${via.authorization}\r\n`
  // The SDKs hand over a Headers already: read it rather than copy it.
  const headers = init.headers instanceof Headers ? init.headers : new Headers(init.headers)
  headers.forEach((value, name) => {
    // Framing and the connection are the transport's; the body is never compressed for us.
    if (name === "host" || name === "connection" || name === "content-length" || name === "transfer-encoding") return
    if (name === "accept-encoding") return
    head += `${name}: ${value}\r\n`
  })
  if (body || method === "POST" || method === "PUT" || method === "PATCH") head += `content-length: ${body?.byteLength ?? 0}\r\n`
  head += "accept-encoding: identity\r\n\r\n"
  const headBytes = new TextEncoder().encode(head)
  return body ? concat(headBytes, body) : headBytes
}

async function bodyBytes(body: RequestInit["body"]): Promise<Uint8Array | undefined> {
  if (body === undefined || body === null) return undefined
  if (typeof body === "string") return new TextEncoder().encode(body)
  if (body instanceof Uint8Array) return body
  return new Uint8Array(await new Response(body).arrayBuffer())
}

function parseHead(text: string): Head & { keepAlive: boolean } {
  const lines = text.split("\r\n")
  const status = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/.exec(lines[0] ?? "")
  if (!status) throw new UpstreamClosedError("not an HTTP/1.1 response")
  const headers = new Headers()
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string
    const colon = line.indexOf(":")
    if (colon <= 0) throw new UpstreamClosedError("malformed response header")
    headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim())
  }
  const connection = headers.get("connection")?.toLowerCase() ?? ""
  const keepAlive = status[1] === "1" ? !connection.includes("close") : connection.includes("keep-alive")
  return { status: Number(status[2]), statusText: status[3] ?? "", headers, keepAlive }
}

function framingOf(head: Head, method: string): Framing {
  if (method === "HEAD" || head.status === 204 || head.status === 304) return { kind: "none" }
  if (head.headers.get("transfer-encoding")?.toLowerCase().includes("chunked")) return { kind: "chunked" }
  const length = head.headers.get("content-length")
  if (length !== null) {
    if (!/^\d{1,15}$/.test(length.trim())) throw new UpstreamClosedError("malformed content-length")
    return { kind: "length", left: Number(length) }
  }
  return { kind: "close" }
}

/**
 * A 2xx body streams (and `rawBody` finds it); any other is read whole first, as the SDK reads it
 * whole to build its error.
 */
async function toResponse(exchange: Exchange, head: Head): Promise<Response> {
  const init = { status: head.status, statusText: head.statusText, headers: head.headers }
  const body = exchange.body
  if (head.status === 204 || head.status === 304 || head.status === 205) return new Response(null, init)
  if (head.status < 200 || head.status >= 300) {
    const chunks: Uint8Array[] = []
    let size = 0
    for (let read = await body.read(); read; read = await body.read()) {
      for (const chunk of read) chunks.push(chunk)
      size += read.reduce((sum, chunk) => sum + chunk.byteLength, 0)
      if (size > MAX_ERROR_BODY) {
        body.cancel()
        break
      }
    }
    return new Response(concat(...chunks) as Uint8Array<ArrayBuffer>, init)
  }
  const response = new Response(
    new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          const chunks = await body.read()
          if (!chunks) return controller.close()
          for (const chunk of chunks) controller.enqueue(chunk)
        },
        cancel: () => body.cancel(),
      }, // Nothing is pulled before someone reads: the hot path takes the raw body instead.
      { highWaterMark: 0 },
    ),
    init,
  )
  rawBodies.set(response, body)
  return response
}

function concat(...parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0))
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.byteLength
  }
  return out
}

/**
 * A chunk size as most servers write it, `bytes[from, to)`: one to eight hex digits, then the end
 * or a `;` before extensions. -1 for anything else, which the line's full parse then takes.
 */
function plainHex(bytes: Uint8Array, from: number, to: number): number {
  let value = 0
  let at = from
  for (; at < to && at - from < 8; at++) {
    const code = bytes[at] as number
    const digit = code >= 48 && code <= 57 ? code - 48 : code >= 97 && code <= 102 ? code - 87 : code >= 65 && code <= 70 ? code - 55 : -1
    if (digit < 0) break
    value = value * 16 + digit
  }
  return at > from && (at === to || bytes[at] === 59) ? value : -1
}

function indexOfSequence(bytes: Uint8Array, sequence: number[]): number {
  const first = sequence[0] as number
  for (let at = bytes.indexOf(first); at >= 0 && at <= bytes.byteLength - sequence.length; at = bytes.indexOf(first, at + 1)) {
    let i = 1
    while (i < sequence.length && bytes[at + i] === sequence[i]) i++
    if (i === sequence.length) return at
  }
  return -1
}

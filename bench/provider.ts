// Benchmark helper, run as its own process: a fake Anthropic and OpenAI endpoint on 127.0.0.1.
// The last user message says what to stream: `full n=2000` (as fast as possible), `paced n=100
// every=20` (one token per interval, each carrying its send time as `t<epoch ms> `), or
// `held every=20000` (one token, then silence, then the rest).

const encoder = new TextEncoder()
const cache = new Map<string, Uint8Array>()

type Framing = { head: string; token: (text: string) => string; tail: string }

function framing(openai: boolean): Framing {
  if (openai) {
    const base = { id: "chatcmpl-bench", object: "chat.completion.chunk", created: 1_700_000_000, model: "gpt-bench" }
    const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
      `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
    return {
      head: chunk({ role: "assistant", content: "" }),
      token: (text) => chunk({ content: text }),
      tail: `${chunk({}, "stop")}data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 } })}\n\ndata: [DONE]\n\n`,
    }
  }
  const event = (data: { type: string } & Record<string, unknown>) => `event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`
  const message = {
    id: "msg_bench",
    type: "message",
    role: "assistant",
    model: "claude-bench",
    content: [],
    stop_reason: null,
    stop_sequence: null,
  }
  return {
    head:
      event({ type: "message_start", message: { ...message, usage: { input_tokens: 5, output_tokens: 1 } } }) +
      event({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }),
    token: (text) => event({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text } }),
    tail:
      event({ type: "content_block_stop", index: 0 }) +
      event({ type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: 1 } }) +
      event({ type: "message_stop" }),
  }
}

/** A whole answer of `n` tokens, built once per shape and served from memory. */
function whole(openai: boolean, n: number): Uint8Array {
  const key = `${openai}:${n}`
  let bytes = cache.get(key)
  if (!bytes) {
    const f = framing(openai)
    let text = f.head
    for (let i = 0; i < n; i++) text += f.token(`tok${i % 100} `)
    bytes = encoder.encode(text + f.tail)
    cache.set(key, bytes)
  }
  return bytes
}

const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  hostname: "127.0.0.1",
  idleTimeout: 0,
  async fetch(request) {
    if (request.method !== "POST") return new Response("ok")
    const body = (await request.json()) as { messages: { content: unknown }[] }
    const asked = JSON.stringify(body.messages.at(-1)?.content)
    const openai = new URL(request.url).pathname.endsWith("/chat/completions")
    const n = Number(asked.match(/n=(\d+)/)?.[1] ?? 10)
    const every = Number(asked.match(/every=(\d+)/)?.[1] ?? 20)
    const headers = { "content-type": "text/event-stream" }
    if (asked.includes("full")) {
      // Written in reads of 4 KiB, as a fast provider's stream arrives.
      const bytes = whole(openai, n)
      let at = 0
      return new Response(
        new ReadableStream<Uint8Array>({
          pull(controller) {
            if (at >= bytes.byteLength) return controller.close()
            controller.enqueue(bytes.subarray(at, at + 4096))
            at += 4096
          },
        }),
        { headers },
      )
    }
    const f = framing(openai)
    const held = asked.includes("held")
    let sent = 0
    let timer: ReturnType<typeof setTimeout> | undefined
    return new Response(
      new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(encoder.encode(f.head))
          const next = () => {
            if (sent >= n) {
              controller.enqueue(encoder.encode(f.tail))
              return controller.close()
            }
            controller.enqueue(encoder.encode(f.token(`t${(performance.timeOrigin + performance.now()).toFixed(3)} `)))
            sent++
            timer = setTimeout(next, held && sent === 1 ? every : held ? 0 : every)
          }
          next()
        },
        cancel() {
          clearTimeout(timer)
        },
      }),
      { headers },
    )
  },
})
console.log(`provider listening on http://127.0.0.1:${server.port}`)

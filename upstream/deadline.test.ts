import { describe, expect, test } from "bun:test"
import { createDeadline } from "./deadline"

// Wide margins (100 ms and more either side of each limit), for a loaded machine.
const limits = { firstTokenMs: 100, maxDurationMs: 400 }

describe("a chat's deadline", () => {
  test("no content in time: the first-token limit expires it", async () => {
    const deadline = createDeadline(new AbortController().signal, limits, "Anthropic")
    await Bun.sleep(250)
    expect(deadline.signal.aborted).toBe(true)
    expect(deadline.expired()).toMatchObject({ code: "provider_timeout", message: "Anthropic sent no answer within 0.1 s" })
  })

  test("content in time stops that clock; the whole-stream limit still ends it, counted from the start", async () => {
    const deadline = createDeadline(new AbortController().signal, limits, "Anthropic")
    deadline.contentArrived()
    await Bun.sleep(250)
    expect(deadline.signal.aborted).toBe(false)
    await Bun.sleep(300)
    expect(deadline.expired()?.code).toBe("duration_exceeded")
  })

  test("a first-token limit past the whole-stream limit never fires", async () => {
    const deadline = createDeadline(new AbortController().signal, { firstTokenMs: 600, maxDurationMs: 100 }, "OpenAI")
    await Bun.sleep(250)
    expect(deadline.expired()?.code).toBe("duration_exceeded")
  })

  test("the client leaving aborts with its reason and stops the clocks; so does clear", async () => {
    const client = new AbortController()
    const left = createDeadline(client.signal, limits, "Anthropic")
    client.abort(new Error("gone"))
    expect(left.signal.aborted).toBe(true)
    expect((left.signal.reason as Error).message).toBe("gone")
    const cleared = createDeadline(new AbortController().signal, limits, "Anthropic")
    cleared.clear()
    await Bun.sleep(250)
    expect(left.expired()).toBeUndefined()
    expect(cleared.signal.aborted).toBe(false)
    expect(createDeadline(client.signal, limits, "Anthropic").signal.aborted).toBe(true)
  })

  test("expire ends it at once with the part given, and only the first reason counts", () => {
    const deadline = createDeadline(new AbortController().signal, limits, "Anthropic")
    deadline.expire({ type: "error", code: "shutdown", message: "bye" })
    deadline.expire({ type: "error", code: "provider_timeout", message: "late" })
    expect(deadline.signal.aborted).toBe(true)
    expect(deadline.expired()?.code).toBe("shutdown")
  })
})

/// <reference lib="dom" />
// The playground: one page driving the real @tanstack/ai-client (current generation) against the
// server that serves it. Bun bundles it (an HTML import) into the server and the compiled binary.
// It never sees a provider key; a bearer token, when the server wants one, lives in memory only.
import { toolDefinition } from "@tanstack/ai"
import { ChatClient, fetchServerSentEvents } from "@tanstack/ai-client"

type Catalog = {
  defaultProvider: string
  providers: { name: string; mode: "live" | "mock"; defaultModel: string }[]
  models: string[]
  resumable: boolean
}
type Part = { type: string; content?: string; name?: string; state?: string; arguments?: string; output?: unknown }
type Message = { id: string; role: string; parts: Part[] }

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T
const log = $<HTMLElement>("log")
const form = $<HTMLFormElement>("composer")
const input = $<HTMLTextAreaElement>("message")
const send = $<HTMLButtonElement>("send")
const stop = $<HTMLButtonElement>("stop")
const providerSelect = $<HTMLSelectElement>("provider")
const modelInput = $<HTMLInputElement>("model")
const status = $<HTMLElement>("status")
const tokenForm = $<HTMLFormElement>("token-form")

let token = ""
let catalog: Catalog | undefined
/** What the server said when it refused a request, so the error shows its code. */
let refusal: { code: string; message: string } | undefined
/** The run's final error event, with its code; the client reports the same failure once more without it. */
let runError: string | undefined
/** The run streaming now: with resumable runs, stop also ends it on the server (DELETE). */
let runId: string | null = null

const headers = (): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {})

/** Two harmless client tools, so the tool round trip can be watched: the model asks, the page answers. */
const localTime = toolDefinition({
  name: "get_local_time",
  description: "The current date, time and time zone of the user's browser.",
  inputSchema: { type: "object", properties: {} },
}).client(() => ({ time: new Date().toString(), timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone }))

const calculator = toolDefinition({
  name: "calculate",
  description: "Applies an arithmetic operation to two numbers.",
  inputSchema: {
    type: "object",
    properties: {
      operation: { type: "string", enum: ["add", "subtract", "multiply", "divide"] },
      a: { type: "number" },
      b: { type: "number" },
    },
    required: ["operation", "a", "b"],
  },
}).client((args: unknown) => {
  const { operation, a, b } = args as { operation: string; a: number; b: number }
  const result = { add: a + b, subtract: a - b, multiply: a * b, divide: b === 0 ? Number.NaN : a / b }[operation]
  return result === undefined || Number.isNaN(result) ? { error: `cannot ${operation} ${a} and ${b}` } : { result }
})

/** fetch, keeping the JSON error of a refused request for the error line. */
async function remembering(url: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  refusal = undefined
  const response = await fetch(url, init)
  if (!response.ok)
    refusal = (
      await response
        .clone()
        .json()
        .catch(() => undefined)
    )?.error
  return response
}

const client = new ChatClient({
  connection: fetchServerSentEvents("/chat", () => ({
    headers: headers(),
    fetchClient: remembering as typeof fetch,
  })),
  tools: [localTime, calculator],
  onMessagesChange: (messages) => render(messages as Message[]),
  onRunIdChange: (id) => {
    if (id) runId = id
  },
  onLoadingChange: (loading) => {
    send.disabled = loading
    stop.hidden = !loading
    if (loading) {
      runError = undefined
      showError(undefined)
    }
  },
  onChunk: (chunk) => {
    const event = chunk as { type: string; code?: string; message?: string }
    // The client makes a RUN_ERROR of its own, with no code, when the request itself fails.
    if (event.type !== "RUN_ERROR" || !event.code) return
    runError = `${event.code ?? "error"}: ${event.message ?? "the run failed"}`
    showError(runError)
  },
  onError: (error) => showError(runError ?? (refusal ? `${refusal.code}: ${refusal.message}` : error.message)),
})

function showError(text: string | undefined) {
  const box = $<HTMLElement>("error")
  box.hidden = !text
  box.textContent = text ?? ""
}

function render(messages: Message[]) {
  log.replaceChildren(...messages.map(renderMessage))
  log.scrollTop = log.scrollHeight
}

function renderMessage(message: Message): HTMLElement {
  const box = element("article", `message ${message.role}`)
  box.dataset.role = message.role
  for (const part of message.parts) {
    if (part.type === "text" && part.content) box.append(element("p", "text", part.content))
    else if (part.type === "thinking" && part.content) {
      const thinking = element("details", "thinking")
      thinking.open = true
      thinking.append(element("summary", "", "Thinking"), element("p", "", part.content))
      box.append(thinking)
    } else if (part.type === "tool-call") {
      const call = element("div", "tool")
      call.dataset.state = part.state ?? ""
      const output = part.output === undefined ? "" : ` → ${JSON.stringify(part.output)}`
      call.append(element("code", "", `${part.name}(${part.arguments ?? ""})${output}`), element("span", "state", part.state ?? ""))
      box.append(call)
    }
  }
  return box
}

function element<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag)
  if (className) node.className = className
  if (text !== undefined) node.textContent = text
  return node
}

async function loadCatalog() {
  const response = await fetch("/providers", { headers: headers() })
  if (response.status === 401) {
    tokenForm.hidden = false
    status.textContent = token ? "That token was refused." : "This server wants a bearer token."
    return
  }
  if (!response.ok) return showError(`cannot load /providers: HTTP ${response.status}`)
  tokenForm.hidden = true
  catalog = (await response.json()) as Catalog
  providerSelect.replaceChildren(
    ...catalog.providers.map((p) => {
      const option = element("option", "", `${p.name}${p.mode === "mock" ? " (mock)" : ""}`)
      option.value = p.name
      return option
    }),
  )
  providerSelect.value = catalog.defaultProvider
  $<HTMLDataListElement>("models").replaceChildren(
    ...catalog.models.filter((m) => !m.includes("*")).map((m) => Object.assign(element("option", ""), { value: m })),
  )
  pickProvider()
  status.textContent = catalog.providers.every((p) => p.mode === "mock")
    ? "No provider key is set: replies come from the built-in mock."
    : ""
  form.hidden = false
}

function pickProvider() {
  const chosen = catalog?.providers.find((p) => p.name === providerSelect.value)
  modelInput.value = chosen?.defaultModel ?? ""
}

providerSelect.addEventListener("change", pickProvider)
tokenForm.addEventListener("submit", (event) => {
  event.preventDefault()
  token = $<HTMLInputElement>("token").value.trim()
  void loadCatalog()
})
form.addEventListener("submit", (event) => {
  event.preventDefault()
  const text = input.value.trim()
  if (!text || client.getIsLoading()) return
  input.value = ""
  const model = modelInput.value.trim()
  void client.sendMessage(text, { provider: providerSelect.value, ...(model && { model }) })
})
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault()
    form.requestSubmit()
  }
})
stop.addEventListener("click", () => {
  client.stop()
  // The client's stop only hangs up; a resumable run would go on for its grace period.
  if (catalog?.resumable && runId)
    void fetch(`/chat?runId=${encodeURIComponent(runId)}`, { method: "DELETE", headers: headers() }).catch(() => {})
})
for (const button of document.querySelectorAll<HTMLButtonElement>("[data-example]"))
  button.addEventListener("click", () => {
    input.value = button.dataset.example ?? ""
    form.requestSubmit()
  })

void loadCatalog()

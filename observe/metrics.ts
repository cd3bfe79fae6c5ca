// A small Prometheus registry: counters, gauges and histograms rendered in the text exposition
// format (version 0.0.4). Label values are the caller's to bound; nothing here accepts free text.
type Labels = Record<string, string>

export type Counter = { inc(labels?: Labels, by?: number): void }
export type Histogram = { observe(labels: Labels, value: number): void }

export type Registry = {
  counter(name: string, help: string): Counter
  /** A gauge whose value is read when scraped. */
  gauge(name: string, help: string, read: () => number): void
  /** A counter kept elsewhere (CPU time), read when scraped. */
  sampledCounter(name: string, help: string, read: () => number): void
  histogram(name: string, help: string, buckets: readonly number[]): Histogram
  render(): string
}

const escape = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")
const labelText = (labels: Labels) => {
  const entries = Object.entries(labels)
  return entries.length ? `{${entries.map(([key, value]) => `${key}="${escape(value)}"`).join(",")}}` : ""
}
/** A series' identity: cheap to build on every increment; the label text is rendered only when scraped. */
const keyOf = (labels: Labels) => {
  let key = ""
  for (const name in labels) key += `${name}\u0000${labels[name]}\u0001`
  return key
}
const number = (value: number) => (Number.isFinite(value) ? String(value) : value > 0 ? "+Inf" : value < 0 ? "-Inf" : "NaN")

export function createRegistry(): Registry {
  const sections: (() => string)[] = []
  const head = (name: string, help: string, type: string) => `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`

  return {
    counter(name, help) {
      const values = new Map<string, { labels: Labels; value: number }>()
      sections.push(
        () => head(name, help, "counter") + [...values.values()].map((v) => `${name}${labelText(v.labels)} ${number(v.value)}\n`).join(""),
      )
      return {
        inc(labels = {}, by = 1) {
          const key = keyOf(labels)
          const entry = values.get(key)
          if (entry) entry.value += by
          else values.set(key, { labels, value: by })
        },
      }
    },
    gauge(name, help, read) {
      sections.push(() => head(name, help, "gauge") + `${name} ${number(read())}\n`)
    },
    sampledCounter(name, help, read) {
      sections.push(() => head(name, help, "counter") + `${name} ${number(read())}\n`)
    },
    histogram(name, help, buckets) {
      const series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>()
      sections.push(() => {
        let text = head(name, help, "histogram")
        for (const { labels, counts, sum, count } of series.values()) {
          for (const [i, bound] of buckets.entries()) text += `${name}_bucket${labelText({ ...labels, le: number(bound) })} ${counts[i]}\n`
          text += `${name}_bucket${labelText({ ...labels, le: "+Inf" })} ${count}\n`
          text += `${name}_sum${labelText(labels)} ${number(sum)}\n${name}_count${labelText(labels)} ${count}\n`
        }
        return text
      })
      return {
        observe(labels, value) {
          const key = keyOf(labels)
          let entry = series.get(key)
          if (!entry) series.set(key, (entry = { labels, counts: buckets.map(() => 0), sum: 0, count: 0 }))
          for (let i = 0; i < buckets.length; i++) if (value <= (buckets[i] as number)) entry.counts[i] = (entry.counts[i] ?? 0) + 1
          entry.sum += value
          entry.count++
        },
      }
    },
    render: () => sections.map((section) => section()).join(""),
  }
}

/**
 * The process metrics Prometheus' client libraries name the same way, plus event-loop lag,
 * measured as how late a 500 ms timer fires.
 */
export function registerProcessMetrics(registry: Registry): void {
  const started = Date.now() / 1000 - process.uptime()
  let lag = 0
  let expected = performance.now() + 500
  const timer = setInterval(() => {
    const now = performance.now()
    lag = Math.max(0, now - expected) / 1000
    expected = now + 500
  }, 500)
  timer.unref()
  registry.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", () => process.memoryUsage.rss())
  registry.sampledCounter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", () => {
    const { user, system } = process.cpuUsage()
    return (user + system) / 1e6
  })
  registry.gauge("process_open_fds", "Number of open file descriptors.", () => {
    try {
      // node:fs is loaded on the first scrape, not at start-up (where it cost a few ms).
      return process.getBuiltinModule("node:fs").readdirSync("/proc/self/fd").length
    } catch {
      return Number.NaN
    }
  })
  registry.gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", () => started)
  registry.gauge("sidechat_event_loop_lag_seconds", "How late the last 500 ms event-loop timer fired, in seconds.", () => lag)
}

// Logging: one JSON object per line (or a short human line on a terminal), levelled, and never a
// prompt, a completion or a key unless LOG_CONTENT is on.

export type Level = "debug" | "info" | "warn" | "error"
export type Fields = Record<string, unknown>

const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export type Logger = {
  debug(msg: string, fields?: Fields): void
  info(msg: string, fields?: Fields): void
  warn(msg: string, fields?: Fields): void
  error(msg: string, fields?: Fields): void
}

export type LogOptions = {
  level: Level
  /**
   * `auto`: pretty on a terminal, else JSON, decided at the first line written (opening the
   * terminal's stream loads Node's stream modules, which would otherwise delay start-up by ms).
   */
  format: "json" | "pretty" | "auto"
  /** Where lines go: stdout for debug and info, stderr for warn and error, unless replaced. */
  write?: (line: string, level: Level) => void
  now?: () => Date
}

export function createLogger(options: LogOptions): Logger {
  const { level, now = () => new Date() } = options
  let format = options.format
  const write = options.write ?? ((line: string, at: Level) => (RANK[at] >= RANK.warn ? process.stderr : process.stdout).write(`${line}\n`))
  const emit =
    (at: Level) =>
    (msg: string, fields: Fields = {}) => {
      if (RANK[at] < RANK[level]) return
      if (format === "auto") format = process.stdout.isTTY ? "pretty" : "json"
      write(format === "json" ? jsonLine(now(), at, msg, fields) : prettyLine(now(), at, msg, fields), at)
    }
  return { debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error") }
}

function jsonLine(time: Date, level: Level, msg: string, fields: Fields): string {
  return JSON.stringify({ time: time.toISOString(), level, msg, ...fields }, (_key, value) =>
    value instanceof Error ? errorFields(value) : value,
  )
}

/** `12:00:00.123 INFO msg key=value …`; a request line reads like an access log. */
function prettyLine(time: Date, level: Level, msg: string, fields: Fields): string {
  const clock = time.toISOString().slice(11, 23)
  const rest = Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(
      ([key, value]) =>
        `${key}=${value instanceof Error ? (value.stack ?? value.message) : typeof value === "string" ? value : JSON.stringify(value)}`,
    )
    .join(" ")
  return `${clock} ${level.toUpperCase().padEnd(5)} ${msg}${rest ? ` ${rest}` : ""}`
}

function errorFields(error: Error): Fields {
  return { name: error.name, message: error.message, stack: error.stack }
}

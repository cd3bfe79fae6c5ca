// sidechat's own refusals: a status and a JSON body with a stable code, a message, and the path at fault.
import type { ErrorCode } from "../parts"
import type { HttpError } from "../request"

export function httpError(error: HttpError & { code: ErrorCode }): Response {
  const { status, code, message, path, headers } = error
  return Response.json({ error: { code, message, ...(path && { path }) } }, { status, headers })
}

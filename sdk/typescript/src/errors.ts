// Errors of the SDK. An answer of keyplane that is not a success is a KeyplaneError (or one of its
// subclasses, by status) carrying the API's `code`, the `requestId` keyplane logged it under and
// the HTTP `status`. Failing to reach keyplane at all is a KeyplaneConnectionError (status 0).

/** One invalid field of an invalid_request answer. */
export interface FieldError {
  field: string;
  message: string;
}

export interface KeyplaneErrorInit {
  status: number;
  code: string;
  message: string;
  requestId?: string;
  details?: FieldError[];
  retryAfterMs?: number;
  operationId?: string;
  cause?: unknown;
}

export class KeyplaneError extends Error {
  /** HTTP status; 0 when keyplane could not be reached. */
  readonly status: number;
  /** The API's error.code ("not_found", "key_limit_reached", …), or "" when the answer was not keyplane's envelope. */
  readonly code: string;
  /** The request's X-Request-Id: keyplane's logs hold it. */
  readonly requestId: string;
  /** Each invalid field of an invalid_request answer. */
  readonly details: FieldError[];
  /** The answer's Retry-After in milliseconds (429, 503), else 0. */
  readonly retryAfterMs: number;
  /** The operation that failed, such as "createApiKey". */
  readonly operationId: string;

  constructor(init: KeyplaneErrorInit) {
    super(formatMessage(init), init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.status = init.status;
    this.code = init.code;
    this.requestId = init.requestId ?? "";
    this.details = init.details ?? [];
    this.retryAfterMs = init.retryAfterMs ?? 0;
    this.operationId = init.operationId ?? "";
  }

  /** The message of the invalid field named name, if any. */
  field(name: string): string | undefined {
    return this.details.find((d) => d.field === name)?.message;
  }
}

function formatMessage(i: KeyplaneErrorInit): string {
  let s = "keyplane: " + (i.status ? String(i.status) : "unreachable");
  if (i.code) s += " " + i.code;
  if (i.message) s += ": " + i.message;
  if (i.details?.length) s += " (" + i.details.map((d) => `${d.field}: ${d.message}`).join("; ") + ")";
  if (i.requestId) s += ` [request ${i.requestId}]`;
  return s;
}

/** 400 invalid_request: `details` names each bad field. */
export class BadRequestError extends KeyplaneError {}
/** 401 unauthorized: no, unknown, disabled, expired or revoked credential. */
export class AuthenticationError extends KeyplaneError {}
/** 403 forbidden, live_mode_disabled. */
export class PermissionDeniedError extends KeyplaneError {}
/** 404 not_found. */
export class NotFoundError extends KeyplaneError {}
/** 409: key_limit_reached, key_revoked, identity_in_use, idempotency_key_in_use, … */
export class ConflictError extends KeyplaneError {}
/** 422: idempotency_key_reused and other unprocessable requests. */
export class UnprocessableError extends KeyplaneError {}
/** 429 rate_limited: `retryAfterMs` says how long to wait. */
export class RateLimitError extends KeyplaneError {}
/** 5xx other than 503. */
export class InternalServerError extends KeyplaneError {}
/** 503 unavailable: `retryAfterMs` says how long to wait. */
export class UnavailableError extends KeyplaneError {}
/** keyplane could not be reached: refused connection, DNS failure, reset, or a timeout. */
export class KeyplaneConnectionError extends KeyplaneError {}
/** The call took longer than its timeout. */
export class KeyplaneTimeoutError extends KeyplaneConnectionError {}

/** errorFor picks the class of an HTTP failure by its status. */
export function errorFor(init: KeyplaneErrorInit): KeyplaneError {
  const s = init.status;
  const C =
    s === 400 ? BadRequestError
    : s === 401 ? AuthenticationError
    : s === 403 ? PermissionDeniedError
    : s === 404 ? NotFoundError
    : s === 409 ? ConflictError
    : s === 422 ? UnprocessableError
    : s === 429 ? RateLimitError
    : s === 503 ? UnavailableError
    : s >= 500 ? InternalServerError
    : KeyplaneError;
  return new C(init);
}

// The HTTP core shared by the management client and the verifier: one fetch per attempt, with a
// timeout, retries with backoff on 429 and 503 that honour Retry-After, and one Idempotency-Key per
// logical POST or PATCH, the same on each of its retries. Uses the platform's fetch only.
import { errorFor, KeyplaneConnectionError, KeyplaneError, KeyplaneTimeoutError } from "./errors.js";
import { operations, type OperationId } from "./operations.js";

export const VERSION = "0.1.0";

export interface TransportOptions {
  /** keyplane's base URL, such as "http://127.0.0.1:8080". */
  baseUrl: string;
  /** The credential sent as Authorization: Bearer: a root key or a workspace secret key. */
  apiKey: string;
  /** X-Workspace-Id for root keys acting on one workspace. */
  workspaceId?: string;
  /** Per-attempt timeout in milliseconds (default 30000 for the client, 5000 for the verifier). */
  timeoutMs?: number;
  /** Retries after the first attempt on 429 and 503 (and, for GET, on failures to connect). Default 2. */
  maxRetries?: number;
  /** Longest wait before a retry; a Retry-After longer than this is not waited for. Default 30000. */
  maxRetryDelayMs?: number;
  /** A fetch of your own (tests, tracing, a proxy agent). Default: globalThis.fetch. */
  fetch?: typeof fetch;
  /** User-Agent (where the platform lets it be set); default "keyplane-ts/<version>". */
  userAgent?: string;
  /** Told of every attempt's outcome: for logging and metrics. */
  onResponse?: (info: ResponseInfo) => void;
}

export interface ResponseInfo {
  operationId: string;
  method: string;
  path: string;
  /** HTTP status, or 0 when keyplane could not be reached. */
  status: number;
  attempt: number;
  requestId: string;
}

/** Options every call takes. */
export interface CallOptions {
  /** X-Workspace-Id for this call, instead of the client's. */
  workspaceId?: string;
  /** The Idempotency-Key of a POST or PATCH; default: a new random one per call, reused by its retries. */
  idempotencyKey?: string;
  /** Your own X-Request-Id (at most 64 of A–Z a–z 0–9 . _ -). */
  requestId?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
  maxRetries?: number;
}

/** A page of a list: its items and the cursor of the next page (null on the last). */
export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

const RETRY_STATUSES = new Set([429, 503]);

export class Transport {
  readonly base: string;
  readonly opts: TransportOptions;
  readonly #fetch: typeof fetch;

  constructor(opts: TransportOptions) {
    if (!opts.baseUrl) throw new TypeError("keyplane: baseUrl is required");
    this.opts = opts;
    this.base = opts.baseUrl.replace(/\/+$/, "");
    const f = opts.fetch ?? globalThis.fetch;
    if (typeof f !== "function") throw new TypeError("keyplane: no fetch: pass one in the options");
    this.#fetch = f;
  }

  /**
   * call makes operation op with args: path parameters by name, `query`, `body`, and CallOptions.
   * It answers the envelope's data ({data, nextCursor} for lists), the raw JSON of answers without
   * an envelope, or the text of a non-JSON answer (the usage CSV).
   */
  async call(op: OperationId, args: Record<string, any> = {}): Promise<unknown> {
    const [method, template] = operations[op];
    const path = template.replace(/\{(\w+)\}/g, (_, name: string) => {
      const v = args[name];
      if (typeof v !== "string" || v === "") throw new TypeError(`keyplane: ${op} needs ${name}`);
      return encodeURIComponent(v);
    });
    let url = this.base + path;
    const qs = encodeQuery(args.query);
    if (qs) url += "?" + qs;

    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.opts.apiKey) headers.Authorization = "Bearer " + this.opts.apiKey;
    const ws = args.workspaceId ?? this.opts.workspaceId;
    if (ws) headers["X-Workspace-Id"] = ws;
    if (args.requestId) headers["X-Request-Id"] = args.requestId;
    headers["User-Agent"] = this.opts.userAgent ?? `keyplane-ts/${VERSION}`;
    let body: string | undefined;
    if (method === "POST" || method === "PATCH") {
      body = JSON.stringify(args.body ?? {});
      headers["Content-Type"] = "application/json";
      // Verification is not a management call: it has no idempotency (a replayed answer would be stale).
      if (!path.startsWith("/v1/verify")) headers["Idempotency-Key"] = args.idempotencyKey ?? newIdempotencyKey();
    }

    const maxRetries = args.maxRetries ?? this.opts.maxRetries ?? 2;
    const timeoutMs = args.timeoutMs ?? this.opts.timeoutMs ?? 30_000;
    const maxDelay = this.opts.maxRetryDelayMs ?? 30_000;
    const signal: AbortSignal | undefined = args.signal;

    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      let res: Response;
      let text: string;
      const timer = timeoutSignal(timeoutMs, signal);
      try {
        res = await this.#fetch(url, { method, headers, body, signal: timer.signal, redirect: "manual" });
        text = await res.text();
      } catch (err) {
        timer.clear();
        if (signal?.aborted) throw signal.reason ?? err;
        const timedOut = timer.timedOut();
        this.#report(op, method, path, 0, attempt, "");
        const e = new (timedOut ? KeyplaneTimeoutError : KeyplaneConnectionError)({
          status: 0,
          code: timedOut ? "timeout" : "connection_error",
          message: timedOut ? `${method} ${path}: no answer within ${timeoutMs} ms` : `${method} ${path}: ${errMessage(err)}`,
          operationId: op,
          cause: err,
        });
        // A call that may have been done already is retried only when the server can tell: a GET,
        // or a management POST/PATCH whose Idempotency-Key makes the retry answer the first answer.
        if ((method === "GET" || headers["Idempotency-Key"] !== undefined) && attempt < maxRetries) {
          await sleep(backoff(attempt), signal);
          continue;
        }
        throw e;
      }
      timer.clear();
      const requestId = res.headers.get("X-Request-Id") ?? "";
      this.#report(op, method, path, res.status, attempt, requestId);
      if (res.status >= 200 && res.status < 300) return decodeSuccess(op, res, text);
      const err = decodeError(op, res, text, requestId);
      // 409 idempotency_key_in_use: the first attempt of this very call is still running on the
      // server (it timed out here); its answer will be replayed once it is done.
      const retryable = RETRY_STATUSES.has(res.status) || (res.status === 409 && err.code === "idempotency_key_in_use");
      if (retryable && attempt < maxRetries) {
        const wait = err.retryAfterMs > 0 ? err.retryAfterMs : backoff(attempt);
        if (wait <= maxDelay) {
          await sleep(wait, signal);
          continue;
        }
      }
      throw err;
    }
  }

  #report(operationId: string, method: string, path: string, status: number, attempt: number, requestId: string) {
    this.opts.onResponse?.({ operationId, method, path, status, attempt, requestId });
  }
}

function decodeSuccess(op: string, res: Response, text: string): unknown {
  const ct = res.headers.get("Content-Type") ?? "";
  if (!ct.includes("json")) return text;
  let v: any;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new KeyplaneError({ status: res.status, code: "", message: "the answer is not JSON", operationId: op, cause: err });
  }
  if (v && typeof v === "object" && !Array.isArray(v) && v.success === true && "data" in v) {
    return "nextCursor" in v ? { data: v.data ?? [], nextCursor: v.nextCursor ?? null } : v.data;
  }
  return v;
}

function decodeError(op: string, res: Response, text: string, requestId: string): KeyplaneError {
  const retryAfterMs = parseRetryAfter(res.headers.get("Retry-After"));
  let e: any;
  try {
    e = JSON.parse(text)?.error;
  } catch {
    e = undefined;
  }
  if (e && typeof e === "object" && typeof e.code === "string") {
    return errorFor({
      status: res.status, code: e.code, message: String(e.message ?? ""), requestId: e.requestId || requestId,
      details: Array.isArray(e.details) ? e.details : [], retryAfterMs, operationId: op,
    });
  }
  // Not keyplane's envelope (a proxy's error page): the first 200 characters say what it was.
  const snippet = text.trim().slice(0, 200);
  return errorFor({ status: res.status, code: "", message: (res.statusText || "HTTP error") + (snippet ? ": " + snippet : ""), requestId, retryAfterMs, operationId: op });
}

/** parseRetryAfter reads Retry-After (seconds or an HTTP date) into milliseconds; 0 when absent. */
export function parseRetryAfter(v: string | null): number {
  if (!v) return 0;
  const s = v.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const t = Date.parse(s);
  return Number.isNaN(t) ? 0 : Math.max(0, t - Date.now());
}

/** Exponential backoff with full jitter: 0–250 ms, 0–500 ms, … capped at 8 s. */
function backoff(attempt: number): number {
  return Math.random() * Math.min(8000, 250 * 2 ** attempt);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** A signal that aborts after ms or when parent aborts; clear() stops the timer. */
function timeoutSignal(ms: number, parent?: AbortSignal) {
  const c = new AbortController();
  let timedOut = false;
  const t = setTimeout(() => {
    timedOut = true;
    c.abort(new Error(`timeout after ${ms} ms`));
  }, ms);
  const onAbort = () => c.abort(parent!.reason);
  parent?.addEventListener("abort", onAbort, { once: true });
  return {
    signal: c.signal,
    timedOut: () => timedOut,
    clear() {
      clearTimeout(t);
      parent?.removeEventListener("abort", onAbort);
    },
  };
}

function encodeQuery(q: Record<string, unknown> | undefined): string {
  if (!q) return "";
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined || v === null || v === "") continue;
    for (const x of Array.isArray(v) ? v : [v]) p.append(k, x instanceof Date ? x.toISOString() : String(x));
  }
  return p.toString();
}

function newIdempotencyKey(): string {
  return globalThis.crypto.randomUUID();
}

function errMessage(err: unknown): string {
  const e = err as any;
  const cause = e?.cause?.code ?? e?.cause?.message;
  return (e?.message ?? String(err)) + (cause ? ` (${cause})` : "");
}

// Middleware for Express, Fastify and Hono over one decision (decide), which answers as keyplane's
// forward auth does (internal/api/forward.go) and as the Go SDK's middleware does:
//
//   401 unauthorized  no key, NOT_FOUND, DISABLED, EXPIRED, REVOKED (WWW-Authenticate: Bearer)
//   403 forbidden     FORBIDDEN (address, origin, environment), INSUFFICIENT_PERMISSIONS
//   429 rate_limited  RATE_LIMITED with Retry-After; USAGE_EXCEEDED without (credits come back
//                     with a refill or a top-up, not with time)
//   503 unavailable   keyplane could not be asked, unless failOpen; a wrong root key (keyplane's
//                     401/403) is a misconfiguration and always answers 503
import { KeyplaneError } from "./errors.js";
import { MAX_KEY_LENGTH, type Verifier, type VerifyResult } from "./verifier.js";

export interface MiddlewareOptions<Req = any> {
  /** Permissions every request's key must hold (all of them). */
  permissions?: string[];
  /** The environment the key must belong to. */
  environment?: "live" | "test";
  /** Named rate limits to apply, each with its cost. */
  rateLimits?: { name: string; cost: number }[];
  /** What each request spends of the key's credits (default: the server's, 1). */
  credits?: { cost: number };
  /** Tags stored with the request log entry. */
  tags?: string[];
  /** The key of a request; "" or undefined: none (401). Default: Authorization: Bearer, else X-API-Key. */
  key?: (req: Req) => string | undefined;
  /**
   * The client's address, sent as ip (checked against the key's ipAllowlist). Default: the
   * framework's address of the peer (Express req.ip, Fastify request.ip; Hono has none: give one,
   * e.g. with getConnInfo). Behind your own proxy, return the address it vouches for.
   */
  clientIp?: (req: Req) => string | undefined;
  /** The web origin sent as origin (publishable keys' allowedOrigins). Default: the Origin header. */
  origin?: (req: Req) => string | undefined;
  /**
   * Let requests through, without a verification on them, when keyplane cannot be reached or
   * answers 5xx. Default false: such requests are answered 503 (fail closed).
   */
  failOpen?: boolean;
  /** Told of every error met while verifying, for logging; the key is never part of it. */
  onError?: (err: unknown, req: Req) => void;
}

/** What the middleware decided for a request. */
export type Decision =
  | { ok: true; result?: VerifyResult }
  | { ok: false; status: 401 | 403 | 429 | 503; code: string; message: string; headers: Record<string, string>; result?: VerifyResult };

/** keyFromHeaders is the default key: the credential of Authorization: Bearer, else X-API-Key. */
export function keyFromHeaders(get: (name: string) => string | null | undefined): string {
  const a = get("authorization");
  if (a) {
    const i = a.indexOf(" ");
    if (i > 0 && a.slice(0, i).toLowerCase() === "bearer") return a.slice(i + 1).trim();
  }
  return (get("x-api-key") ?? "").trim();
}

/** normalizeIp turns ::ffff:1.2.3.4 into 1.2.3.4 and drops what is no address (zones included). */
export function normalizeIp(ip: string | undefined | null): string | undefined {
  if (!ip) return undefined;
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (m) return m[1];
  if (ip.includes("%")) return undefined;
  return /^[0-9a-fA-F:.]+$/.test(ip) ? ip : undefined;
}

const refusal = (status: 401 | 403 | 429 | 503, code: string, message: string, result?: VerifyResult, headers: Record<string, string> = {}): Decision => {
  if (status === 401) headers["WWW-Authenticate"] = 'Bearer realm="api"';
  return { ok: false, status, code, message, headers, result };
};

/** decide verifies a request's key and says what to answer. It never throws. */
export async function decide(
  verifier: Verifier,
  req: { key?: string; ip?: string; origin?: string },
  o: MiddlewareOptions,
  onError?: (err: unknown) => void,
): Promise<Decision> {
  const key = req.key ?? "";
  if (!key) return refusal(401, "unauthorized", "an API key is required: send it as Authorization: Bearer <key> or X-API-Key");
  if (key.length > MAX_KEY_LENGTH) return refusal(401, "unauthorized", "the API key is not valid");
  let res: VerifyResult;
  try {
    res = await verifier.verify(key, {
      permissions: o.permissions, environment: o.environment, ip: req.ip || undefined, origin: req.origin || undefined,
      rateLimits: o.rateLimits, credits: o.credits, tags: o.tags,
    });
  } catch (err) {
    onError?.(err);
    const misconfigured = err instanceof KeyplaneError && err.status >= 400 && err.status < 500;
    if (o.failOpen && !misconfigured) return { ok: true };
    const headers: Record<string, string> = {};
    if (err instanceof KeyplaneError && err.retryAfterMs > 0) headers["Retry-After"] = String(Math.max(1, Math.ceil(err.retryAfterMs / 1000)));
    return refusal(503, "unavailable", "the API key could not be verified right now; try again shortly", undefined, headers);
  }
  switch (res.code) {
    case "VALID":
      return { ok: true, result: res };
    case "FORBIDDEN":
      return refusal(403, "forbidden", "the API key may not be used from here (address, origin or environment)", res);
    case "INSUFFICIENT_PERMISSIONS":
      return refusal(403, "forbidden", "the API key lacks a permission this call needs", res);
    case "RATE_LIMITED": {
      const secs = retryAfterSeconds(res);
      return refusal(429, "rate_limited", `the API key's rate limit is used up; retry after ${secs} s`, res, { "Retry-After": String(secs) });
    }
    case "USAGE_EXCEEDED":
      return refusal(429, "rate_limited", "the API key's credits are used up", res);
    case "DISABLED":
      return refusal(401, "unauthorized", "the API key is disabled", res);
    case "EXPIRED":
      return refusal(401, "unauthorized", "the API key has expired", res);
    case "REVOKED":
      return refusal(401, "unauthorized", "the API key has been revoked", res);
    default: // NOT_FOUND, and any code this SDK does not know
      return refusal(401, "unauthorized", "the API key is not valid", res);
  }
}

/** Seconds until the limit that refused is back: the exceeded named limit's, else the key's; at least 1. */
function retryAfterSeconds(res: VerifyResult): number {
  const r = res as { ratelimits?: { exceeded: boolean; resetAt: string }[]; ratelimit?: { resetAt: string } };
  const at = r.ratelimits?.find((l) => l.exceeded)?.resetAt ?? r.ratelimit?.resetAt;
  const ms = at ? Date.parse(at) - Date.now() : NaN;
  return Number.isFinite(ms) ? Math.max(1, Math.ceil(ms / 1000)) : 1;
}

/** The JSON body of a refusal: {"error": {"code", "message"}}. */
export function refusalBody(d: Extract<Decision, { ok: false }>): string {
  return JSON.stringify({ error: { code: d.code, message: d.message } }) + "\n";
}

const refusalHeaders = (d: Extract<Decision, { ok: false }>) => ({
  ...d.headers,
  "Content-Type": "application/json",
  "Cache-Control": "no-store",
  "X-Content-Type-Options": "nosniff",
});

type NodeHeaders = Record<string, string | string[] | undefined>;
const header = (h: NodeHeaders) => (name: string) => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

/**
 * expressMiddleware protects Express routes: a request with a VALID key reaches the next handler
 * with its verification in req.keyplane.
 *
 *     app.get("/orders", expressMiddleware(verifier, { permissions: ["orders:read"] }), handler)
 */
export function expressMiddleware(verifier: Verifier, o: MiddlewareOptions = {}) {
  return (req: any, res: any, next: (err?: unknown) => void): void => {
    const h = header(req.headers ?? {});
    const input = {
      key: o.key ? o.key(req) : keyFromHeaders(h),
      ip: o.clientIp ? o.clientIp(req) : normalizeIp(req.ip ?? req.socket?.remoteAddress),
      origin: o.origin ? o.origin(req) : h("origin"),
    };
    decide(verifier, input, o, o.onError && ((e) => o.onError!(e, req))).then(
      (d) => {
        if (d.ok) {
          req.keyplane = d.result;
          return next();
        }
        res.status(d.status).set(refusalHeaders(d)).send(refusalBody(d));
      },
      next,
    );
  };
}

/**
 * fastifyHook is an onRequest (or preHandler) hook for Fastify: a request with a VALID key goes on
 * with its verification in request.keyplane (declare it once: app.decorateRequest("keyplane", null)).
 *
 *     app.addHook("onRequest", fastifyHook(verifier, { permissions: ["orders:read"] }))
 */
export function fastifyHook(verifier: Verifier, o: MiddlewareOptions = {}) {
  return async (request: any, reply: any): Promise<unknown> => {
    const h = header(request.headers ?? {});
    const d = await decide(
      verifier,
      {
        key: o.key ? o.key(request) : keyFromHeaders(h),
        ip: o.clientIp ? o.clientIp(request) : normalizeIp(request.ip),
        origin: o.origin ? o.origin(request) : h("origin"),
      },
      o,
      o.onError && ((e) => o.onError!(e, request)),
    );
    if (d.ok) {
      request.keyplane = d.result;
      return;
    }
    // An async hook that answers returns the reply, so that Fastify stops there.
    return reply.code(d.status).headers(refusalHeaders(d)).send(refusalBody(d));
  };
}

/**
 * honoMiddleware protects Hono routes: a request with a VALID key goes on with its verification in
 * c.get("keyplane"). Hono has no portable client address: pass clientIp (getConnInfo on Node, the
 * cf-connecting-ip header on Workers) when keys have an ipAllowlist.
 *
 *     app.use("/orders/*", honoMiddleware(verifier, { permissions: ["orders:read"] }))
 */
export function honoMiddleware(verifier: Verifier, o: MiddlewareOptions = {}) {
  return async (c: any, next: () => Promise<void>): Promise<Response | void> => {
    const h = (name: string) => c.req.header(name) as string | undefined;
    const d = await decide(
      verifier,
      { key: o.key ? o.key(c) : keyFromHeaders(h), ip: o.clientIp ? normalizeIp(o.clientIp(c)) : undefined, origin: o.origin ? o.origin(c) : h("origin") },
      o,
      o.onError && ((e) => o.onError!(e, c)),
    );
    if (d.ok) {
      c.set("keyplane", d.result);
      await next();
      return;
    }
    return new Response(refusalBody(d), { status: d.status, headers: refusalHeaders(d) });
  };
}

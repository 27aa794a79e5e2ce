// The verifier: POST /v1/verify with a root key that has the verify scope, and an optional cache of
// VALID (and NOT_FOUND) answers, with the Go SDK's rules (client/middleware.go): an answer that
// counted against a rate limit or spent credits is never cached, nor a refusal, and an entry never
// outlives the key's expiresAt nor the server's own cache TTL.
import type { components } from "./generated/openapi.js";
import { Transport, type TransportOptions } from "./transport.js";

export type VerifyAnswer = components["schemas"]["VerifyAnswer"];
export type VerifyCode = components["schemas"]["VerifyCode"];
export type VerifyRequest = components["schemas"]["VerifyRequest"];
export type VerifySignatureRequest = components["schemas"]["VerifySignatureRequest"];
export type VerifyJWTRequest = components["schemas"]["VerifyJWTRequest"];

/** What verify() sends besides the key: every field of the verify request but the key. */
export type VerifyOptions = Omit<VerifyRequest, "key"> & { signal?: AbortSignal };

/** A verification's answer; `cached` is true when it came from the local cache. */
export type VerifyResult = VerifyAnswer & { cached?: boolean };

/** keyplane's default --cache-ttl: how long the server itself trusts a cached key without a read. */
export const SERVER_CACHE_TTL_MS = 60_000;
export const DEFAULT_CACHE_TTL_MS = 5_000;
export const DEFAULT_CACHE_SIZE = 10_000;
/** Key values are about 60 characters; a longer string is no key and is refused without a call. */
export const MAX_KEY_LENGTH = 512;

export interface VerifierCacheOptions {
  /** How long an answer is reused (default 5000 ms); at most serverTtlMs. */
  ttlMs?: number;
  /** The server's --cache-ttl (default 60000 ms): the cache never trusts an answer longer. */
  serverTtlMs?: number;
  /** Most answers kept (default 10000). */
  maxEntries?: number;
}

export interface VerifierOptions extends Omit<TransportOptions, "apiKey" | "workspaceId"> {
  /** A root key with the verify scope. */
  rootKey: string;
  /**
   * The local cache: off unless given (true: the defaults). A key revoked or disabled in keyplane
   * is still answered VALID from the cache for at most ttlMs.
   */
  cache?: boolean | VerifierCacheOptions;
}

interface Entry {
  res: VerifyResult;
  until: number;
}

export class Verifier {
  readonly transport: Transport;
  readonly #cache?: Map<string, Entry>;
  readonly #ttl: number = 0;
  readonly #max: number = 0;

  constructor(opts: VerifierOptions) {
    // Verification is the hot path of a middleware: a short timeout, and no retries unless asked
    // (a refusal or an outage answers the client at once; fail closed).
    this.transport = new Transport({ timeoutMs: 5_000, maxRetries: 0, ...opts, apiKey: opts.rootKey });
    if (opts.cache) {
      const c: VerifierCacheOptions = opts.cache === true ? {} : opts.cache;
      this.#ttl = Math.min(c.ttlMs ?? DEFAULT_CACHE_TTL_MS, c.serverTtlMs ?? SERVER_CACHE_TTL_MS);
      this.#max = Math.max(1, c.maxEntries ?? DEFAULT_CACHE_SIZE);
      if (this.#ttl > 0) this.#cache = new Map();
    }
  }

  /**
   * verify checks an API key. A well-formed request always answers a result whose `code` is the
   * outcome (`valid` is true exactly for VALID). It throws a KeyplaneError only when there is no
   * outcome: keyplane unreachable (KeyplaneConnectionError), a wrong root key (401/403), an invalid
   * request (400), or 503 when keyplane's store cannot be read.
   */
  async verify(key: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
    const { signal, ...req } = opts;
    if (typeof key !== "string" || key === "" || key.length > MAX_KEY_LENGTH) {
      return { valid: false, code: "NOT_FOUND" } as VerifyResult;
    }
    // A request that spends credits or names limits must reach keyplane every time.
    const cacheable = this.#cache !== undefined && req.credits == null && !req.rateLimits?.length;
    let ck = "";
    if (cacheable) {
      ck = await cacheKey(key, req);
      const e = this.#cache!.get(ck);
      if (e && Date.now() < e.until) return e.res;
      if (e) this.#cache!.delete(ck);
    }
    const res = (await this.transport.call("verifyApiKey", { body: { key, ...req }, signal })) as VerifyResult;
    if (cacheable && isCacheable(res)) this.#put(ck, res);
    return res;
  }

  /** verifySignature checks a request signed with a recoverable key's value (see signRequest). */
  async verifySignature(req: VerifySignatureRequest, signal?: AbortSignal): Promise<VerifyResult> {
    return (await this.transport.call("verifySignature", { body: req, signal })) as VerifyResult;
  }

  /** verifyJwt checks a compact HS256 JWT signed with a recoverable key's value (kid = the key's id). */
  async verifyJwt(req: VerifyJWTRequest, signal?: AbortSignal): Promise<VerifyResult> {
    return (await this.transport.call("verifyJwt", { body: req, signal })) as VerifyResult;
  }

  /** clearCache forgets every cached answer (after revoking a key, say). */
  clearCache(): void {
    this.#cache?.clear();
  }

  #put(k: string, res: VerifyResult) {
    const now = Date.now();
    let until = now + this.#ttl;
    const exp = (res as { expiresAt?: string | null }).expiresAt;
    if (exp) until = Math.min(until, Date.parse(exp)); // never serve a key past its expiry
    if (!(until > now)) return;
    const c = this.#cache!;
    if (!c.has(k) && c.size >= this.#max) {
      for (const [ek, e] of c) if (e.until <= now) c.delete(ek);
      // Still full: drop the oldest tenth (Map keeps insertion order).
      const room = this.#max - Math.max(1, Math.floor(this.#max / 10));
      for (const ek of c.keys()) {
        if (c.size <= room) break;
        c.delete(ek);
      }
    }
    c.set(k, { res: Object.freeze({ ...res, cached: true }), until });
  }
}

/**
 * isCacheable: VALID answers of keys that have no rate limit, no credits and no named limits (each
 * request of those must be counted by keyplane), and NOT_FOUND answers (a flood of one bad key
 * stays local). Refusals such as REVOKED or DISABLED are never cached.
 */
export function isCacheable(res: VerifyResult): boolean {
  const r = res as Record<string, unknown>;
  if (res.code === "NOT_FOUND") return true;
  if (res.code !== "VALID") return false;
  return r.ratelimit == null && r.credits == null && !(Array.isArray(r.ratelimits) && r.ratelimits.length);
}

/**
 * cacheKey is the hex SHA-256 of the key and everything that decides the outcome: the key value
 * itself is never kept, and an answer is reused only for the same address, origin, environment
 * and permissions.
 */
async function cacheKey(key: string, req: Omit<VerifyRequest, "key">): Promise<string> {
  const perms = [...(req.permissions ?? [])].sort().join("\n");
  const s = [key, req.ip ?? "", req.origin ?? "", req.environment ?? "", perms].join("\u0000");
  const d = await globalThis.crypto.subtle.digest("SHA-256", new TextEncoder().encode(s));
  return hex(new Uint8Array(d));
}

export function hex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/**
 * signRequest is the client's half of request signatures: hex(HMAC-SHA256(keyValue,
 * timestamp + "\n" + method + "\n" + path + "\n" + bodySha256)) and bodySha256, the hex SHA-256 of
 * the body. method in capitals; path with its query, exactly as sent; timestamp in unix seconds.
 */
export async function signRequest(keyValue: string, timestamp: number, method: string, path: string, body: string | Uint8Array = "") {
  const enc = new TextEncoder();
  const bytes = typeof body === "string" ? enc.encode(body) : body;
  const bodySha256 = hex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource)));
  const k = await crypto.subtle.importKey("raw", enc.encode(keyValue), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = await crypto.subtle.sign("HMAC", k, enc.encode(`${timestamp}\n${method}\n${path}\n${bodySha256}`));
  return { signature: hex(new Uint8Array(mac)), bodySha256 };
}

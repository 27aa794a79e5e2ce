// Webhook verification: keyplane signs each delivery per the Standard Webhooks specification:
// webhook-id, webhook-timestamp (unix seconds) and webhook-signature ("v1,<base64>", several
// space-separated during a secret rotation), the HMAC-SHA256 of "id.timestamp.body" under the
// base64-decoded part of the whsec_ secret. Web Crypto only; crypto.subtle.verify compares in
// constant time.

export class WebhookVerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebhookVerificationError";
  }
}

/** Headers as a Headers object, a Node request's headers, or a plain record. */
export type HeadersLike = Headers | Record<string, string | string[] | undefined>;

export interface VerifyWebhookOptions {
  /** Most seconds between webhook-timestamp and now, either way (default 300). */
  toleranceSeconds?: number;
  /** The current time (for tests). */
  now?: Date;
}

/** The payload keyplane sends. */
export interface WebhookEvent<T = Record<string, unknown>> {
  id: string;
  type: string;
  timestamp: string;
  workspaceId: string;
  data: T;
}

const enc = new TextEncoder();

function getHeader(h: HeadersLike, name: string): string | undefined {
  if (typeof (h as Headers).get === "function") return (h as Headers).get(name) ?? undefined;
  const rec = h as Record<string, string | string[] | undefined>;
  let v = rec[name];
  if (v === undefined) {
    const k = Object.keys(rec).find((x) => x.toLowerCase() === name);
    v = k === undefined ? undefined : rec[k];
  }
  return Array.isArray(v) ? v[0] : v;
}

function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const b = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) b[i] = bin.charCodeAt(i);
  return b;
}

function toBase64(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s);
}

async function hmacKey(secret: string, usage: "sign" | "verify"): Promise<CryptoKey> {
  const raw = secret.startsWith("whsec_") ? secret.slice(6) : secret;
  let bytes: Uint8Array;
  try {
    bytes = fromBase64(raw);
  } catch {
    throw new TypeError("keyplane: the webhook secret is not whsec_ followed by base64");
  }
  if (bytes.length === 0) throw new TypeError("keyplane: the webhook secret is empty");
  return crypto.subtle.importKey("raw", bytes as BufferSource, { name: "HMAC", hash: "SHA-256" }, false, [usage]);
}

const bodyBytes = (body: string | Uint8Array | ArrayBuffer) =>
  typeof body === "string" ? enc.encode(body) : body instanceof Uint8Array ? body : new Uint8Array(body);

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * verifyWebhook checks a delivery's signature and age, and answers its parsed payload. body must
 * be the raw body exactly as received (not re-serialized JSON). It throws WebhookVerificationError
 * when a header is missing, the timestamp is outside the tolerance, or no v1 signature matches.
 */
export async function verifyWebhook<T = Record<string, unknown>>(
  secret: string,
  headers: HeadersLike,
  body: string | Uint8Array | ArrayBuffer,
  opts: VerifyWebhookOptions = {},
): Promise<WebhookEvent<T>> {
  const id = getHeader(headers, "webhook-id");
  const ts = getHeader(headers, "webhook-timestamp");
  const sigs = getHeader(headers, "webhook-signature");
  if (!id || !ts || !sigs) throw new WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature");
  if (!/^\d{1,12}$/.test(ts)) throw new WebhookVerificationError("webhook-timestamp is not unix seconds");
  const now = Math.floor((opts.now ?? new Date()).getTime() / 1000);
  const tolerance = opts.toleranceSeconds ?? 300;
  const t = Number(ts);
  if (t < now - tolerance) throw new WebhookVerificationError("the webhook's timestamp is too old");
  if (t > now + tolerance) throw new WebhookVerificationError("the webhook's timestamp is in the future");

  const key = await hmacKey(secret, "verify");
  const raw = bodyBytes(body);
  const signed = concat(enc.encode(`${id}.${ts}.`), raw);
  let ok = false;
  for (const part of sigs.split(" ")) {
    const [version, sig] = part.split(",", 2);
    if (version !== "v1" || !sig) continue;
    let mac: Uint8Array;
    try {
      mac = fromBase64(sig);
    } catch {
      continue;
    }
    // Every candidate is checked, so that the time taken says nothing about which one matched.
    if (mac.length === 32 && (await crypto.subtle.verify("HMAC", key, mac as BufferSource, signed as BufferSource))) ok = true;
  }
  if (!ok) throw new WebhookVerificationError("no webhook-signature matches");
  try {
    return JSON.parse(new TextDecoder().decode(raw)) as WebhookEvent<T>;
  } catch {
    throw new WebhookVerificationError("the webhook's body is not JSON");
  }
}

/** signWebhook makes the headers keyplane would send for body: for tests of your receiver. */
export async function signWebhook(secret: string, id: string, timestamp: Date | number, body: string | Uint8Array) {
  const ts = String(typeof timestamp === "number" ? Math.floor(timestamp) : Math.floor(timestamp.getTime() / 1000));
  const key = await hmacKey(secret, "sign");
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, concat(enc.encode(`${id}.${ts}.`), bodyBytes(body)) as BufferSource));
  return { "webhook-id": id, "webhook-timestamp": ts, "webhook-signature": "v1," + toBase64(mac) };
}

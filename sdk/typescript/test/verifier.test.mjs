// The verifier's cache against a real keyplane: VALID answers of plain keys are reused; answers of
// keys with a rate limit or credits, and refusals, never are; the TTL is at most the server's and
// a revocation is seen once the TTL is over.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Keyplane, Verifier, isCacheable } from "../dist/esm/index.js";
import { startKeyplane, waitFor } from "./harness.mjs";

let kp, admin;
before(async () => {
  kp = await startKeyplane();
  admin = new Keyplane({ baseUrl: kp.url, apiKey: kp.rootKey, workspaceId: kp.workspaceId });
});
after(() => kp?.stop());

const mk = (body = {}) => admin.createApiKey({ body: { name: "v", keyType: "secret", environment: "test", permissions: ["orders:read"], ...body } });

test("VALID answers are cached per key, address, origin, environment and permissions", async () => {
  const v = new Verifier({ baseUrl: kp.url, rootKey: kp.rootKey, cache: { ttlMs: 60_000 } });
  const k = await mk();
  const a = await v.verify(k.keyValue, { permissions: ["orders:read"] });
  assert.equal(a.code, "VALID");
  assert.equal(a.cached, undefined);
  const b = await v.verify(k.keyValue, { permissions: ["orders:read"] });
  assert.equal(b.cached, true);
  assert.ok(Object.isFrozen(b));
  // Other permissions are another question: asked, and refused.
  const c = await v.verify(k.keyValue, { permissions: ["orders:write"] });
  assert.equal(c.code, "INSUFFICIENT_PERMISSIONS");
  assert.equal((await v.verify(k.keyValue, { permissions: ["orders:write"] })).cached, undefined, "refusals are never cached");
  assert.equal((await v.verify(k.keyValue, { permissions: ["orders:read"], ip: "10.0.0.1" })).cached, undefined);
  // A request that spends credits or names a limit always reaches keyplane.
  assert.equal((await v.verify(k.keyValue, { permissions: ["orders:read"], credits: { cost: 0 } })).cached, undefined);
});

test("keys with a rate limit or credits are never cached", async () => {
  const v = new Verifier({ baseUrl: kp.url, rootKey: kp.rootKey, cache: true });
  const rl = await mk({ rateLimit: { limit: 100, windowMs: 60_000 } });
  const cr = await mk({ credits: { remaining: 100 } });
  const named = await mk({ rateLimits: [{ name: "tokens", limit: 100, windowMs: 60_000, autoApply: true }] });
  for (const k of [rl, cr, named]) {
    await v.verify(k.keyValue);
    const again = await v.verify(k.keyValue);
    assert.equal(again.code, "VALID");
    assert.equal(again.cached, undefined, k.name);
  }
  const left = await v.verify(cr.keyValue);
  assert.equal(left.credits.remaining, 97, "every verification spent its credit");
});

test("isCacheable mirrors the Go SDK's rule", () => {
  assert.equal(isCacheable({ valid: false, code: "NOT_FOUND" }), true);
  assert.equal(isCacheable({ valid: true, code: "VALID" }), true);
  assert.equal(isCacheable({ valid: true, code: "VALID", ratelimit: { limit: 1 } }), false);
  assert.equal(isCacheable({ valid: true, code: "VALID", credits: { remaining: 3 } }), false);
  assert.equal(isCacheable({ valid: true, code: "VALID", ratelimits: [{ name: "x" }] }), false);
  for (const code of ["REVOKED", "DISABLED", "EXPIRED", "FORBIDDEN", "RATE_LIMITED", "USAGE_EXCEEDED"]) assert.equal(isCacheable({ valid: false, code }), false);
});

test("the TTL is at most the server's, and a revocation is seen once it is over", async () => {
  // ttlMs above serverTtlMs is clamped to it: here 300 ms.
  const v = new Verifier({ baseUrl: kp.url, rootKey: kp.rootKey, cache: { ttlMs: 3_600_000, serverTtlMs: 300 } });
  const k = await mk();
  assert.equal((await v.verify(k.keyValue)).code, "VALID");
  await admin.deleteApiKey({ id: k.id });
  const r = await waitFor(async () => {
    const x = await v.verify(k.keyValue);
    return x.code === "REVOKED" ? x : null;
  }, 10_000, "the revocation");
  assert.equal(r.cached, undefined);
});

test("an entry never outlives the key's expiresAt", async () => {
  const v = new Verifier({ baseUrl: kp.url, rootKey: kp.rootKey, cache: { ttlMs: 60_000 } });
  const k = await mk({ expiresAt: new Date(Date.now() + 2500).toISOString() });
  assert.equal((await v.verify(k.keyValue)).code, "VALID");
  const r = await waitFor(async () => {
    const x = await v.verify(k.keyValue);
    return x.code === "EXPIRED" ? x : null;
  }, 15_000, "the expiry");
  assert.equal(r.code, "EXPIRED");
});

test("a flood of distinct unknown keys stays within maxEntries", async () => {
  const v = new Verifier({ baseUrl: kp.url, rootKey: kp.rootKey, cache: { maxEntries: 10 } });
  for (let i = 0; i < 30; i++) assert.equal((await v.verify("kp_sk_test_" + String(i).padStart(38, "0"))).code, "NOT_FOUND");
  const again = await v.verify("kp_sk_test_" + String(29).padStart(38, "0"));
  assert.equal(again.cached, true);
});

test("no key, or an oversized one, is NOT_FOUND without a call", async () => {
  const v = new Verifier({ baseUrl: "http://127.0.0.1:9", rootKey: "x" });
  assert.equal((await v.verify("")).code, "NOT_FOUND");
  assert.equal((await v.verify("k".repeat(513))).code, "NOT_FOUND");
});

// The middleware in real Express, Fastify and Hono apps against a real keyplane, through every
// verify code and the keyplane-unreachable case.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import express from "express";
import Fastify from "fastify";
import { Hono } from "hono";
import { Keyplane, Verifier, expressMiddleware, fastifyHook, honoMiddleware } from "../dist/esm/index.js";
import { freePort, startKeyplane } from "./harness.mjs";

let kp, admin, verifier, deadUrl;
let handled = 0; // requests that reached a handler: a refusal must not
before(async () => {
  kp = await startKeyplane();
  admin = new Keyplane({ baseUrl: kp.url, apiKey: kp.rootKey, workspaceId: kp.workspaceId });
  verifier = new Verifier({ baseUrl: kp.url, rootKey: kp.rootKey, cache: true });
  deadUrl = `http://127.0.0.1:${await freePort()}`;
});
after(() => kp?.stop());

/** keys makes one key per verify code, with the code it must answer on GET /orders (orders:read). */
async function keys() {
  const mk = (body) => admin.createApiKey({ body: { name: "mw", keyType: "secret", environment: "test", permissions: ["orders:read"], ...body } });
  const valid = await mk({});
  const disabled = await mk({});
  await admin.updateApiKey({ id: disabled.id, body: { enabled: false } });
  const revoked = await mk({});
  await admin.deleteApiKey({ id: revoked.id });
  const expired = await mk({});
  await admin.rotateApiKey({ id: expired.id, body: { expireOldAfterSeconds: 0 } });
  return {
    VALID: valid.keyValue,
    NOT_FOUND: "kp_sk_test_" + "A".repeat(38),
    DISABLED: disabled.keyValue,
    EXPIRED: expired.keyValue, // the value before a rotation without grace
    REVOKED: revoked.keyValue,
    FORBIDDEN: (await mk({ ipAllowlist: ["203.0.113.0/24"] })).keyValue,
    INSUFFICIENT_PERMISSIONS: (await mk({ permissions: ["orders:write"] })).keyValue,
    RATE_LIMITED: (await mk({ rateLimit: { limit: 1, windowMs: 600_000 } })).keyValue,
    USAGE_EXCEEDED: (await mk({ credits: { remaining: 0 } })).keyValue,
  };
}

const expected = {
  VALID: [200, null], NOT_FOUND: [401, "unauthorized"], DISABLED: [401, "unauthorized"], EXPIRED: [401, "unauthorized"],
  REVOKED: [401, "unauthorized"], FORBIDDEN: [403, "forbidden"], INSUFFICIENT_PERMISSIONS: [403, "forbidden"],
  RATE_LIMITED: [429, "rate_limited"], USAGE_EXCEEDED: [429, "rate_limited"],
};

// Each framework: build(verifier, opts) answers a client: (headers) => {status, headers, body}.
const frameworks = {
  async express(v, opts) {
    const app = express();
    app.get("/orders", expressMiddleware(v, { permissions: ["orders:read"], ...opts }), (req, res) => (handled++, res.json({ caller: req.keyplane ?? null })));
    const srv = await new Promise((r) => { const s = app.listen(0, "127.0.0.1", () => r(s)); });
    const base = `http://127.0.0.1:${srv.address().port}`;
    return { send: (h) => fetch(base + "/orders", { headers: h }), close: () => new Promise((r) => srv.close(r)) };
  },
  async fastify(v, opts) {
    const app = Fastify();
    app.decorateRequest("keyplane", null);
    app.register(async (s) => {
      s.addHook("onRequest", fastifyHook(v, { permissions: ["orders:read"], ...opts }));
      s.get("/orders", async (req) => (handled++, { caller: req.keyplane ?? null }));
    });
    const addr = await app.listen({ port: 0, host: "127.0.0.1" });
    return { send: (h) => fetch(addr + "/orders", { headers: h }), close: () => app.close() };
  },
  async hono(v, opts) {
    const app = new Hono();
    // Hono has no portable peer address: the app says where requests come from (here, loopback).
    app.use("/orders", honoMiddleware(v, { permissions: ["orders:read"], clientIp: () => "127.0.0.1", ...opts }));
    app.get("/orders", (c) => (handled++, c.json({ caller: c.get("keyplane") ?? null })));
    return { send: (h) => app.request("/orders", { headers: h }), close: async () => {} };
  },
};

for (const [name, build] of Object.entries(frameworks)) {
  describe(name, () => {
    let app, k;
    before(async () => {
      k = await keys();
      app = await build(verifier, {});
    });

    test("each key answers its code (checked without the middleware)", async () => {
      const plain = new Verifier({ baseUrl: kp.url, rootKey: kp.rootKey });
      for (const code of Object.keys(expected)) {
        if (code === "RATE_LIMITED") continue; // its one request is the test's
        const r = await plain.verify(k[code], { permissions: ["orders:read"], ip: "127.0.0.1" });
        assert.equal(r.code, code);
      }
    });
    after(() => app?.close());

    for (const code of Object.keys(expected)) {
      test(code, async () => {
        const [status, errCode] = expected[code];
        if (code === "RATE_LIMITED") {
          // The limit allows one request: the first passes, the second is refused.
          const first = await app.send({ Authorization: `Bearer ${k.RATE_LIMITED}` });
          assert.equal(first.status, 200);
          assert.equal((await first.json()).caller.ratelimit.limit, 1);
        }
        const before = handled;
        const res = await app.send(code === "VALID" ? { "X-API-Key": k[code] } : { Authorization: `Bearer ${k[code]}` });
        const body = await res.json();
        assert.equal(res.status, status, JSON.stringify(body));
        assert.equal(handled - before, status === 200 ? 1 : 0, "the handler runs only for VALID");
        if (status === 200) {
          assert.equal(body.caller.code, "VALID");
          assert.equal(body.caller.workspaceId, kp.workspaceId);
          assert.deepEqual(body.caller.permissions, ["orders:read"]);
          return;
        }
        assert.equal(body.error.code, errCode);
        assert.equal(res.headers.get("cache-control"), "no-store");
        assert.ok(!JSON.stringify(body).includes(k[code]), "the key is not echoed");
        if (status === 401) assert.match(res.headers.get("www-authenticate"), /^Bearer/);
        if (code === "RATE_LIMITED") assert.ok(Number(res.headers.get("retry-after")) >= 1, "Retry-After on RATE_LIMITED");
        if (code === "USAGE_EXCEEDED") assert.equal(res.headers.get("retry-after"), null);
      });
    }

    test("no key, a non-Bearer Authorization, an oversized key: 401 without asking keyplane", async () => {
      for (const h of [{}, { Authorization: "Basic dTpw" }, { Authorization: "Bearer " + "x".repeat(600) }]) {
        const res = await app.send(h);
        assert.equal(res.status, 401);
        assert.equal((await res.json()).error.code, "unauthorized");
      }
    });

    test("a VALID answer is cached; a rate-limited key's never is", async () => {
      const a = await (await app.send({ Authorization: `Bearer ${k.VALID}` })).json();
      assert.equal(a.caller.cached, true, "the second VALID answer of a key without limits comes from the cache");
      const rl = await app.send({ Authorization: `Bearer ${k.RATE_LIMITED}` });
      assert.equal(rl.status, 429, "a rate-limited key is asked every time");
    });

    test("keyplane unreachable: 503 (fail closed); failOpen lets the request through without a caller", async () => {
      const dead = new Verifier({ baseUrl: deadUrl, rootKey: kp.rootKey, timeoutMs: 2000 });
      const errors = [];
      const closed = await build(dead, { onError: (e) => errors.push(e) });
      const open = await build(dead, { failOpen: true });
      try {
        const r1 = await closed.send({ Authorization: `Bearer ${k.VALID}` });
        assert.equal(r1.status, 503);
        assert.equal((await r1.json()).error.code, "unavailable");
        assert.equal(errors.length, 1);
        assert.equal(errors[0].code, "connection_error");
        const r2 = await open.send({ Authorization: `Bearer ${k.VALID}` });
        assert.equal(r2.status, 200);
        assert.equal((await r2.json()).caller, null);
      } finally {
        await closed.close();
        await open.close();
      }
    });

    test("a wrong root key answers 503 even with failOpen (a misconfiguration, not an outage)", async () => {
      const wrong = new Verifier({ baseUrl: kp.url, rootKey: "kp_root_wrong" });
      const a = await build(wrong, { failOpen: true });
      try {
        const r = await a.send({ Authorization: `Bearer ${k.VALID}` });
        assert.equal(r.status, 503);
      } finally {
        await a.close();
      }
    });
  });
}

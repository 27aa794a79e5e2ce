// The management client against a real keyplane: every operation of the table runs at least once
// (the last test fails otherwise), errors are typed, lists paginate, and POST/PATCH retries keep
// their Idempotency-Key.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";
import {
  Keyplane, Verifier, operations, NotFoundError, BadRequestError, AuthenticationError, KeyplaneError,
  KeyplaneConnectionError, KeyplaneTimeoutError, UnavailableError, RateLimitError, signRequest,
} from "../dist/esm/index.js";
import { freePort, startKeyplane, waitFor } from "./harness.mjs";

let kp, client, ok;
const called = new Map(); // operationId → statuses seen

before(async () => {
  kp = await startKeyplane({ args: ["--webhook-retry-schedule", "0s,1h"] });
  client = new Keyplane({
    baseUrl: kp.url, apiKey: kp.rootKey, workspaceId: kp.workspaceId,
    onResponse: (i) => called.set(i.operationId, [...(called.get(i.operationId) ?? []), i.status]),
  });
});
after(async () => {
  await ok?.close?.();
  await kp?.stop();
});

describe("every operation", () => {
  test("service, catalogs, workspaces and members", async () => {
    assert.ok(await client.healthz());
    assert.ok(await client.readyz());
    const st = await client.getStatus();
    assert.equal(typeof st, "object");
    const doc = await client.getOpenAPIDocument();
    assert.equal(doc.openapi, "3.1.0");
    const perms = await client.listPermissions();
    assert.ok(perms.some((p) => p.name === "orders:read"));
    const types = await client.listEventTypes();
    assert.ok(types.some((t) => t.name === "api_key.created"));

    const ws = await client.createWorkspace({ body: { name: "Second", slug: "second-" + Date.now().toString(36) } });
    assert.match(ws.id, /^ws_/);
    assert.equal((await client.getWorkspace({ id: ws.id })).name, "Second");
    assert.equal((await client.updateWorkspace({ id: ws.id, body: { maxKeys: 7 } })).maxKeys, 7);
    const branded = await client.updateWorkspace({ id: ws.id, body: { branding: { name: "Second", accentColor: "#0A66C2" } } });
    assert.equal(branded.branding?.accentColor, "#0a66c2");
    const all = [];
    for await (const w of client.paginate("listWorkspaces", { query: { limit: 1 } })) all.push(w.id);
    assert.ok(all.includes(ws.id) && all.includes(kp.workspaceId), "paginate follows the cursors");
    const m = await client.addMember({ id: ws.id, body: { email: "dev@example.com", role: "developer" } });
    assert.equal(m.status, "invited");
    const members = await client.listMembers({ id: ws.id });
    assert.ok(members.data.some((x) => x.userId === m.userId));
    assert.equal((await client.removeMember({ id: ws.id, userId: m.userId })).userId, m.userId);
  });

  test("API keys, identities, verification, logs and usage", async () => {
    const k = await client.createApiKey({
      body: { name: "Checkout", keyType: "secret", environment: "test", permissions: ["orders:read"], recoverable: true },
    });
    assert.match(k.keyValue, /^kp_sk_test_/);
    assert.equal((await client.getApiKey({ id: k.id })).name, "Checkout");
    const upd = await client.updateApiKey({ id: k.id, body: { description: "the checkout service", meta: { team: "pay" } } });
    assert.equal(upd.description, "the checkout service");
    const page = await client.listApiKeys({ query: { environment: "test", limit: 1 } });
    assert.equal(page.data.length, 1);
    assert.ok("nextCursor" in page);
    const rev = await client.revealApiKey({ id: k.id });
    assert.equal(rev.keyValue, k.keyValue);

    const pk = await client.createApiKey({ body: { name: "Web", keyType: "publishable", environment: "test" } });
    const gp = await client.getPublishableApiKey({ query: { environment: "test" } });
    assert.equal(gp.id, pk.id);

    const link = await client.createPortalSession({
      body: { user: { id: "cust_42", email: "ada@shop.example" }, role: "admin", returnUrl: "https://shop.example/settings" },
    });
    assert.match(link.url, /\/portal\/kp_portal_[A-Za-z0-9_-]{43}$/);
    assert.ok(Date.parse(link.expiresAt) > Date.now());

    const idn = await client.createIdentity({ body: { externalId: "customer_42", meta: { plan: "pro" } } });
    assert.equal((await client.getIdentity({ id: idn.id })).externalId, "customer_42");
    await client.updateIdentity({ id: idn.id, body: { meta: { plan: "team" } } });
    assert.ok((await client.listIdentities()).data.some((i) => i.id === idn.id));
    const ic = await client.changeIdentityCredits({ id: idn.id, body: { op: "set", value: 10 } });
    assert.equal(ic.remaining, 10);
    assert.equal((await client.deleteIdentity({ id: idn.id })).id, idn.id);

    const ck = await client.createApiKey({ body: { name: "Metered", keyType: "secret", environment: "test", credits: { remaining: 5 } } });
    const cc = await client.changeApiKeyCredits({ id: ck.id, body: { op: "increment", value: 3 } });
    assert.equal(cc.remaining, 8);

    // Verification through the client's table (the Verifier uses the same rows).
    const v = await client.verifyApiKey({ body: { key: k.keyValue, permissions: ["orders:read"], tags: ["sdk-test"] } });
    assert.equal(v.code, "VALID");
    assert.equal(v.keyId, k.id);
    const ts = Math.floor(Date.now() / 1000);
    const { signature, bodySha256 } = await signRequest(k.keyValue, ts, "POST", "/orders?x=1", '{"item":"tea"}');
    const sig = await client.verifySignature({ body: { keyId: k.id, timestamp: ts, signature, method: "POST", path: "/orders?x=1", bodySha256 } });
    assert.equal(sig.code, "VALID", JSON.stringify(sig));
    const replay = await client.verifySignature({ body: { keyId: k.id, timestamp: ts, signature, method: "POST", path: "/orders?x=1", bodySha256 } });
    assert.equal(replay.code, "INVALID_SIGNATURE");
    const b64u = (x) => Buffer.from(typeof x === "string" ? x : JSON.stringify(x)).toString("base64url");
    const unsigned = b64u({ alg: "HS256", typ: "JWT", kid: k.id }) + "." + b64u({ sub: "u1", iat: ts, exp: ts + 600 });
    const jwt = unsigned + "." + createHmac("sha256", k.keyValue).update(unsigned).digest("base64url");
    const j = await client.verifyJwt({ body: { token: jwt } });
    assert.equal(j.code, "VALID", JSON.stringify(j));
    assert.equal(j.claims.sub, "u1");

    const usage = await client.getApiKeyUsage({ id: k.id, query: { granularity: "day" } });
    assert.ok(usage);
    const rows = await client.exportUsage({ query: { groupBy: "key", granularity: "day" } });
    assert.ok(Array.isArray(rows));
    const csv = await client.exportUsage({ query: { format: "csv" } });
    assert.equal(typeof csv, "string");
    assert.match(csv.split("\n")[0], /keyId/);
    const logs = await waitFor(async () => {
      const p = await client.listRequestLogs({ query: { keyId: k.id, tag: "sdk-test" } });
      return p.data.length ? p : null;
    }, 15_000, "the request log entry");
    assert.equal(logs.data[0].keyId, k.id);
    const audit = await client.listAuditLogs({ query: { targetId: k.id } });
    assert.ok(audit.data.length >= 2);
    assert.equal((await client.verifyAuditLogs()).valid, true);

    const rot = await client.rotateApiKey({ id: k.id, body: { expireOldAfterSeconds: 0 } });
    assert.notEqual(rot.keyValue, k.keyValue);
    const imp = await client.importApiKeys({ body: { keys: [{ value: "legacy_" + Date.now().toString(36) + "_abcdefghijkl", name: "Legacy" }] } });
    assert.equal(imp.imported, 1);
    assert.match(imp.results[0].id, /^apk_/);
    const leaks = await client.reportLeaks({ body: { keys: ["kp_sk_test_notakeyatall"], source: "sdk-test" } });
    assert.equal(leaks[0].found, false);
    const del = await client.deleteApiKey({ id: pk.id });
    assert.equal(del.id, pk.id);
  });

  test("webhooks, deliveries and events", async () => {
    const srv = createServer((req, res) => {
      req.resume();
      req.on("end", () => res.writeHead(500).end("no"));
    });
    await new Promise((r) => srv.listen(0, "127.0.0.1", r));
    ok = { close: () => new Promise((r) => srv.close(r)) };
    const url = `http://127.0.0.1:${srv.address().port}/hook`;
    const w = await client.createWebhook({ body: { url, eventTypes: ["order.created"] } });
    assert.match(w.secret, /^whsec_/);
    assert.equal((await client.getWebhook({ id: w.id })).url, url);
    assert.ok((await client.listWebhooks()).data.some((x) => x.id === w.id));
    assert.equal((await client.updateWebhook({ id: w.id, body: { description: "orders" } })).description, "orders");
    const rs = await client.rotateWebhookSecret({ id: w.id });
    assert.notEqual(rs.secret, w.secret);
    assert.equal((await client.revealWebhookSecret({ id: w.id })).secret, rs.secret);
    const t = await client.testWebhook({ id: w.id });
    assert.equal(t.statusCode, 500);
    const sent = await client.sendEvent({ body: { type: "order.created", data: { orderId: 1 } } });
    assert.equal(sent.endpoints, 1);
    const failed = await waitFor(async () => {
      const d = await client.listDeliveries({ id: w.id, query: { status: "failed" } });
      return d.data.find((x) => x.eventId === sent.id);
    }, 20_000, "the failed delivery");
    const listed = await client.listEvents({ query: { type: "order.created" } });
    assert.ok(listed.data.some((e) => e.id === sent.id));
    assert.equal((await client.getEvent({ id: sent.id })).id, sent.id);
    // A second endpoint, made after the event: a resend to it queues one attempt.
    const w2 = await client.createWebhook({ body: { url, eventTypes: ["order.created"] } });
    assert.equal((await client.resendEvent({ id: sent.id, body: { endpointId: w2.id } })).queued, 1);
    // The first endpoint's attempt has its next retry scheduled: a recovery leaves it to it.
    const since = new Date(Date.now() - 3600_000).toISOString();
    assert.equal((await client.recoverWebhook({ id: w.id, body: { since } })).queued, 0);
    const again = await client.retryDelivery({ id: w.id, deliveryId: failed.id });
    assert.equal(again.eventId, sent.id);
    assert.equal((await client.deleteWebhook({ id: w2.id })).id, w2.id);
    assert.equal((await client.deleteWebhook({ id: w.id })).id, w.id);
  });

  test("every operation of the table was called, and answered 2xx", () => {
    const missing = Object.keys(operations).filter((op) => !(called.get(op) ?? []).some((s) => s >= 200 && s < 300));
    assert.deepEqual(missing, [], "operations never called successfully through the SDK");
  });
});

describe("errors", () => {
  test("typed classes carry code, requestId and status", async () => {
    const e = await client.getApiKey({ id: "apk_01JDQ4ZV3W6J8Q2T5N7K9M1B3C" }).catch((x) => x);
    assert.ok(e instanceof NotFoundError && e instanceof KeyplaneError);
    assert.equal(e.status, 404);
    assert.equal(e.code, "not_found");
    assert.ok(e.requestId.length > 0);
    assert.equal(e.operationId, "getApiKey");

    const bad = await client.createApiKey({ body: { name: "", keyType: "secret" } }).catch((x) => x);
    assert.ok(bad instanceof BadRequestError);
    assert.equal(bad.code, "invalid_request");
    assert.ok(bad.field("name"), "details name the field");

    const unauth = await new Keyplane({ baseUrl: kp.url, apiKey: "kp_root_nope" }).listWorkspaces().catch((x) => x);
    assert.ok(unauth instanceof AuthenticationError);
    assert.equal(unauth.status, 401);
    assert.ok(!unauth.message.includes("kp_root_nope"), "the credential is not in the message");
  });

  test("a refused connection is a KeyplaneConnectionError", async () => {
    const port = await freePort();
    const c = new Keyplane({ baseUrl: `http://127.0.0.1:${port}`, apiKey: "x", maxRetries: 1 });
    const e = await c.getStatus().catch((x) => x);
    assert.ok(e instanceof KeyplaneConnectionError);
    assert.equal(e.status, 0);
    assert.equal(e.code, "connection_error");
  });

  test("a path parameter is required and escaped", async () => {
    await assert.rejects(client.getApiKey({}), TypeError);
    await assert.rejects(client.getApiKey({ id: "../workspaces" }), NotFoundError);
  });
});

// A scripted server: answers[i] is the i-th answer; every request is recorded.
async function scripted(answers) {
  const seen = [];
  const srv = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body, at: Date.now() });
      const a = answers[Math.min(seen.length - 1, answers.length - 1)];
      if (a === "hang") return; // never answers
      if (a === "drop") return req.socket.destroy(); // the answer is lost
      res.writeHead(a.status, { "Content-Type": "application/json", "X-Request-Id": "req_" + seen.length, ...(a.headers ?? {}) });
      res.end(JSON.stringify(a.body));
    });
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${srv.address().port}`, seen, close: () => new Promise((r) => srv.close(r)) };
}

const unavailable = (retryAfter) => ({
  status: 503, headers: retryAfter === undefined ? {} : { "Retry-After": String(retryAfter) },
  body: { success: false, error: { code: "unavailable", message: "busy", requestId: "req_x" } },
});
const limited = (retryAfter) => ({
  status: 429, headers: { "Retry-After": String(retryAfter) },
  body: { success: false, error: { code: "rate_limited", message: "slow down", requestId: "req_y" } },
});
const created = { status: 201, body: { success: true, data: { id: "apk_1", name: "n" } } };

describe("retries", () => {
  test("a POST's retries on 503 and 429 reuse one Idempotency-Key; the next call gets a new one", async () => {
    const s = await scripted([unavailable(0), limited(1), created, created]);
    try {
      const c = new Keyplane({ baseUrl: s.url, apiKey: "k", workspaceId: "ws_1" });
      const t0 = Date.now();
      const k = await c.createApiKey({ body: { name: "n", keyType: "secret" } });
      assert.equal(k.id, "apk_1");
      assert.equal(s.seen.length, 3);
      const keys = s.seen.map((r) => r.headers["idempotency-key"]);
      assert.ok(keys[0] && keys.every((x) => x === keys[0]), "one key across the retries: " + keys);
      assert.ok(s.seen[2].at - s.seen[1].at >= 900, "Retry-After: 1 was honoured");
      assert.ok(Date.now() - t0 < 10_000);
      assert.equal(s.seen[0].headers["x-workspace-id"], "ws_1");
      assert.deepEqual(JSON.parse(s.seen[0].body), { name: "n", keyType: "secret" });
      await c.createApiKey({ body: { name: "n", keyType: "secret" } });
      assert.notEqual(s.seen[3].headers["idempotency-key"], keys[0]);
      await c.updateApiKey({ id: "apk_1", body: { name: "m" }, idempotencyKey: "mine-1" });
      assert.equal(s.seen[4].headers["idempotency-key"], "mine-1");
    } finally {
      await s.close();
    }
  });

  test("409 idempotency_key_in_use is retried with the same key; other conflicts are not", async () => {
    const inUse = { status: 409, body: { success: false, error: { code: "idempotency_key_in_use", message: "running", requestId: "r" } } };
    const limit = { status: 409, body: { success: false, error: { code: "key_limit_reached", message: "full", requestId: "r" } } };
    const s = await scripted([inUse, created, limit]);
    try {
      const c = new Keyplane({ baseUrl: s.url, apiKey: "k" });
      assert.equal((await c.createApiKey({ body: { name: "n", keyType: "secret" } })).id, "apk_1");
      assert.equal(s.seen.length, 2);
      assert.equal(s.seen[0].headers["idempotency-key"], s.seen[1].headers["idempotency-key"]);
      const e = await c.createApiKey({ body: { name: "n", keyType: "secret" } }).catch((x) => x);
      assert.equal(e.code, "key_limit_reached");
      assert.equal(s.seen.length, 3, "not retried");
    } finally {
      await s.close();
    }
  });

  test("a POST whose answer was lost is retried with its Idempotency-Key; a verification is not", async () => {
    const s = await scripted(["drop", created]);
    try {
      const c = new Keyplane({ baseUrl: s.url, apiKey: "k" });
      assert.equal((await c.createApiKey({ body: { name: "n", keyType: "secret" } })).id, "apk_1");
      assert.equal(s.seen.length, 2);
      assert.ok(s.seen[0].headers["idempotency-key"]);
      assert.equal(s.seen[1].headers["idempotency-key"], s.seen[0].headers["idempotency-key"]);
    } finally {
      await s.close();
    }
    const v = await scripted(["drop", created]);
    try {
      const c = new Keyplane({ baseUrl: v.url, apiKey: "k" });
      const e = await c.verifyApiKey({ body: { key: "kp_sk_test_x" } }).catch((x) => x);
      assert.ok(e instanceof KeyplaneConnectionError);
      assert.equal(v.seen.length, 1, "a verification has no Idempotency-Key and is not sent again");
    } finally {
      await v.close();
    }
  });

  test("GETs carry no Idempotency-Key; giving up answers the last error", async () => {
    const s = await scripted([unavailable(0)]);
    try {
      const c = new Keyplane({ baseUrl: s.url, apiKey: "k", maxRetries: 2 });
      const e = await c.listApiKeys().catch((x) => x);
      assert.ok(e instanceof UnavailableError);
      assert.equal(e.requestId, "req_x");
      assert.equal(s.seen.length, 3, "first attempt and two retries");
      assert.equal(s.seen[0].headers["idempotency-key"], undefined);
    } finally {
      await s.close();
    }
  });

  test("a Retry-After longer than maxRetryDelayMs is not waited for", async () => {
    const s = await scripted([limited(3600)]);
    try {
      const c = new Keyplane({ baseUrl: s.url, apiKey: "k", maxRetryDelayMs: 2000 });
      const e = await c.getStatus().catch((x) => x);
      assert.ok(e instanceof RateLimitError);
      assert.equal(e.retryAfterMs, 3_600_000);
      assert.equal(s.seen.length, 1);
    } finally {
      await s.close();
    }
  });

  test("timeouts: a call without an answer fails after timeoutMs", async () => {
    const s = await scripted(["hang"]);
    try {
      const c = new Keyplane({ baseUrl: s.url, apiKey: "k", timeoutMs: 300, maxRetries: 0 });
      const t0 = Date.now();
      const e = await c.getStatus().catch((x) => x);
      assert.ok(e instanceof KeyplaneTimeoutError, String(e));
      assert.ok(Date.now() - t0 < 5000);
      const ac = new AbortController();
      const p = c.getStatus({ signal: ac.signal, timeoutMs: 10_000 });
      ac.abort(new Error("cancelled by caller"));
      await assert.rejects(p, /cancelled by caller/);
    } finally {
      await s.close();
    }
  });

  test("a non-keyplane error page is a KeyplaneError with an empty code", async () => {
    const s = await scripted([{ status: 502, body: "<html>bad gateway</html>" }]);
    try {
      const e = await new Keyplane({ baseUrl: s.url, apiKey: "k" }).getStatus().catch((x) => x);
      assert.ok(e instanceof KeyplaneError);
      assert.equal(e.status, 502);
      assert.equal(e.code, "");
    } finally {
      await s.close();
    }
  });
});

test("the verifier shares the table", async () => {
  const v = new Verifier({ baseUrl: kp.url, rootKey: kp.rootKey });
  const r = await v.verify("kp_sk_test_00000000000000000000000000000000000000");
  assert.deepEqual({ valid: r.valid, code: r.code }, { valid: false, code: "NOT_FOUND" });
});

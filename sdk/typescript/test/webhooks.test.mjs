// A webhook received from a real keyplane (a node http server on 127.0.0.1 as the endpoint) and
// verified by the SDK's helper, cross-checked against the standardwebhooks package's own verifier.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import { Webhook } from "standardwebhooks";
import { Keyplane, verifyWebhook, signWebhook, WebhookVerificationError } from "../dist/esm/index.js";
import { startKeyplane, waitFor } from "./harness.mjs";

let kp, client, srv, received = [];
before(async () => {
  kp = await startKeyplane();
  client = new Keyplane({ baseUrl: kp.url, apiKey: kp.rootKey, workspaceId: kp.workspaceId });
  srv = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(204).end();
    });
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
});
after(async () => {
  await new Promise((r) => srv.close(r));
  await kp?.stop();
});

test("a test send and a key event from keyplane verify, with the SDK and with standardwebhooks", async () => {
  const w = await client.createWebhook({ body: { url: `http://127.0.0.1:${srv.address().port}/hooks`, eventTypes: ["*"] } });
  const t = await client.testWebhook({ id: w.id });
  assert.equal(t.statusCode, 204);
  const key = await client.createApiKey({ body: { name: "evented", keyType: "secret", environment: "test" } });
  const got = await waitFor(() => received.find((r) => r.body.includes(key.id)), 20_000, "the api_key.created delivery");
  for (const d of [received[0], got]) {
    const ev = await verifyWebhook(w.secret, d.headers, d.body);
    assert.equal(ev.workspaceId, kp.workspaceId);
    assert.equal(ev.id, d.headers["webhook-id"]);
    // The reference implementation agrees on keyplane's signature.
    const ref = new Webhook(w.secret).verify(d.body.toString("utf8"), d.headers);
    assert.deepEqual(ref, ev);
    // The body as a string, and Headers objects, work too.
    await verifyWebhook(w.secret, new Headers(Object.entries(d.headers).map(([k, v]) => [k, String(v)])), d.body.toString("utf8"));
  }
  assert.equal((await verifyWebhook(w.secret, got.headers, got.body)).type, "api_key.created");

  // Refusals: a changed body, another secret, a stale timestamp, missing headers.
  const d = got;
  const tampered = Buffer.from(d.body.toString().replace(key.id, "apk_01JDQ4ZV3W6J8Q2T5N7K9M1B3C"));
  await assert.rejects(verifyWebhook(w.secret, d.headers, tampered), WebhookVerificationError);
  const other = (await client.rotateWebhookSecret({ id: w.id })).secret;
  await assert.rejects(verifyWebhook(other, d.headers, d.body), /no webhook-signature matches/);
  const later = new Date((Number(d.headers["webhook-timestamp"]) + 301) * 1000);
  await assert.rejects(verifyWebhook(w.secret, d.headers, d.body, { now: later }), /too old/);
  await verifyWebhook(w.secret, d.headers, d.body, { now: new Date((Number(d.headers["webhook-timestamp"]) + 299) * 1000) });
  const { "webhook-signature": _s, ...noSig } = d.headers;
  await assert.rejects(verifyWebhook(w.secret, noSig, d.body), /missing/);
});

test("signWebhook and verifyWebhook agree with standardwebhooks both ways", async () => {
  const secret = "whsec_" + Buffer.from("0123456789abcdef0123456789abcdef").toString("base64");
  const body = JSON.stringify({ id: "evt_1", type: "order.created", timestamp: new Date().toISOString(), workspaceId: "ws_1", data: { n: 1 } });
  const now = new Date();
  const ours = await signWebhook(secret, "msg_1", now, body);
  assert.equal(ours["webhook-signature"], new Webhook(secret).sign("msg_1", now, body));
  assert.deepEqual(new Webhook(secret).verify(body, ours), JSON.parse(body));
  // Several signatures (a rotation): any v1 that matches is enough; other versions are ignored.
  const many = { ...ours, "webhook-signature": "v1a,xxxx v1,AAAA " + ours["webhook-signature"] };
  assert.equal((await verifyWebhook(secret, many, body)).id, "evt_1");
  await assert.rejects(verifyWebhook(secret, { ...ours, "webhook-signature": "v2," + ours["webhook-signature"].slice(3) }, body), WebhookVerificationError);
  await assert.rejects(verifyWebhook(secret, { ...ours, "webhook-timestamp": "12e3" }, body), /unix seconds/);
  await assert.rejects(verifyWebhook("whsec_***", ours, body), TypeError);
});

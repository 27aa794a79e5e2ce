// examples/express-orders against a real keyplane, as the Go example's test does: keys of two
// workspaces, read-only and read-write, a revoked one, and none. The example resolves express and
// @keyplane/sdk through NODE_PATH (this package and its node_modules), so it needs no install.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, mkdir, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { Keyplane } from "../dist/esm/index.js";
import { freePort, repo, startKeyplane, waitFor } from "./harness.mjs";

const pkgDir = fileURLToPath(new URL("..", import.meta.url));
let kp, proc, base, tmp, out = "";
before(async () => {
  kp = await startKeyplane();
  tmp = await mkdtemp(join(tmpdir(), "keyplane-ts-example-"));
  await mkdir(join(tmp, "@keyplane"));
  await symlink(pkgDir, join(tmp, "@keyplane", "sdk"), "dir");
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  proc = spawn(process.execPath, [join(repo, "examples/express-orders/server.js")], {
    env: {
      ...process.env, NODE_PATH: [tmp, join(pkgDir, "node_modules")].join(":"),
      KEYPLANE_URL: kp.url, KEYPLANE_VERIFY_KEY: kp.rootKey, ORDERS_ADDR: `127.0.0.1:${port}`,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  proc.stdout.on("data", (d) => (out += d));
  proc.stderr.on("data", (d) => (out += d));
  await waitFor(() => out.includes("listening") || proc.exitCode !== null, 20_000, "the example to listen");
  assert.equal(proc.exitCode, null, out);
});
after(async () => {
  proc?.kill("SIGTERM");
  await kp?.stop();
  await rm(tmp, { recursive: true, force: true });
});

test("the orders API: workspaces apart, permissions per method, no key, a revoked key", async () => {
  const admin = new Keyplane({ baseUrl: kp.url, apiKey: kp.rootKey });
  const newKey = async (slug, ...permissions) => {
    const ws = await admin.createWorkspace({ body: { name: slug, slug: slug + Date.now().toString(36) } });
    const c = admin.inWorkspace(ws.id);
    return { key: await c.createApiKey({ body: { name: slug, keyType: "secret", environment: "test", permissions } }), c };
  };
  const { key: shop, c: shopWS } = await newKey("shop", "orders:read", "orders:write");
  const { key: other } = await newKey("other", "orders:read");
  const call = async (method, key, body) => {
    const r = await fetch(base + "/orders", { method, headers: { ...(key ? { Authorization: `Bearer ${key}` } : {}), "Content-Type": "application/json" }, body });
    return { status: r.status, body: await r.json() };
  };

  let r = await call("POST", shop.keyValue, '{"item": "coffee beans"}');
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.equal(r.body.createdBy, shop.id);
  r = await call("GET", shop.keyValue);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.orders.map((o) => o.item), ["coffee beans"]);
  assert.equal(r.body.keyId, shop.id);
  r = await call("GET", other.keyValue);
  assert.deepEqual(r.body.orders, [], "another workspace sees none of them");
  r = await call("POST", other.keyValue, '{"item": "tea"}');
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, "forbidden");
  assert.equal((await call("GET")).status, 401);
  assert.equal((await call("GET", "kp_sk_test_notakey")).status, 401);
  assert.equal((await call("POST", shop.keyValue, "{not json")).status, 400);
  assert.equal((await call("POST", shop.keyValue, '{"item": 5}')).status, 400);
  // A revoked key is refused once the example's 5 s cache no longer holds it.
  await shopWS.deleteApiKey({ id: shop.id });
  await waitFor(async () => (await call("GET", shop.keyValue)).status === 401, 15_000, "the revocation to show");
});

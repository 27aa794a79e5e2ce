// Runs the orders API. Start keyplane with the example catalog, make a root key with the verify
// scope, then this:
//
//   go run ./cmd/keyplane serve --config examples/keyplane.json
//   go run ./cmd/keyplane root-keys create --name orders-api --scopes verify
//   cd examples/express-orders && npm install
//   KEYPLANE_URL=http://127.0.0.1:8080 KEYPLANE_VERIFY_KEY=kp_root_… node server.js
//   curl -H "Authorization: Bearer kp_sk_test_…" http://127.0.0.1:9090/orders
//
// With KEYPLANE_ADMIN_KEY (a root key with the admin scope) and KEYPLANE_WORKSPACE_ID also set, it
// first creates a test key that may read orders and prints its value once, to try the API with.
"use strict";
const { Keyplane, Verifier } = require("@keyplane/sdk");
const { createApp } = require("./app.js");

async function main(env = process.env) {
  const base = env.KEYPLANE_URL, verifyKey = env.KEYPLANE_VERIFY_KEY;
  if (!base || !verifyKey) throw new Error("set KEYPLANE_URL (such as http://127.0.0.1:8080) and KEYPLANE_VERIFY_KEY (a root key with the verify scope)");
  const [host, port] = (env.ORDERS_ADDR || "127.0.0.1:9090").split(/:(?=\d+$)/);

  if (env.KEYPLANE_ADMIN_KEY && env.KEYPLANE_WORKSPACE_ID) {
    const admin = new Keyplane({ baseUrl: base, apiKey: env.KEYPLANE_ADMIN_KEY, workspaceId: env.KEYPLANE_WORKSPACE_ID });
    const k = await admin.createApiKey({ body: { name: "orders example", keyType: "secret", environment: "test", permissions: ["orders:read"] } });
    console.log(`demo key (shown once, expires ${k.expiresAt}): ${k.keyValue}`);
  }

  // VALID answers of keys without limits or credits are reused for 5 s, as the Go middleware does.
  const verifier = new Verifier({ baseUrl: base, rootKey: verifyKey, cache: { ttlMs: 5000 } });
  const server = createApp({ verifier }).listen(Number(port), host, () => console.log(`orders API listening on ${host}:${port}`));
  const stop = () => server.close(() => process.exit(0));
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main().catch((err) => {
  console.error("orders:", err.message);
  process.exit(1);
});

// Compile-only checks of the public types (npm run typecheck): an error here is a regression.
import { Keyplane, Verifier, type Page, type Schemas } from "../src/index.js";

async function usage() {
  const kp = new Keyplane({ baseUrl: "http://127.0.0.1:8080", apiKey: "kp_root_x", workspaceId: "ws_x" });
  const k = await kp.createApiKey({ body: { name: "n", keyType: "secret", permissions: ["a"] } });
  const v: string = k.keyValue;
  const got: Schemas["ApiKey"] = await kp.getApiKey({ id: k.id });
  const page: Page<Schemas["ApiKey"]> = await kp.listApiKeys({ query: { status: "active", limit: 10 } });
  for await (const key of kp.paginate("listApiKeys", { query: { environment: "test" } })) {
    const id: string = key.id;
    void id;
  }
  const st = await kp.getStatus();
  void st;
  // @ts-expect-error: getApiKey needs an id
  await kp.getApiKey({});
  // @ts-expect-error: createApiKey needs a body
  await kp.createApiKey({});
  // @ts-expect-error: getApiKey is not a list
  kp.paginate("getApiKey", { id: "x" });
  const ver = new Verifier({ baseUrl: "http://127.0.0.1:8080", rootKey: "kp_root_x", cache: true });
  const r = await ver.verify("kp_sk_x", { permissions: ["a"], credits: { cost: 1 } });
  if (r.code !== "NOT_FOUND") {
    const ws: string = r.workspaceId;
    void ws;
  }
  void v, got, page;
}
void usage;

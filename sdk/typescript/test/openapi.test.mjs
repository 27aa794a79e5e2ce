// The committed types are what the served document generates, and the operations table covers the
// served document: a new operation without an SDK row fails here (and the build fails to compile).
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, test } from "node:test";
import { generateTypes } from "../scripts/openapi-types.mjs";
import { operations, NOT_IN_SDK } from "../dist/esm/index.js";
import { startKeyplane } from "./harness.mjs";

let kp, doc;
before(async () => {
  kp = await startKeyplane();
  const r = await fetch(kp.url + "/v1/openapi.json");
  assert.equal(r.status, 200);
  doc = await r.json();
});
after(() => kp?.stop());

test("src/generated/openapi.ts is what GET /v1/openapi.json generates (npm run generate updates it)", async () => {
  const committed = await readFile(new URL("../src/generated/openapi.ts", import.meta.url), "utf8");
  const fresh = await generateTypes(doc);
  if (fresh !== committed) {
    const a = committed.split("\n"), b = fresh.split("\n");
    const i = a.findIndex((l, n) => l !== b[n]);
    assert.fail(`the committed types differ from the served document from line ${i + 1}:\n- ${a[i]}\n+ ${b[i]}\nrun \`npm run generate\` in sdk/typescript`);
  }
});

test("every operation of the served document has an SDK method, with its method and path", () => {
  const served = {};
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(item)) {
      if (["get", "post", "patch", "delete", "put"].includes(m)) served[op.operationId] = [m.toUpperCase(), path];
    }
  }
  const missing = Object.keys(served).filter((id) => !(id in operations) && !(id in NOT_IN_SDK));
  assert.deepEqual(missing, [], "operations without an SDK call: add a row to src/operations.ts (README, Contributing)");
  const stale = Object.keys(operations).filter((id) => !(id in served));
  assert.deepEqual(stale, [], "SDK rows whose operation the document no longer has");
  for (const [id, route] of Object.entries(operations)) assert.deepEqual([...route], served[id], id);
});

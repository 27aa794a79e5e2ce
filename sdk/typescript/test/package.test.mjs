// npm pack produces a tarball under 50 KB that installs in a clean directory, and both require and
// import work from there.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

const run = promisify(execFile);
const pkgDir = fileURLToPath(new URL("..", import.meta.url));
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

test("npm pack installs in a clean directory; require and import work", { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), "keyplane-ts-pack-"));
  try {
    // --ignore-scripts: the test run has built dist already (prepack would build it again).
    const { stdout } = await run(npm, ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], { cwd: pkgDir });
    const [info] = JSON.parse(stdout);
    const tarball = join(dir, info.filename);
    const size = (await stat(tarball)).size;
    assert.ok(size < 50 * 1024, `the tarball is ${size} bytes, over 50 KB`);
    assert.ok(info.files.some((f) => f.path === "dist/cjs/index.js") && info.files.some((f) => f.path === "dist/esm/index.d.ts"));
    assert.ok(!info.files.some((f) => f.path.startsWith("test/") || f.path.startsWith("src/")), "only dist and the README are packed");

    const app = join(dir, "app");
    await run("mkdir", ["-p", app]);
    await writeFile(join(app, "package.json"), '{"name":"app","version":"1.0.0","private":true}\n');
    await run(npm, ["install", "--no-audit", "--no-fund", "--offline", tarball], { cwd: app });
    const cjs = await run(process.execPath, ["-e", 'const k = require("@keyplane/sdk"); console.log(typeof k.Keyplane, typeof k.verifyWebhook, typeof new k.Keyplane({baseUrl:"http://x",apiKey:"y"}).createApiKey)'], { cwd: app });
    assert.equal(cjs.stdout.trim(), "function function function");
    const esm = await run(process.execPath, ["--input-type=module", "-e", 'import { Keyplane, Verifier, expressMiddleware } from "@keyplane/sdk"; console.log(typeof Keyplane, typeof Verifier, typeof expressMiddleware)'], { cwd: app });
    assert.equal(esm.stdout.trim(), "function function function");
    // Zero runtime dependencies: nothing but the SDK was installed.
    const { stdout: ls } = await run(npm, ["ls", "--all", "--parseable"], { cwd: app });
    assert.equal(ls.trim().split("\n").filter((l) => l.includes("node_modules")).length, 1, ls);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// npm test: builds keyplane once (or takes KEYPLANE_BIN), then runs every test/*.test.mjs with
// Node's own runner. Each file starts its own `keyplane serve` on SQLite in a temp data dir.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const repo = fileURLToPath(new URL("../../..", import.meta.url));
let bin = process.env.KEYPLANE_BIN;
if (!bin) {
  // A directory of this run's own: parallel runs never write one binary at once.
  const dir = mkdtempSync(join(tmpdir(), "keyplane-ts-sdk-test-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  bin = join(dir, "keyplane");
  console.log(`building keyplane into ${bin} (set KEYPLANE_BIN to reuse one)`);
  try {
    execFileSync(process.env.GO || "go", ["build", "-o", bin, "./cmd/keyplane"], { cwd: repo, stdio: "inherit" });
  } catch (err) {
    console.error("could not build keyplane (is Go installed?): " + err.message);
    process.exit(1);
  }
}
const only = process.argv.slice(2);
const files = (only.length ? only : readdirSync(here).filter((f) => f.endsWith(".test.mjs")).sort().map((f) => join(here, f)));
const r = spawnSync(process.execPath, ["--test", ...files], { stdio: "inherit", env: { ...process.env, KEYPLANE_BIN: bin } });
process.exit(r.status ?? 1);

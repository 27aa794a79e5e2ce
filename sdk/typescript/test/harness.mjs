// Starts a real `keyplane serve` on SQLite in a temp data dir, on a free 127.0.0.1 port, with a
// root key (admin, verify) made by `keyplane root-keys create` and a workspace made through the API.
import { execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

const run = promisify(execFile);
export const repo = fileURLToPath(new URL("../../..", import.meta.url));

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** startKeyplane answers {url, rootKey, workspaceId, dataDir, stop, log()}. */
export async function startKeyplane({ args = [] } = {}) {
  const bin = process.env.KEYPLANE_BIN;
  if (!bin) throw new Error("KEYPLANE_BIN is not set: run the tests with `npm test` (test/run.mjs)");
  const dataDir = await mkdtemp(join(tmpdir(), "keyplane-ts-"));
  const { stdout } = await run(bin, ["root-keys", "create", "--name", "t", "--scopes", "admin,verify", "--data-dir", dataDir]);
  const rootKey = stdout.trim().split(/\s+/).find((w) => w.includes("_root_"));
  if (!rootKey) throw new Error("root-keys create printed no key: " + stdout);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(
    bin,
    ["serve", "--addr", `127.0.0.1:${port}`, "--data-dir", dataDir, "--config", join(repo, "examples/keyplane.json"),
      "--webhook-allow-private", "true", "--log-flush-interval", "100ms", ...args],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, KEYPLANE_ADMIN_EMAIL: "admin@example.com", KEYPLANE_ADMIN_PASSWORD: "correct horse battery staple" } },
  );
  let output = "";
  proc.stdout.on("data", (d) => (output += d));
  proc.stderr.on("data", (d) => (output += d));
  const exited = new Promise((resolve) => proc.once("exit", resolve));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error("keyplane serve exited:\n" + output);
    try {
      const r = await fetch(url + "/readyz");
      if (r.ok) break;
    } catch {}
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error("keyplane serve not ready within 60 s:\n" + output);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const slug = "t" + Math.random().toString(36).slice(2, 10);
  const wr = await fetch(url + "/v1/workspaces", {
    method: "POST",
    headers: { Authorization: "Bearer " + rootKey, "Content-Type": "application/json" },
    body: JSON.stringify({ name: "SDK tests", slug, maxKeys: 1000 }),
  });
  const w = await wr.json();
  if (!w.success) throw new Error("creating the workspace: " + JSON.stringify(w));
  return {
    url, rootKey, workspaceId: w.data.id, dataDir, log: () => output,
    async stop() {
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(t);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** waitFor polls fn until it answers something truthy, for at most ms. */
export async function waitFor(fn, ms = 15_000, what = "condition") {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 50));
  }
}

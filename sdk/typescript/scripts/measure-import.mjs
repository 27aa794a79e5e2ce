// node scripts/measure-import.mjs [runs]: the cold-import time of the built package, in fresh
// processes: performance.now() around the first dynamic import() (ESM) or require() (CJS), beside
// the same for an empty ES module (the loader's own floor). Prints the median of each.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const runs = Number(process.argv[2] ?? 15);
const pkg = fileURLToPath(new URL("..", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "keyplane-import-"));
writeFileSync(join(dir, "empty.mjs"), "export const x = 1;\n");
const cases = {
  "empty ES module": `const t=performance.now();import(${JSON.stringify(join(dir, "empty.mjs"))}).then(()=>console.log(performance.now()-t))`,
  "@keyplane/sdk (import)": `const t=performance.now();import(${JSON.stringify(join(pkg, "dist/esm/index.js"))}).then(()=>console.log(performance.now()-t))`,
  "@keyplane/sdk (require)": `const t=performance.now();require(${JSON.stringify(join(pkg, "dist/cjs/index.js"))});console.log(performance.now()-t)`,
};
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const [name, code] of Object.entries(cases)) {
  const xs = [];
  for (let i = 0; i < runs; i++) xs.push(Number(execFileSync(process.execPath, ["-e", code], { encoding: "utf8" })));
  console.log(`${name.padEnd(26)} median ${median(xs).toFixed(1)} ms (min ${Math.min(...xs).toFixed(1)}, ${runs} runs)`);
}
rmSync(dir, { recursive: true, force: true });

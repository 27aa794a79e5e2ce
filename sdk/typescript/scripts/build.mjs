// npm run build: tsc checks the sources and writes the declarations twice, into dist/esm (ES
// modules) and dist/cjs (CommonJS, with a package.json that says so); esbuild bundles the runtime
// code into one file per format (dist/esm/index.js, dist/cjs/index.js), because a single module
// halves the cold import time of eight small ones.
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { buildSync } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const at = (p) => fileURLToPath(new URL("../" + p, import.meta.url));
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
rmSync(at("dist"), { recursive: true, force: true });
const run = (...args) => execFileSync(process.execPath, [tsc, "-p", "tsconfig.json", "--emitDeclarationOnly", ...args], { cwd: root, stdio: "inherit" });
run("--outDir", "dist/esm");
run("--outDir", "dist/cjs", "--module", "commonjs", "--moduleResolution", "node10");
for (const [format, dir] of [["esm", "dist/esm"], ["cjs", "dist/cjs"]]) {
  buildSync({
    entryPoints: [at("src/index.ts")], outfile: at(`${dir}/index.js`), bundle: true, format,
    platform: "neutral", target: "es2022", legalComments: "none", logLevel: "warning",
  });
}
mkdirSync(at("dist/cjs"), { recursive: true });
writeFileSync(at("dist/cjs/package.json"), '{"type":"commonjs"}\n');
writeFileSync(at("dist/esm/package.json"), '{"type":"module"}\n');
// The generated OpenAPI types are declarations only and 150 KB: the CommonJS build re-exports the
// ES build's instead of shipping them twice (the packed tarball stays under 50 KB).
writeFileSync(
  at("dist/cjs/generated/openapi.d.ts"),
  'export type { paths, webhooks, components, $defs, operations } from "../../esm/generated/openapi.js" with { "resolution-mode": "import" };\n',
);

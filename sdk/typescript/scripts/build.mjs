// npm run build: tsc twice, into dist/esm (ES modules) and dist/cjs (CommonJS, with a package.json
// that says so), both with declarations.
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
rmSync(new URL("../dist", import.meta.url), { recursive: true, force: true });
const run = (...args) => execFileSync(process.execPath, [tsc, "-p", "tsconfig.json", ...args], { cwd: root, stdio: "inherit" });
run("--outDir", "dist/esm");
run("--outDir", "dist/cjs", "--module", "commonjs", "--moduleResolution", "node10");
mkdirSync(new URL("../dist/cjs", import.meta.url), { recursive: true });
writeFileSync(new URL("../dist/cjs/package.json", import.meta.url), '{"type":"commonjs"}\n');
writeFileSync(new URL("../dist/esm/package.json", import.meta.url), '{"type":"module"}\n');
// The generated OpenAPI types are declarations only and 150 KB: the CommonJS build re-exports the
// ES build's instead of shipping them twice (the packed tarball stays under 50 KB).
writeFileSync(
  new URL("../dist/cjs/generated/openapi.d.ts", import.meta.url),
  'export type { paths, webhooks, components, $defs, operations } from "../../esm/generated/openapi.js" with { "resolution-mode": "import" };\n',
);

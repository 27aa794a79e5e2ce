// npm run generate [-- URL-or-file]: regenerates src/generated/openapi.ts from keyplane's OpenAPI
// document. Default source: the repository's docs/openapi.json (what GET /v1/openapi.json serves,
// generated from internal/api/routes.go). Pass a URL such as http://127.0.0.1:8080/v1/openapi.json
// to take it from a running keyplane instead.
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { generateTypes } from "./openapi-types.mjs";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const src = process.argv[2] ?? here("../../../docs/openapi.json");
const doc = /^https?:\/\//.test(src) ? await (await fetch(src)).json() : JSON.parse(await readFile(src, "utf8"));
const out = here("../src/generated/openapi.ts");
await writeFile(out, await generateTypes(doc));
console.log(`wrote ${out} from ${src}`);

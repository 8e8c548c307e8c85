// Parses each AsyncAPI document named on the command line with the
// reference parser and prints its diagnostics as JSON lines; exits 1 if
// any document has an error or a warning.
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const parser = new Parser();
let failed = false;
for (const path of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(await readFile(path, "utf8"));
  // Severity 0 is an error, 1 a warning; hints (2, 3) are style advice.
  const serious = diagnostics.filter((d) => d.severity <= 1);
  for (const d of serious) {
    console.log(JSON.stringify({ path, code: d.code, message: d.message, at: d.path }));
  }
  if (!document || serious.length > 0) failed = true;
  else console.log(JSON.stringify({ path, channels: document.channels().length, messages: document.messages().length }));
}
process.exit(failed ? 1 : 0);

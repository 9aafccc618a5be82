// Validates an AsyncAPI document with the reference parser (@asyncapi/parser, its Spectral ruleset included).
// Usage: node validate-asyncapi.mjs FILE.json — prints every diagnostic as JSON lines; exits 1 on any error or
// warning (severity 0 or 1), so CI keeps the served document at zero of both.
import { readFileSync } from 'node:fs';
import { Parser } from '@asyncapi/parser';

const file = process.argv[2];
if (!file) {
  console.error('usage: node validate-asyncapi.mjs FILE.json');
  process.exit(2);
}
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(file, 'utf8'));
const severities = ['error', 'warning', 'info', 'hint'];
for (const d of diagnostics) {
  console.log(JSON.stringify({ severity: severities[d.severity], code: d.code, path: d.path.join('.'), message: d.message }));
}
const bad = diagnostics.filter((d) => d.severity <= 1);
if (!document || bad.length) {
  console.error(`asyncapi: ${bad.length} error(s)/warning(s)${document ? '' : ', document not parsed'}`);
  process.exit(1);
}
console.error(`asyncapi: valid (${diagnostics.length} info/hint diagnostics)`);

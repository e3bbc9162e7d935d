import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_RULES } from '../src/domain/policy.js';

/** The defaults table of docs/policy.md, generated from DEFAULT_RULES so the two cannot drift. */
const here = path.dirname(fileURLToPath(import.meta.url));
const root = here.includes(`${path.sep}dist${path.sep}`) ? path.resolve(here, '..', '..') : path.resolve(here, '..');
export const POLICY_DOC = path.join(root, 'docs', 'policy.md');
const START = '<!-- policy-defaults:start (generated from src/domain/policy.ts by `npx tsx test/policy-doc.ts`; do not edit by hand) -->';
const END = '<!-- policy-defaults:end -->';

export function renderDefaults(): string {
  const rows = Object.entries(DEFAULT_RULES).map(([name, check]) => `| \`${name}\` | \`${check === '' ? '""' : check.replace(/\|/g, '\\|')}\` |`);
  return ['| rule | default check string |', '|---|---|', ...rows].join('\n');
}

export function renderPolicyDoc(current: string): string {
  const a = current.indexOf(START);
  const b = current.indexOf(END);
  if (a < 0 || b < a) throw new Error(`${POLICY_DOC} lacks the generated-section markers`);
  return current.slice(0, a) + START + '\n\n' + renderDefaults() + '\n\n' + current.slice(b);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  writeFileSync(POLICY_DOC, renderPolicyDoc(readFileSync(POLICY_DOC, 'utf8')));
  console.log(`wrote ${POLICY_DOC}`);
}

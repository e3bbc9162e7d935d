import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The access matrix (test/access-matrix.json): expected outcome per operation × scenario × role. */
export interface AccessMatrix {
  about: string;
  roles: string[];
  roleDescriptions: Record<string, string>;
  scenarios: string[];
  scenarioDescriptions: Record<string, string>;
  operations: Record<string, { request: string; image: 'active' | 'queued' | 'deactivated' | 'protected'; expect: Record<string, (number | 'in' | 'out')[]> }>;
}

const here = path.dirname(fileURLToPath(import.meta.url));
// Run from test/ (tsx) or dist/test/ (compiled): the JSON and the docs live in the source tree.
const root = here.includes(`${path.sep}dist${path.sep}`) ? path.resolve(here, '..', '..') : path.resolve(here, '..');
export const MATRIX_FILE = path.join(root, 'test', 'access-matrix.json');
export const DOC_FILE = path.join(root, 'docs', 'access.md');
const START = '<!-- access-matrix:start (generated from test/access-matrix.json by `npx tsx test/access-matrix.ts`; do not edit by hand) -->';
const END = '<!-- access-matrix:end -->';

export function loadMatrix(): AccessMatrix {
  return JSON.parse(readFileSync(MATRIX_FILE, 'utf8')) as AccessMatrix;
}

function cell(v: number | 'in' | 'out'): string {
  if (v === 'in') return 'listed';
  if (v === 'out') return '—';
  return String(v);
}

/** The matrix as Markdown: one table per operation, scenarios down, roles across. */
export function renderTables(m: AccessMatrix): string {
  const out: string[] = [];
  out.push('Roles: ' + m.roles.map((r) => `**${r}** = ${m.roleDescriptions[r]}`).join('; ') + '.');
  out.push('');
  out.push('Scenarios (the image is owned by p1): ' + m.scenarios.map((s) => `**${s}** = ${m.scenarioDescriptions[s]}`).join('; ') + '.');
  for (const [name, op] of Object.entries(m.operations)) {
    out.push('', `### ${name}`, '', `\`${op.request}\`${op.image === 'active' ? '' : ` — on a ${op.image} image`}`, '');
    out.push(`| scenario | ${m.roles.join(' | ')} |`);
    out.push(`|---|${m.roles.map(() => '---').join('|')}|`);
    for (const s of m.scenarios) out.push(`| ${s} | ${op.expect[s].map(cell).join(' | ')} |`);
  }
  return out.join('\n');
}

/** docs/access.md with its generated section replaced by the current tables. */
export function renderDoc(current: string, m: AccessMatrix): string {
  const a = current.indexOf(START);
  const b = current.indexOf(END);
  if (a < 0 || b < a) throw new Error(`${DOC_FILE} lacks the generated-section markers`);
  return current.slice(0, a) + START + '\n\n' + renderTables(m) + '\n\n' + current.slice(b);
}

export function generatedSectionMarkers(): { start: string; end: string } {
  return { start: START, end: END };
}

// `npx tsx test/access-matrix.ts` rewrites the tables in docs/access.md.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const doc = readFileSync(DOC_FILE, 'utf8');
  writeFileSync(DOC_FILE, renderDoc(doc, loadMatrix()));
  console.log(`wrote ${DOC_FILE}`);
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** The repository root, from test/architecture/ or from its compiled copy in dist/test/architecture/. */
const ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();
const SRC = path.join(ROOT, 'src');

interface Edge {
  to: string;
  /** `import type`, or every named binding marked `type`: erased at compile time, so no cycle at run time */
  typeOnly: boolean;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

function isTypeOnlyImport(node: ts.ImportDeclaration): boolean {
  const clause = node.importClause;
  if (!clause) return false; // `import './x.js'` runs the module
  if (clause.isTypeOnly) return true;
  if (clause.name) return false;
  const bindings = clause.namedBindings;
  if (!bindings || !ts.isNamedImports(bindings)) return false;
  return bindings.elements.length > 0 && bindings.elements.every((e) => e.isTypeOnly);
}

/** Relative imports of one file, resolved to the .ts files of src/ (packages and node: modules are left out). */
function edgesOf(file: string): Edge[] {
  const text = readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS);
  const edges: Edge[] = [];
  const add = (spec: string, typeOnly: boolean) => {
    if (!spec.startsWith('.')) return;
    const target = path.resolve(path.dirname(file), spec).replace(/\.js$/, '.ts');
    edges.push({ to: target, typeOnly });
  };
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) add(node.moduleSpecifier.text, isTypeOnlyImport(node));
    else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) add(node.moduleSpecifier.text, node.isTypeOnly);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) {
      add(node.arguments[0].text, false);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return edges;
}

const rel = (f: string) => path.relative(SRC, f).split(path.sep).join('/');
const graph = new Map<string, Edge[]>(sourceFiles(SRC).map((f) => [rel(f), edgesOf(f).map((e) => ({ ...e, to: rel(e.to) }))]));

/** Strongly connected components of the value-import graph (Tarjan): each with more than one file is a cycle. */
function valueCycles(graph: Map<string, Edge[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const strong = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const e of graph.get(v) ?? []) {
      if (e.typeOnly || !graph.has(e.to)) continue;
      if (!idx.has(e.to)) {
        strong(e.to);
        low.set(v, Math.min(low.get(v)!, low.get(e.to)!));
      } else if (onStack.has(e.to)) low.set(v, Math.min(low.get(v)!, idx.get(e.to)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      const selfLoop = (graph.get(v) ?? []).some((e) => !e.typeOnly && e.to === v);
      if (scc.length > 1 || selfLoop) out.push(scc.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) strong(v);
  return out;
}

/** Imports (type-only included) from files under `from` into files under any of `to`. */
function crossings(from: string, to: string[], except: (target: string) => boolean = () => false): string[] {
  const found: string[] = [];
  for (const [file, edges] of graph) {
    if (!file.startsWith(from)) continue;
    for (const e of edges) if (to.some((t) => e.to.startsWith(t)) && !except(e.to)) found.push(`${file} -> ${e.to}`);
  }
  return found.sort();
}

test('the import graph of src/ is read (sanity: the entry point and its imports are there)', () => {
  assert.ok(graph.has('main.ts'));
  assert.ok(graph.get('main.ts')!.some((e) => e.to === 'config.ts'));
  assert.ok(graph.size > 100, `only ${graph.size} files found under ${SRC}`);
});

test('the cycle finder finds value cycles and ignores type-only ones', () => {
  const g = (edges: [string, string, boolean][]) => {
    const m = new Map<string, Edge[]>();
    for (const [from, to, typeOnly] of edges) {
      if (!m.has(to)) m.set(to, []);
      m.set(from, [...(m.get(from) ?? []), { to, typeOnly }]);
    }
    return m;
  };
  assert.deepEqual(valueCycles(g([['a.ts', 'b.ts', false], ['b.ts', 'c.ts', false], ['c.ts', 'a.ts', false], ['c.ts', 'd.ts', false]])), [['a.ts', 'b.ts', 'c.ts']]);
  assert.deepEqual(valueCycles(g([['a.ts', 'b.ts', false], ['b.ts', 'a.ts', true]])), []);
  assert.deepEqual(valueCycles(g([['a.ts', 'a.ts', false]])), [['a.ts']]);
});

test('no import cycle in src/ (type-only imports are erased and do not count)', () => {
  const cycles = valueCycles(graph);
  assert.deepEqual(cycles, [], `import cycles:\n${cycles.map((c) => `  ${c.join(' <-> ')}`).join('\n')}`);
});

test('domain/ is pure: it imports nothing from db/, server/, services/ or stores/', () => {
  assert.deepEqual(crossings('domain/', ['db/', 'server/', 'services/', 'stores/']), []);
});

test('db/ depends on no application layer above it: nothing from import/ or metadefs/', () => {
  assert.deepEqual(crossings('db/', ['import/', 'metadefs/']), []);
});

test('SQL lives in db/ repositories: services/ build no queries', () => {
  const found: string[] = [];
  for (const file of graph.keys()) {
    if (!file.startsWith('services/')) continue;
    const text = readFileSync(path.join(SRC, file), 'utf8');
    for (const m of text.matchAll(/\.(selectFrom|updateTable|insertInto|deleteFrom|transaction)\(|from 'kysely'|\bsql`/g)) found.push(`${file}: ${m[0]}`);
  }
  assert.deepEqual(found, []);
});

test('services/ know nothing of HTTP: they import nothing from server/', () => {
  assert.deepEqual(crossings('services/', ['server/']), []);
});

test('services/ take their dependencies from their constructors, not from the composed runtime', () => {
  assert.deepEqual(crossings('services/', ['runtime.ts']), []);
});

test('cache/ sits below the services: it imports nothing from services/, server/ or runtime.ts, and only types from db/', () => {
  assert.deepEqual(crossings('cache/', ['services/', 'server/', 'runtime.ts']), []);
  const valueImportsOfDb = [...graph].filter(([f]) => f.startsWith('cache/')).flatMap(([f, edges]) => edges.filter((e) => !e.typeOnly && e.to.startsWith('db/')).map((e) => `${f} -> ${e.to}`));
  assert.deepEqual(valueImportsOfDb, []);
});

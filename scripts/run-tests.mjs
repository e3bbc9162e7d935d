#!/usr/bin/env node
// Runs the compiled test files (dist/test) with node's test runner, in two passes:
//
//   sqlite    every test file; most run in parallel (they wait on I/O and use free
//             ports and their own temporary data dirs), then the ones that measure
//             time or CPU run alone so the rest of the suite cannot starve them.
//   postgres  the same suite with IMAGO_TEST_PG=1 (every test server on its own fresh
//             PostgreSQL database), lean: without what does not depend on the database
//             engine (tempest, client CLIs, benchmarks, stores, format inspection, Keystone
//             auth, SQLite-only checks).
//
// usage: node scripts/run-tests.mjs [--pass sqlite|postgres|all] [--concurrency N] [--list] [filter ...]
// A filter keeps the files whose path contains it. Plain JavaScript so it runs before the build.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST_TEST = path.join(ROOT, 'dist', 'test');

/** Files that measure time or CPU: run one at a time after the parallel group. */
const ALONE = ['bench/', 'server/image-data-memory', 'recovery/durability', 'db/checkpointer', 'auth/keystone.test', 'reliability/leak', 'reliability/soak', 'notifications/bus-down'];

/** Files that do not depend on the database engine: left out of the PostgreSQL pass. */
const NOT_FOR_POSTGRES = [
  'tempest/', 'bench/', 'e2e/', 'console/', 'browser/', '-cli.test', '/cli.test', 'glance-cli',
  'stores/', 'import/inspect', 'import/uri-filter', 'auth/keystone.test', 'db/checkpointer',
  'recovery/durability', 'server/image-data-memory', 'reliability/soak', 'reliability/leak', 'architecture/', 'domain/', 'config/',
  // the bus and the protection rules do not depend on the engine (notifications/bus.test keeps both passes: events after commits)
  'notifications/drivers', 'notifications/bus-down', 'server/property-protections',
  // on PostgreSQL in every pass already (several nodes need a shared database)
  'scale/', '/multinode',
];

/** Long files first, so the parallel group ends together (seconds measured on the CI machine). */
const SLOW_FIRST = ['tempest/tempest', 'e2e/cli', 'import/crash', 'import/cli', 'metadefs/glance-cli', 'server/members-cli', 'recovery/crash', 'import/glance-download', 'metadefs/manage', 'recovery/shutdown', 'reliability/', 'scale/'];

function listTests(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listTests(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

function rank(file) {
  const i = SLOW_FIRST.findIndex((s) => file.includes(s));
  return i === -1 ? SLOW_FIRST.length : i;
}

function parseArgs(argv) {
  const args = { pass: 'all', concurrency: Number(process.env.IMAGO_TEST_CONCURRENCY ?? 3), list: false, filters: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--pass') args.pass = argv[++i];
    else if (a === '--concurrency') args.concurrency = Number(argv[++i]);
    else if (a === '--list') args.list = true;
    else args.filters.push(a);
  }
  if (!['sqlite', 'postgres', 'all'].includes(args.pass)) throw new Error(`unknown pass ${args.pass}`);
  if (!(args.concurrency >= 1)) throw new Error('--concurrency needs a number >= 1');
  return args;
}

function runGroup(label, files, concurrency, env) {
  if (files.length === 0) return 0;
  const rel = files.map((f) => path.relative(ROOT, f));
  console.log(`\n=== ${label}: ${files.length} files, concurrency ${concurrency} ===`);
  const started = Date.now();
  // A safety net, not a budget: a file that never ends (a child process left running) must fail
  // the group, not hold CI until its own limit. Normal groups take a fraction of this.
  const timeout = Number(process.env.IMAGO_TEST_GROUP_TIMEOUT_MINUTES ?? 40) * 60_000;
  const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, ...rel], { cwd: ROOT, stdio: 'inherit', env: { ...process.env, ...env }, timeout, killSignal: 'SIGKILL' });
  if (r.error?.code === 'ETIMEDOUT') console.log(`=== ${label}: still running after ${timeout / 60_000} min: stopped, counted as failed ===`);
  console.log(`=== ${label}: exit ${r.status ?? r.signal} after ${Math.round((Date.now() - started) / 1000)} s ===`);
  return r.status ?? 1;
}

const args = parseArgs(process.argv.slice(2));
let all = listTests(DIST_TEST).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
if (args.filters.length) all = all.filter((f) => args.filters.some((x) => f.includes(x)));
const alone = (f) => ALONE.some((s) => f.includes(s));

const passes = [];
if (args.pass !== 'postgres') passes.push({ name: 'sqlite', files: all, env: {} });
if (args.pass !== 'sqlite') passes.push({ name: 'postgres', files: all.filter((f) => !NOT_FOR_POSTGRES.some((s) => f.includes(s))), env: { IMAGO_TEST_PG: '1', IMAGO_TEMPEST: '0' } });

if (args.list) {
  for (const p of passes) for (const f of p.files) console.log(`${p.name}\t${alone(f) ? 'alone' : 'parallel'}\t${path.relative(ROOT, f)}`);
  process.exit(0);
}

let failed = 0;
for (const p of passes) {
  failed += runGroup(`${p.name} (parallel)`, p.files.filter((f) => !alone(f)), args.concurrency, p.env) === 0 ? 0 : 1;
  failed += runGroup(`${p.name} (alone)`, p.files.filter(alone), 1, p.env) === 0 ? 0 : 1;
}
// The closing line CI reads when several runner invocations print their own summaries.
console.log(`\nrun-tests: ${failed === 0 ? 'all groups passed' : `${failed} group(s) failed`}`);
process.exit(failed === 0 ? 0 : 1);

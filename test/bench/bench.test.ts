import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { REPO } from '../recovery/child.js';
import { startTestServer, TOKENS } from '../support/server.js';
import { postgresAvailable } from '../support/postgres.js';
import { haproxySkipReason } from '../support/haproxy.js';
import { parseOptions, UsageError } from '../../bench/options.js';

/**
 * The benchmark itself keeps working: it starts, checks every answer and
 * writes its results. Its figures are not asserted (speed is measured by the
 * benchmark, not by tests); only that nothing it checked was wrong.
 */
interface Results {
  nodes?: number;
  database?: string;
  scenarios: { id: string; status: string; checks: { name: string; ok: boolean }[]; metrics: Record<string, unknown>; serverCpu?: unknown }[];
  targets: { verdict: string }[];
}

async function runBench(args: string[]): Promise<{ code: number | null; out: string; results: Results }> {
  const child = spawn(process.execPath, [path.join(REPO, 'dist/bench/run.js'), ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const file = /results in (\S+\.json)/.exec(out)?.[1];
  assert.ok(file, `the bench named no results file:\n${out}`);
  const results = JSON.parse(readFileSync(path.resolve(REPO, file), 'utf8')) as Results;
  rmSync(path.resolve(REPO, file), { force: true });
  return { code, out, results };
}

function assertAllChecked(results: Results, ids: string[], out: string): void {
  for (const id of ids) {
    const s = results.scenarios.find((x) => x.id === id);
    assert.ok(s, `scenario ${id} missing:\n${out}`);
    assert.equal(s.status, 'ok', `scenario ${id}: ${JSON.stringify(s.checks.filter((c) => !c.ok))}`);
    assert.ok(s.checks.length > 0 && s.checks.every((c) => c.ok), `scenario ${id} checked nothing, or something failed`);
  }
  for (const t of results.targets) assert.ok(['PASS', 'MISS', 'n/a'].includes(t.verdict), `verdict ${t.verdict}`);
}

test('npm run bench --quick: a local Imago, every answer checked', { timeout: 240_000 }, async () => {
  const { code, out, results } = await runBench(['--quick', '--only', 'metadata,ranges']);
  assert.equal(code, 0, out);
  assertAllChecked(results, ['ranges', 'metadata-create', 'metadata-list', 'metadata-show', 'metadata-patch', 'metadata-delete'], out);
});

test('npm run bench --target: the same scenarios against a running endpoint with a token', { timeout: 240_000 }, async () => {
  const s = await startTestServer();
  try {
    const { code, out, results } = await runBench(['--quick', '--only', 'metadata', '--target', s.url, '--token', TOKENS.admin]);
    assert.equal(code, 0, out);
    assertAllChecked(results, ['metadata-create', 'metadata-list', 'metadata-show', 'metadata-patch', 'metadata-delete'], out);
  } finally {
    await s.close();
  }
});

test('npm run bench --nodes 3: three nodes behind haproxy on PostgreSQL, every answer checked through the balancer', { timeout: 300_000, skip: haproxySkipReason() }, async (t) => {
  if (!(await postgresAvailable())) return t.skip('no PostgreSQL server');
  const { code, out, results } = await runBench(['--quick', '--nodes', '3', '--only', 'ranges']);
  assert.equal(code, 0, out);
  assert.equal(results.nodes, 3);
  assert.equal(results.database, 'postgres');
  assertAllChecked(results, ['ranges'], out);
  const ranges = results.scenarios.find((x) => x.id === 'ranges')!;
  assert.ok(ranges.serverCpu, 'the nodes\' CPU is measured');
  assert.equal(typeof ranges.metrics.balancerCpuSeconds, 'number', 'haproxy\'s CPU is measured apart');
  assert.match(out, /haproxy http:\/\/127\.0\.0\.1:\d+ \(pid \d+\) → (http:\/\/127\.0\.0\.1:\d+ \(pid \d+, log [^)]+\)(; )?){3}/);
});

test('bench options: --nodes and --postgres start local servers, so they refuse a --target', () => {
  assert.equal(parseOptions(['--nodes', '3']).postgres, true);
  assert.equal(parseOptions(['--postgres']).nodes, 1);
  assert.throws(() => parseOptions(['--nodes', '9']), UsageError);
  assert.throws(() => parseOptions(['--nodes', '3', '--target', 'http://127.0.0.1:9292', '--token', 'x']), UsageError);
  assert.throws(() => parseOptions(['--postgres', '--target', 'http://127.0.0.1:9292', '--token', 'x']), UsageError);
  // S3 ranges are Swift requests: fewer of them, so the scenario keeps its deadline
  assert.ok(parseOptions(['--quick', '--store', 's3']).sizes.ranges <= 500);
});

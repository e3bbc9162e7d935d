/**
 * Runs tempest's image API tests against Imago (scripts/tempest.ts: real
 * Keystone, Imago in keystone mode, tempest + glance-tempest-plugin with RBAC
 * tests on). Takes several minutes, so only with IMAGO_TEMPEST=1:
 *
 *   IMAGO_TEMPEST=1 npx tsx --test test/tempest/tempest.test.ts
 *
 * IMAGO_TEMPEST_REGEX narrows the run (tempest run --regex).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, from test/tempest/ or from its compiled copy in dist/test/tempest/. */
const REPO = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();
const skip = process.env.IMAGO_TEMPEST === '1' ? false : 'set IMAGO_TEMPEST=1 to run tempest (several minutes)';

test('tempest image API tests pass against Imago', { skip, timeout: 60 * 60_000 }, async () => {
  const args = [path.join(REPO, 'node_modules', '.bin', 'tsx'), path.join(REPO, 'scripts', 'tempest.ts')];
  if (process.env.IMAGO_TEMPEST_REGEX) args.push('--regex', process.env.IMAGO_TEMPEST_REGEX);
  const child = spawn(args[0], args.slice(1), { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    process.stderr.write(d);
  });
  const code = await new Promise<number | null>((r) => child.on('close', r));
  const summary = /^tempest: (\d+) passed, (\d+) failed, (\d+) skipped$/m.exec(out);
  assert.ok(summary, 'scripts/tempest.ts printed no summary line');
  const [, passed, failed] = summary.map(Number);
  assert.equal(failed, 0, `tempest failures:\n${out.split('\n').filter((l) => l.startsWith('FAILED')).join('\n')}`);
  assert.ok(passed > 0, 'tempest ran no test');
  assert.equal(code, 0);
});

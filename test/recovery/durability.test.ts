import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { makeDataDir, TOKENS } from '../support/server.js';
import { pattern } from '../support/bytes.js';
import { spawnImago } from './child.js';

function haveStrace(): boolean {
  try {
    execFileSync('strace', ['-V'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/**
 * docs/durability.md promises, for data: the object is fsynced, renamed into
 * place and its directory fsynced before the commit that makes the image
 * active; and before a deleted image's data is removed, the delete's commit
 * is made durable (fdatasync of the SQLite WAL). This test watches the
 * system calls of a real server under strace and checks that order.
 */
test('the data path fsyncs in the documented order (strace)', { skip: !haveStrace() && 'strace is not installed', timeout: 120_000 }, async () => {
  const dataDir = makeDataDir();
  const trace = path.join(dataDir, 'strace.out');
  try {
    const s = await spawnImago(dataDir, { wrap: ['strace', '-f', '-qq', '-y', '-o', trace, '-e', 'trace=fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat,pwritev,pwritev2,pwrite64'] });
    const headers = { 'x-auth-token': TOKENS.admin };
    const created = await fetch(`${s.url}/v2/images`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ disk_format: 'raw', container_format: 'bare' }) });
    const id = ((await created.json()) as { id: string }).id;
    const put = await fetch(`${s.url}/v2/images/${id}/file`, { method: 'PUT', headers: { ...headers, 'content-type': 'application/octet-stream' }, body: new Uint8Array(pattern(2 * 1024 * 1024)) });
    assert.equal(put.status, 204);
    const del = await fetch(`${s.url}/v2/images/${id}`, { method: 'DELETE', headers });
    assert.equal(del.status, 204);
    // An image with staged data only (no locations) follows the same rule.
    const created2 = await fetch(`${s.url}/v2/images`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ disk_format: 'raw', container_format: 'bare' }) });
    const staged = ((await created2.json()) as { id: string }).id;
    const stage = await fetch(`${s.url}/v2/images/${staged}/stage`, { method: 'PUT', headers: { ...headers, 'content-type': 'application/octet-stream' }, body: new Uint8Array(pattern(1024 * 1024)) });
    assert.equal(stage.status, 204);
    // Let the checkpointer copy the stage's commit first, so its WAL fsync cannot pass for the delete's.
    await new Promise((r) => setTimeout(r, 600));
    const del2 = await fetch(`${s.url}/v2/images/${staged}`, { method: 'DELETE', headers });
    assert.equal(del2.status, 204);
    assert.deepEqual(await s.terminate(), { code: 0, signal: null });

    const images = path.join(dataDir, 'images');
    const lines = readFileSync(trace, 'utf8').split('\n').filter((l) => l.includes(dataDir) && !l.includes('-journal'));
    const find = (what: string, re: RegExp) => {
      const i = lines.findIndex((l) => re.test(l));
      assert.ok(i >= 0, `${what} not seen in:\n${lines.join('\n')}`);
      return i;
    };
    const esc = (p: string) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const fsyncTmp = find('fsync of the temporary file', new RegExp(`^\\d+\\s+f(data)?sync\\(\\d+<${esc(images)}/\\.tmp/${id}\\.`));
    const rename = find('rename into place', new RegExp(`rename(at2?)?\\(.*${esc(images)}/\\.tmp/${id}\\..*${esc(images)}/${id}"`));
    const fsyncDir = lines.findIndex((l, i) => i > rename && new RegExp(`f(data)?sync\\(\\d+<${esc(images)}>(\\)| <unfinished)`).test(l));
    assert.ok(fsyncTmp < rename, 'the file is fsynced before it is renamed');
    // Data syncs may run during the upload; what makes it durable is a full fsync after the last write, before the rename.
    const tmpOp = (re: string) => new RegExp(`^\\d+\\s+${re}\\(\\d+<${esc(images)}/\\.tmp/${id}\\.`);
    const lastOf = (re: RegExp) => lines.reduce((last, l, i) => (i < rename && re.test(l) ? i : last), -1);
    const lastWrite = lastOf(tmpOp('pwrite(v2?|64)'));
    const lastFsync = lastOf(tmpOp('fsync'));
    assert.ok(lastWrite >= 0, `the writes of the temporary file were not seen in:\n${lines.join('\n')}`);
    assert.ok(lastFsync > lastWrite, `the temporary file is fsynced after its last write:\n${lines.join('\n')}`);
    assert.ok(fsyncDir > rename, `the directory is fsynced after the rename:\n${lines.join('\n')}`);
    const unlink = find('unlink of the deleted image', new RegExp(`unlink(at)?\\(.*${esc(images)}/${id}"`));
    // SQLite's checkpoints fsync the WAL too; the threads that run them are the ones that also fsync the database file.
    const tid = (l: string) => l.split(/\s+/)[0];
    const checkpointers = new Set(lines.filter((l) => /f(data)?sync\(\d+<.*imago\.sqlite>(\)| <unfinished)/.test(l)).map(tid));
    const deleteSync = (after: number, before: number) =>
      lines.findIndex((l, i) => i > after && i < before && !checkpointers.has(tid(l)) && /f(data)?sync\(\d+<.*imago\.sqlite-wal>(\)| <unfinished)/.test(l));
    const walSync = deleteSync(fsyncDir, unlink);
    assert.ok(walSync > 0, `the delete's commit was made durable before its data was removed:\n${lines.join('\n')}`);
    const stagedUnlink = find('unlink of the deleted staged data', new RegExp(`unlink(at)?\\(.*${esc(path.join(dataDir, 'staging'))}/${staged}"`));
    assert.ok(deleteSync(unlink, stagedUnlink) > 0, `the staged-only delete was made durable before its staged data was removed:\n${lines.join('\n')}`);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

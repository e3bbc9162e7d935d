import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import SQLite from 'better-sqlite3';
import { openDatabase } from '../../src/db/database.js';
import { ImagesRepo } from '../../src/db/images-repo.js';
import { waitFor } from '../support/wait.js';


function newImage(i: number) {
  return {
    id: randomUUID(), name: `ckpt-${i}`, visibility: 'shared' as const, protected: false, osHidden: false,
    diskFormat: 'raw', containerFormat: 'bare', minDisk: 0, minRam: 0, owner: 'p1', tags: ['t'], properties: { k: 'v' },
  };
}

test('WAL checkpoints happen off the serving connection, and the database file holds the commits', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'imago-ckpt-'));
  const file = path.join(dir, 'imago.sqlite');
  const { db, close } = await openDatabase(`sqlite:${file}`);
  try {
    const repo = new ImagesRepo(db);
    const ids: string[] = [];
    // Commits as fast as they go, 16 at a time like a loaded server (each round a new event-loop turn, as requests are),
    // ~200 MB of WAL frames in all: a checkpoint that never catches up would let the WAL grow without end.
    for (let round = 0; round < 320; round++) {
      const made = await Promise.all(Array.from({ length: 16 }, (_, j) => repo.create(newImage(round * 16 + j))));
      ids.push(...made.map((m) => m.id));
      await new Promise((r) => setImmediate(r));
    }
    // The serving connection never checkpoints by itself...
    const [{ wal_autocheckpoint: auto }] = (await db.executeQuery<{ wal_autocheckpoint: number }>({
      sql: 'pragma wal_autocheckpoint', parameters: [], query: undefined as never, queryId: undefined as never,
    })).rows;
    assert.equal(auto, 0);
    // ...the worker does: without checkpoints new pages live only in the WAL and the database file keeps its size.
    await waitFor(() => `the database file to grow by checkpoints (${statSync(file).size} bytes)`, () => statSync(file).size > 1_000_000, 5000, 100);
    assert.ok(statSync(`${file}-wal`).size <= 64 * 1024 * 1024, `the WAL is bounded (${statSync(`${file}-wal`).size} bytes)`);
    assert.equal((await repo.get(ids[0]))?.name, 'ckpt-0');
    await close();
    // The last connection to close removes the WAL: everything is in the database file.
    assert.throws(() => statSync(`${file}-wal`), /ENOENT/);
    const raw = new SQLite(file, { readonly: true });
    assert.equal((raw.prepare('select count(*) as n from images').get() as { n: number }).n, ids.length);
    raw.close();
  } finally {
    await close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
});

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { FilesystemStore } from '../../src/stores/filesystem.js';
import { guard } from '../../src/stores/guarded-store.js';
import { storeConformance, type StoreHarness } from './conformance.js';
import { filesUnder } from '../support/files.js';


function tryMountTmpfs(dir: string, size: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

// One small tmpfs for the "backend full" rule, shared by the suite.
const root = mkdtempSync(path.join(tmpdir(), 'imago-fs-store-'));
const smallDir = path.join(root, 'small');
mkdirSync(smallDir);
const smallMounted = tryMountTmpfs(smallDir, '4m');
after(() => {
  if (smallMounted) execFileSync('umount', [smallDir]);
  rmSync(root, { recursive: true, force: true });
});

let n = 0;
storeConformance('FilesystemStore', async (): Promise<StoreHarness> => {
  const base = path.join(root, `h${n++}`);
  const dir = path.join(base, 'store');
  const make = (id: string, p: string, readOnly = false) => guard(new FilesystemStore({ id, description: id, readOnly, path: p }));
  return {
    store: make('fs', dir),
    readOnly: make('fs', dir, true),
    sibling: make('staging', path.join(base, 'staging')),
    small: smallMounted ? { store: make('small', smallDir), capacity: 4 * 1024 * 1024 } : undefined,
    allObjects: async () => filesUnder(dir),
    plantTemporary: async (key: string) => {
      mkdirSync(path.join(dir, '.tmp'), { recursive: true });
      writeFileSync(path.join(dir, '.tmp', `${key}.${randomUUID()}`), 'partial');
    },
    breakBackend: async () => {
      // the directory vanishes and a file takes its place, as when a mount is lost
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(base, { recursive: true });
      writeFileSync(dir, 'not a directory');
      return async () => rmSync(dir);
    },
    cleanup: async () => rmSync(base, { recursive: true, force: true }),
  };
});

describe('FilesystemStore specifics', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'imago-fs-specific-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('locations are file:// URLs of plain files named by key; writes go through .tmp/', async () => {
    const store = new FilesystemStore({ id: 'x', description: '', readOnly: false, path: path.join(dir, 'a') });
    let sawTemp = false;
    const source = Readable.from(
      (async function* () {
        yield Buffer.alloc(1000, 1);
        await new Promise((r) => setTimeout(r, 20));
        sawTemp = filesUnder(path.join(dir, 'a')).some((f) => f.startsWith('.tmp/key-1.'));
        yield Buffer.alloc(1000, 2);
      })(),
    );
    const r = await store.put('key-1', source);
    assert.equal(r.location, pathToFileURL(path.join(dir, 'a', 'key-1')).href);
    assert.ok(sawTemp, 'the partial object lived under .tmp/ while streaming');
    assert.deepEqual(filesUnder(path.join(dir, 'a')), ['key-1']);
    assert.equal(statSync(path.join(dir, 'a', 'key-1')).size, 2000);
  });

  test('a location outside the store directory is not found, even if the file exists', async () => {
    const store = new FilesystemStore({ id: 'x', description: '', readOnly: false, path: path.join(dir, 'b') });
    writeFileSync(path.join(dir, 'secret'), 'x');
    for (const loc of [pathToFileURL(path.join(dir, 'secret')).href, pathToFileURL(path.join(dir, 'b', '..', 'secret')).href, pathToFileURL(path.join(dir, 'b', '.tmp', 'x')).href]) {
      await assert.rejects(store.get(loc), (e: Error) => e.constructor.name === 'ObjectNotFound');
      assert.equal(await store.exists(loc), false);
    }
  });

  test('canAdopt: same device yes, another device (tmpfs) no, read-only no', async (t) => {
    const a = guard(new FilesystemStore({ id: 'a', description: '', readOnly: false, path: path.join(dir, 'c1') }));
    const b = guard(new FilesystemStore({ id: 'b', description: '', readOnly: false, path: path.join(dir, 'c2') }));
    const ro = guard(new FilesystemStore({ id: 'ro', description: '', readOnly: true, path: path.join(dir, 'c3') }));
    assert.equal(a.canAdopt(b), true);
    assert.equal(ro.canAdopt(b), false);
    if (!smallMounted) return t.skip('no tmpfs to compare devices with');
    const other = guard(new FilesystemStore({ id: 't', description: '', readOnly: false, path: path.join(smallDir, 'adopt-test') }));
    assert.equal(a.canAdopt(other), false);
    assert.equal(other.canAdopt(a), false);
  });
});

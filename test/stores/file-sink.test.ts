import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs, { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { FileSink } from '../../src/stores/file-sink.js';
import { pattern } from '../support/bytes.js';

function chunks(b: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size));
  return out;
}

async function withFile(fn: (handle: FileHandle, file: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'imago-sink-'));
  const file = path.join(dir, 'f');
  const handle = await open(file, 'wx');
  try {
    await fn(handle, file);
  } finally {
    await handle.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Records the syncs a sink makes on its handle, with how much was written when each started and ended. */
function watchSyncs(handle: FileHandle, sink: () => FileSink, delayMs = 0) {
  const events: { op: 'datasync' | 'sync'; at: number; inFlight: number }[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const wrap = (op: 'datasync' | 'sync') => {
    const real = handle[op].bind(handle);
    handle[op] = async () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      events.push({ op, at: sink().bytesWritten, inFlight });
      try {
        if (delayMs) await sleep(delayMs);
        await real();
      } finally {
        inFlight--;
      }
    };
  };
  wrap('datasync');
  wrap('sync');
  return { events, maxInFlight: () => maxInFlight };
}

test('FileSink writes every byte in order, whatever the chunking', async () => {
  for (const [size, chunk, batch] of [[0, 1, 1], [1, 1, 4096], [100_000, 3, 4096], [1_000_003, 65_536, 256 * 1024], [300_000, 65_536, 1]]) {
    await withFile(async (handle, file) => {
      const body = pattern(size);
      const sink = new FileSink(handle, { batchBytes: batch, syncEveryBytes: 0 });
      await pipeline(Readable.from(chunks(body, chunk)), sink);
      assert.equal(sink.bytesWritten, size);
      assert.ok(readFileSync(file).equals(body), `content for ${size}/${chunk}/${batch}`);
    });
  }
});

test('FileSink gathers small chunks into large writes', async () => {
  const real = fs.writev;
  let calls = 0;
  (fs as { writev: unknown }).writev = (...args: unknown[]) => {
    calls++;
    return (real as (...a: unknown[]) => void)(...args);
  };
  syncBuiltinESMExports();
  try {
    await withFile(async (handle, file) => {
      const body = pattern(4 * 1024 * 1024);
      const sink = new FileSink(handle, { batchBytes: 1024 * 1024, syncEveryBytes: 0 });
      await pipeline(Readable.from(chunks(body, 64 * 1024)), sink);
      assert.ok(readFileSync(file).equals(body));
      assert.ok(calls <= 5, `64 chunks of 64 KiB took ${calls} writes (want about 4)`);
    });
  } finally {
    (fs as { writev: unknown }).writev = real;
    syncBuiltinESMExports();
  }
});

test('FileSink syncs data in the background as it goes, one sync at a time, and fsyncs last', async () => {
  await withFile(async (handle, file) => {
    const body = pattern(4 * 1024 * 1024);
    const sink: FileSink = new FileSink(handle, { batchBytes: 64 * 1024, syncEveryBytes: 512 * 1024 });
    const seen = watchSyncs(handle, () => sink, 15);
    let finishedAt = -1;
    sink.on('finish', () => (finishedAt = seen.events.length));
    // a source slower than a sync, so that several background syncs happen
    async function* slowly() {
      for (const c of chunks(body, 64 * 1024)) {
        yield c;
        await sleep(1);
      }
    }
    await pipeline(Readable.from(slowly()), sink);
    assert.ok(readFileSync(file).equals(body));
    const datasyncs = seen.events.filter((e) => e.op === 'datasync');
    assert.ok(datasyncs.length >= 2, `background syncs: ${JSON.stringify(seen.events)}`);
    assert.equal(sink.dataSyncs, datasyncs.length);
    // On a busy machine the last background sync may start just after the last write; the others ran during the upload.
    assert.ok(datasyncs.filter((e) => e.at < body.length).length >= datasyncs.length - 1, `background syncs happen during the upload: ${JSON.stringify(seen.events)}`);
    assert.equal(seen.maxInFlight(), 1, 'never two syncs at once');
    const last = seen.events.at(-1)!;
    assert.equal(last.op, 'sync', 'the final sync is a full fsync');
    assert.equal(last.at, body.length, 'the final fsync comes after the last write');
    assert.equal(seen.events.filter((e) => e.op === 'sync').length, 1);
    assert.equal(finishedAt, seen.events.length, "'finish' only once the final fsync is done");
  });
});

test('FileSink fails the stream when a background sync fails', async () => {
  await withFile(async (handle) => {
    const sink = new FileSink(handle, { batchBytes: 64 * 1024, syncEveryBytes: 128 * 1024 });
    handle.datasync = async () => {
      throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    };
    let synced = false;
    handle.sync = async () => {
      synced = true;
    };
    await assert.rejects(pipeline(Readable.from(chunks(pattern(1024 * 1024), 64 * 1024)), sink), /EIO/);
    assert.equal(synced, false, 'no success after a failed sync');
  });
});

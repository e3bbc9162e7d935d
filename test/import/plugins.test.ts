import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { startTestServer, createImage, type TestServer } from '../support/server.js';
import { checkConsistency } from '../../src/services/recovery.js';
import { qemuInfo, qemuSafetyProblems } from '../../src/import/plugins/qemu-img.js';
import { getImage, importImage, sha512, stage, waitTasks } from './helpers.js';
import { pattern } from '../support/bytes.js';

const MiB = 1024 * 1024;

describe('import plugins: decompression, conversion, metadata injection', () => {
  let s: TestServer;
  let dir: string;
  const raw = pattern(4 * MiB, 31);
  let qcow2: Buffer;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'imago-plugins-'));
    writeFileSync(path.join(dir, 'disk.raw'), raw);
    execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', path.join(dir, 'disk.raw'), path.join(dir, 'disk.qcow2')]);
    qcow2 = readFileSync(path.join(dir, 'disk.qcow2'));
    s = await startTestServer({
      env: { IMAGO_IMAGE_SIZE_CAP: String(32 * MiB) },
      config: {
        import: {
          plugins: {
            decompression: true,
            conversion: { enabled: true, outputFormat: 'raw' },
            injectMetadata: { enabled: true, properties: { hw_rng_model: 'virtio', os_glance_sneaky: 'x' }, ignoreUserRoles: ['admin'] },
          },
        },
      },
    });
  });
  after(async () => {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function compress(tool: 'gzip' | 'zstd' | 'xz', data: Buffer): Buffer {
    if (tool === 'gzip') return gzipSync(data);
    return execFileSync(tool, ['-c', '-q'], { input: data, maxBuffer: 64 * MiB });
  }

  async function run(data: Buffer, image: Record<string, unknown>, token: 'admin' | 'member' = 'member') {
    const img = await createImage(s, image, token);
    assert.equal((await stage(s, img.id, data, token)).status, 204);
    assert.equal((await importImage(s, img.id, { method: { name: 'glance-direct' } }, { token })).status, 202);
    const [task] = await waitTasks(s, img.id);
    return { id: img.id, task, image: await getImage(s, img.id) };
  }

  test('compressed qcow2 (gzip, zstd, xz) is decompressed, checked and converted to raw: the guest sees the same disk', async () => {
    for (const tool of ['gzip', 'zstd', 'xz'] as const) {
      const { id, task, image } = await run(compress(tool, qcow2), { disk_format: 'qcow2', container_format: 'compressed' });
      assert.equal(task.status, 'success', `${tool}: ${task.message}`);
      assert.equal(image.status, 'active');
      assert.equal(image.disk_format, 'raw');
      assert.equal(image.container_format, 'bare');
      assert.equal(image.size, raw.length);
      assert.equal(image.virtual_size, raw.length);
      assert.equal(image.os_hash_value, sha512(raw));
      const dl = await s.req('GET', `/v2/images/${id}/file`);
      assert.deepEqual(Buffer.from(await dl.arrayBuffer()), raw, tool);
    }
    assert.deepEqual(await checkConsistency(s.rt), { missingObjects: [], orphanObjects: [] });
  });

  test('raw data needs neither step: the staged object is imported as it is', async () => {
    const { task, image } = await run(raw, { disk_format: 'raw' });
    assert.equal(task.status, 'success');
    assert.equal(image.os_hash_value, sha512(raw));
  });

  test('metadata injection: configured properties for ordinary users, never os_glance_*, not for ignored roles', async () => {
    const member = await run(pattern(1000), { disk_format: 'raw' });
    assert.equal(member.image.hw_rng_model, 'virtio');
    assert.equal('os_glance_sneaky' in member.image, false);
    const admin = await run(pattern(1000), { disk_format: 'raw' }, 'admin');
    assert.equal(admin.task.status, 'success');
    assert.equal('hw_rng_model' in admin.image, false);
  });

  test('a corrupt archive or a decompression bomb fails the import and leaves the image queued', async () => {
    const corrupt = gzipSync(raw);
    corrupt.fill(0x55, 100, 200);
    const bad = await run(corrupt, { disk_format: 'raw' });
    assert.equal(bad.task.status, 'failure');
    assert.match(bad.task.message, /back in status queued/);
    assert.match(bad.task.message, /^Reading the decompressed data failed: .+\. The image is back/);
    assert.equal(bad.image.status, 'queued');

    const bomb = await run(gzipSync(Buffer.alloc(64 * MiB)), { disk_format: 'raw' });
    assert.equal(bomb.task.status, 'failure');
    assert.match(bomb.task.message, /image_size_cap/);
    assert.equal(bomb.image.status, 'queued');
    assert.deepEqual(await checkConsistency(s.rt), { missingObjects: [], orphanObjects: [] });
  });

  test('inspection runs on the decompressed bytes: a mismatch there fails the import', async () => {
    const { task, image } = await run(gzipSync(qcow2), { disk_format: 'raw' });
    assert.equal(task.status, 'failure');
    assert.match(task.message, /Image content is qcow2 but disk_format is raw/);
    assert.equal(image.status, 'queued');
    assert.equal(image.disk_format, 'raw');
  });
});

test('qemu-img safety check refuses backing files, whatever the inspector said', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'imago-qemu-'));
  try {
    const base = path.join(dir, 'base.raw');
    writeFileSync(base, Buffer.alloc(MiB));
    const file = path.join(dir, 'child.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'raw', file]);
    const info = await qemuInfo(file, 'qcow2');
    assert.deepEqual(qemuSafetyProblems(info, 'qcow2', file).length, 1);
    assert.match(qemuSafetyProblems(info, 'qcow2', file)[0], /backing file/);
    assert.match(qemuSafetyProblems(info, 'raw', file).join(), /reads it as qcow2, not raw/);
    const plain = path.join(dir, 'plain.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', plain, '1M']);
    assert.deepEqual(qemuSafetyProblems(await qemuInfo(plain, 'qcow2'), 'qcow2', plain), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});



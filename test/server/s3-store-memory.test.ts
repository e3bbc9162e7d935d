import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { makeDataDir, TOKENS } from '../support/server.js';
import { spawnImago } from '../recovery/child.js';
import { startSwift, swiftSkipReason } from '../support/swift.js';

/**
 * The S3 store's memory bound at scale: 8 chunked uploads (no Content-Length,
 * so the store cannot plan from a size) stream at once into Swift s3api, and
 * the server's RSS stays within its idle RSS plus 8 x partSize x (queueSize + 1)
 * plus a fixed allowance for sockets and the hash rings. Disk-hungry and slow
 * (every byte goes through Swift's object server), so it runs only with
 * IMAGO_BIG_TESTS=1:
 *
 *   IMAGO_BIG_TESTS=1 node --test dist/test/server/s3-store-memory.test.js
 *
 * IMAGO_BIG_SIZE sets each upload's size in bytes (default 512 MiB).
 */
const MiB = 1024 * 1024;
const SIZE = Number(process.env.IMAGO_BIG_SIZE ?? 512 * MiB);
const UPLOADS = 8;
const PART_MIB = 8;
const QUEUE = 4;
/** sockets, HTTP parsers, the hash rings of 8 writers, V8's own growth */
const ALLOWANCE = 96 * MiB;

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
}

function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn('curl', ['-sS', '--fail-with-body', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`curl: ${code} ${err} ${out}`))));
  });
}

const skip = process.env.IMAGO_BIG_TESTS !== '1' ? 'set IMAGO_BIG_TESTS=1' : swiftSkipReason();

test(`${UPLOADS} chunked uploads to S3 keep RSS within idle + ${UPLOADS} x partSize x (queueSize + 1)`, { skip, timeout: 30 * 60_000 }, async () => {
  const swift = await startSwift();
  const dataDir = makeDataDir();
  const source = path.join(dataDir, 'source.img');
  execFileSync('truncate', ['-s', String(SIZE), source]);
  const bucket = await swift.createBucket();
  const server = await spawnImago(dataDir, {
    config: {
      logLevel: 'warn',
      stores: [{ id: 'objects', type: 's3', s3: { ...swift.s3Config(bucket), partSizeMiB: PART_MIB, queueSize: QUEUE } }],
      defaultStore: 'objects',
    },
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  const pid = server.proc.pid!;
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 50);
  try {
    const auth = ['-H', `X-Auth-Token: ${TOKENS.admin}`];
    const ids: string[] = [];
    for (let i = 0; i < UPLOADS; i++) {
      ids.push(JSON.parse(await curl([...auth, '-H', 'Content-Type: application/json', '-d', `{"disk_format":"raw","container_format":"bare","name":"m${i}"}`, `${server.url}/v2/images`])).id);
    }
    await new Promise((r) => setTimeout(r, 500));
    const idle = rssOf(pid);
    const t0 = Date.now();
    await Promise.all(
      ids.map((id) =>
        curl([...auth, '-X', 'PUT', '-H', 'Content-Type: application/octet-stream', '-H', 'Transfer-Encoding: chunked', '-T', source, `${server.url}/v2/images/${id}/file`]),
      ),
    );
    const seconds = (Date.now() - t0) / 1000;
    for (const id of ids) {
      const image = JSON.parse(await curl([...auth, `${server.url}/v2/images/${id}`]));
      assert.equal(image.status, 'active');
      assert.equal(image.size, SIZE);
    }
    const bound = idle + UPLOADS * PART_MIB * MiB * (QUEUE + 1) + ALLOWANCE;
    const mb = (n: number) => +(n / MiB).toFixed(1);
    console.log(JSON.stringify({ uploads: UPLOADS, eachMiB: SIZE / MiB, partSizeMiB: PART_MIB, queueSize: QUEUE, seconds, MBps: mb((UPLOADS * SIZE) / seconds), idleRssMB: mb(idle), peakRssMB: mb(peak), boundMB: mb(bound) }));
    assert.ok(peak <= bound, `peak RSS ${mb(peak)} MB above ${mb(bound)} MB`);
  } finally {
    clearInterval(sampler);
    await server.terminate();
    rmSync(dataDir, { recursive: true, force: true });
    await swift.stop();
  }
});

import { closeSync, openSync, readSync } from 'node:fs';
import { Client } from 'undici';
import { serverPids, type Api } from '../api.js';
import { curlRanges, randomRanges, type ByteRange } from '../curl-ranges.js';
import type { DataFile } from '../files.js';
import type { Recorder } from '../scenario.js';
import type { RefServer } from '../references.js';
import { CpuMeter } from '../cpu.js';
import { now, round, seededRandom, summarize } from '../stats.js';

export const RANGE_SEED = 20240601;
const WARMUP = 50;

/**
 * Random 1 MiB ranges over one kept-alive connection (curl with a config of
 * many URLs), timed as a whole. Then, untimed, the same ranges again (all,
 * or every n-th in --quick) through undici with every byte compared with the file. With the trivial server at
 * hand, its rate on the same ranges right after is the ceiling of the moment.
 */
export async function rangedReads(r: Recorder, api: Api, imageId: string, file: DataFile, plan: { count: number; rangeSize: number; verifyEvery: number }, scratchDir: string, ref?: RefServer): Promise<void> {
  const { count, rangeSize } = plan;
  const ranges = randomRanges(seededRandom(RANGE_SEED), WARMUP + count, file.size, rangeSize);
  const url = api.url(`/v2/images/${imageId}/file`);
  await curlRanges(url, api.authHeaders(), ranges.slice(0, WARMUP), r.secondsLeft(), scratchDir);
  const timed = ranges.slice(WARMUP);
  const cpu = new CpuMeter(serverPids(api.target));
  cpu.start();
  const run = await curlRanges(url, api.authHeaders(), timed, r.secondsLeft(), scratchDir);
  cpu.stop();
  const perRange = cpu.per(count);
  if (perRange) {
    r.metric('serverCpuMsPerRange', round(perRange.process * 1000, 3));
    r.metric('serverMainThreadMsPerRange', round(perRange.main * 1000, 3));
  }

  r.equal('transfers reported', run.transfers.length, count);
  const wrong = run.transfers
    .map((t, i) => {
      const want = `bytes ${timed[i].start}-${timed[i].end}/${file.size}`;
      return t.httpCode !== 206 ? `status ${t.httpCode}` : t.size !== rangeSize ? `${t.size} bytes` : t.contentRange !== want ? `Content-Range ${t.contentRange}, expected ${want}` : '';
    })
    .filter(Boolean);
  r.check('every timed range: 206, Content-Range, 1 MiB', wrong.length === 0, `${wrong.length} wrong, e.g. ${wrong.slice(0, 3).join('; ')}`);
  r.equal('connections opened', run.transfers.reduce((n, t) => n + t.connects, 0), 1);
  r.figure(round(count / run.wallSeconds, 0), 'ranges/s');
  r.metric('ranges', count);
  r.metric('rangeBytes', rangeSize);
  r.metric('seconds', round(run.wallSeconds, 3));
  const s = summarize(run.transfers.map((t) => t.seconds * 1000));
  r.metric('p50Ms', s.p50Ms);
  r.metric('p99Ms', s.p99Ms);
  r.metric('maxMs', s.maxMs);
  if (ref) {
    // The same ranges from the trivial server, right after: the ceiling under the machine's load of this minute.
    const refCpu = new CpuMeter(ref.pid);
    refCpu.start();
    const c = await curlRanges(ref.urlOf(file), {}, timed, r.secondsLeft(), scratchDir);
    refCpu.stop();
    const refPerRange = refCpu.per(count);
    if (refPerRange) r.metric('ceilingServerCpuMsPerRange', round(refPerRange.process * 1000, 3));
    r.check('ceiling ranges: 206 and 1 MiB each', c.transfers.every((t) => t.httpCode === 206 && t.size === rangeSize), 'the trivial server answered wrong');
    r.metric('ceilingPerSec', round(count / c.wallSeconds, 0));
  }
  const sample = timed.filter((_, i) => i % plan.verifyEvery === 0);
  r.metric('rangesComparedByteForByte', sample.length);
  const verified = await verifyRanges(r, api, imageId, file, sample);
  r.metric('rangesPerSecUndiciWithChecks', verified);
}

/** The same ranges through undici on one connection, bytes compared with the file; returns the rate it managed. */
async function verifyRanges(r: Recorder, api: Api, imageId: string, file: DataFile, ranges: ByteRange[]): Promise<number> {
  const client = new Client(api.origin, { pipelining: 1, keepAliveTimeout: 60_000 });
  let connects = 0;
  client.on('connect', () => connects++);
  const fd = openSync(file.path, 'r');
  const size = ranges[0].end - ranges[0].start + 1;
  const body = Buffer.allocUnsafe(size);
  const expected = Buffer.allocUnsafe(size);
  const problems: string[] = [];
  let bad = 0;
  const t0 = now();
  try {
    for (const { start, end } of ranges) {
      if (performance.now() > r.deadline) throw new Error('range verification did not finish before the deadline');
      const res = await client.request({ method: 'GET', path: api.path(`/v2/images/${imageId}/file`), headers: api.authHeaders({ range: `bytes=${start}-${end}` }) });
      let got = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        if (got + chunk.length <= size) chunk.copy(body, got);
        got += chunk.length;
      }
      readSync(fd, expected, 0, size, start);
      const want = `bytes ${start}-${end}/${file.size}`;
      const why =
        res.statusCode !== 206 ? `status ${res.statusCode}` :
        res.headers['content-range'] !== want ? `Content-Range ${res.headers['content-range']}` :
        got !== size ? `${got} bytes` :
        !body.equals(expected) ? 'bytes differ from the file' : '';
      if (why) {
        bad++;
        if (problems.length < 3) problems.push(`${want}: ${why}`);
      }
    }
  } finally {
    closeSync(fd);
    await client.close();
  }
  r.check('every range has the file\'s bytes (verified again with undici)', bad === 0, `${bad} wrong, e.g. ${problems.join('; ')}`);
  r.equal('undici connections opened', connects, 1);
  return round(ranges.length / ((now() - t0) / 1000), 0);
}

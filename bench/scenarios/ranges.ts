import { closeSync, openSync, readSync } from 'node:fs';
import { Client } from 'undici';
import type { Api } from '../api.js';
import type { DataFile } from '../files.js';
import type { Recorder } from '../scenario.js';
import { now, round, seededRandom, summarize } from '../stats.js';

const WARMUP = 50;
const SEED = 20240601;

/**
 * Random 1 MiB ranges over one kept-alive connection, one at a time. Each
 * request is timed from send to last body byte; its bytes are compared with
 * the file between requests, outside the timed window.
 */
export async function rangedReads(r: Recorder, api: Api, imageId: string, file: DataFile, count: number, rangeSize: number): Promise<void> {
  const client = new Client(api.origin, { pipelining: 1, keepAliveTimeout: 60_000 });
  let connects = 0;
  client.on('connect', () => connects++);
  const fd = openSync(file.path, 'r');
  const body = Buffer.allocUnsafe(rangeSize);
  const expected = Buffer.allocUnsafe(rangeSize);
  const random = seededRandom(SEED);
  const latencies: number[] = [];
  const problems: string[] = [];
  let bad = 0;
  const started = now();
  try {
    for (let i = 0; i < WARMUP + count; i++) {
      if (performance.now() > r.deadline) throw new Error(`only ${latencies.length} of ${count} ranges done before the deadline`);
      const start = Math.floor(random() * (file.size - rangeSize + 1));
      const end = start + rangeSize - 1;
      const t0 = now();
      const res = await client.request({ method: 'GET', path: api.path(`/v2/images/${imageId}/file`), headers: api.authHeaders({ range: `bytes=${start}-${end}` }) });
      let got = 0;
      let overflow = false;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        if (got + chunk.length > rangeSize) overflow = true;
        else chunk.copy(body, got);
        got += chunk.length;
      }
      const ms = now() - t0;
      if (i >= WARMUP) latencies.push(ms);

      const wantRange = `bytes ${start}-${end}/${file.size}`;
      readSync(fd, expected, 0, rangeSize, start);
      const why =
        res.statusCode !== 206 ? `status ${res.statusCode}` :
        res.headers['content-range'] !== wantRange ? `Content-Range ${res.headers['content-range']}, expected ${wantRange}` :
        overflow || got !== rangeSize ? `${got} bytes` :
        !body.equals(expected) ? 'bytes differ from the file' : undefined;
      if (why) {
        bad++;
        if (problems.length < 3) problems.push(`${wantRange}: ${why}`);
      }
    }
  } finally {
    closeSync(fd);
    await client.close();
  }
  const timed = latencies.reduce((a, b) => a + b, 0) / 1000;
  r.check('every range right (status 206, Content-Range, bytes)', bad === 0, `${bad} wrong, e.g. ${problems.join('; ')}`);
  r.check('one kept-alive connection', connects === 1, `${connects} connections were opened`);
  const perSec = round(count / timed, 0);
  r.figure(perSec, 'ranges/s');
  r.metric('ranges', count);
  r.metric('rangeBytes', rangeSize);
  r.metric('rangesPerSecWithChecks', round((WARMUP + count) / ((now() - started) / 1000), 0));
  for (const [k, v] of Object.entries(summarize(latencies))) r.metric(k, v);
}

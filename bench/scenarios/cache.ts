import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Api } from '../api.js';
import { curl } from '../curl.js';
import type { DataFile } from '../files.js';
import { freePort, startImago, type LocalImago } from '../imago-process.js';
import { Skip, type BenchContext, type Recorder } from '../scenario.js';
import { mibPerSec, now, round } from '../stats.js';
import { checkDownloadMatches, downloadWithCurl, uploadWithCurl } from './transfer.js';

/** A sample of the cache server's metrics listener (store reads are counted there). */
async function metric(metricsUrl: string, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const [series, value] = line.split(' ');
    if (Object.entries(labels).every(([k, v]) => series.includes(`${k}="${v}"`))) return Number(value);
  }
  return 0;
}

async function storeReads(metricsUrl: string): Promise<{ gets: number; bytes: number }> {
  return {
    gets: await metric(metricsUrl, 'imago_store_operation_duration_seconds_count', { store: 'local', operation: 'get' }),
    bytes: await metric(metricsUrl, 'imago_store_bytes_read_total', { store: 'local' }),
  };
}

async function waitCached(api: Api, id: string, deadline: number): Promise<boolean> {
  while (performance.now() < deadline) {
    const res = await api.call('GET', '/v2/cache');
    const body = JSON.parse(res.text) as { cached_images: { image_id: string }[] };
    if (body.cached_images.some((e) => e.image_id === id)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/**
 * The image cache (docs/cache.md) on a second local Imago with the cache on
 * and a filesystem store, so the main server's figures stay those of a
 * cacheless node:
 *
 * 1. the same image read from the filesystem store (`Range: bytes=0-`: a
 *    Range request that misses is served from the store and fills nothing),
 *    then once in full (the miss that fills the entry while streaming), then
 *    from the cache; the figure is the best hit, the store's best beside it;
 * 2. 8 concurrent downloads of another, uncached image: they must read the
 *    store once (the store metrics count gets and bytes).
 */
export async function cacheScenario(r: Recorder, ctx: BenchContext, repoRoot: string, file: DataFile, concurrentFile: DataFile, count: number, repeats: number): Promise<void> {
  if (!ctx.target.sameMachine || ctx.opts.target) throw new Skip('needs a local Imago started with the cache on');
  if (ctx.opts.nodes > 1) throw new Skip('the cache is per node: measured on one node (run without --nodes)');
  const workDir = path.join(ctx.workDir, 'cache-server');
  mkdirSync(workDir, { recursive: true });
  const metricsPort = await freePort();
  const gib = Math.max(1, Math.ceil((file.size + concurrentFile.size) / 1024 ** 3) + 1);
  let local: LocalImago | undefined;
  try {
    local = await startImago({ repoRoot, workDir, nodeArgs: [], extraConfig: { cache: { enabled: true, maxSizeGiB: gib, prefetchIntervalSeconds: 3600 }, metrics: { enabled: true, port: metricsPort } } });
    const metricsUrl = `http://127.0.0.1:${metricsPort}`;
    const api = new Api(local.target);
    try {
      const id = (await api.createImage(`bench-${ctx.runId}-cache`)).id as string;
      r.equal('upload status', (await uploadWithCurl(api, id, file, r.secondsLeft())).httpCode, 204);

      const fromStore: number[] = [];
      for (let i = 0; i < repeats; i++) {
        const res = await curl({ url: api.url(`/v2/images/${id}/file`), headers: api.authHeaders({ range: 'bytes=0-' }), output: '/dev/null', maxSeconds: r.secondsLeft() });
        r.check(`store read ${i + 1}: 206 and every byte`, res.httpCode === 206 && res.sizeDownload === file.size, `${res.httpCode}, ${res.sizeDownload} bytes`);
        fromStore.push(mibPerSec(file.size, res.seconds));
      }
      const before = await storeReads(metricsUrl);
      const miss = await downloadWithCurl(api, id, r.secondsLeft());
      r.check('miss: 200 and every byte', miss.httpCode === 200 && miss.sizeDownload === file.size, `${miss.httpCode}, ${miss.sizeDownload} bytes`);
      r.check('the miss was cached', await waitCached(api, id, performance.now() + r.secondsLeft() * 1000));
      const hits: number[] = [];
      for (let i = 0; i < repeats; i++) {
        const res = await downloadWithCurl(api, id, r.secondsLeft());
        r.check(`hit ${i + 1}: 200 and every byte`, res.httpCode === 200 && res.sizeDownload === file.size, `${res.httpCode}, ${res.sizeDownload} bytes`);
        hits.push(mibPerSec(file.size, res.seconds));
      }
      const after = await storeReads(metricsUrl);
      r.equal('store gets for the miss and the hits', after.gets - before.gets, 1);
      r.equal('store bytes for the miss and the hits', after.bytes - before.bytes, file.size);
      await checkDownloadMatches(r, api, id, file, 'cached');

      const best = Math.max(...hits);
      const store = Math.max(...fromStore);
      r.figure(best, 'MiB/s');
      r.metric('storeMiBps', store);
      r.metric('hitVsStore', round(best / store, 2));
      r.metric('missMiBps', mibPerSec(file.size, miss.seconds));
      r.metric('hitRunsMiBps', hits.join(', '));
      r.metric('storeRunsMiBps', fromStore.join(', '));
      r.metric('bytes', file.size);

      // 8 concurrent downloads of one uncached image.
      const cid = (await api.createImage(`bench-${ctx.runId}-cache-concurrent`)).id as string;
      r.equal('concurrent image upload status', (await uploadWithCurl(api, cid, concurrentFile, r.secondsLeft())).httpCode, 204);
      const c0 = await storeReads(metricsUrl);
      const t0 = now();
      const results = await Promise.all(Array.from({ length: count }, () => downloadWithCurl(api, cid, r.secondsLeft())));
      const seconds = (now() - t0) / 1000;
      results.forEach((res, i) => r.check(`concurrent download ${i + 1}: 200 and every byte`, res.httpCode === 200 && res.sizeDownload === concurrentFile.size, `${res.httpCode}, ${res.sizeDownload} bytes`));
      r.check('the concurrent image was cached', await waitCached(api, cid, performance.now() + r.secondsLeft() * 1000));
      const c1 = await storeReads(metricsUrl);
      r.equal(`store gets for ${count} concurrent downloads`, c1.gets - c0.gets, 1);
      r.equal(`store bytes for ${count} concurrent downloads`, c1.bytes - c0.bytes, concurrentFile.size);
      r.metric('concurrentDownloads', count);
      r.metric('concurrentAggregateMiBps', mibPerSec(concurrentFile.size * count, seconds));
      r.metric('concurrentSlowestMiBps', Math.min(...results.map((x) => mibPerSec(concurrentFile.size, x.seconds))));
      r.metric('concurrentStoreGets', c1.gets - c0.gets);
      await checkDownloadMatches(r, api, cid, concurrentFile, 'concurrent');
    } finally {
      await api.deleteLeftovers();
      await api.close();
    }
  } finally {
    await local?.stop();
  }
}

import { Pool } from 'undici';
import { IMAGE_PATCH, type Api } from '../api.js';
import { runScenario, Skip, type BenchContext, type Recorder, type ScenarioResult } from '../scenario.js';
import { now, round, summarize } from '../stats.js';

const CONNECTIONS = 16;
const PAGE = 1000;

interface Load {
  seconds: number;
  latencies: number[];
}

/** Runs op(0..n-1) with `CONNECTIONS` requests in flight, timing each. */
async function load(n: number, deadline: number, op: (i: number) => Promise<void>): Promise<Load> {
  const latencies = new Array<number>(n);
  let next = 0;
  const t0 = now();
  const worker = async () => {
    for (let i = next++; i < n; i = next++) {
      if (performance.now() > deadline) throw new Error(`only ${i} of ${n} operations done before the deadline`);
      const s = now();
      await op(i);
      latencies[i] = now() - s;
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  return { seconds: (now() - t0) / 1000, latencies };
}

function report(r: Recorder, n: number, l: Load, unit = 'ops/s'): void {
  const perSec = round(n / l.seconds, 0);
  r.figure(perSec, unit);
  r.metric('operations', n);
  r.metric('seconds', round(l.seconds, 3));
  for (const [k, v] of Object.entries(summarize(l.latencies))) if (k !== 'count') r.metric(k, v);
}

/** Tallies unexpected answers without stopping the load; the first few are kept for the report. */
class Tally {
  bad = 0;
  examples: string[] = [];
  note(ok: boolean, what: () => string): void {
    if (ok) return;
    this.bad++;
    if (this.examples.length < 3) this.examples.push(what());
  }
  check(r: Recorder, name: string): void {
    r.check(name, this.bad === 0, `${this.bad} wrong, e.g. ${this.examples.join('; ')}`);
  }
}

/** Walks every page of `GET /v2/images?limit=1000`, following `next`, timing each page. */
async function listAll(api: Api, pool: Pool, deadline: number): Promise<{ ids: string[]; pageMs: number[]; pages: number }> {
  const ids: string[] = [];
  const pageMs: number[] = [];
  let query = `limit=${PAGE}`;
  for (let pages = 1; ; pages++) {
    if (performance.now() > deadline) throw new Error('listing did not finish before the deadline');
    const t0 = now();
    const res = await pool.request({ method: 'GET', path: api.path(`/v2/images?${query}`), headers: api.authHeaders() });
    const text = await res.body.text();
    pageMs.push(now() - t0);
    if (res.statusCode !== 200) throw new Error(`list page ${pages} answered ${res.statusCode}: ${text.slice(0, 300)}`);
    const body = JSON.parse(text) as { images: { id: string }[]; next?: string };
    for (const img of body.images) ids.push(img.id);
    if (!body.next) return { ids, pageMs, pages };
    query = body.next.slice(body.next.indexOf('?') + 1);
  }
}

/**
 * Create N images, list them all by pages of 1000, show, patch and delete
 * each, with 16 connections (undici Pool). Each step is its own result.
 */
export async function metadataScenarios(ctx: BenchContext): Promise<ScenarioResult[]> {
  const { api } = ctx;
  const n = ctx.opts.sizes.metadataImages;
  const pool = new Pool(api.origin, { connections: CONNECTIONS, pipelining: 1, keepAliveTimeout: 60_000 });
  const ids = new Array<string>(n);
  const names = Array.from({ length: n }, (_, i) => `bench-${ctx.runId}-meta-${i}`);
  const json = api.authHeaders({ 'content-type': 'application/json' });
  const results: ScenarioResult[] = [];
  const needCreated = () => {
    if (ids.filter(Boolean).length !== n) throw new Skip('the images were not all created');
  };
  try {
    results.push(await runScenario(ctx, 'metadata-create', `metadata: create ${n} images`, async (r) => {
      const tally = new Tally();
      const l = await load(n, r.deadline, async (i) => {
        const res = await pool.request({ method: 'POST', path: api.path('/v2/images'), headers: json, body: JSON.stringify({ name: names[i], disk_format: 'raw', container_format: 'bare' }) });
        const text = await res.body.text();
        tally.note(res.statusCode === 201, () => `${res.statusCode} ${text.slice(0, 200)}`);
        if (res.statusCode === 201) {
          const image = JSON.parse(text) as { id: string; name: string; status: string };
          tally.note(image.name === names[i] && image.status === 'queued', () => `created ${image.name} ${image.status}`);
          ids[i] = image.id;
        }
      });
      report(r, n, l, 'creates/s');
      tally.check(r, 'every create answered 201 with the image');
      r.equal('distinct ids', new Set(ids.filter(Boolean)).size, n);
    }));

    results.push(await runScenario(ctx, 'metadata-list', `metadata: list all by pages of ${PAGE}`, async (r) => {
      needCreated();
      const { ids: listed, pageMs, pages } = await listAll(api, pool, r.deadline);
      const mine = new Set(ids);
      const seen = new Set<string>();
      let dupes = 0;
      for (const id of listed) {
        if (seen.has(id)) dupes++;
        seen.add(id);
      }
      r.equal('duplicates across pages', dupes, 0);
      r.equal('created images listed', [...mine].filter((id) => seen.has(id)).length, n);
      const s = summarize(pageMs);
      r.figure(s.p99Ms, 'ms p99 per page');
      r.metric('pages', pages);
      r.metric('imagesListed', listed.length);
      r.metric('p50Ms', s.p50Ms);
      r.metric('p99Ms', s.p99Ms);
      r.metric('maxMs', s.maxMs);
      r.metric('totalSeconds', round(pageMs.reduce((a, b) => a + b, 0) / 1000, 3));
    }));

    results.push(await runScenario(ctx, 'metadata-show', `metadata: show ${n} images`, async (r) => {
      needCreated();
      const tally = new Tally();
      const l = await load(n, r.deadline, async (i) => {
        const res = await pool.request({ method: 'GET', path: api.path(`/v2/images/${ids[i]}`), headers: api.authHeaders() });
        const text = await res.body.text();
        const image = res.statusCode === 200 ? (JSON.parse(text) as { id: string; name: string }) : undefined;
        tally.note(image?.id === ids[i] && image.name === names[i], () => `${res.statusCode} ${text.slice(0, 200)}`);
      });
      report(r, n, l, 'shows/s');
      tally.check(r, 'every show answered 200 with the right image');
    }));

    results.push(await runScenario(ctx, 'metadata-patch', `metadata: patch ${n} images`, async (r) => {
      needCreated();
      const tally = new Tally();
      const headers = api.authHeaders({ 'content-type': IMAGE_PATCH });
      const l = await load(n, r.deadline, async (i) => {
        const body = JSON.stringify([{ op: 'replace', path: '/name', value: `${names[i]}-p` }, { op: 'add', path: '/bench_run', value: ctx.runId }]);
        const res = await pool.request({ method: 'PATCH', path: api.path(`/v2/images/${ids[i]}`), headers, body });
        const text = await res.body.text();
        const image = res.statusCode === 200 ? (JSON.parse(text) as Record<string, unknown>) : undefined;
        tally.note(image?.name === `${names[i]}-p` && image.bench_run === ctx.runId, () => `${res.statusCode} ${text.slice(0, 200)}`);
      });
      report(r, n, l, 'patches/s');
      tally.check(r, 'every patch answered 200 with the change');
      const sample = [0, Math.floor(n / 2), n - 1];
      for (const i of sample) {
        const image = await api.getImage(ids[i]);
        r.check(`patch of image ${i} persisted`, image?.name === `${names[i]}-p` && image.bench_run === ctx.runId, JSON.stringify(image).slice(0, 200));
      }
    }));

    results.push(await runScenario(ctx, 'metadata-delete', `metadata: delete ${n} images`, async (r) => {
      needCreated();
      const tally = new Tally();
      const l = await load(n, r.deadline, async (i) => {
        const res = await pool.request({ method: 'DELETE', path: api.path(`/v2/images/${ids[i]}`), headers: api.authHeaders() });
        const text = await res.body.text();
        tally.note(res.statusCode === 204, () => `${res.statusCode} ${text.slice(0, 200)}`);
      });
      report(r, n, l, 'deletes/s');
      tally.check(r, 'every delete answered 204');
      const { ids: left } = await listAll(api, pool, r.deadline);
      const mine = new Set(ids);
      r.equal('deleted images still listed', left.filter((id) => mine.has(id)).length, 0);
      for (const i of [0, n - 1]) r.equal(`GET of deleted image ${i}`, (await api.call('GET', `/v2/images/${ids[i]}`)).status, 404);
      ids.fill('');
    }));
  } finally {
    // Leave nothing behind when a step failed half-way.
    for (const id of ids) if (id) await api.deleteImage(id).catch(() => {});
    await pool.close();
  }
  return results;
}

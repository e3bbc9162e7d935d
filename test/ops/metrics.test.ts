/**
 * /metrics scraped by a real Prometheus (Debian's `prometheus` package,
 * started by this test on loopback with its own config and storage), and
 * PromQL showing the counters moved after an upload and a download.
 *
 * IMAGO_TEST_SKIP_PROMETHEUS=1 skips the Prometheus part on machines without it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestServer, createImage, uploadBytes, type TestServer } from '../support/server.js';
import { pattern } from '../support/bytes.js';
import { waitFor } from '../support/wait.js';
import { REPO } from '../recovery/child.js';

const PROMETHEUS = process.env.IMAGO_PROMETHEUS ?? '/usr/bin/prometheus';
const skipPrometheus = process.env.IMAGO_TEST_SKIP_PROMETHEUS === '1' ? 'IMAGO_TEST_SKIP_PROMETHEUS=1' : false;

async function freePort(): Promise<number> {
  const srv = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

/** One sample of a metric from the text format, 0 when the series does not exist yet. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

describe('metrics listener', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ config: { metrics: { enabled: true, port: 0 } } });
  });
  after(() => s.close());

  test('is off the API port, and exports requests, store bytes, in-flight gauges, database and loop metrics', async () => {
    assert.notEqual(new URL(s.metricsUrl!).port, new URL(s.url).port);
    // the public API port answers /metrics with its versions document (300), never with metrics
    const publicMetrics = await s.req('GET', '/metrics');
    assert.equal(publicMetrics.status, 300, 'the public API does not serve metrics');
    assert.ok(!(await publicMetrics.text()).includes('# HELP'), 'no metrics on the public API port');
    const image = await createImage(s);
    const data = pattern(1024 * 1024 + 5);
    assert.equal((await uploadBytes(s, image.id, data)).status, 204);
    const dl = await s.req('GET', `/v2/images/${image.id}/file`);
    assert.equal(Buffer.from(await dl.arrayBuffer()).length, data.length);
    await new Promise((r) => setTimeout(r, 50)); // the download's sample is taken when its connection is done

    const res = await fetch(`${s.metricsUrl}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    assert.equal(sample(text, 'imago_http_requests_total{method="PUT",route="/v2/images/:id/file",status="204"}'), 1);
    assert.equal(sample(text, 'imago_http_request_duration_seconds_count{method="PUT",route="/v2/images/:id/file",status="204"}'), 1);
    assert.equal(sample(text, 'imago_store_bytes_written_total{store="local"}'), data.length);
    assert.equal(sample(text, 'imago_store_bytes_read_total{store="local"}'), data.length);
    assert.equal(sample(text, 'imago_http_sent_bytes_total{route="/v2/images/:id/file"}'), data.length);
    assert.equal(sample(text, 'imago_http_received_bytes_total{route="/v2/images/:id/file"}'), data.length);
    assert.equal(sample(text, 'imago_store_operation_duration_seconds_count{store="local",operation="put"}'), 1);
    assert.equal(sample(text, 'imago_uploads_in_flight'), 0);
    assert.equal(sample(text, 'imago_imports_in_flight'), 0);
    assert.ok(sample(text, 'imago_db_query_duration_seconds_count{outcome="ok"}') > 0);
    assert.match(text, /^imago_event_loop_utilization_ratio \d/m);
    assert.match(text, /^imago_hash_worker_utilization_ratio\{worker="0"\} \d/m);
    assert.match(text, /^nodejs_heap_size_used_bytes \d/m);
  });

  test('the Grafana dashboard in docs/ uses only metrics Imago exports', async () => {
    const dashboard = JSON.parse(readFileSync(path.join(REPO, 'docs/grafana-dashboard.json'), 'utf8')) as { panels: { targets: { expr: string }[] }[] };
    const exported = new Set([...(await (await fetch(`${s.metricsUrl}/metrics`)).text()).matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    const used = new Set(dashboard.panels.flatMap((p) => p.targets.flatMap((t) => [...t.expr.matchAll(/\b((?:imago|nodejs|process)_[a-z_]+?)(?:_bucket|_count|_sum)?\b(?=\{|\[|\))/g)].map((m) => m[1]))));
    assert.ok(used.size >= 10, `the dashboard uses ${used.size} metrics`);
    for (const name of used) assert.ok(exported.has(name), `dashboard metric ${name} is exported`);
  });

  test('metrics.allow refuses addresses outside the list', async () => {
    const t = await startTestServer({ config: { metrics: { enabled: true, port: 0, allow: ['10.1.2.0/24'] } } });
    try {
      assert.equal((await fetch(`${t.metricsUrl}/metrics`)).status, 403);
    } finally {
      await t.close();
    }
  });
});

describe('Prometheus scraping Imago', { skip: skipPrometheus || (!existsSync(PROMETHEUS) && `no ${PROMETHEUS} (Debian package prometheus)`) }, () => {
  let s: TestServer;
  let prom: ChildProcess;
  let promUrl: string;
  let dir: string;
  const promLog: string[] = [];

  before(async () => {
    s = await startTestServer({ config: { metrics: { enabled: true, port: 0 } } });
    dir = mkdtempSync(path.join(tmpdir(), 'imago-prometheus-'));
    const target = new URL(s.metricsUrl!).host;
    writeFileSync(
      path.join(dir, 'prometheus.yml'),
      `global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: imago\n    static_configs:\n      - targets: ['${target}']\n`,
    );
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prom = spawn(PROMETHEUS, [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    prom.stdout!.on('data', (d) => promLog.push(String(d)));
    prom.stderr!.on('data', (d) => promLog.push(String(d)));
    await waitFor('Prometheus to be ready', async () => (await fetch(`${promUrl}/-/ready`).catch(() => undefined))?.status === 200, 30_000);
  });
  after(async () => {
    prom?.kill('SIGTERM');
    await s?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function query(promql: string): Promise<number | undefined> {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as { status: string; data: { result: { value: [number, string] }[] } };
    assert.equal(body.status, 'success', JSON.stringify(body));
    return body.data.result.length ? Number(body.data.result[0].value[1]) : undefined;
  }

  test('a PromQL query shows the upload counters moved', async () => {
    await waitFor('the first scrape', async () => (await query('up{job="imago"}')) === 1, 20_000).catch((err) => {
      throw new Error(`${err.message}\n${promLog.join('')}`);
    });
    assert.equal(await query('imago_store_bytes_written_total{store="local"}'), undefined, 'nothing uploaded yet');

    const image = await createImage(s);
    const data = pattern(2 * 1024 * 1024 + 3);
    assert.equal((await uploadBytes(s, image.id, data)).status, 204);

    const written = await waitFor('Prometheus to see the upload', async () => {
      const v = await query('sum(imago_store_bytes_written_total{store="local"})');
      return v === data.length ? v : undefined;
    }, 20_000);
    assert.equal(written, data.length);
    assert.equal(await query('sum(imago_http_requests_total{job="imago",route="/v2/images/:id/file",method="PUT",status="204"})'), 1);
    assert.ok((await query('sum(imago_http_request_duration_seconds_count{route="/v2/images/:id/file"})'))! >= 1);
  });
});

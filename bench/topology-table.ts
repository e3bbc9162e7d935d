#!/usr/bin/env node
/**
 * The store × topology table of docs/benchmarks.md from bench results files:
 * one column per run (filesystem or S3, one node or N behind haproxy), each
 * figure with its ratio to a floor measured in the same run — the hash rate
 * (min(md5, sha512) on one core), the trivial Node server, and for S3 the SDK
 * alone on the same bytes.
 *
 * Usage: node dist/bench/topology-table.js bench/results/A.json bench/results/B.json ...
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { References } from './references.js';
import type { ScenarioResult } from './scenario.js';
import { table } from './report.js';

interface Results {
  startedAt: string;
  store: string;
  nodes?: number;
  database?: string;
  machine: { loadAtStart?: number[] };
  references?: References;
  scenarios: ScenarioResult[];
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: topology-table <results.json>...');
  process.exit(2);
}
const runs = files.map((f) => ({ file: path.basename(f), r: JSON.parse(readFileSync(f, 'utf8')) as Results }));

const fmt = (n: number | undefined, digits = 0) => (n === undefined || !Number.isFinite(n) ? '' : n.toFixed(digits));
const ratio = (value: number | undefined, floor: number | undefined) => (value && floor ? ` (${(value / floor).toFixed(2)}×)` : '');

function scenario(r: Results, pred: (s: ScenarioResult) => boolean): ScenarioResult | undefined {
  return r.scenarios.find((s) => pred(s) && s.status === 'ok');
}
const byId = (r: Results, id: string) => scenario(r, (s) => s.id === id);
const metric = (s: ScenarioResult | undefined, k: string) => (typeof s?.metrics[k] === 'number' ? (s.metrics[k] as number) : undefined);

type Row = [string, (r: Results) => string];
const hashFloor = (r: Results) => (r.references?.md5 && r.references.sha512 ? Math.min(r.references.md5, r.references.sha512) : undefined);

const rows: Row[] = [
  ['load average at start', (r) => fmt(r.machine.loadAtStart?.[0], 1)],
  ['hash floor: min(md5, sha512), one core', (r) => `${fmt(hashFloor(r))} MiB/s`],
  ['trivial server: curl PUT / GET', (r) => `${fmt(r.references?.httpPut)} / ${fmt(r.references?.httpGet)} MiB/s`],
  ['S3: the SDK alone, multipart put / GetObject / ranged GetObjects', (r) => (r.references?.s3SdkPut ? `${fmt(r.references.s3SdkPut)} / ${fmt(r.references.s3SdkGet)} MiB/s / ${fmt(r.references.s3SdkRanges)} per s` : '')],
  ...(['upload-', 'download-'] as const).flatMap((prefix): Row[] => [0, 1].map((i): Row => [
    `${prefix === 'upload-' ? 'upload' : 'download'} (${i === 0 ? 'small' : 'large'} file): MiB/s (× ${prefix === 'upload-' ? 'hash floor; × SDK put' : 'trivial GET; × GetObject'}), CPU-s/GiB`,
    (r) => {
      const s = r.scenarios.filter((x) => x.id.startsWith(prefix) && x.status === 'ok')[i];
      const v = s?.figure?.value;
      if (v === undefined) return '';
      const refs = r.references;
      const a = prefix === 'upload-' ? ratio(v, hashFloor(r)) : ratio(v, Math.max(refs?.httpGet ?? 0, metric(s, 'ceilingMiBps') ?? 0) || undefined);
      const b = prefix === 'upload-' ? ratio(v, refs?.s3SdkPut) : ratio(v, refs?.s3SdkGet);
      return `${s.title.replace(/^(upload|download) /, '')}: ${fmt(v)}${a}${b ? `${b.replace(' (', '; ').replace(')', '')}` : ''}, ${fmt(metric(s, 'serverCpuSecondsPerGiB'), 1)}`;
    },
  ])),
  ['ranged reads of 1 MiB: per s (× trivial server next to it; × ranged GetObjects)', (r) => {
    const s = byId(r, 'ranges');
    const v = s?.figure?.value;
    return v === undefined ? '' : `${fmt(v)}${ratio(v, metric(s, 'ceilingPerSec'))}${r.references?.s3SdkRanges ? `; ${(v / r.references.s3SdkRanges).toFixed(2)}×` : ''}`;
  }],
  ['ranged reads: server CPU ms per range (all nodes)', (r) => fmt(metric(byId(r, 'ranges'), 'serverCpuMsPerRange'), 2)],
  ['8 concurrent uploads: aggregate MiB/s (× hash floor), CPU-s/GiB', (r) => {
    const s = byId(r, 'concurrent-upload');
    return s?.figure ? `${fmt(s.figure.value)}${ratio(s.figure.value, hashFloor(r))}, ${fmt(metric(s, 'serverCpuSecondsPerGiB'), 1)}` : '';
  }],
  ['8 concurrent downloads: aggregate MiB/s', (r) => fmt(byId(r, 'concurrent-download')?.figure?.value)],
  ['metadata create / show / patch / delete per s', (r) => ['create', 'show', 'patch', 'delete'].map((k) => fmt(byId(r, `metadata-${k}`)?.figure?.value)).join(' / ')],
  ['metadata: server CPU ms per create / show / patch / delete (all nodes)', (r) => ['create', 'show', 'patch', 'delete'].map((k) => {
    const s = byId(r, `metadata-${k}`);
    const ops = metric(s, 'operations');
    return s?.serverCpu && ops ? fmt((s.serverCpu.processSeconds * 1000) / ops, 2) : '';
  }).join(' / ')],
  ['list page of 1000: p99 ms', (r) => fmt(byId(r, 'metadata-list')?.figure?.value, 1)],
  ['peak RSS per node, MB', (r) => fmt(Math.max(0, ...r.scenarios.filter((s) => s.rss).map((s) => s.rss!.peakMB)))],
  ['haproxy CPU-s, whole run', (r) => {
    const t = r.scenarios.reduce((a, s) => a + (typeof s.metrics.balancerCpuSeconds === 'number' ? s.metrics.balancerCpuSeconds : 0), 0);
    return t ? fmt(t, 1) : '';
  }],
];

const head = ['', ...runs.map(({ r, file }) => `${r.store}, ${r.nodes && r.nodes > 1 ? `${r.nodes} nodes + haproxy` : '1 node'}${r.database ? ` (${r.database})` : ''} [${file.slice(11, 19)}]`)];
console.log(table(head, rows.map(([label, f]) => [label, ...runs.map(({ r }) => f(r))])));

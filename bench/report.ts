import type { References } from './references.js';
import type { ScenarioResult } from './scenario.js';
import type { TargetRow } from './targets.js';

/** A Markdown table, aligned for the terminal and pasteable into docs/benchmarks.md. */
export function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.slice(1).map(line)].join('\n');
}

const DETAIL_KEYS = ['runsMiBps', 'ceilingMiBps', 'ceilingPerSec', 'opsPerSecPerFreeCore', 'seconds', 'p50Ms', 'p99Ms', 'p50MsDuring', 'p99MsIdle', 'slowestMiBps', 'stageSeconds', 'importSeconds', 'pages', 'uploadMiBps', 'rangesPerSecWithChecks'];

function details(r: ScenarioResult): string {
  if (r.note) return r.note;
  return DETAIL_KEYS.filter((k) => r.metrics[k] !== undefined).map((k) => `${k}=${r.metrics[k]}`).join(' ');
}

export function scenarioTable(results: ScenarioResult[]): string {
  return table(
    ['scenario', 'result', 'figure', 'details', 'peak RSS', 'server CPU s (main)', 'server waited for CPU s', 'checks', 'load'],
    results.map((r) => [
      r.title,
      r.status,
      r.figure ? `${r.figure.value} ${r.figure.unit}` : '',
      details(r),
      r.rss ? `${r.rss.peakMB} MB` : 'n/a',
      r.serverCpu ? `${r.serverCpu.processSeconds} (${r.serverCpu.mainThreadSeconds})` : 'n/a',
      r.serverCpu?.runQueueWaitSeconds ?? 'n/a',
      `${r.checks.filter((c) => c.ok).length}/${r.checks.length}`,
      `${r.load[0].toFixed(1)}→${r.load[1].toFixed(1)}`,
    ]),
  );
}

/**
 * Server CPU by kind of thread for every scenario that measured it, and for
 * uploads the ratio of CPU per GiB to the floor: the hash floor (md5 +
 * sha512 of the same bytes on one core, from the references of the same run)
 * plus the kernel's cost of writing the same bytes into the same store
 * directory, measured just before the scenario (bench/write-floor.ts).
 */
export function threadTable(results: ScenarioResult[], refs?: References): string {
  const hashFloor = refs?.md5 && refs.sha512 ? 1024 / refs.md5 + 1024 / refs.sha512 : undefined;
  const isUpload = (r: ScenarioResult) => r.id.startsWith('upload') || r.id === 'concurrent-upload' || r.id === 'import';
  const balanced = results.some((r) => r.metrics.balancerCpuSeconds !== undefined);
  const rows = results.filter((r) => r.serverCpuByKind).map((r) => {
    const k = r.serverCpuByKind!;
    const perGiB = r.metrics.serverCpuSecondsPerGiB;
    const write = r.metrics.writeFloorCpuSecondsPerGiB;
    const upload = hashFloor && typeof perGiB === 'number' && isUpload(r);
    const toHash = upload ? `${(perGiB / hashFloor).toFixed(2)}×` : '';
    const toFloor = upload && typeof write === 'number' ? `${(perGiB / (hashFloor + write)).toFixed(2)}×` : '';
    const row: (string | number)[] = [r.title, k.eventLoop, k.hashWorkers, k.v8Platform, k.libuvAndOther, typeof perGiB === 'number' ? perGiB : '', toHash, typeof write === 'number' ? write : '', toFloor];
    if (balanced) row.push(r.metrics.balancerCpuSeconds ?? '');
    return row;
  });
  const head = ['scenario', 'event loop s', 'hash workers s', 'V8 platform (GC helpers) s', 'libuv pool + other s', 'CPU-s per GiB', 'to the hash floor', 'write floor CPU-s/GiB', 'to hash + write floor'];
  if (balanced) head.push('haproxy s (not in the nodes\' figures)');
  return table(head, rows) + (hashFloor ? `
hash floor: ${hashFloor.toFixed(2)} CPU-s per GiB (md5 + sha512 on one core, this run's references); write floor: dd bs=1M conv=fsync of the same bytes into the store directory, just before the scenario (bench/write-floor.ts)` : '');
}

export function referenceTable(refs: References): string {
  const names: [keyof References, string][] = [
    ['md5', 'node md5, one core'],
    ['sha512', 'node sha512, one core'],
    ['hashPool', "Imago's HashPool (md5 + sha512 on 2 workers), no HTTP"],
    ['ddFsync', 'dd bs=1M conv=fsync'],
    ['cp', 'cp'],
    ['cpFsync', 'cp + sync of the copy'],
    ['httpPut', 'curl PUT → trivial Node sink'],
    ['httpGet', 'curl GET ← trivial Node file server (1 MiB reads)'],
    ['httpRanges', 'random 1 MiB ranges ← trivial Node file server, one curl connection'],
  ];
  return table(['reference (best run)', 'figure'], names.filter(([k]) => refs[k] !== undefined).map(([k, label]) => [label, `${refs[k]} ${k === 'httpRanges' ? 'ranges/s' : 'MiB/s'}`]));
}

export function targetTable(rows: TargetRow[]): string {
  return table(['target', 'goal', 'measured', 'ratio', 'verdict', 'context'], rows.map((t) => [t.target, t.goal, t.measured, t.ratio ?? '', t.verdict, t.context ?? '']));
}

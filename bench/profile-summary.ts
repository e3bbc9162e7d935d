/**
 * Summarizes V8 .cpuprofile files (node --cpu-prof): where a thread spent
 * its time, by function (self time) and by file or package. With a bench
 * results file, the profile is cut by scenario (both use CLOCK_MONOTONIC).
 * Usage: node dist/bench/profile-summary.js <file.cpuprofile>... [--results bench/results/X.json] [--top N]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}
interface Window {
  title: string;
  from: number;
  to: number;
}

const args = process.argv.slice(2);
let top = 15;
let resultsFile: string | undefined;
const files: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--top') top = Number(args[++i]);
  else if (args[i] === '--results') resultsFile = args[++i];
  else files.push(args[i]);
}
if (files.length === 0) {
  console.error('usage: profile-summary <file.cpuprofile>... [--results results.json] [--top N]');
  process.exit(2);
}
const windows: Window[] = resultsFile
  ? (JSON.parse(readFileSync(resultsFile, 'utf8')).scenarios as { title: string; monotonicUs?: [number, number] }[])
      .filter((s) => s.monotonicUs)
      .map((s) => ({ title: s.title, from: s.monotonicUs![0], to: s.monotonicUs![1] }))
  : [];

const shortUrl = (url: string) => url.replace(/^file:\/\//, '').replace(/.*\/node_modules\//, '~/').replace(/.*\/dist\//, 'dist/');
const pct = (us: number, total: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;

function print(title: string, m: Map<string, number>, total: number): void {
  console.log(`  ${title}`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(us, total)} ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`);
}

function summarize(p: Profile, byId: Map<number, ProfileNode>, title: string, from: number, to: number): void {
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  let t = p.startTime;
  let total = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (t < from || t > to) return;
    total += dt;
    const f = byId.get(id)!.callFrame;
    const fn = `${f.functionName || '(anonymous)'}${f.url ? ` ${shortUrl(f.url)}:${f.lineNumber + 1}` : ''}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + dt);
    const where = f.url ? shortUrl(f.url).replace(/^(~\/(@[^/]+\/)?[^/]+)\/.*$/, '$1') : `(${f.functionName || 'native'})`;
    byFile.set(where, (byFile.get(where) ?? 0) + dt);
  });
  if (total === 0) return;
  const idle = byFunction.get('(idle)') ?? 0;
  console.log(`\n== ${title}: ${(total / 1e6).toFixed(1)} s, busy ${(100 - (100 * idle) / total).toFixed(0)}%`);
  print('self time by function', byFunction, total);
  print('self time by file or package', byFile, total);
}

for (const file of files) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  console.log(`\n# ${file}`);
  if (windows.length === 0) summarize(p, byId, 'whole profile', p.startTime, p.endTime);
  for (const w of windows) summarize(p, byId, w.title, w.from, w.to);
}

/**
 * Summarizes a V8 .cpuprofile (node --cpu-prof): where the server's main
 * thread spent its time, by function (self time) and by file.
 * Usage: node dist/bench/profile-summary.js <file.cpuprofile>... [top]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

const args = process.argv.slice(2);
const top = args.length > 1 && /^\d+$/.test(args[args.length - 1]) ? Number(args.pop()) : 25;
if (args.length === 0) {
  console.error('usage: profile-summary <file.cpuprofile>... [top]');
  process.exit(2);
}
for (const file of args) summarize(file);

function summarize(file: string): void {
const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number };
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map<number, number>();
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const total = profile.endTime - profile.startTime;

const shortUrl = (url: string) => url.replace(/^file:\/\//, '').replace(/.*\/node_modules\//, '~/').replace(/.*\/dist\//, 'dist/');
const byFunction = new Map<string, number>();
const byFile = new Map<string, number>();
for (const [id, us] of selfUs) {
  const f = byId.get(id)!.callFrame;
  const fn = `${f.functionName || '(anonymous)'} ${f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : ''}`.trim();
  byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
  const where = f.url ? shortUrl(f.url).replace(/^(~\/[^/]+(\/[^/]+)?)\/.*$/, '$1') : `(${f.functionName || 'native'})`;
  byFile.set(where, (byFile.get(where) ?? 0) + us);
}
const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
const print = (title: string, m: Map<string, number>) => {
  console.log(`\n${title}`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${(us / 1000).toFixed(0).padStart(8)} ms  ${k}`);
};
console.log(`profile ${file}: ${(total / 1e6).toFixed(1)} s of main-thread wall time`);
print('self time by function', byFunction);
print('self time by file or package', byFile);
}

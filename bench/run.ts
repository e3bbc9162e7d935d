#!/usr/bin/env node
/**
 * `npm run bench`: starts Imago from the build (or uses --target), runs the
 * scenarios of docs/benchmarks.md, checks every answer, prints the tables
 * and writes bench/results/<timestamp>.json. Exit 1 when a check failed,
 * 2 on bad usage or an unusable machine.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Api, BenchFailure, type Target } from './api.js';
import { makeDataFile, removeDataFile, type DataFile } from './files.js';
import { startFlags, startImago, type LocalImago } from './imago-process.js';
import { clusterSkipReason, startCluster, type BenchCluster } from './cluster.js';
import { keystoneToken } from './keystone.js';
import { measureWriteFloor } from './write-floor.js';
import { describeMachine } from './machine.js';
import { parseOptions, USAGE, UsageError, type Options } from './options.js';
import { measureReferences, startRefServer, type References } from './references.js';
import { referenceTable, scenarioTable, targetTable, threadTable } from './report.js';
import { runScenario, Skip, type BenchContext, type ScenarioResult } from './scenario.js';
import { concurrentDownloads, concurrentUploads } from './scenarios/concurrent.js';
import { stageAndImport } from './scenarios/import.js';
import { metadataScenarios } from './scenarios/metadata.js';
import { metadataDuringUpload } from './scenarios/busy.js';
import { RANGE_SEED, rangedReads } from './scenarios/ranges.js';
import { timedDownload, timedUpload, uploadWithCurl } from './scenarios/transfer.js';
import { formatBytes, GiB, seededRandom } from './stats.js';
import { evaluateTargets } from './targets.js';
import { measureS3References, S3_REFERENCE_RANGES, startBenchS3, type BenchS3 } from './s3.js';
import { randomRanges } from './curl-ranges.js';
import { chunkedUploadsMemory } from './scenarios/chunked.js';
import { cacheScenario } from './scenarios/cache.js';
import { resumableUploads } from './scenarios/resumable.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function diskNeeded(o: Options): number {
  const s = o.sizes;
  const files = new Set([...s.single, s.busyUpload, s.concurrent.size]);
  const sourceFiles = [...files].reduce((a, b) => a + b, 0);
  const stored = Math.max(s.single[0] + s.single[s.single.length - 1], s.busyUpload, s.concurrent.count * s.concurrent.size);
  return sourceFiles + stored + GiB;
}

function isLoopback(url: string): boolean {
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\./.test(host);
}

/** The server(s) under test: a --target, one local Imago, or (--postgres / --nodes) local nodes sharing PostgreSQL, behind haproxy when several. */
interface Opened {
  target: Target;
  local?: LocalImago;
  cluster?: BenchCluster;
  /** what the results file records as the server's configuration */
  config?: Record<string, unknown>;
  /** the filesystem store's directory (shared by the nodes of a cluster): where upload scenarios measure the write floor */
  storeDir?: string;
  describe: string;
  stop(): Promise<void>;
}

async function openTarget(o: Options, workDir: string, profDir: string, s3?: BenchS3): Promise<Opened> {
  if (o.target) {
    const token = o.token ?? (await keystoneToken(o.keystone!));
    return { target: { baseUrl: o.target, token, sameMachine: isLoopback(o.target), pid: isLoopback(o.target) ? o.serverPid : undefined }, describe: `target ${o.target}`, stop: async () => {} };
  }
  const nodeArgs = [...(o.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []), ...o.serverNodeArgs];
  if (o.postgres) {
    const why = await clusterSkipReason(o.nodes);
    if (why) throw new Error(`--nodes/--postgres cannot run here: ${why}`);
    const cluster = await startCluster({ repoRoot, workDir, count: o.nodes, nodeArgs, s3 });
    const nodes = cluster.nodes.map((n) => `${n.target.baseUrl} (pid ${n.target.pid}, log ${n.logFile})`).join('; ');
    return {
      target: cluster.target,
      cluster,
      config: cluster.config,
      storeDir: cluster.storeDir,
      describe: cluster.haproxy ? `haproxy ${cluster.target.baseUrl} (pid ${cluster.haproxy.pid}) → ${nodes}` : `Imago on PostgreSQL ${nodes}`,
      stop: async () => {
        const codes = await cluster.stop();
        if (codes.some((c) => c !== 0)) console.error(`  note: the nodes exited with ${codes.join(', ')}; see their logs`);
      },
    };
  }
  const local = await startImago({ repoRoot, workDir, nodeArgs, extraConfig: s3?.serverConfig });
  return {
    target: local.target,
    local,
    config: local.config,
    storeDir: o.store === 'filesystem' ? path.join(local.dataDir, 'images') : undefined,
    describe: `Imago ${local.target.baseUrl} (pid ${local.target.pid}, log ${local.logFile})`,
    stop: async () => {
      const code = await local.stop();
      if (code !== 0) console.error(`  note: Imago exited with ${code}; see ${local.logFile}`);
    },
  };
}

/** Server CPU per GiB moved, for a scenario whose whole window moved `bytes` (the thread table's ratio to the hash floor). */
function withCpuPerGiB(r: ScenarioResult, bytes: number): ScenarioResult {
  if (r.serverCpu && bytes > 0) r.metrics.serverCpuSecondsPerGiB = Math.round((r.serverCpu.processSeconds / (bytes / GiB)) * 100) / 100;
  return r;
}

/** Generated data files by size, made on first use and removed as soon as no later scenario needs them. */
class Files {
  private readonly made = new Map<number, DataFile>();
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }
  get(size: number): DataFile {
    let f = this.made.get(size);
    if (!f) {
      process.stdout.write(`  (generating ${formatBytes(size)} of data) `);
      const t0 = performance.now();
      f = makeDataFile(this.dir, `data-${size}.bin`, size, String(size));
      process.stdout.write(`${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
      this.made.set(size, f);
    }
    return f;
  }
  drop(...sizes: number[]): void {
    for (const s of sizes) {
      removeDataFile(this.made.get(s));
      this.made.delete(s);
    }
  }
}

async function scenarios(ctx: BenchContext, files: Files): Promise<{ results: ScenarioResult[]; refs?: References }> {
  const { api, opts } = ctx;
  const { sizes, only } = opts;
  const results: ScenarioResult[] = [];
  let refs: References | undefined;
  const small = sizes.single[0];
  const name = (what: string) => `bench-${ctx.runId}-${what}`;

  if (only.has('references')) {
    const file = ctx.target.sameMachine ? files.get(small) : undefined;
    results.push(await runScenario(ctx, 'references', `references (${formatBytes(small)})`, async (r) => {
      if (!file) throw new Skip('the target runs on another machine; local ceilings would not describe it');
      refs = await measureReferences(r, file, ctx.workDir, { ranges: Math.min(1000, Math.ceil(sizes.ranges / 4)), rangeSize: sizes.rangeSize, rangeSeed: RANGE_SEED, repeats: sizes.repeats }, ctx.ref!);
    }));
    const s3 = ctx.s3;
    if (s3 && file) {
      results.push(await runScenario(ctx, 's3-references', `S3 references: the SDK alone (${formatBytes(small)})`, async (r) => {
        const ranges = randomRanges(seededRandom(RANGE_SEED + 1), S3_REFERENCE_RANGES, file.size, sizes.rangeSize);
        const got = await measureS3References(r, s3, file, sizes.repeats, ranges);
        if (refs) Object.assign(refs, { s3SdkPut: got.sdkPut, s3SdkGet: got.sdkGet, s3SdkRanges: got.sdkRanges });
      }));
    }
  }

  let smallImage: string | undefined;
  if (only.has('transfer')) {
    for (const size of sizes.single) {
      const file = files.get(size);
      const label = formatBytes(size);
      let id: string | undefined;
      results.push(await runScenario(ctx, `upload-${label.replace(' ', '')}`, `upload ${label}`, async (r) => {
        if (ctx.storeDir) await measureWriteFloor(r, file, sizes.repeats, ctx.storeDir);
        id = await timedUpload(r, api, file, name(`upload-${size}`), sizes.repeats);
      }));
      if (id) {
        const imageId = id;
        results.push(await runScenario(ctx, `download-${label.replace(' ', '')}`, `download ${label}`, (r) => timedDownload(r, api, imageId, file, sizes.repeats, ctx.ref)));
      }
      if (size === small) smallImage = id;
      else {
        if (id) await api.deleteImage(id);
        if (size !== sizes.busyUpload) files.drop(size);
      }
    }
  }

  if (only.has('ranges')) {
    const file = files.get(small);
    results.push(await runScenario(ctx, 'ranges', `ranged reads (${sizes.ranges} × ${formatBytes(sizes.rangeSize)} of ${formatBytes(small)})`, async (r) => {
      let id: string | undefined = smallImage;
      if (!id) {
        const created: string = (await api.createImage(name('ranges'))).id;
        id = smallImage = created;
        const put = await uploadWithCurl(api, id, file, r.secondsLeft());
        if (put.httpCode !== 204) throw new BenchFailure(`setup upload answered ${put.httpCode}`);
      }
      await rangedReads(r, api, id, file, { count: sizes.ranges, rangeSize: sizes.rangeSize, verifyEvery: sizes.rangeVerifyEvery }, ctx.workDir, ctx.ref);
    }));
  }
  if (smallImage) await api.deleteImage(smallImage);

  if (only.has('import')) {
    const file = files.get(small);
    results.push(withCpuPerGiB(await runScenario(ctx, 'import', `stage + glance-direct import ${formatBytes(small)}`, async (r) => {
      if (ctx.storeDir) await measureWriteFloor(r, file, 1, ctx.storeDir);
      await stageAndImport(r, api, file, name('import'));
    }), small));
  }
  if (only.has('cache')) {
    const file = files.get(small);
    const { count, size } = sizes.concurrent;
    results.push(await runScenario(ctx, 'cache', `image cache: hit vs filesystem store (${formatBytes(small)}); ${count} concurrent downloads of an uncached ${formatBytes(size)}`, (r) =>
      cacheScenario(r, ctx, repoRoot, file, files.get(size), count, sizes.repeats)));
  }
  if (only.has('resumable')) {
    const file = files.get(small);
    results.push(await runScenario(ctx, 'resumable', `resumable upload (tus) vs PUT, ${formatBytes(small)}; a drop at 40 % resumed`, (r) => resumableUploads(r, api, file, name('resumable'), sizes.repeats)));
  }
  if (small !== sizes.busyUpload) files.drop(small);

  if (only.has('metadata-during-upload')) {
    const file = files.get(sizes.busyUpload);
    results.push(await runScenario(ctx, 'metadata-during-upload', `metadata latency during a ${formatBytes(sizes.busyUpload)} upload`, (r) => metadataDuringUpload(r, api, file, name('busy'))));
  }
  files.drop(sizes.busyUpload);

  if (only.has('concurrent')) {
    const { count, size } = sizes.concurrent;
    const file = files.get(size);
    let ids: string[] = [];
    results.push(withCpuPerGiB(await runScenario(ctx, 'concurrent-upload', `${count} concurrent uploads of ${formatBytes(size)}`, async (r) => {
      if (ctx.storeDir) await measureWriteFloor(r, file, count, ctx.storeDir);
      ids = await concurrentUploads(r, api, file, count, name('concurrent'));
    }), count * size));
    if (ids.length) results.push(await runScenario(ctx, 'concurrent-download', `${count} concurrent downloads of ${formatBytes(size)}`, (r) => concurrentDownloads(r, api, ids, file)));
    for (const id of ids) await api.deleteImage(id);
    files.drop(size);
  }

  if (only.has('concurrent') && ctx.s3) {
    const { count, size } = sizes.concurrent;
    const file = files.get(size);
    results.push(await runScenario(ctx, 's3-chunked-uploads', `${count} chunked uploads of ${formatBytes(size)} to S3 (memory)`, (r) => chunkedUploadsMemory(r, api, file, count, name('chunked'))));
    files.drop(size);
  }

  if (only.has('metadata')) results.push(...(await metadataScenarios(ctx)));
  return { results, refs };
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    if (err.message) console.error(`bench: ${err.message}\n`);
    console.error(USAGE);
    return 2;
  }
  try {
    execFileSync('curl', ['--version'], { stdio: 'ignore' });
  } catch {
    console.error('bench: curl is needed (the transfers use it as users would)');
    return 2;
  }
  const workDir = mkdtempSync(path.join(opts.workDir ?? tmpdir(), 'imago-bench-'));
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const resultsDir = path.join(repoRoot, 'bench', 'results');
  const profDir = path.join(resultsDir, `${stamp}-cpuprofile`);
  const cleanup = () => {
    if (!opts.keep) rmSync(workDir, { recursive: true, force: true });
  };
  const fs = statfsSync(workDir);
  const free = fs.bavail * fs.bsize;
  const needed = diskNeeded(opts);
  if (free < needed) {
    console.error(`bench: ${workDir} has ${formatBytes(free)} free, the ${opts.quick ? 'quick' : 'full'} run needs about ${formatBytes(needed)} (use --quick or --work-dir)`);
    cleanup();
    return 2;
  }
  const machine = describeMachine(workDir, repoRoot);
  console.log(`Imago bench (${opts.quick ? 'quick' : 'full'}) on ${machine.nproc} × ${machine.cpuModel}, ${machine.memoryGiB} GiB; work dir ${workDir}`);
  if (Number((machine.loadAtStart as number[])[0]) > 0.5) console.log(`  note: load average is ${(machine.loadAtStart as number[])[0].toFixed(2)} at start: other work will skew the figures`);

  let opened: Opened | undefined;
  let s3: BenchS3 | undefined;
  let results: ScenarioResult[] = [];
  let refs: References | undefined;
  let fatal: string | undefined;
  const started = new Date();
  try {
    if (opts.store === 's3') {
      s3 = await startBenchS3();
      console.log(`  S3: Swift s3api at ${s3.swift.endpoint}, bucket ${s3.bucket}`);
    }
    opened = await openTarget(opts, workDir, profDir, s3);
    console.log(`  ${opened.describe}`);
    const api = new Api(opened.target);
    const filesDir = path.join(workDir, 'files');
    const files = new Files(filesDir);
    const ref = opened.target.sameMachine ? await startRefServer(filesDir) : undefined;
    const ctx: BenchContext = { api, target: opened.target, opts, workDir, runId: stamp.slice(0, 19), ref, s3, storeDir: opened.storeDir, balancerPid: opened.cluster?.haproxy?.pid };
    try {
      ({ results, refs } = await scenarios(ctx, files));
    } finally {
      ref?.stop();
      const left = await api.deleteLeftovers();
      if (left) console.log(`  (deleted ${left} image(s) left by failed scenarios)`);
      await api.close();
    }
  } catch (err) {
    fatal = (err as Error).message;
    console.error(`bench: ${fatal}`);
  } finally {
    await opened?.stop();
    await s3?.stop();
  }

  const targets = evaluateTargets(results, refs, { metadataImages: opts.sizes.metadataImages, s3Bound: s3 ? { count: opts.sizes.concurrent.count } : undefined });
  console.log('\n' + scenarioTable(results));
  console.log('\n' + threadTable(results, refs));
  if (refs) console.log('\n' + referenceTable(refs));
  console.log('\n' + targetTable(targets));
  const failed = results.filter((r) => r.status === 'failed');
  const ok = !fatal && failed.length === 0;
  mkdirSync(resultsDir, { recursive: true });
  const out = path.join(resultsDir, `${stamp}.json`);
  writeFileSync(
    out,
    JSON.stringify(
      {
        startedAt: started.toISOString(),
        finishedAt: new Date().toISOString(),
        mode: opts.quick ? 'quick' : 'full',
        store: opts.store,
        target: opts.target ?? `local Imago (node ${[...startFlags(repoRoot), 'dist/src/main.js'].join(' ')})`,
        nodes: opts.nodes,
        database: opts.postgres ? 'postgres' : opts.target ? undefined : 'sqlite',
        serverConfig: opened?.config,
        sizes: opts.sizes,
        scenariosRequested: [...opts.only],
        machine,
        references: refs,
        scenarios: results,
        targets,
        ok,
        fatal,
      },
      null,
      2,
    ) + '\n',
  );
  console.log(`\n${targets.filter((t) => t.verdict === 'PASS').length} PASS, ${targets.filter((t) => t.verdict === 'MISS').length} MISS, ${targets.filter((t) => t.verdict === 'FAIL').length} FAIL; results in ${path.relative(process.cwd(), out)}`);
  if (opts.cpuProf && opened && !opts.target) console.log(`server CPU profile in ${path.relative(process.cwd(), profDir)} (summarize: node dist/bench/profile-summary.js <file>)`);
  if (!ok) console.log(`FAILED: ${fatal ?? failed.map((r) => `${r.title}: ${r.note ?? r.checks.filter((c) => !c.ok).map((c) => `${c.name} (${c.detail})`).join(', ')}`).join('; ')}`);
  if (opts.keep) console.log(`work dir kept: ${workDir}`);
  cleanup();
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error('bench: crashed:', err);
    process.exit(1);
  },
);

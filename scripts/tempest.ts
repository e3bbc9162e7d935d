#!/usr/bin/env -S npx tsx
/**
 * Runs tempest's image API tests (tempest + glance-tempest-plugin, RBAC
 * tests on) against a real Keystone and an Imago found through its catalog.
 *
 *   npx tsx scripts/tempest.ts [--regex RE] [--exclude-list FILE | --no-exclude]
 *                              [--commit REF] [--remote-worker] [--keep] [--build] [--timeout SECONDS]
 *                              [-- extra tempest run args]
 *
 * --commit REF runs Imago from a `git archive` of REF instead of the working
 * tree (other people's half-finished edits do not break the run).
 * --remote-worker runs a second Imago on the same PostgreSQL database and
 * stores, in the catalog as `image_remote` (tempest's alternate_image_endpoint):
 * it enables test_remote_import and test_remote_delete.
 *
 * Exit code: 0 when tempest reports no failure, 1 otherwise, 2 when the
 * environment is missing something. See docs/tempest.md.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { keystoneUnavailableReason, startKeystone, type Keystone } from '../test/support/keystone.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_REGEX = '^(tempest\\.api\\.image|glance_tempest_plugin)';
const DEFAULT_EXCLUDE = path.join(REPO, 'scripts', 'tempest-exclude.txt');
const TEMPEST = process.env.IMAGO_TEMPEST_BIN ?? '/usr/bin/tempest';
const SYSTEM_PYTHON = '/usr/bin/python3';

interface Options {
  regex: string;
  excludeList?: string;
  keep: boolean;
  build: boolean;
  commit?: string;
  remoteWorker: boolean;
  timeoutSeconds: number;
  extra: string[];
}

function usage(msg?: string): never {
  if (msg) console.error(`tempest.ts: ${msg}`);
  console.error('usage: npx tsx scripts/tempest.ts [--regex RE] [--exclude-list FILE | --no-exclude] [--commit REF] [--remote-worker] [--keep] [--build] [--timeout SECONDS] [-- tempest run args]');
  process.exit(2);
}

function parseArgs(argv: string[]): Options {
  const o: Options = { regex: DEFAULT_REGEX, excludeList: DEFAULT_EXCLUDE, keep: process.env.IMAGO_TEMPEST_KEEP === '1', build: false, remoteWorker: false, timeoutSeconds: 3600, extra: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => argv[++i] ?? usage(`${a} needs a value`);
    if (a === '--') { o.extra = argv.slice(i + 1); break; }
    else if (a === '--regex') o.regex = value();
    else if (a === '--exclude-list') o.excludeList = path.resolve(value());
    else if (a === '--no-exclude') o.excludeList = undefined;
    else if (a === '--keep') o.keep = true;
    else if (a === '--build') o.build = true;
    else if (a === '--commit') o.commit = value();
    else if (a === '--remote-worker') o.remoteWorker = true;
    else if (a === '--timeout') o.timeoutSeconds = Number(value());
    else if (a === '-h' || a === '--help') usage();
    else usage(`unknown argument ${a}`);
  }
  if (!Number.isFinite(o.timeoutSeconds) || o.timeoutSeconds <= 0) usage('--timeout must be a positive number');
  return o;
}

/** Why tempest cannot run here, or undefined. */
function unavailableReason(): string | undefined {
  const install = 'DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tempest glance-tempest-plugin';
  if (!existsSync(TEMPEST)) return `${TEMPEST} is missing: ${install}`;
  const plugin = spawnSync(SYSTEM_PYTHON, ['-c', 'import glance_tempest_plugin'], { encoding: 'utf8' });
  if (plugin.status !== 0) return `glance_tempest_plugin is not importable by ${SYSTEM_PYTHON}: ${install}`;
  return keystoneUnavailableReason();
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The `http_image` tempest's web-download test imports: deterministic bytes
 * served from loopback (the only network this runs on).
 */
async function startImageServer(): Promise<{ url: string; server: Server; sha512: string }> {
  const body = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < body.length; i += 64) createHash('sha512').update(`imago-tempest-${i}`).digest().copy(body, i);
  const sha512 = createHash('sha512').update(body).digest('hex');
  const server = createHttpServer((req, res) => {
    if (req.url !== '/tempest-image.img') { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return { url: `http://127.0.0.1:${port}/tempest-image.img`, server, sha512 };
}

function imagoConfig(dataDir: string, ks: Keystone, ports: number[], httpImage: string): Record<string, unknown> {
  // tempest's ImageLocationsTest (manage_locations = true) adds `http_image` (and `http_image#new`) as locations:
  // they must name an object of an http store. Its test_delete_locations removes a location as the owner's
  // member, which Glance's default delete_image_location (admin) refuses: the policy file below allows it for
  // this run only (docs/tempest.md).
  const policyFile = path.join(dataDir, 'tempest-policy.yaml');
  writeFileSync(policyFile, "delete_image_location: \"rule:context_is_admin or (role:member and project_id:%(project_id)s)\"\n");
  return {
    host: '127.0.0.1',
    logLevel: process.env.IMAGO_TEMPEST_LOG_LEVEL ?? 'info',
    stores: [
      { id: 'fast', type: 'filesystem', description: 'Fast store (tempest)', path: path.join(dataDir, 'stores', 'fast') },
      { id: 'cheap', type: 'filesystem', description: 'Cheap store (tempest)', path: path.join(dataDir, 'stores', 'cheap') },
      { id: 'web', type: 'http', description: 'The web server of http_image (tempest)', http: { allowedPrefixes: [`${new URL(httpImage).origin}/`] } },
    ],
    locations: { showMultiple: true, showDirectUrl: true },
    policyFile,
    defaultStore: 'fast',
    auth: { mode: 'keystone', keystone: ks.keystoneConfig({ cacheSeconds: 30 }) },
    import: {
      methods: ['glance-direct', 'web-download', 'copy-image', 'glance-download'],
      // Glance's default filter (http/https, ports 80 and 443, any host), plus
      // loopback: tempest's web-download source is this script's server, and
      // glance-download fetches from this Imago itself (Glance filters that
      // URL too). tempest's bad-URL test names an unresolvable host on port 80.
      webDownload: {
        allowedSchemes: ['http', 'https'],
        allowedHosts: [],
        allowedPorts: [80, 443, ...ports],
        allowPrivateNetworks: true,
      },
    },
  };
}

interface Imago { url: string; proc: ChildProcess; logFile: string; stop(): Promise<void> }

/** A copy of the repository at `ref`, sharing this checkout's node_modules. */
function exportCommit(ref: string, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('/bin/sh', ['-c', 'git -C "$0" archive --format=tar "$1" | tar -x -C "$2"', REPO, ref, dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot export ${ref}: ${r.stderr}`);
  symlinkSync(path.join(REPO, 'node_modules'), path.join(dir, 'node_modules'));
  const rev = spawnSync('git', ['-C', REPO, 'rev-parse', '--short', ref], { encoding: 'utf8' }).stdout.trim();
  console.log(`imago source: ${ref} (${rev}) exported to ${dir}`);
  return dir;
}

interface ImagoLaunch { name: string; port: number; configFile: string; dataDir: string; databaseUrl?: string; build: boolean; root: string }

async function startImago(ws: string, l: ImagoLaunch): Promise<Imago> {
  const url = `http://127.0.0.1:${l.port}`;
  const logFile = path.join(ws, `${l.name}.log`);
  const log = createWriteStream(logFile);
  const cmd = l.build ? [process.execPath, path.join(l.root, 'dist', 'src', 'main.js')] : [path.join(REPO, 'node_modules', '.bin', 'tsx'), path.join(l.root, 'src', 'main.ts')];
  const env: NodeJS.ProcessEnv = { ...process.env, IMAGO_CONFIG: l.configFile, IMAGO_DATA_DIR: l.dataDir, IMAGO_PORT: String(l.port), IMAGO_PUBLIC_ENDPOINT: url };
  if (l.databaseUrl) env.IMAGO_DATABASE_URL = l.databaseUrl;
  const proc = spawn(cmd[0], cmd.slice(1), { cwd: l.root, stdio: ['ignore', 'pipe', 'pipe'], env });
  proc.stdout!.pipe(log, { end: false });
  proc.stderr!.pipe(log, { end: false });
  let exited = false;
  proc.once('exit', () => { exited = true; });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`Imago exited while starting; see ${logFile}:\n${tail(logFile, 30)}`);
    if (Date.now() > deadline) throw new Error(`Imago did not answer GET / within 60 s; see ${logFile}`);
    try {
      const res = await fetch(url + '/', { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 300) break;
    } catch { /* not yet */ }
    await sleep(200);
  }
  return {
    url,
    proc,
    logFile,
    async stop() {
      if (exited) return;
      const gone = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await gone;
      clearTimeout(timer);
      log.end();
    },
  };
}

function tail(file: string, lines: number): string {
  try { return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n'); } catch { return '(no log)'; }
}

/** Puts a second image service (type `image_remote`) in the catalog, as tempest's alternate_image_endpoint. */
async function registerRemoteEndpoint(ks: Keystone, url: string): Promise<void> {
  const token = await ks.token('admin');
  const call = async (method: string, p: string, body?: unknown) => {
    const res = await fetch(ks.authUrl + p, { method, headers: { 'x-auth-token': token, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const json = (await res.json()) as any;
    if (res.status >= 300) throw new Error(`Keystone ${method} ${p} → ${res.status}: ${JSON.stringify(json)}`);
    return json;
  };
  const service = (await call('POST', '/services', { service: { type: 'image_remote', name: 'imago-remote', description: 'second Imago worker', enabled: true } })).service;
  for (const iface of ['public', 'internal', 'admin']) {
    await call('POST', '/endpoints', { endpoint: { service_id: service.id, interface: iface, url, region_id: 'RegionOne', enabled: true } });
  }
}

function tempestConf(ws: string, ks: Keystone, httpImage: string, remote: boolean): string {
  const admin = ks.users.admin;
  return `[DEFAULT]
log_file = ${path.join(ws, 'tempest.log')}
debug = true

[oslo_concurrency]
lock_path = ${path.join(ws, 'tempest_lock')}

[auth]
use_dynamic_credentials = true
create_isolated_networks = false
admin_username = ${admin.name}
admin_password = ${admin.password}
admin_project_name = ${admin.projectName}
admin_domain_name = Default
default_credentials_domain_name = Default

[identity]
uri_v3 = ${ks.authUrl}
auth_version = v3
region = RegionOne
v3_endpoint_type = public
admin_role = admin
disable_ssl_certificate_validation = true

[identity-feature-enabled]
api_v2 = false
api_v3 = true

[enforce_scope]
glance = true

[image]
region = RegionOne
endpoint_type = public
http_image = ${httpImage}
build_timeout = 120
build_interval = 1
${remote ? 'alternate_image_endpoint = image_remote\nalternate_image_endpoint_type = public\n' : ''}
[image-feature-enabled]
api_v2 = true
api_v1 = false
import_image = true
os_glance_reserved = true
manage_locations = true

[validation]
run_validation = false

[service_available]
glance = true
cinder = false
neutron = false
nova = false
swift = false
horizon = false
`;
}

interface Summary { passed: string[]; failed: string[]; skipped: Array<{ test: string; reason: string }> }

/** Reads the subunit stream of the last run (stestr keeps it in the workspace). */
function summarize(ws: string): Summary {
  const out = spawnSync('/bin/sh', ['-c', 'stestr last --subunit | subunit2csv --no-passthrough'], { cwd: ws, encoding: 'utf8', maxBuffer: 64 << 20 });
  const s: Summary = { passed: [], failed: [], skipped: [] };
  const rows = parseCsv(out.stdout ?? '');
  const header = rows.shift() ?? [];
  const col = (name: string) => header.indexOf(name);
  const [iTest, iStatus] = [col('test'), col('status')];
  for (const row of rows) {
    const test = row[iTest];
    if (!test) continue;
    const status = row[iStatus];
    if (status === 'success') s.passed.push(test);
    else if (status === 'skip') s.skipped.push({ test, reason: '' });
    else if (status === 'fail' || status === 'failure' || status === 'uxsuccess') s.failed.push(test);
  }
  // skip reasons are only in the trace output
  const trace = spawnSync('/bin/sh', ['-c', 'stestr last --subunit | subunit-trace --no-summary'], { cwd: ws, encoding: 'utf8', maxBuffer: 64 << 20 });
  for (const line of (trace.stdout ?? '').split('\n')) {
    const m = /^\{\d+\} (.+?) \.\.\. SKIPPED: (.*)$/.exec(line);
    if (!m) continue;
    const entry = s.skipped.find((e) => e.test.split('[')[0] === m[1].split('[')[0]);
    if (entry) entry.reason = m[2];
  }
  return s;
}

function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; }
    else if (c === '\n') { row.push(field); rows.push(row); row = []; field = ''; }
    else if (c !== '\r') field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows;
}

function runTempest(ws: string, o: Options, outFile: string): Promise<number> {
  const args = ['run', '--regex', o.regex, '--concurrency', '1'];
  if (o.excludeList) args.push('--exclude-list', o.excludeList);
  args.push(...o.extra);
  console.log(`$ (cd ${ws} && ${TEMPEST} ${args.map((a) => (/[^\w./=-]/.test(a) ? `'${a}'` : a)).join(' ')})`);
  const out = createWriteStream(outFile);
  return new Promise((resolve) => {
    const child = spawn(TEMPEST, args, { cwd: ws, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH: `/usr/bin:${process.env.PATH ?? ''}` } });
    const timer = setTimeout(() => {
      console.error(`tempest.ts: tempest still running after ${o.timeoutSeconds} s, stopping it`);
      child.kill('SIGTERM');
    }, o.timeoutSeconds * 1000);
    for (const stream of [child.stdout!, child.stderr!]) {
      stream.on('data', (chunk: Buffer) => { process.stdout.write(chunk); out.write(chunk); });
    }
    child.on('close', (code) => { clearTimeout(timer); out.end(); resolve(code ?? 1); });
  });
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const reason = unavailableReason();
  if (reason) { console.error(`tempest.ts: cannot run: ${reason}`); process.exit(2); }
  if (o.excludeList && !existsSync(o.excludeList)) usage(`exclude list ${o.excludeList} does not exist`);
  if (o.build && !o.commit && !existsSync(path.join(REPO, 'dist', 'src', 'main.js'))) usage('--build needs `npm run build` first');

  const ws = mkdtempSync(path.join(tmpdir(), 'imago-tempest-'));
  const wsName = path.basename(ws);
  let ks: Keystone | undefined;
  const workers: Imago[] = [];
  let database: { url: string; drop(): Promise<void> } | undefined;
  let imageServer: Server | undefined;
  let code = 1;
  const cleanup = async () => {
    await Promise.all(workers.map((w) => w.stop().catch(() => undefined)));
    await database?.drop().catch(() => undefined);
    imageServer?.close();
    await ks?.stop().catch(() => undefined);
  };
  process.once('SIGINT', () => { void cleanup().then(() => process.exit(130)); });
  process.once('SIGTERM', () => { void cleanup().then(() => process.exit(143)); });
  try {
    const init = spawnSync(TEMPEST, ['init', '--name', wsName, ws], { encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`tempest init failed: ${init.stderr}${init.stdout}`);
    console.log(`workspace: ${ws}`);
    ks = await startKeystone({ keepDir: o.keep });
    console.log(`keystone:  ${ks.authUrl}`);
    const img = await startImageServer();
    imageServer = img.server;
    const imagePort = Number(new URL(img.url).port);
    const root = o.commit ? exportCommit(o.commit, path.join(ws, 'imago-src')) : REPO;
    if (o.build && o.commit) {
      const b = spawnSync(path.join(REPO, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], { cwd: root, encoding: 'utf8' });
      if (!existsSync(path.join(root, 'dist', 'src', 'main.js'))) throw new Error(`build of ${o.commit} failed:\n${b.stdout}${b.stderr}`);
    }
    if (o.remoteWorker) {
      // both workers share one database and the same store and staging directories
      const pg = await import('../test/support/postgres.js');
      if (!(await pg.postgresAvailable())) throw new Error(`--remote-worker needs PostgreSQL at ${pg.PG_ADMIN_URL} (IMAGO_TEST_PG_URL)`);
      database = await pg.createTestDatabase();
    }
    const ports = [await freePort(), ...(o.remoteWorker ? [await freePort()] : [])];
    const dataDir = path.join(ws, 'imago');
    mkdirSync(dataDir, { recursive: true });
    const configFile = path.join(ws, 'imago-config.json');
    writeFileSync(configFile, JSON.stringify(imagoConfig(dataDir, ks, [imagePort, ...ports], img.url), null, 2));
    const launch = { configFile, dataDir, databaseUrl: database?.url, build: o.build, root };
    workers.push(await startImago(ws, { ...launch, name: 'imago', port: ports[0] }));
    await ks.registerImageEndpoint(workers[0].url);
    console.log(`imago:     ${workers[0].url} (log: ${workers[0].logFile})${database ? ' on PostgreSQL' : ''}`);
    if (o.remoteWorker) {
      workers.push(await startImago(ws, { ...launch, name: 'imago-remote', port: ports[1] }));
      await registerRemoteEndpoint(ks, workers[1].url);
      console.log(`remote:    ${workers[1].url} (log: ${workers[1].logFile}), catalog type image_remote`);
    }
    writeFileSync(path.join(ws, 'etc', 'tempest.conf'), tempestConf(ws, ks, img.url, o.remoteWorker));

    const t0 = Date.now();
    const rc = await runTempest(ws, o, path.join(ws, 'tempest-output.txt'));
    const s = summarize(ws);
    console.log(`\n===== tempest against Imago: ${s.passed.length} passed, ${s.failed.length} failed, ${s.skipped.length} skipped (tempest exit ${rc}, ${Math.round((Date.now() - t0) / 1000)} s)`);
    for (const t of s.failed) console.log(`FAILED  ${t}`);
    for (const t of s.skipped) console.log(`SKIPPED ${t.test}: ${t.reason}`);
    code = rc === 0 && s.failed.length === 0 ? 0 : 1;
    // the plain closing line CI readers understand
    console.log(`tempest: ${s.passed.length} passed, ${s.failed.length} failed, ${s.skipped.length} skipped`);
  } catch (err) {
    console.error(`tempest.ts: ${(err as Error).message}`);
    code = 2;
  } finally {
    await cleanup();
    spawnSync(TEMPEST, ['workspace', 'remove', '--name', wsName], { encoding: 'utf8' });
    if (o.keep || code !== 0) console.log(`kept workspace ${ws} (tempest.conf, logs/tempest.log, tempest-output.txt, imago.log)`);
    else rmSync(ws, { recursive: true, force: true });
  }
  process.exit(code);
}

void main();

/**
 * Test harness: a real OpenStack Swift (Debian's `swift-*` packages) as a
 * single-node all-in-one on loopback, with the `s3api` and `tempauth`
 * middlewares in the proxy pipeline, so the S3 store driver talks to a real
 * S3 implementation.
 *
 *   const swift = await startSwift();                 // ~3-6 s
 *   const s3 = swift.s3Config(await swift.createBucket());
 *   ...
 *   await swift.stop();                               // kills everything, removes its directory
 *
 * Everything lives in one fresh temporary directory: swift.conf, the three
 * rings, the server configurations, the storage "device", the logs. The
 * account, container and object servers and the proxy listen on free
 * loopback ports; memcached (which tempauth needs) on another one. Nothing is
 * read from /etc/swift. With tempauth the S3 access key is `account:user` and
 * the secret is the user's key: here `test:tester` / `testing`.
 *
 * See docs/deployment.md ("Testing against Swift").
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';

const BIN = '/usr/bin';
export const SWIFT_BINARIES = {
  python: `${BIN}/python3`,
  proxy: `${BIN}/swift-proxy-server`,
  object: `${BIN}/swift-object-server`,
  container: `${BIN}/swift-container-server`,
  account: `${BIN}/swift-account-server`,
  memcached: `${BIN}/memcached`,
};

export const SWIFT_ACCOUNT = 'test';
export const SWIFT_USER = 'tester';
export const SWIFT_KEY = 'testing';

/** Why Swift cannot run here, or undefined when it can. */
export function swiftSkipReason(): string | undefined {
  const missing = Object.values(SWIFT_BINARIES).filter((b) => !existsSync(b));
  if (missing.length) return `Swift is not installed (missing ${missing.join(', ')}; apt-get install swift swift-proxy swift-object swift-container swift-account memcached)`;
  return undefined;
}

export interface SwiftS3Settings {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  forcePathStyle: boolean;
}

export interface Swift {
  /** the proxy: http://127.0.0.1:PORT (S3 at the root, Swift's own API under /v1) */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** the temporary directory holding configuration, rings, data and logs */
  dir: string;
  /** the `s3` block of an Imago store on `bucket` */
  s3Config(bucket: string, overrides?: Partial<SwiftS3Settings>): SwiftS3Settings;
  /**
   * Creates a fresh bucket (a Swift container) and returns its name. With
   * `quotaBytes`, the bucket and its multipart segments container refuse
   * writes beyond that many bytes (Swift's container quotas).
   */
  createBucket(opts?: { name?: string; quotaBytes?: number }): Promise<string>;
  /** a request to Swift's own API for the test account, authenticated by tempauth; `p` is relative to /v1/AUTH_test */
  swiftApi(method: string, p: string, headers?: Record<string, string>): Promise<Response>;
  /** the names of every object in a container, [] when it does not exist */
  containerObjects(container: string): Promise<string[]>;
  /** everything the S3 view of `bucket` rests on: the bucket's objects, then one `+segments/<key>/<uploadId>` per multipart upload with anything left in `<bucket>+segments` (unfinished, or the parts of a completed object) */
  bucketContents(bucket: string): Promise<string[]>;
  /** kills the proxy (SIGKILL): the S3 endpoint refuses connections until startProxy() */
  stopProxy(): Promise<void>;
  /** starts the proxy again on the same port and waits until it answers */
  startProxy(): Promise<void>;
  /** last lines of each server's log */
  logs(lines?: number): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Builds the three rings with the library swift-ring-builder wraps (one Python
 * process instead of nine CLI calls: seconds saved on every start), after
 * checking that the directory's filesystem takes the user xattrs Swift keeps
 * object metadata in. Prints the directory it used.
 */
const PREPARE_PY = `
import os, sys, shutil, tempfile
from swift.common.ring import RingBuilder
candidates, ports = sys.argv[1].split(':'), [int(p) for p in sys.argv[2:5]]
why = []
for base in candidates:
    if not base or not os.path.isdir(base):
        continue
    d = tempfile.mkdtemp(prefix='imago-swift-', dir=base)
    probe = os.path.join(d, 'xattr-probe')
    open(probe, 'w').close()
    try:
        os.setxattr(probe, 'user.swift.metadata', b'x' * 254)
    except OSError as e:
        why.append('%s: %s' % (base, e))
        shutil.rmtree(d)
        continue
    os.unlink(probe)
    for sub in ('conf', 'srv/d1', 'log', 'run'):
        os.makedirs(os.path.join(d, sub))
    for name, port in zip(('account', 'container', 'object'), ports):
        b = RingBuilder(6, 1, 1)
        b.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': port, 'device': 'd1', 'weight': 100, 'meta': ''})
        b.rebalance()
        b.save(os.path.join(d, 'conf', name + '.builder'))
        b.get_ring().save(os.path.join(d, 'conf', name + '.ring.gz'))
    print(d)
    sys.exit(0)
sys.stderr.write('no directory with user xattr support (Swift stores object metadata in them): ' + '; '.join(why) + '\\n')
sys.exit(3)
`;

function storageServerConf(kind: 'account' | 'container' | 'object', dir: string, port: number, user: string): string {
  return `[DEFAULT]
bind_ip = 127.0.0.1
bind_port = ${port}
user = ${user}
workers = 0
swift_dir = ${dir}/conf
devices = ${dir}/srv
mount_check = false
disable_fallocate = true
fallocate_reserve = 0
log_level = WARNING

[pipeline:main]
pipeline = ${kind}-server

[app:${kind}-server]
use = egg:swift#${kind}
# A busy test machine must not turn the object server's synchronous container update into an
# async pending one: nothing here runs the updaters, so the listing would stay stale.
conn_timeout = 10
node_timeout = 60
${kind === 'object' ? 'container_update_timeout = 60\n' : ''}
[${kind}-replicator]
[${kind}-auditor]
${kind === 'account' ? '' : `[${kind}-updater]\n`}`;
}

function proxyConf(dir: string, port: number, memcachePort: number, user: string): string {
  // s3api before tempauth (tempauth checks the S3 signature s3api extracted);
  // slo after both, since s3api builds multipart objects as SLO manifests.
  return `[DEFAULT]
bind_ip = 127.0.0.1
bind_port = ${port}
user = ${user}
workers = 0
swift_dir = ${dir}/conf
log_level = INFO

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy container-quotas slo dlo versioned_writes proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
conn_timeout = 10
node_timeout = 60

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:${memcachePort}

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:s3api]
use = egg:swift#s3api
location = us-east-1
# the S3 limit; Swift's default is 1000, which caps a 5 TiB image at 5 GiB parts
max_upload_part_num = 10000
# S3's smallest part is 5 MiB; 1 MiB lets small test objects take the multipart path
min_segment_size = 1048576

[filter:tempauth]
use = egg:swift#tempauth
user_${SWIFT_ACCOUNT}_${SWIFT_USER} = ${SWIFT_KEY} .admin

[filter:copy]
use = egg:swift#copy

[filter:container-quotas]
use = egg:swift#container_quotas

[filter:slo]
use = egg:swift#slo
# one manifest segment per S3 part
max_manifest_segments = 10000

[filter:dlo]
use = egg:swift#dlo

[filter:versioned_writes]
use = egg:swift#versioned_writes
`;
}

const SWIFT_CONF = `[swift-hash]
swift_hash_path_suffix = imago-test
swift_hash_path_prefix = imago-test

[storage-policy:0]
name = Policy-0
default = yes
`;

/** Every child process any harness in this process started, killed if the test process exits without stop(). */
const allChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of allChildren) {
    try {
      process.kill(c.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

export async function startSwift(): Promise<Swift> {
  const skip = swiftSkipReason();
  if (skip) throw new Error(skip);
  const [accountPort, containerPort, objectPort, proxyPort, memcachePort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const bases = [process.env.IMAGO_SWIFT_DIR ?? '', tmpdir(), '/var/tmp', process.cwd()].join(':');
  const prep = spawnSync(SWIFT_BINARIES.python, ['-c', PREPARE_PY, bases, String(accountPort), String(containerPort), String(objectPort)], { encoding: 'utf8' });
  if (prep.status !== 0) throw new Error(`Swift harness: preparing the rings failed: ${prep.stderr || prep.error?.message}`);
  const dir = prep.stdout.trim();
  const user = userInfo().username;
  const isRoot = process.getuid?.() === 0;
  writeFileSync(path.join(dir, 'conf', 'swift.conf'), SWIFT_CONF);
  const confs = {
    account: storageServerConf('account', dir, accountPort, user),
    container: storageServerConf('container', dir, containerPort, user),
    object: storageServerConf('object', dir, objectPort, user),
    proxy: proxyConf(dir, proxyPort, memcachePort, user),
  };
  for (const [name, text] of Object.entries(confs)) writeFileSync(path.join(dir, 'conf', `${name}-server.conf`), text);

  const children = new Map<string, ChildProcess>();
  const launch = (name: string, cmd: string, args: string[]) => {
    const log = createWriteStream(path.join(dir, 'log', `${name}.log`), { flags: 'a' });
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    child.once('exit', () => {
      allChildren.delete(child);
      log.end();
    });
    allChildren.add(child);
    children.set(name, child);
  };
  const kill = async (name: string, signal: NodeJS.Signals) => {
    const child = children.get(name);
    if (!child) return;
    children.delete(name);
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  const startServerProcess = (name: 'account' | 'container' | 'object' | 'proxy') =>
    launch(name, SWIFT_BINARIES[name], [path.join(dir, 'conf', `${name}-server.conf`), '--verbose']);

  let token: string | undefined;
  const authenticate = async (): Promise<string> => {
    const res = await fetch(`http://127.0.0.1:${proxyPort}/auth/v1.0`, { headers: { 'x-auth-user': `${SWIFT_ACCOUNT}:${SWIFT_USER}`, 'x-auth-key': SWIFT_KEY } });
    const t = res.headers.get('x-auth-token');
    if (res.status !== 200 || !t) throw new Error(`tempauth answered ${res.status}`);
    return t;
  };
  const swiftApi = async (method: string, p: string, headers: Record<string, string> = {}): Promise<Response> => {
    token ??= await authenticate();
    const url = `http://127.0.0.1:${proxyPort}/v1/AUTH_${SWIFT_ACCOUNT}${p}`;
    let res = await fetch(url, { method, headers: { ...headers, 'x-auth-token': token } });
    if (res.status === 401) {
      token = await authenticate();
      res = await fetch(url, { method, headers: { ...headers, 'x-auth-token': token } });
    }
    return res;
  };
  const waitForProxy = async (deadline: number) => {
    let lastError = '';
    while (Date.now() < deadline) {
      for (const [name, child] of children) {
        if (child.exitCode !== null) throw new Error(`Swift harness: ${name} server exited with ${child.exitCode}:\n${logs(20)}`);
      }
      try {
        const res = await fetch(`http://127.0.0.1:${proxyPort}/healthcheck`);
        if (res.status === 200) return;
        lastError = `healthcheck ${res.status}`;
      } catch (err) {
        lastError = (err as Error).message;
      }
      await sleep(100);
    }
    throw new Error(`Swift harness: the proxy did not come up (${lastError}):\n${logs(20)}`);
  };
  const logs = (lines = 40) =>
    ['memcached', 'account', 'container', 'object', 'proxy']
      .map((n) => {
        const f = path.join(dir, 'log', `${n}.log`);
        const text = existsSync(f) ? readFileSync(f, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') : '';
        return `--- ${n}\n${text}`;
      })
      .join('\n');

  const stop = async () => {
    await Promise.all([...children.keys()].map((n) => kill(n, 'SIGTERM')));
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    launch('memcached', SWIFT_BINARIES.memcached, ['-l', '127.0.0.1', '-p', String(memcachePort), '-U', '0', '-m', '16', ...(isRoot ? ['-u', 'root'] : [])]);
    for (const name of ['account', 'container', 'object', 'proxy'] as const) startServerProcess(name);
    const deadline = Date.now() + 60_000;
    await waitForProxy(deadline);
    for (const port of [accountPort, containerPort, objectPort]) {
      while (!(await canConnect(port))) {
        if (Date.now() > deadline) throw new Error(`Swift harness: a storage server did not listen on ${port}:\n${logs(20)}`);
        await sleep(100);
      }
    }
    // One write through the whole chain: account, container and object servers all answer.
    const probe = `probe-${randomBytes(4).toString('hex')}`;
    for (;;) {
      const put = await swiftApi('PUT', `/${probe}`).catch(() => undefined);
      if (put && put.status < 300) break;
      if (Date.now() > deadline) throw new Error(`Swift harness: creating a container failed (${put?.status}):\n${logs(20)}`);
      await sleep(200);
    }
    await swiftApi('DELETE', `/${probe}`);
  } catch (err) {
    await stop();
    throw err;
  }

  const endpoint = `http://127.0.0.1:${proxyPort}`;
  const containerObjects = async (container: string): Promise<string[]> => {
    const names: string[] = [];
    let marker = '';
    for (;;) {
      const res = await swiftApi('GET', `/${encodeURIComponent(container)}?format=json&limit=10000&marker=${encodeURIComponent(marker)}`);
      if (res.status === 404) return names;
      if (res.status === 204) return names;
      if (res.status !== 200) throw new Error(`listing ${container}: ${res.status}`);
      const page = (await res.json()) as { name: string }[];
      if (page.length === 0) return names;
      // A container listing can lag behind its objects when the container server was too busy to
      // take the update at once (nothing here runs the updaters): ask each listed object itself.
      for (const { name } of page) {
        const head = await swiftApi('HEAD', `/${encodeURIComponent(container)}/${name.split('/').map(encodeURIComponent).join('/')}`);
        if (head.status !== 404) names.push(name);
      }
      marker = page[page.length - 1].name;
    }
  };
  return {
    endpoint,
    region: 'us-east-1',
    accessKeyId: `${SWIFT_ACCOUNT}:${SWIFT_USER}`,
    secretAccessKey: SWIFT_KEY,
    dir,
    s3Config: (bucket, overrides = {}) => ({
      endpoint,
      bucket,
      region: 'us-east-1',
      accessKeyId: `${SWIFT_ACCOUNT}:${SWIFT_USER}`,
      secretAccessKey: SWIFT_KEY,
      forcePathStyle: true,
      ...overrides,
    }),
    createBucket: async ({ name = `bucket-${randomBytes(5).toString('hex')}`, quotaBytes }: { name?: string; quotaBytes?: number } = {}) => {
      const headers: Record<string, string> = quotaBytes === undefined ? {} : { 'x-container-meta-quota-bytes': String(quotaBytes) };
      for (const container of quotaBytes === undefined ? [name] : [name, `${name}+segments`]) {
        const res = await swiftApi('PUT', `/${container}`, headers);
        if (res.status >= 300) throw new Error(`creating container ${container}: ${res.status}`);
      }
      return name;
    },
    swiftApi,
    containerObjects,
    bucketContents: async (bucket) => {
      // s3api keeps each multipart upload in <bucket>+segments as a marker
      // `<key>/<uploadId>` and parts `<key>/<uploadId>/<n>`: one entry per upload.
      const uploads = new Set((await containerObjects(`${bucket}+segments`)).map((n) => `+segments/${n.replace(/\/\d+$/, '')}`));
      return [...(await containerObjects(bucket)), ...[...uploads].sort()];
    },
    stopProxy: () => kill('proxy', 'SIGKILL'),
    startProxy: async () => {
      startServerProcess('proxy');
      await waitForProxy(Date.now() + 30_000);
    },
    logs,
    stop,
  };
}

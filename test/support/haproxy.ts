/**
 * Debian's haproxy in front of several Imago nodes on loopback: round robin,
 * each server health-checked through GET /healthcheck (so a draining or dead
 * node leaves the pool), and a stats page to read haproxy's view of each
 * server. Used by the multi-node test (test/scale/haproxy.test.ts) and by the
 * bench's `--nodes N` topology (bench/cluster.ts), so both measure and test
 * the same balancer configuration.
 *
 *   const lb = await startHaproxy({ a: 4001, b: 4002, c: 4003 }, dir);
 *   fetch(`${lb.url}/v2/images`) ...                 // balanced
 *   await lb.stop();
 *
 * A request header `x-test-node: <name>` pins a request to one server, for
 * tests that must know which node serves it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const HAPROXY = '/usr/sbin/haproxy';

/** Why haproxy cannot run here, or undefined when it can. */
export function haproxySkipReason(): string | undefined {
  return existsSync(HAPROXY) ? undefined : 'haproxy is not installed (apt-get install haproxy)';
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** The balancer's configuration for servers `name → loopback port`, the front end on `front` and the stats page on `stats`. */
export function haproxyConfig(ports: Record<string, number>, front: number, stats: number): string {
  const servers = Object.entries(ports).map(([n, p]) => `    server ${n} 127.0.0.1:${p} check inter 300ms fall 2 rise 1`).join('\n');
  const pins = Object.keys(ports).map((n) => `    use-server ${n} if { req.hdr(x-test-node) -m str ${n} }`).join('\n');
  // Long client/server timeouts: a multi-GiB transfer on a busy machine must not be cut by the balancer.
  return `global
    maxconn 512
defaults
    mode http
    timeout connect 5s
    timeout client 600s
    timeout server 600s
frontend image_api
    bind 127.0.0.1:${front}
    default_backend imago
backend imago
    balance roundrobin
    option httpchk GET /healthcheck
    http-check expect status 200
${pins}
${servers}
listen stats
    bind 127.0.0.1:${stats}
    stats enable
    stats uri /stats
`;
}

export interface Haproxy {
  /** the balanced front end: http://127.0.0.1:PORT */
  url: string;
  statsUrl: string;
  pid: number;
  /** haproxy's view of each server of the `imago` backend: UP, DOWN, MAINT... */
  serverStates(): Promise<Record<string, string>>;
  /** Waits until haproxy sees server `name` in a state matching `state`. */
  waitState(name: string, state: RegExp, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

async function until(what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (${timeoutMs} ms)`);
    await sleep(50);
  }
}

/**
 * Writes the configuration into `dir`, checks it with `haproxy -c`, starts
 * haproxy in the foreground and waits until the front end answers
 * /healthcheck and every server is UP.
 */
export async function startHaproxy(ports: Record<string, number>, dir: string, timeoutMs = 30_000): Promise<Haproxy> {
  const front = await freePort();
  const stats = await freePort();
  const url = `http://127.0.0.1:${front}`;
  const statsUrl = `http://127.0.0.1:${stats}/stats`;
  const cfg = path.join(dir, 'haproxy.cfg');
  writeFileSync(cfg, haproxyConfig(ports, front, stats));
  const check = spawnSync(HAPROXY, ['-c', '-f', cfg], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`haproxy refused its configuration: ${check.stdout}${check.stderr}`);
  const proc: ChildProcess = spawn(HAPROXY, ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));

  const serverStates = async (): Promise<Record<string, string>> => {
    const csv = await (await fetch(`${statsUrl};csv`)).text();
    const [head, ...rows] = csv.trim().split('\n');
    const cols = head.replace(/^# /, '').split(',');
    const out: Record<string, string> = {};
    for (const row of rows) {
      const f = row.split(',');
      if (f[cols.indexOf('pxname')] === 'imago' && !['FRONTEND', 'BACKEND'].includes(f[cols.indexOf('svname')])) out[f[cols.indexOf('svname')]] = f[cols.indexOf('status')];
    }
    return out;
  };
  const waitState = (name: string, state: RegExp, ms = 30_000) => until(`haproxy to see node ${name} ${state}`, async () => state.test((await serverStates())[name] ?? ''), ms);
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await exited;
  };
  try {
    await until('haproxy to listen', async () => (await fetch(`${url}/healthcheck`)).status === 200, timeoutMs);
    for (const n of Object.keys(ports)) await waitState(n, /^UP/, timeoutMs);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}${stderr ? `; haproxy said: ${stderr.trim()}` : ''}`);
  }
  return { url, statsUrl, pid: proc.pid!, serverStates, waitState, stop };
}

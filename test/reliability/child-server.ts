import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TOKENS, type TestServerOptions } from '../support/server.js';

export interface ChildServer {
  url: string;
  dataDir: string;
  proc: ChildProcess;
  measure(): Promise<NodeJS.MemoryUsage>;
  rows(): Promise<Record<string, number>>;
  /** open fds that are not sockets (files, pipes, event fds) */
  fds(): number;
  /** open sockets (keep-alive connections of the test's own clients included) */
  sockets(): number;
  rssMB(): number;
  req(method: string, urlPath: string, opts?: { json?: unknown; headers?: Record<string, string>; body?: BodyInit }): Promise<Response>;
  stop(): Promise<void>;
}

function fdTargets(pid: number): string[] {
  const out: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      out.push(readlinkSync(`/proc/${pid}/fd/${fd}`));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** The V8 flags `npm start` runs Imago with (package.json), so memory is measured as operators run the server. */
function startFlags(): string[] {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  const start: string = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).scripts?.start ?? '';
  return start.split(/\s+/).filter((w) => w.startsWith('--'));
}

/** Starts server-child.js (compiled next to this file) with npm start's flags and --expose-gc. */
export async function startChildServer(opts: TestServerOptions = {}): Promise<ChildServer> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const proc = fork(path.join(here, 'server-child.js'), [JSON.stringify(opts)], { execArgv: [...startFlags(), '--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const waiting = new Map<number, (body: any) => void>();
  let next = 1;
  const ready = new Promise<{ url: string; dataDir: string }>((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`server child exited with ${code}`)));
    waiting.set(0, resolve);
  });
  proc.on('message', (m: { id: number; body: unknown }) => {
    const w = waiting.get(m.id);
    waiting.delete(m.id);
    w?.(m.body);
  });
  const ask = <T>(op: string) => new Promise<T>((resolve) => {
    const id = next++;
    waiting.set(id, resolve);
    proc.send({ op, id });
  });
  const { url, dataDir } = await ready;
  return {
    url,
    dataDir,
    proc,
    measure: () => ask('measure'),
    rows: () => ask('rows'),
    fds: () => fdTargets(proc.pid!).filter((t) => !t.startsWith('socket:')).length,
    sockets: () => fdTargets(proc.pid!).filter((t) => t.startsWith('socket:')).length,
    rssMB: () => {
      const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8');
      return Number(/^VmRSS:\s+(\d+)/m.exec(status)![1]) / 1024;
    },
    req: (method, urlPath, o = {}) => {
      const headers: Record<string, string> = { 'x-auth-token': TOKENS.admin, ...(o.headers ?? {}) };
      let body = o.body;
      if (o.json !== undefined) {
        body = JSON.stringify(o.json);
        headers['content-type'] ??= 'application/json';
      }
      return fetch(url + urlPath, { method, headers, body, duplex: 'half' } as RequestInit);
    },
    stop: async () => {
      const exited = new Promise((r) => proc.once('exit', r));
      await ask('stop');
      await exited;
    },
  };
}

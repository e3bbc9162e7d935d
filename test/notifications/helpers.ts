import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from 'amqplib';
import { waitFor } from '../support/wait.js';

export const RABBIT_HOST = '127.0.0.1';
export const RABBIT_PORT = 5672;
export const RABBIT_URL = `rabbit://guest:guest@${RABBIT_HOST}:${RABBIT_PORT}/`;
/** Debian's python, which imports Debian's python3-oslo.messaging (not a pyenv one on PATH). */
const PYTHON = '/usr/bin/python3';

/** listener.py lives beside this file's source (test/notifications/), also when run from dist/. */
const LISTENER = (() => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  return path.join(here.includes(`${path.sep}dist${path.sep}`) ? here.replace(`${path.sep}dist${path.sep}`, path.sep) : here, 'listener.py');
})();

/** Why these tests cannot run here (no RabbitMQ, no oslo.messaging), or undefined. */
export async function busUnavailableReason(): Promise<string | undefined> {
  const up = await new Promise<boolean>((resolve) => {
    const s = net.connect(RABBIT_PORT, RABBIT_HOST);
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
  if (!up) return `RabbitMQ does not listen on ${RABBIT_HOST}:${RABBIT_PORT} (scripts/test-all.sh starts it)`;
  const py = spawnSync(PYTHON, ['-c', 'import oslo_messaging'], { encoding: 'utf8' });
  if (py.status !== 0) return `${PYTHON} cannot import oslo_messaging (apt-get install python3-oslo.messaging): ${py.stderr.trim().split('\n').pop()}`;
  return undefined;
}

export interface Received {
  priority: string;
  publisher_id: string;
  event_type: string;
  payload: any;
  message_id: string;
  timestamp: string;
}

export interface Listener {
  topic: string;
  exchange: string;
  events: Received[];
  /** waits until `n` events have arrived (or fails saying which did) */
  waitForCount(n: number, timeoutMs?: number): Promise<Received[]>;
  stop(): Promise<void>;
}

/**
 * Starts an oslo.messaging notification listener (listener.py) on `exchange`
 * and a topic of its own, and collects what it receives. stop() ends it and
 * deletes the queues the topic used, so the broker keeps nothing of the test.
 */
export async function startListener(exchange = 'glance', topic = `imago-test-${randomUUID()}`): Promise<Listener> {
  const child: ChildProcess = spawn(PYTHON, [LISTENER, `rabbit://guest:guest@${RABBIT_HOST}:${RABBIT_PORT}/`, exchange, topic], { stdio: ['pipe', 'pipe', 'pipe'] });
  const events: Received[] = [];
  let ready = false;
  let stderr = '';
  let buf = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const msg = JSON.parse(line);
      if (msg.ready) ready = true;
      else events.push(msg);
    }
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => (stderr = (stderr + c).slice(-4000)));
  let exited = false;
  child.once('exit', () => (exited = true));
  await waitFor(() => `the oslo.messaging listener to start (stderr: ${stderr})`, () => ready || exited, 30_000);
  if (!ready) throw new Error(`the oslo.messaging listener exited: ${stderr}`);
  const types = () => events.map((e) => e.event_type).join(', ');
  return {
    topic,
    exchange,
    events,
    waitForCount: (n, timeoutMs = 20_000) => waitFor(() => `${n} notifications (got ${events.length}: ${types()})`, () => events.length >= n && events, timeoutMs),
    async stop() {
      if (!exited) {
        const gone = new Promise((r) => child.once('exit', r));
        child.stdin!.end();
        const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await gone;
        clearTimeout(kill);
      }
      await deleteQueues(topic);
    },
  };
}

/** Removes the queues `<topic>.<priority>` (declared by Imago and by the listener). */
export async function deleteQueues(topic: string): Promise<void> {
  const conn = await connect(`amqp://guest:guest@${RABBIT_HOST}:${RABBIT_PORT}/`);
  try {
    const ch = await conn.createChannel();
    for (const p of ['audit', 'debug', 'info', 'warn', 'error', 'critical', 'sample']) await ch.deleteQueue(`${topic}.${p}`);
    await ch.close();
  } finally {
    await conn.close();
  }
}

/** Notification settings for a test server publishing to the listener's exchange and topic. */
export function notificationConfig(l: Pick<Listener, 'exchange' | 'topic'>, transportUrl = RABBIT_URL, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { notifications: { driver: 'messagingv2', transportUrl, exchange: l.exchange, topics: [l.topic], publisherId: 'image.imago-test', ...extra } };
}

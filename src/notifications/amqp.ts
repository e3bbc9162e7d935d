import { randomUUID } from 'node:crypto';
import { connect, type ChannelModel, type ConfirmChannel } from 'amqplib';
import type { Logger } from 'pino';
import type { EventSink, Notification } from './sink.js';

/** What the bus publisher reports; the Metrics class implements it (src/metrics/metrics.ts). */
export interface BusMetrics {
  notificationPublished(n: number): void;
  notificationDropped(reason: 'queue_full' | 'shutdown', n: number): void;
}

export interface AmqpSinkOptions {
  /** `rabbit://user:pass@host:port/vhost`, hosts separated by commas (oslo.messaging's transport_url) */
  transportUrl: string;
  exchange: string;
  topics: readonly string[];
  queueSize: number;
  log: Logger;
  metrics: BusMetrics;
  /** first and longest pause between connection attempts, ms */
  retryMinMs?: number;
  retryMaxMs?: number;
}

interface Pending {
  routingKey: string;
  body: Buffer;
  messageId: string;
}

const BATCH = 256;
const CLOSE_FLUSH_MS = 2_000;

/**
 * oslo.messaging's transport_url as amqplib URLs, one per host:
 * `rabbit://u:p@h1:5672,u:p@h2:5672/vh` → `amqp://u:p@h1:5672/vh`, `amqp://u:p@h2:5672/vh`.
 * Throws on anything else (checked at start).
 */
export function amqpUrls(transportUrl: string): string[] {
  const m = /^rabbit:\/\/([^/?]*)(\/[^?]*)?(\?.*)?$/.exec(transportUrl);
  if (!m || !m[1]) throw new Error(`not a rabbit:// transport URL: ${redact(transportUrl)}`);
  const vhost = m[2] && m[2] !== '/' ? m[2] : '/';
  return m[1].split(',').map((hostPart) => {
    const url = new URL(`amqp://${hostPart}${vhost === '/' ? '/' : vhost}`);
    if (!url.hostname) throw new Error(`no host in transport URL ${redact(transportUrl)}`);
    if (!url.port) url.port = '5672';
    url.searchParams.set('heartbeat', '15');
    return url.toString();
  });
}

/** A URL with its password replaced, for logs and messages. */
export function redact(url: string): string {
  return url.replace(/(\/\/|,)([^:@/,]*):([^@/,]*)@/g, '$1$2:***@');
}

/**
 * The messagingv2 driver: publishes each event as oslo.messaging's rabbit
 * driver does (the 2.0 envelope, a topic exchange, routing key
 * `<topic>.<priority>`, a queue of that name declared so that nothing is
 * lost before a consumer binds), from a bounded in-memory queue. `send`
 * only queues: a slow or absent bus never holds up a request. Publishing
 * uses publisher confirms; on any connection error the unconfirmed events
 * stay queued and are sent again after reconnecting (at least once). When
 * the queue is full, new events are dropped, counted and logged.
 */
export class AmqpSink implements EventSink {
  private readonly urls: string[];
  private readonly queue: Pending[] = [];
  private conn: ChannelModel | undefined;
  private channel: ConfirmChannel | undefined;
  private declared = new Set<string>();
  private pumping = false;
  private closed = false;
  private retryMs: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private endPause: (() => void) | undefined;
  private nextUrl = 0;
  private outage: { since: number; dropped: number; lastError: string } | undefined;
  private connected = false;

  constructor(private readonly opts: AmqpSinkOptions) {
    this.urls = amqpUrls(opts.transportUrl);
    this.retryMs = opts.retryMinMs ?? 200;
  }

  /** Events waiting to be confirmed by the bus. */
  get queued(): number {
    return this.queue.length;
  }

  get isConnected(): boolean {
    return this.connected;
  }

  send(n: Notification): void {
    if (this.closed) {
      this.opts.metrics.notificationDropped('shutdown', this.opts.topics.length);
      return;
    }
    const body = Buffer.from(JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': JSON.stringify({ ...n, _unique_id: randomUUID().replace(/-/g, '') }) }));
    for (const topic of this.opts.topics) {
      if (this.queue.length >= this.opts.queueSize) {
        this.drop(n.event_type);
        continue;
      }
      this.queue.push({ routingKey: `${topic}.${n.priority.toLowerCase()}`, body, messageId: n.message_id });
    }
    this.kick();
  }

  private drop(eventType: string): void {
    this.opts.metrics.notificationDropped('queue_full', 1);
    if (this.outage) {
      if (this.outage.dropped++ === 0) {
        this.opts.log.warn({ eventType, queueSize: this.opts.queueSize, reason: this.outage.lastError }, 'notification queue full while the message bus is unreachable: dropping events (counted in imago_notifications_dropped_total)');
      }
    } else {
      this.opts.log.warn({ eventType, queueSize: this.opts.queueSize }, 'notification queue full: event dropped');
    }
  }

  private kick(): void {
    if (this.pumping || this.closed) return;
    this.pumping = true;
    this.pump()
      .catch((err) => this.opts.log.error({ err }, 'notification publisher stopped unexpectedly'))
      .finally(() => {
        this.pumping = false;
        // an event queued while the loop was ending
        if (this.queue.length && !this.closed) this.kick();
      });
  }

  private async pump(): Promise<void> {
    while (this.queue.length && !this.closed) {
      let channel: ConfirmChannel;
      try {
        channel = await this.ensureChannel();
      } catch (err) {
        this.failed(err);
        if (this.closed) return;
        await this.pause();
        continue;
      }
      const batch = this.queue.slice(0, BATCH);
      try {
        for (const p of batch) {
          if (!this.declared.has(p.routingKey)) await this.declare(p.routingKey);
          channel.publish(this.opts.exchange, p.routingKey, p.body, { contentType: 'application/json', contentEncoding: 'utf-8', messageId: p.messageId, persistent: false });
        }
        await channel.waitForConfirms();
      } catch (err) {
        this.failed(err);
        if (this.closed) return;
        await this.pause();
        continue;
      }
      // Confirmed: these leave the queue (the queue only grows at its end meanwhile).
      this.queue.splice(0, batch.length);
      this.opts.metrics.notificationPublished(batch.length);
      this.recovered();
    }
  }

  private async ensureChannel(): Promise<ConfirmChannel> {
    if (this.channel) return this.channel;
    const url = this.urls[this.nextUrl++ % this.urls.length];
    const conn = await connect(url, { timeout: 5_000, clientProperties: { connection_name: 'imago notifications' } });
    conn.on('error', () => {}); // followed by 'close'
    conn.on('close', () => this.lost(conn, 'the connection to the message bus closed'));
    conn.on('blocked', (reason: string) => this.opts.log.warn({ reason }, 'the message bus blocks publishing (resource alarm); events queue up meanwhile'));
    let channel: ConfirmChannel;
    try {
      channel = await conn.createConfirmChannel();
      channel.on('error', () => {});
      channel.on('close', () => this.lost(conn, 'the notification channel closed'));
      await channel.assertExchange(this.opts.exchange, 'topic', { durable: false, autoDelete: false });
    } catch (err) {
      await conn.close().catch(() => {});
      throw err;
    }
    this.conn = conn;
    this.channel = channel;
    this.declared = new Set();
    this.connected = true;
    return channel;
  }

  /** As oslo.messaging: a queue named after the routing key, bound to the exchange, so events wait for a consumer. */
  private async declare(routingKey: string): Promise<void> {
    const ch = this.channel!;
    await ch.assertQueue(routingKey, { durable: false, autoDelete: false });
    await ch.bindQueue(routingKey, this.opts.exchange, routingKey);
    this.declared.add(routingKey);
  }

  private lost(conn: ChannelModel, why: string): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    this.channel = undefined;
    this.connected = false;
    conn.close().catch(() => {});
    if (!this.closed) this.failed(new Error(why));
  }

  private failed(err: unknown): void {
    const message = (err as Error)?.message ?? String(err);
    const conn = this.conn;
    this.conn = undefined;
    this.channel = undefined;
    this.connected = false;
    conn?.close().catch(() => {});
    if (!this.outage) {
      this.outage = { since: Date.now(), dropped: 0, lastError: message };
      if (!this.closed) this.opts.log.warn({ reason: message, queued: this.queue.length }, 'message bus unreachable: notifications queue up and are sent when it returns');
    } else this.outage.lastError = message;
  }

  private recovered(): void {
    this.retryMs = this.opts.retryMinMs ?? 200;
    if (!this.outage) return;
    const { since, dropped } = this.outage;
    this.outage = undefined;
    this.opts.log.info({ downMs: Date.now() - since, dropped }, 'message bus reachable again: queued notifications sent');
  }

  /** Waits before the next attempt (longer each time), or until close() ends the wait. */
  private pause(): Promise<void> {
    const ms = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, this.opts.retryMaxMs ?? 5_000);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(this.retryTimer);
        this.retryTimer = undefined;
        this.endPause = undefined;
        resolve();
      };
      this.retryTimer = setTimeout(done, ms);
      this.retryTimer.unref();
      this.endPause = done;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Give what is queued a short chance to leave while the bus is up.
    const until = Date.now() + CLOSE_FLUSH_MS;
    while (this.queue.length && this.connected && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    this.closed = true;
    this.endPause?.();
    if (this.queue.length) {
      this.opts.metrics.notificationDropped('shutdown', this.queue.length);
      this.opts.log.warn({ dropped: this.queue.length }, 'stopping with notifications the message bus did not take: dropped');
      this.queue.length = 0;
    }
    const conn = this.conn;
    this.conn = undefined;
    this.channel = undefined;
    this.connected = false;
    await conn?.close().catch(() => {});
  }
}

import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { ConfigError } from '../config.js';
import { AmqpSink, amqpUrls, type BusMetrics } from './amqp.js';
import { Notifier } from './notifier.js';
import { noopSink, type EventSink } from './sink.js';

export { Notifier, silentNotifier, isDisabled } from './notifier.js';
export type { EventSink, Notification, Priority } from './sink.js';

/** The log driver: each event one log line (info, warn or error as its priority), its envelope under `notification`. */
export function logSink(log: Logger): EventSink {
  return {
    send(n) {
      const level = n.priority === 'ERROR' ? 'error' : n.priority === 'WARN' ? 'warn' : 'info';
      log[level]({ notification: n }, `notification ${n.event_type}`);
    },
    async close() {},
  };
}

/**
 * The notifier of `config.notifications`, built at start by the composition
 * root. A transport URL that cannot be read stops the start (ConfigError);
 * a bus that does not answer does not: events queue until it does.
 */
export function createNotifier(config: Pick<Config, 'notifications'>, log: Logger, metrics: BusMetrics): { notifier: Notifier; sink: EventSink } {
  const c = config.notifications;
  let sink: EventSink = noopSink;
  if (c.driver === 'log') sink = logSink(log.child({ component: 'notifications' }));
  if (c.driver === 'messagingv2') {
    try {
      amqpUrls(c.transportUrl ?? '');
    } catch (err) {
      throw new ConfigError(`notifications.transportUrl: ${(err as Error).message}`);
    }
    sink = new AmqpSink({ transportUrl: c.transportUrl!, exchange: c.exchange, topics: c.topics, queueSize: c.queueSize, log: log.child({ component: 'notifications' }), metrics });
  }
  const notifier = new Notifier(sink, { publisherId: c.publisherId ?? `image.${hostname()}`, disabled: c.disabled, active: c.driver !== 'noop' });
  return { notifier, sink };
}

/** oslo.messaging's priorities, as they appear in the envelope (`INFO`) and, lower-cased, in the routing key. */
export type Priority = 'INFO' | 'WARN' | 'ERROR';

/** One event as oslo.messaging's Notifier builds it (the `oslo.message` of the envelope). */
export interface Notification {
  message_id: string;
  publisher_id: string;
  event_type: string;
  priority: Priority;
  payload: unknown;
  /** UTC, as Python's str(datetime): `2026-12-03 15:07:26.123456` */
  timestamp: string;
}

/**
 * The port events leave through (drivers: noop, log, messagingv2). `send`
 * never blocks and never throws: a driver that cannot deliver queues, drops
 * and counts, but the caller (a request that has committed) goes on.
 */
export interface EventSink {
  send(n: Notification): void;
  /** Tries to deliver what is queued (bounded wait), then lets go of connections. */
  close(): Promise<void>;
}

export const noopSink: EventSink = {
  send() {},
  async close() {},
};

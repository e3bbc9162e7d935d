import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What the metrics read when Prometheus scrapes, rather than being told on every change. */
export interface MetricSources {
  /** uploads, stagings and import writers holding an image right now */
  writersInFlight(): number;
  /** import tasks this process is running */
  importsInFlight(): number;
  /** busy share (0..1) of each hash worker since the last call */
  hashWorkerUtilization(): number[];
  /** PostgreSQL pool, when there is one */
  dbPool?(): { total: number; idle: number; waiting: number };
  /** notifications waiting for the message bus (messagingv2 driver) */
  notificationsQueued?(): number;
}

const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];

/**
 * Every Prometheus metric Imago exports, on a registry of its own (not
 * prom-client's global one), so several servers in one process (tests)
 * keep separate counts. Names and labels are listed in docs/operations.md;
 * the Grafana dashboard in docs/grafana-dashboard.json uses them.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  readonly httpBytesIn: Counter<'route'>;
  readonly httpBytesOut: Counter<'route'>;
  readonly storeBytesWritten: Counter<'store'>;
  readonly storeBytesRead: Counter<'store'>;
  readonly storeOpDuration: Histogram<'store' | 'operation'>;
  readonly storeOpErrors: Counter<'store' | 'operation'>;
  readonly tasks: Counter<'method' | 'outcome'>;
  readonly taskDuration: Histogram<'method' | 'outcome'>;
  readonly dbQueryDuration: Histogram<'outcome'>;
  readonly notificationsPublished: Counter;
  readonly notificationsDropped: Counter<'reason'>;
  private sources: MetricSources | undefined;

  /**
   * `processMetrics`: prom-client's default process metrics (heap, GC, lag),
   * which start observers that live as long as the process; only worth it
   * when something scrapes them.
   */
  constructor(opts: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry });
    this.httpRequests = new Counter({ name: 'imago_http_requests_total', help: 'HTTP requests answered, by route template, method and status', labelNames: ['method', 'route', 'status'], registers });
    this.httpDuration = new Histogram({ name: 'imago_http_request_duration_seconds', help: 'Time from a request\'s arrival to the last byte of its answer', labelNames: ['method', 'route', 'status'], buckets: SECONDS, registers });
    this.httpBytesIn = new Counter({ name: 'imago_http_received_bytes_total', help: 'Request body bytes received, by route template', labelNames: ['route'], registers });
    this.httpBytesOut = new Counter({ name: 'imago_http_sent_bytes_total', help: 'Response body bytes sent, by route template', labelNames: ['route'], registers });
    this.storeBytesWritten = new Counter({ name: 'imago_store_bytes_written_total', help: 'Image bytes written to a store (uploads, staging, imports, copies), counted once an object is complete', labelNames: ['store'], registers });
    this.storeBytesRead = new Counter({ name: 'imago_store_bytes_read_total', help: 'Image bytes read from a store (downloads, imports, copies)', labelNames: ['store'], registers });
    this.storeOpDuration = new Histogram({ name: 'imago_store_operation_duration_seconds', help: 'Store operations: put (the whole object), get (until the stream opens), delete, exists', labelNames: ['store', 'operation'], buckets: SECONDS, registers });
    this.storeOpErrors = new Counter({ name: 'imago_store_operation_errors_total', help: 'Store operations that failed', labelNames: ['store', 'operation'], registers });
    this.tasks = new Counter({ name: 'imago_import_tasks_total', help: 'Import tasks finished, by import method and outcome', labelNames: ['method', 'outcome'], registers });
    this.taskDuration = new Histogram({ name: 'imago_import_task_duration_seconds', help: 'Import task run time on this node, by import method and outcome', labelNames: ['method', 'outcome'], buckets: SECONDS, registers });
    this.dbQueryDuration = new Histogram({ name: 'imago_db_query_duration_seconds', help: 'Metadata database query latency', labelNames: ['outcome'], buckets: SECONDS, registers });

    this.notificationsPublished = new Counter({ name: 'imago_notifications_published_total', help: 'Notifications the message bus confirmed (one per topic)', registers });
    this.notificationsDropped = new Counter({ name: 'imago_notifications_dropped_total', help: 'Notifications dropped: queue_full (the bus was away too long) or shutdown (still queued when Imago stopped)', labelNames: ['reason'], registers });

    const self = this;
    new Gauge({ name: 'imago_notifications_queued', help: 'Notifications waiting for the message bus', registers, collect() { this.set(self.sources?.notificationsQueued?.() ?? 0); } });
    new Gauge({ name: 'imago_uploads_in_flight', help: 'Writers (uploads, stagings, import writes) holding an image now', registers, collect() { this.set(self.sources?.writersInFlight() ?? 0); } });
    new Gauge({ name: 'imago_imports_in_flight', help: 'Import tasks this process is running now', registers, collect() { this.set(self.sources?.importsInFlight() ?? 0); } });
    new Gauge({
      name: 'imago_hash_worker_utilization_ratio',
      help: 'Busy share of each hash worker thread since the previous scrape',
      labelNames: ['worker'],
      registers,
      collect() {
        (self.sources?.hashWorkerUtilization() ?? []).forEach((u, i) => this.set({ worker: String(i) }, u));
      },
    });
    let lastLoop: EventLoopUtilization = performance.eventLoopUtilization();
    new Gauge({
      name: 'imago_event_loop_utilization_ratio',
      help: 'Busy share of the main event loop since the previous scrape',
      registers,
      collect() {
        const current = performance.eventLoopUtilization();
        this.set(performance.eventLoopUtilization(current, lastLoop).utilization);
        lastLoop = current;
      },
    });
    new Gauge({
      name: 'imago_db_pool_connections',
      help: 'PostgreSQL pool connections by state (total, idle, waiting clients)',
      labelNames: ['state'],
      registers,
      collect() {
        const pool = self.sources?.dbPool?.();
        if (!pool) return;
        for (const [state, n] of Object.entries(pool)) this.set({ state }, n);
      },
    });
  }

  /** Connects the gauges to the running server's parts once they exist. */
  attach(sources: MetricSources): void {
    this.sources = sources;
  }

  observeDbQuery(ms: number, failed: boolean): void {
    this.dbQueryDuration.observe({ outcome: failed ? 'error' : 'ok' }, ms / 1000);
  }

  notificationPublished(n: number): void {
    this.notificationsPublished.inc(n);
  }

  notificationDropped(reason: 'queue_full' | 'shutdown', n: number): void {
    this.notificationsDropped.inc({ reason }, n);
  }

  taskFinished(method: string, outcome: 'success' | 'failure', seconds: number): void {
    this.tasks.inc({ method, outcome });
    this.taskDuration.observe({ method, outcome }, seconds);
  }
}

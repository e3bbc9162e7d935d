import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { createLogger } from './logging.js';
import type { Config, StoreConfig } from './config.js';
import { openDatabase, type Db, type DialectName } from './db/database.js';
import { ImagesRepo } from './db/images-repo.js';
import { MembersRepo } from './db/members-repo.js';
import { TasksRepo } from './db/tasks-repo.js';
import { QuotasRepo } from './db/quotas-repo.js';
import { NodesRepo } from './db/nodes-repo.js';
import { StagingRepo } from './db/staging-repo.js';
import type { Authenticator } from './auth/context.js';
import { createAuthenticator } from './auth/index.js';
import type { Policy } from './domain/policy.js';
import { ServiceUnavailable } from './domain/errors.js';
import { loadPolicy, watchPolicy } from './services/policy-loader.js';
import { loadPropertyProtections } from './services/property-protection-loader.js';
import { QuotaService, type QuotaChecker } from './services/quotas.js';
import { HashPool } from './stores/hash-pool.js';
import { StoreRegistry, createStore } from './stores/registry.js';
import { WriterRegistry } from './services/writers.js';
import { ImageAccess } from './services/image-access.js';
import { ImageService } from './services/images.js';
import { LocationService } from './services/locations.js';
import { DataService } from './services/image-data.js';
import { DurableCommits } from './services/durable-commits.js';
import { StagingService } from './services/staging.js';
import { ResumableUploads } from './services/resumable-uploads.js';
import { UploadsRepo } from './db/uploads-repo.js';
import { ImportService } from './services/import.js';
import { TaskService } from './services/tasks.js';
import { MemberService } from './services/members.js';
import { StoreInfoService } from './services/store-info.js';
import { NodeLiveness } from './services/nodes.js';
import { Recovery } from './services/recovery.js';
import { FormatInspection, type InspectionPlugin } from './import/inspection.js';
import { UriFilter } from './import/uri-filter.js';
import { MetadefsRepo } from './metadefs/repo.js';
import { MetadefService } from './metadefs/service.js';
import { Metrics } from './metrics/metrics.js';
import { instrumentStore } from './metrics/store-metrics.js';
import { HealthMonitor } from './health/monitor.js';
import { createNotifier, type Notifier } from './notifications/index.js';
import { CacheIndex } from './db/cache-index.js';
import { ImageCache, type Opener } from './cache/image-cache.js';
import { Prefetcher } from './cache/prefetcher.js';
import { CacheService } from './services/cache.js';
import type { Image } from './domain/image.js';

/**
 * The composed application: everything a running Imago holds, built once at
 * start by createRuntime (the composition root). Services never see this
 * object: each gets exactly its dependencies. server/ reads the services
 * from it; tests reach into it (s.rt.db, s.rt.tasks...).
 */
export interface Runtime {
  config: Config;
  log: Logger;
  nodeId: string;
  db: Db;
  dialect: DialectName;
  images: ImagesRepo;
  members: MembersRepo;
  stagingRepo: StagingRepo;
  stores: StoreRegistry;
  hashPool: HashPool;
  auth: Authenticator;
  policy: Policy;
  writers: WriterRegistry;
  access: ImageAccess;
  imageService: ImageService;
  locations: LocationService;
  data: DataService;
  staging: StagingService;
  /** resumable uploads (tus, /v2/uploads); absent when uploads.resumable is off */
  uploads?: ResumableUploads;
  importService: ImportService;
  tasks: TaskService;
  memberService: MemberService;
  /** the stores as GET /v2/info/stores shows them */
  storeInfo: StoreInfoService;
  metadefs: MetadefService;
  recovery: Recovery;
  quotas?: QuotaChecker;
  inspection?: InspectionPlugin;
  /** Prometheus metrics (src/metrics/); served by the metrics listener when it is enabled */
  metrics: Metrics;
  /** what /healthcheck answers (src/health/monitor.ts) */
  health: HealthMonitor;
  /** events on the message bus (src/notifications/, docs/notifications.md) */
  events: Notifier;
  /** this node's image cache, its prefetcher and its API (only with cache.enabled; docs/cache.md) */
  cache?: ImageCache;
  prefetcher?: Prefetcher;
  cacheService?: CacheService;
  /**
   * Brings the node into service: start-up recovery (invariant 5; the orphan
   * sweep only when this process owns the data, i.e. embedded SQLite), the
   * node heartbeat, then the task runner.
   */
  start(): Promise<void>;
  /** Stops accepting writers and rolls back the ones streaming (invariant 3); idempotent. */
  drain(reason?: Error): Promise<void>;
  /** Drains, stops the task runner and the heartbeat, and closes every resource; works whether start() ran or not. */
  close(): Promise<void>;
}

export async function createRuntime(config: Config, log: Logger = createLogger(config)): Promise<Runtime> {
  // A bad policy file stops the start before anything is opened.
  const policy = loadPolicy(config);
  const protections = loadPropertyProtections(config, policy);
  const metrics = new Metrics({ processMetrics: config.metrics.enabled });
  // A transport URL that cannot be read stops the start; a bus that is down does not (events queue).
  const { notifier: events, sink: eventSink } = createNotifier(config, log, metrics);
  // With metrics off nothing reads the samples; timing every query through Kysely's log hook and
  // wrapping every store call would cost every request for nobody (docs/benchmarks.md).
  const observe = config.metrics.enabled;
  const { db, dialect, close: closeDb, poolStats } = await openDatabase(config.database.url, observe ? { onQuery: (ms, failed) => metrics.observeDbQuery(ms, failed) } : {});
  const measured = (c: StoreConfig) => (observe ? createStore(c, (driver) => instrumentStore(driver, metrics)) : createStore(c));
  const stores = new StoreRegistry(await Promise.all(config.stores.map(measured)), config.defaultStore, await measured(config.staging));
  await stores.open((storeId, err) => log.warn({ store: storeId, details: (err as { details?: string }).details }, `store ${storeId} is unreachable at start: ${err.message}`)).catch(async (err) => {
    await closeDb();
    await stores.close();
    throw err;
  });
  const hashPool = new HashPool(config.hashWorkers);
  const cache = config.cache.enabled
    ? await openCache(config, hashPool, log).catch(async (err) => {
        await hashPool.close();
        await stores.close();
        await events.close();
        await closeDb();
        throw err;
      })
    : undefined;
  const auth = createAuthenticator(config, { logger: log });
  const nodeId = randomUUID();

  // Repositories and shared parts.
  const images = new ImagesRepo(db);
  const members = new MembersRepo(db);
  const tasksRepo = new TasksRepo(db);
  const stagingRepo = new StagingRepo(db);
  const nodes = new NodeLiveness(nodeId, dialect, config.nodeTimeoutSeconds * 1000, new NodesRepo(db));
  const writers = new WriterRegistry();
  const access = new ImageAccess(images, members);
  const quotas = config.quotas.enabled ? new QuotaService(new QuotasRepo(db, dialect), config) : undefined;
  const inspection = config.import.plugins.formatInspection ? new FormatInspection() : undefined;
  const filter = new UriFilter(config.import.webDownload);
  const commits = new DurableCommits({ dialect, url: config.database.url });

  // Services, each after the ones it calls: data ← staging ← images; data, staging ← tasks ← import.
  const data = new DataService({ access, policy, stores, images, writers, hashPool, commits, quotas, inspection, cache, nodeId, config, log, events });
  const staging = new StagingService({ access, policy, images, stores, data, repo: stagingRepo, config, log });
  const uploads = config.uploads.resumable
    ? new ResumableUploads({ access, policy, images, repo: new UploadsRepo(db), stores, hashPool, data, staging, quotas, inspection, config, log })
    : undefined;
  const tasks = new TaskService({ access, policy, images, tasksRepo, stores, staging, data, writers, quotas, inspection, filter, nodes, metrics, nodeId, dialect, config, log, events, protections });
  const locations = new LocationService({ access, images, stores, policy, data, tasks, nodeId, config });
  const imageService = new ImageService({ access, images, policy, writers, data, staging, quotas, config, locations, events, protections, cache });
  const importService = new ImportService({ access, policy, images, stores, tasks, data, quotas, filter, nodeId, dialect, config });
  const memberService = new MemberService({ access, policy, members, events });
  const storeInfo = new StoreInfoService({ stores, policy });
  const metadefs = new MetadefService(new MetadefsRepo(db), policy, events);
  const recovery = new Recovery({ images, stagingRepo, stores, staging, data, tasks, nodes, log });
  const health = new HealthMonitor({ db, stores, auth, config });
  const prefetcher = cache
    ? new Prefetcher({
        cache,
        getImage: (id) => images.get(id),
        opener: (image) => storeOpener(stores, image),
        intervalMs: config.cache.prefetchIntervalSeconds * 1000,
        concurrency: config.cache.prefetchConcurrency,
        log,
      })
    : undefined;
  const cacheService = cache ? new CacheService({ access, policy, cache }) : undefined;
  metrics.attach({
    writersInFlight: () => writers.size,
    importsInFlight: () => tasks.runningCount,
    hashWorkerUtilization: () => hashPool.utilization(),
    dbPool: poolStats,
    notificationsQueued: () => (eventSink as { queued?: number }).queued ?? 0,
  });
  const unwatchPolicy = watchPolicy({ config, policy, log });

  let stopHeartbeat: (() => Promise<void>) | undefined;
  let stopUploadSweep: (() => Promise<void>) | undefined;
  let closing: Promise<void> | undefined;
  const drain = (reason = new ServiceUnavailable('The server is shutting down; retry the upload.')) => writers.abortAll(reason);
  return {
    config, log, nodeId, db, dialect, images, members, stagingRepo, stores, hashPool, auth, policy, writers, access,
    imageService, locations, data, staging, uploads, importService, tasks, memberService, storeInfo, metadefs, recovery, quotas, inspection, metrics, health, events,
    cache, prefetcher, cacheService,
    async start() {
      // Embedded SQLite: this process owns the data, so anything no record owns is an orphan to sweep.
      await recovery.recoverAtStart({ sweepOrphans: dialect === 'sqlite' });
      stopHeartbeat = await recovery.startHeartbeat();
      stopUploadSweep = uploads?.startSweeping();
      tasks.start();
      prefetcher?.start();
    },
    drain,
    close: () =>
      (closing ??= (async () => {
        await drain();
        await tasks.stop();
        await stopHeartbeat?.();
        await stopUploadSweep?.();
        // Closing the cache stops the fills, so the prefetches in flight end now rather than after whole images.
        const prefetching = prefetcher?.stop();
        await cache?.close();
        await prefetching;
        unwatchPolicy();
        await hashPool.close();
        await stores.close();
        await auth.close?.();
        await events.close();
        await closeDb();
      })()),
  };
}

async function openCache(config: Config, hashPool: HashPool, log: Logger): Promise<ImageCache> {
  const index = new CacheIndex(config.cache.dir);
  try {
    return await ImageCache.open({ dir: config.cache.dir, maxBytes: Math.floor(config.cache.maxSizeGiB * 1024 ** 3), index, hashPool, log });
  } catch (err) {
    index.close();
    throw err;
  }
}

/** How the prefetcher reads an image: from the first active location in a store this node holds (as a download does). */
function storeOpener(stores: StoreRegistry, image: Image): Opener | undefined {
  const location = image.locations.find((l) => l.status === 'active' && stores.holding(l.storeId));
  const store = location && stores.holding(location.storeId);
  return store ? (range) => store.get(location.url, range) : undefined;
}

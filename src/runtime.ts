import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { createLogger } from './logging.js';
import type { Config, StoreConfig } from './config.js';
import { openDatabase, type Db, type DialectName } from './db/database.js';
import { ImagesRepo } from './db/images-repo.js';
import { MembersRepo } from './db/members-repo.js';
import type { Authenticator, RequestContext } from './auth/context.js';
import { createAuthenticator } from './auth/index.js';
import { Policy } from './domain/policy.js';
import { loadPolicy, watchPolicy } from './services/policy-loader.js';
import type { Image } from './domain/image.js';
import type { QuotaLease, WriterAdmission } from './domain/quota.js';
import { QuotaService } from './services/quotas.js';
import { HashPool } from './stores/hash-pool.js';
import { StoreRegistry, createStore } from './stores/registry.js';
import type { ChunkTap } from './stores/metered-stream.js';
import { WriterRegistry } from './services/writers.js';
import { ImageService } from './services/images.js';
import { DataService } from './services/image-data.js';
import { StagingService } from './services/staging.js';
import { ImportService } from './services/import.js';
import { TaskService } from './services/tasks.js';
import { UploadInspection } from './import/inspection.js';
import { MetadefsRepo } from './metadefs/repo.js';
import { MetadefService } from './metadefs/service.js';
import { Metrics } from './metrics/metrics.js';
import { instrumentStore } from './metrics/store-metrics.js';
import { HealthMonitor } from './health/monitor.js';

/** Per-project limits (src/services/quotas.ts, docs/quotas.md); absent when quotas are off. */
export interface QuotaChecker {
  /** image_count_total: admits image `imageId` for `owner` (413 when over); release once it is created or failed. */
  admitCreate(owner: string | null, imageId: string): Promise<{ release(): Promise<void> }>;
  /** An early, unreserved estimate of the bytes `owner` may still store (refuse a too-large Content-Length upfront). */
  remainingBytes(ctx: RequestContext, owner: string | null): Promise<{ bytes: number; error: (n: number) => Error } | undefined>;
  /**
   * Admits a writer that holds the image's claim: checks image_count_uploading
   * and reserves bytes against image_size_total (stores) or image_stage_total
   * (staging). Pass the lease to DataService.write (`quota`) so unknown sizes
   * are charged while streaming; release it when the writer ends. 413 when over.
   */
  admitWriter(admission: WriterAdmission): Promise<QuotaLease>;
  /** Limits and usage of a project, as GET /v2/info/usage shows them. */
  usage(project: string): Promise<Record<string, { limit: number; usage: number }>>;
}

/** Format inspection hooked into every write of image data. */
export interface InspectionPlugin {
  start(image: Image): { tap: ChunkTap; finish(size: number): number | null };
}

/**
 * Everything a running Imago holds, built once at start. Services receive
 * it whole; tests build one per server.
 */
export interface Runtime {
  config: Config;
  log: Logger;
  nodeId: string;
  db: Db;
  dialect: DialectName;
  images: ImagesRepo;
  members: MembersRepo;
  stores: StoreRegistry;
  hashPool: HashPool;
  auth: Authenticator;
  policy: Policy;
  writers: WriterRegistry;
  imageService: ImageService;
  data: DataService;
  staging: StagingService;
  importService: ImportService;
  tasks: TaskService;
  metadefs: MetadefService;
  quotas?: QuotaChecker;
  inspection?: InspectionPlugin;
  /** Prometheus metrics (src/metrics/); served by the metrics listener when it is enabled */
  metrics: Metrics;
  /** what /healthcheck answers (src/health/monitor.ts) */
  health: HealthMonitor;
  close(): Promise<void>;
}

export async function createRuntime(config: Config, log: Logger = createLogger(config)): Promise<Runtime> {
  // A bad policy file stops the start before anything is opened.
  const policy = loadPolicy(config);
  const metrics = new Metrics({ processMetrics: config.metrics.enabled });
  const { db, dialect, close: closeDb, poolStats } = await openDatabase(config.database.url, { onQuery: (ms, failed) => metrics.observeDbQuery(ms, failed) });
  const measured = (c: StoreConfig) => instrumentStore(createStore(c), metrics);
  const stores = new StoreRegistry(config.stores.map(measured), config.defaultStore, measured(config.staging));
  await stores.open((storeId, err) => log.warn({ store: storeId, details: (err as { details?: string }).details }, `store ${storeId} is unreachable at start: ${err.message}`)).catch(async (err) => {
    await closeDb();
    await stores.close();
    throw err;
  });
  const hashPool = new HashPool(config.hashWorkers);
  const auth = createAuthenticator(config, { logger: log });
  const rt = {
    config,
    log,
    nodeId: randomUUID(),
    db,
    dialect,
    images: new ImagesRepo(db),
    members: new MembersRepo(db),
    stores,
    hashPool,
    auth,
    policy,
    writers: new WriterRegistry(),
    metrics,
  } as Partial<Runtime> as Runtime;
  rt.imageService = new ImageService(rt);
  rt.data = new DataService(rt);
  rt.staging = new StagingService(rt);
  rt.importService = new ImportService(rt);
  rt.tasks = new TaskService(rt);
  if (config.import.plugins.formatInspection) rt.inspection = new UploadInspection();
  if (config.quotas.enabled) rt.quotas = new QuotaService(rt);
  rt.metadefs = new MetadefService(new MetadefsRepo(db), rt.policy);
  rt.health = new HealthMonitor(rt);
  metrics.attach({
    writersInFlight: () => rt.writers.size,
    importsInFlight: () => rt.tasks.runningCount,
    hashWorkerUtilization: () => hashPool.utilization(),
    dbPool: poolStats,
  });
  const unwatchPolicy = watchPolicy(rt);
  rt.close = async () => {
    await rt.tasks.stop();
    unwatchPolicy();
    await hashPool.close();
    await stores.close();
    await auth.close?.();
    await closeDb();
  };
  return rt;
}

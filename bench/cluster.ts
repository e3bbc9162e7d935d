import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Target } from './api.js';
import { startImago, type LocalImago } from './imago-process.js';
import type { BenchS3 } from './s3.js';
import { createTestDatabase, postgresAvailable, PG_ADMIN_URL } from '../test/support/postgres.js';
import { haproxySkipReason, startHaproxy, type Haproxy } from '../test/support/haproxy.js';

/**
 * `--nodes N` (N ≥ 2), or `--postgres` (N = 1, no balancer): N Imago processes behind Debian's haproxy (the
 * multi-node test's balancer configuration, test/support/haproxy.ts), the
 * deployment of docs/deployment.md on one machine:
 *
 * - one PostgreSQL database for all nodes (a fresh one on the tests' server);
 * - one tokens file, so the admin token works on every node;
 * - the image store and the staging area shared: a filesystem directory all
 *   nodes mount (`--store filesystem`, as an NFS export would be), or the
 *   S3 bucket (`--store s3`, with staging under its own prefix in the same
 *   bucket, so stage on one node and import on another needs no shared disk).
 *
 * The target is the balancer; its pids are the nodes', so CPU and RSS are
 * the whole cluster's (haproxy's own CPU is reported apart).
 */
export interface BenchCluster {
  target: Target;
  nodes: LocalImago[];
  /** absent with one node: the target is the node itself */
  haproxy?: Haproxy;
  /** what the nodes share, for the results file */
  config: Record<string, unknown>;
  /** the shared filesystem store's directory (`--store filesystem`) */
  storeDir?: string;
  stop(): Promise<(number | null)[]>;
}

/** Why a cluster cannot run here, or undefined. */
export async function clusterSkipReason(count: number): Promise<string | undefined> {
  const h = count > 1 ? haproxySkipReason() : undefined;
  if (h) return h;
  if (!(await postgresAvailable())) return `no PostgreSQL at ${PG_ADMIN_URL} (set IMAGO_TEST_PG_URL): the nodes share one database`;
  return undefined;
}

export async function startCluster(opts: { repoRoot: string; workDir: string; count: number; nodeArgs: string[]; s3?: BenchS3 }): Promise<BenchCluster> {
  const shared = path.join(opts.workDir, 'shared');
  mkdirSync(shared, { recursive: true });
  const db = await createTestDatabase();
  const tokensFile = path.join(shared, 'tokens.json');
  const token = randomBytes(24).toString('hex');
  writeFileSync(tokensFile, JSON.stringify({ [token]: { user: 'admin', project: 'admin', roles: ['admin', 'member', 'reader'] } }), { mode: 0o600 });
  const storeConfig = opts.s3
    ? {
        ...opts.s3.serverConfig,
        staging: { id: 'os_glance_staging_store', type: 's3', description: 'Staging in the bench bucket', s3: { ...(opts.s3.serverConfig.stores as { s3: Record<string, unknown> }[])[0].s3, prefix: 'staging/' } },
      }
    : {
        stores: [{ id: 'shared', type: 'filesystem', description: 'Directory shared by every node', path: path.join(shared, 'images') }],
        defaultStore: 'shared',
        staging: { id: 'os_glance_staging_store', type: 'filesystem', description: 'Staging shared by every node', path: path.join(shared, 'staging') },
      };
  const config = { database: { url: db.url }, auth: { tokensFile }, ...storeConfig };
  const nodes: LocalImago[] = [];
  let haproxy: Haproxy | undefined;
  const stopAll = async () => {
    await haproxy?.stop();
    const codes = [];
    for (const n of nodes) codes.push(await n.stop());
    await db.drop().catch(() => {});
    return codes;
  };
  try {
    // One after the other: the first runs the migrations, the others find them done.
    for (let i = 0; i < opts.count; i++) {
      nodes.push(await startImago({ repoRoot: opts.repoRoot, workDir: path.join(opts.workDir, `node-${i + 1}`), nodeArgs: opts.nodeArgs, extraConfig: config }));
    }
    if (opts.count > 1) {
      const ports = Object.fromEntries(nodes.map((n, i) => [`node${i + 1}`, Number(new URL(n.target.baseUrl).port)]));
      const dir = path.join(opts.workDir, 'haproxy');
      mkdirSync(dir, { recursive: true });
      haproxy = await startHaproxy(ports, dir);
    }
  } catch (err) {
    await stopAll();
    throw err;
  }
  const pids = nodes.map((n) => n.target.pid!);
  return {
    target: { baseUrl: haproxy?.url ?? nodes[0].target.baseUrl, token, pid: pids[0], pids, sameMachine: true },
    nodes,
    haproxy,
    storeDir: opts.s3 ? undefined : path.join(shared, 'images'),
    config: { nodes: opts.count, balancer: haproxy ? 'haproxy (round robin, /healthcheck)' : 'none', ...config, database: { url: 'postgres (a fresh database on the tests\' server)' } },
    stop: stopAll,
  };
}

import type { FastifyInstance } from 'fastify';
import { ConfigError, type Config } from '../config.js';
import { createRuntime, type Runtime } from '../runtime.js';
import { buildApp, type Registrar } from './app.js';
import type { Logger } from 'pino';
import { lockDataDir } from '../db/data-dir-lock.js';
import { startMetricsListener } from '../metrics/listener.js';

export interface RunningServer {
  app: FastifyInstance;
  rt: Runtime;
  url: string;
  /** the metrics listener's base URL, when metrics.enabled */
  metricsUrl?: string;
  stop(): Promise<void>;
}

/** Builds the runtime, recovers from any unclean stop, and listens. */
export interface StartOptions {
  log?: Logger;
  extra?: Registrar[];
  /** how long stop() lets running downloads finish before cutting their connections (default 30 s) */
  shutdownGraceMs?: number;
}

export async function startServer(config: Config, opts: StartOptions = {}): Promise<RunningServer> {
  // Embedded mode: one process per data dir, or a second one's recovery would roll back the first's writes.
  const dataDirLock = config.database.url.startsWith('sqlite:') ? lockDataDir(config.dataDir) : undefined;
  const rt = await createRuntime(config, opts.log).catch((err) => {
    dataDirLock?.release();
    throw err;
  });
  let app: FastifyInstance;
  let metricsListener: Awaited<ReturnType<typeof startMetricsListener>> | undefined;
  try {
    await checkIdentityAtStart(config, rt);
    // Recovery, heartbeat and task runner: the runtime's lifecycle, not the HTTP server's.
    await rt.start();
    app = buildApp(rt, opts.extra);
    await app.listen({ host: config.host, port: config.port });
    metricsListener = config.metrics.enabled ? await startMetricsListener(rt) : undefined;
  } catch (err) {
    await rt.close().catch(() => {});
    dataDirLock?.release();
    throw err;
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      // Stop taking requests, roll back writers still streaming (invariant 3),
      // give downloads a grace period, then cut what is left and close.
      const closing = app.close();
      await rt.drain();
      const cut = setTimeout(() => app.server.closeAllConnections(), opts.shutdownGraceMs ?? 30_000);
      cut.unref();
      await closing;
      clearTimeout(cut);
      await metricsListener?.close();
      await rt.close();
      dataDirLock?.release();
    })());
  return { app, rt, url: `http://${host}:${port}`, metricsUrl: metricsListener?.url, stop };
}

/**
 * Imago's own Keystone credentials, checked once before anything else: a wrong service password
 * would otherwise surface only as every request failing. `checkAtStart: fail` makes it a
 * configuration error; `degraded` (the default) starts and says so, and health tells balancers.
 */
async function checkIdentityAtStart(config: Config, rt: Runtime): Promise<void> {
  const keystone = config.auth.mode === 'keystone' ? config.auth.keystone : undefined;
  if (!keystone || !rt.auth.probe) return;
  try {
    await rt.auth.probe();
  } catch (err) {
    const why = (err as Error).message;
    if (keystone.checkAtStart === 'fail') {
      throw new ConfigError(`Keystone at ${keystone.authUrl} does not accept Imago's own credentials (user ${keystone.username}, project ${keystone.projectName}): ${why} (auth.keystone.checkAtStart is "fail")`);
    }
    rt.log.warn({ authUrl: keystone.authUrl, user: keystone.username, reason: why }, 'Keystone does not accept Imago\'s own credentials at start; starting degraded: requests needing Keystone answer 503 and /healthcheck says "identity service unavailable" until it does');
  }
}

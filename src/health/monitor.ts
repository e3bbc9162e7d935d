import { existsSync } from 'node:fs';
import { sql } from 'kysely';
import type { Config } from '../config.js';
import type { Db } from '../db/database.js';
import type { StoreRegistry } from '../stores/registry.js';
import type { Authenticator } from '../auth/context.js';

/** What the health checks probe. */
export interface HealthDeps {
  db: Db;
  stores: StoreRegistry;
  auth: Pick<Authenticator, 'probe'>;
  config: Pick<Config, 'health'>;
}

/** One component's state, as the detailed health answer shows it. */
export interface ComponentHealth {
  component: string;
  ok: boolean;
  /** what went wrong, in the component's own words; only on the metrics listener */
  details?: string;
}

export interface HealthReport {
  healthy: boolean;
  /** Glance's reasons: ["OK"], or what is failing: "DISABLED BY FILE", "database unavailable", ... */
  reasons: string[];
  components: ComponentHealth[];
  checkedAt: string;
}

const CHECK_TIMEOUT_MS = 3000;

/**
 * Answers "can this node serve requests?" for load balancers: the database
 * answers a query, every store is reachable (Store.probe), and the identity
 * service accepts Imago's own credentials (Authenticator.probe). Results are
 * kept `health.cacheSeconds` so probes every second from several balancers
 * cost one round of checks, not one Keystone request each. The drain file
 * (`health.disableByFile`) is looked at on every call: it is how an operator
 * takes a node out of rotation while its in-flight transfers finish.
 */
export class HealthMonitor {
  private cached: { report: HealthReport; until: number } | undefined;
  private running: Promise<HealthReport> | undefined;

  constructor(private readonly deps: HealthDeps) {}

  async check(): Promise<HealthReport> {
    const file = this.deps.config.health.disableByFile;
    if (file && existsSync(file)) {
      return { healthy: false, reasons: ['DISABLED BY FILE'], components: [{ component: 'disable-by-file', ok: false, details: `${file} exists` }], checkedAt: new Date().toISOString() };
    }
    if (this.cached && Date.now() < this.cached.until) return this.cached.report;
    this.running ??= this.runChecks().then((report) => {
      this.cached = { report, until: Date.now() + this.deps.config.health.cacheSeconds * 1000 };
      return report;
    }).finally(() => (this.running = undefined));
    return this.running;
  }

  private async runChecks(): Promise<HealthReport> {
    const rt = this.deps;
    const checks: [string, () => Promise<unknown>][] = [['database', () => sql`select 1`.execute(rt.db)]];
    for (const store of [...rt.stores.stores, rt.stores.staging]) {
      if (store.probe) checks.push([`store ${store.info.id}`, () => store.probe!()]);
    }
    if (rt.auth.probe) checks.push(['identity service', () => rt.auth.probe!()]);
    const components = await Promise.all(checks.map(([component, probe]) => runCheck(component, probe)));
    const failing = components.filter((c) => !c.ok);
    return {
      healthy: failing.length === 0,
      reasons: failing.length ? failing.map((c) => `${c.component} unavailable`) : ['OK'],
      components,
      checkedAt: new Date().toISOString(),
    };
  }
}

async function runCheck(component: string, probe: () => Promise<unknown>): Promise<ComponentHealth> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
  });
  try {
    await Promise.race([probe(), timeout]);
    return { component, ok: true };
  } catch (err) {
    return { component, ok: false, details: (err as Error)?.message ?? String(err) };
  } finally {
    clearTimeout(timer);
  }
}

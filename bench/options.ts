import { GiB, MiB } from './stats.js';

export const SCENARIOS = ['references', 'transfer', 'ranges', 'import', 'cache', 'concurrent', 'metadata', 'metadata-during-upload', 'resumable'] as const;
export type ScenarioId = (typeof SCENARIOS)[number];

export interface Sizes {
  /** single upload/download sizes; the first also feeds ranges, import and the references */
  single: number[];
  /** the upload that metadata latency is measured against */
  busyUpload: number;
  concurrent: { count: number; size: number };
  ranges: number;
  rangeSize: number;
  /** every how many-th range is fetched again and compared byte for byte with the file */
  rangeVerifyEvery: number;
  metadataImages: number;
  /** single transfers and references keep the best of this many runs */
  repeats: number;
  /** no scenario may run longer than this */
  scenarioTimeoutMs: number;
}

export interface KeystoneAuth {
  authUrl: string;
  username: string;
  password: string;
  projectName: string;
  userDomainName: string;
  projectDomainName: string;
}

export interface Options {
  quick: boolean;
  sizes: Sizes;
  /** remote Glance-compatible endpoint; absent = start a local Imago */
  target?: string;
  token?: string;
  /** pid of the --target server when it runs on this machine: RSS and CPU are sampled from it */
  serverPid?: number;
  keystone?: KeystoneAuth;
  only: Set<ScenarioId>;
  workDir?: string;
  /** extra node flags for the local server (e.g. --cpu-prof) */
  serverNodeArgs: string[];
  cpuProf: boolean;
  keep: boolean;
  /** where the local server keeps image data: its filesystem store, or an S3 store on a Swift started for the run */
  store: 'filesystem' | 's3';
  /** local Imago processes: 1, or N ≥ 2 behind haproxy sharing PostgreSQL and the store (bench/cluster.ts) */
  nodes: number;
  /** the local server's database is a fresh PostgreSQL one (implied by --nodes N ≥ 2), not SQLite in its data dir */
  postgres: boolean;
}

export const QUICK: Sizes = {
  single: [128 * MiB, 256 * MiB],
  busyUpload: 256 * MiB,
  concurrent: { count: 8, size: 64 * MiB },
  ranges: 2000,
  rangeSize: MiB,
  rangeVerifyEvery: 4,
  metadataImages: 2000,
  repeats: 1,
  scenarioTimeoutMs: 60_000,
};

export const FULL: Sizes = {
  single: [1 * GiB, 4 * GiB],
  busyUpload: 4 * GiB,
  concurrent: { count: 8, size: 512 * MiB },
  ranges: 5000,
  rangeSize: MiB,
  rangeVerifyEvery: 1,
  metadataImages: 10_000,
  repeats: 2,
  scenarioTimeoutMs: 15 * 60_000,
};

export const USAGE = `Usage: npm run bench -- [options]

  --quick                     small sizes and fewer operations (under two minutes)
  --only a,b                  run only these scenarios: ${SCENARIOS.join(', ')}
  --target URL                benchmark a running Glance-compatible endpoint instead of a local Imago
  --token T                   token for --target (X-Auth-Token)
  --server-pid PID            the --target server's pid, when it runs here: its RSS and CPU are sampled
  --os-auth-url URL           Keystone password auth for --target (with the options below; OS_* env vars also work)
  --os-username NAME
  --os-password PASS
  --os-project-name NAME
  --os-user-domain-name NAME      (default: Default)
  --os-project-domain-name NAME   (default: Default)
  --cpu-prof                  run the local server under node --cpu-prof; profiles land in the results folder
  --server-node-arg ARG       extra node flag for the local server (repeatable)
  --work-dir DIR              where temporary files go (default: the OS temp dir)
  --keep                      keep the work dir (server data, log, generated files)
  --store filesystem|s3       the local server's default store (s3: a Swift with s3api is started for the run;
                              the SDK alone on the same bytes is the reference)
  --nodes N                   N local Imago nodes (2-8) behind haproxy, sharing a fresh PostgreSQL database and
                              the store (filesystem: one directory; s3: the bucket, staging included); default 1
  --postgres                  the local server uses a fresh PostgreSQL database (IMAGO_TEST_PG_URL's server,
                              default postgres://postgres@127.0.0.1:5432/test) instead of SQLite: one node as --nodes runs them
`;

export class UsageError extends Error {}

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): Options {
  const opts: Options = { quick: false, sizes: FULL, only: new Set(SCENARIOS), serverNodeArgs: [], cpuProf: false, keep: false, store: 'filesystem', nodes: 1, postgres: false };
  const ks: Partial<KeystoneAuth> = {
    authUrl: env.OS_AUTH_URL,
    username: env.OS_USERNAME,
    password: env.OS_PASSWORD,
    projectName: env.OS_PROJECT_NAME,
    userDomainName: env.OS_USER_DOMAIN_NAME ?? 'Default',
    projectDomainName: env.OS_PROJECT_DOMAIN_NAME ?? 'Default',
  };
  let explicitKeystone = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || (inline === undefined && v.startsWith('--'))) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--quick': opts.quick = true; opts.sizes = QUICK; break;
      case '--only': {
        const names = value().split(',').map((s) => s.trim()).filter(Boolean);
        for (const n of names) if (!(SCENARIOS as readonly string[]).includes(n)) throw new UsageError(`unknown scenario "${n}"; known: ${SCENARIOS.join(', ')}`);
        opts.only = new Set(names as ScenarioId[]);
        break;
      }
      case '--target': opts.target = value().replace(/\/+$/, ''); break;
      case '--token': opts.token = value(); break;
      case '--server-pid': {
        const v = value();
        if (!/^\d+$/.test(v)) throw new UsageError(`--server-pid must be a process id, got "${v}"`);
        opts.serverPid = Number(v);
        break;
      }
      case '--os-auth-url': ks.authUrl = value(); explicitKeystone = true; break;
      case '--os-username': ks.username = value(); explicitKeystone = true; break;
      case '--os-password': ks.password = value(); explicitKeystone = true; break;
      case '--os-project-name': ks.projectName = value(); explicitKeystone = true; break;
      case '--os-user-domain-name': ks.userDomainName = value(); break;
      case '--os-project-domain-name': ks.projectDomainName = value(); break;
      case '--cpu-prof': opts.cpuProf = true; break;
      case '--server-node-arg': opts.serverNodeArgs.push(value()); break;
      case '--work-dir': opts.workDir = value(); break;
      case '--keep': opts.keep = true; break;
      case '--store': {
        const v = value();
        if (v !== 'filesystem' && v !== 's3') throw new UsageError('--store is filesystem or s3');
        opts.store = v;
        break;
      }
      case '--nodes': {
        const v = value();
        if (!/^[1-8]$/.test(v)) throw new UsageError(`--nodes is a number of nodes from 1 to 8, got "${v}"`);
        opts.nodes = Number(v);
        break;
      }
      case '--postgres': opts.postgres = true; break;
      case '--help': case '-h': throw new UsageError('');
      default: throw new UsageError(`unknown option ${arg}`);
    }
  }
  if (opts.nodes > 1) opts.postgres = true;
  // Every range from S3 is a request Swift's Python proxy and object server answer: tens to a few hundred a second
  // on this machine (12-50 under other load), so fewer of them keep the scenario, its ceiling and its verification
  // within the quick deadline of 60 s (a three-node run at load 11 missed it with 500); the rate needs no more.
  if (opts.store === 's3') opts.sizes = { ...opts.sizes, ranges: Math.min(opts.sizes.ranges, opts.quick ? 250 : 2000) };
  if (opts.target && opts.postgres) throw new UsageError('--postgres sets up the local server; a --target keeps its own database');
  if (opts.target && opts.nodes !== 1) throw new UsageError('--nodes starts local servers; a --target is one endpoint already');
  if (opts.target && opts.store !== 'filesystem') throw new UsageError('--store sets up the local server; a --target keeps its own stores');
  if (opts.target) {
    let url: URL;
    try {
      url = new URL(opts.target);
    } catch {
      throw new UsageError(`--target must be an http(s) URL, got "${opts.target}"`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError('--target must be an http(s) URL');
    if (!opts.token) {
      if (!ks.authUrl || !ks.username || !ks.password || !ks.projectName) {
        throw new UsageError('--target needs --token, or --os-auth-url, --os-username, --os-password and --os-project-name');
      }
      opts.keystone = ks as KeystoneAuth;
    }
  } else if (opts.token || explicitKeystone || opts.serverPid) {
    throw new UsageError('--token, --server-pid and --os-* options only make sense with --target');
  }
  return opts;
}

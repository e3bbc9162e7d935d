import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';

export type StoreType = 'filesystem' | 's3';

export interface StoreConfig {
  id: string;
  type: StoreType;
  description: string;
  readOnly: boolean;
  /** filesystem: directory holding the objects */
  path?: string;
  /** s3: endpoint, bucket, region, credentials */
  s3?: { endpoint?: string; bucket: string; region: string; accessKeyId?: string; secretAccessKey?: string; forcePathStyle?: boolean; prefix?: string };
}

export interface KeystoneConfig {
  /** Keystone public endpoint used in WWW-Authenticate, e.g. http://127.0.0.1:5000 */
  wwwAuthenticateUri: string;
  /** Keystone endpoint used to validate tokens, e.g. http://127.0.0.1:5000/v3 */
  authUrl: string;
  username: string;
  password: string;
  projectName: string;
  userDomainName: string;
  projectDomainName: string;
  /** longest a validated token is trusted without asking Keystone again, seconds */
  cacheSeconds: number;
  region?: string;
}

export interface WebDownloadFilter {
  allowedSchemes: string[];
  disallowedSchemes: string[];
  allowedHosts: string[];
  disallowedHosts: string[];
  allowedPorts: number[];
  disallowedPorts: number[];
  /** private, loopback, link-local and metadata addresses are refused unless this is true */
  allowPrivateNetworks: boolean;
}

/** Glance's unified limits: sizes in MiB (as Keystone registered limits count them), counts in images; -1 is unlimited. */
export interface QuotaLimits {
  image_size_total: number;
  image_stage_total: number;
  image_count_total: number;
  image_count_uploading: number;
}

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  /** absolute base URL used in version documents; the request's Host is used when unset */
  publicEndpoint?: string;
  logLevel: string;
  /** json (one object a line) or pretty (pino-pretty); unset: pretty on a terminal, json otherwise */
  logFormat?: 'json' | 'pretty';
  database: { url: string };
  stores: StoreConfig[];
  defaultStore: string;
  staging: StoreConfig;
  imageSizeCap: number;
  maxImageProperties: number;
  maxImageTags: number;
  auth: { mode: 'static' | 'keystone' | 'none'; tokensFile: string; keystone?: KeystoneConfig };
  policyFile?: string;
  import: {
    methods: string[];
    webDownload: WebDownloadFilter;
    plugins: {
      formatInspection: boolean;
      conversion: { enabled: boolean; outputFormat: string };
      decompression: boolean;
      injectMetadata: { enabled: boolean; properties: Record<string, string>; ignoreUserRoles: string[] };
    };
    taskTimeToLiveHours: number;
    /** import tasks one process runs at once; more wait as pending */
    maxConcurrentTasks: number;
    /** target stores one import writes to at once */
    maxParallelStores: number;
    /** glance-download: property-name prefixes copied from the remote image */
    glanceDownload: { extraProperties: string[] };
    /** scratch space for conversion and decompression; emptied at start */
    workDir: string;
  };
  quotas: { enabled: boolean; defaults: QuotaLimits; projects: Record<string, Partial<QuotaLimits>> };
  hashWorkers: number;
  /** Prometheus metrics (and detailed health) on a listener of their own, off the API port */
  metrics: {
    enabled: boolean;
    host: string;
    port: number;
    /** addresses or CIDR ranges allowed to scrape; empty: anyone who can reach host:port */
    allow: string[];
  };
  health: {
    /** while this file exists, /healthcheck answers 503 DISABLED BY FILE (drain a node) */
    disableByFile?: string;
    /** how long one round of checks (database, stores, identity service) is reused */
    cacheSeconds: number;
  };
}

export class ConfigError extends Error {}

const GiB = 1024 ** 3;
const TiB = 1024 ** 4;

export function defaultConfig(dataDir: string): Config {
  return {
    host: '127.0.0.1',
    port: 9292,
    dataDir,
    logLevel: 'info',
    database: { url: `sqlite:${path.join(dataDir, 'imago.sqlite')}` },
    stores: [{ id: 'local', type: 'filesystem', description: 'Local filesystem store', readOnly: false, path: path.join(dataDir, 'images') }],
    defaultStore: 'local',
    staging: { id: 'os_glance_staging_store', type: 'filesystem', description: 'Staging area', readOnly: false, path: path.join(dataDir, 'staging') },
    imageSizeCap: TiB,
    maxImageProperties: 128,
    maxImageTags: 128,
    auth: { mode: 'static', tokensFile: path.join(dataDir, 'tokens.json') },
    import: {
      methods: ['glance-direct', 'web-download', 'copy-image', 'glance-download'],
      webDownload: {
        allowedSchemes: ['http', 'https'],
        disallowedSchemes: [],
        allowedHosts: [],
        disallowedHosts: [],
        allowedPorts: [80, 443],
        disallowedPorts: [],
        allowPrivateNetworks: false,
      },
      plugins: {
        formatInspection: true,
        conversion: { enabled: false, outputFormat: 'raw' },
        decompression: false,
        injectMetadata: { enabled: false, properties: {}, ignoreUserRoles: ['admin'] },
      },
      taskTimeToLiveHours: 48,
      maxConcurrentTasks: 4,
      maxParallelStores: 4,
      glanceDownload: { extraProperties: ['hw_', 'trait:', 'os_distro', 'os_secure_boot', 'os_type'] },
      workDir: path.join(dataDir, 'import-work'),
    },
    quotas: {
      enabled: false,
      // sizes in MiB: 1000 GiB each
      defaults: { image_size_total: (1000 * GiB) / 2 ** 20, image_stage_total: (1000 * GiB) / 2 ** 20, image_count_total: 1000, image_count_uploading: 100 },
      projects: {},
    },
    hashWorkers: 2,
    metrics: { enabled: false, host: '127.0.0.1', port: 9293, allow: [] },
    health: { cacheSeconds: 5 },
  };
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep merge where arrays and scalars from `over` replace those in `base`. */
function merge<T>(base: T, over: unknown): T {
  if (!isObject(over)) return base;
  const out: Json = { ...(base as Json) };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isObject(v) && isObject(out[k]) ? merge(out[k], v) : v;
  }
  return out as T;
}

function readConfigFile(file: string): Json {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  try {
    const parsed = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
    if (parsed == null) return {};
    if (!isObject(parsed)) throw new Error('top level must be a mapping');
    return parsed;
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid: ${(err as Error).message}`);
  }
}

function envNumber(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new ConfigError(`${name} must be a non-negative integer, got "${raw}"`);
  return n;
}

/**
 * Builds the configuration: defaults, then the file named by IMAGO_CONFIG,
 * then IMAGO_* environment variables. Relative paths resolve against dataDir.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const dataDir = path.resolve(env.IMAGO_DATA_DIR || 'data');
  let cfg = defaultConfig(dataDir);
  const file = env.IMAGO_CONFIG ? readConfigFile(env.IMAGO_CONFIG) : {};
  if (file.dataDir && !env.IMAGO_DATA_DIR) cfg = defaultConfig(path.resolve(String(file.dataDir)));
  cfg = merge(cfg, file);
  if (env.IMAGO_DATA_DIR) cfg.dataDir = dataDir;
  if (env.IMAGO_HOST) cfg.host = env.IMAGO_HOST;
  const port = envNumber(env, 'IMAGO_PORT');
  if (port !== undefined) cfg.port = port;
  if (env.IMAGO_DATABASE_URL) cfg.database = { url: env.IMAGO_DATABASE_URL };
  if (env.IMAGO_PUBLIC_ENDPOINT) cfg.publicEndpoint = env.IMAGO_PUBLIC_ENDPOINT;
  if (env.IMAGO_LOG_LEVEL) cfg.logLevel = env.IMAGO_LOG_LEVEL;
  if (env.IMAGO_METRICS_PORT) {
    cfg.metrics.port = envNumber(env, 'IMAGO_METRICS_PORT')!;
    cfg.metrics.enabled = true;
  }
  if (env.IMAGO_LOG_FORMAT) cfg.logFormat = env.IMAGO_LOG_FORMAT as Config['logFormat'];
  if (env.IMAGO_AUTH_MODE) cfg.auth.mode = env.IMAGO_AUTH_MODE as Config['auth']['mode'];
  const cap = envNumber(env, 'IMAGO_IMAGE_SIZE_CAP');
  if (cap !== undefined) cfg.imageSizeCap = cap;
  return validateConfig(cfg);
}

export function validateConfig(cfg: Config): Config {
  const problems: string[] = [];
  if (!Number.isInteger(cfg.port) || cfg.port < 0 || cfg.port > 65535) problems.push(`port must be 0..65535, got ${cfg.port}`);
  if (cfg.logFormat !== undefined && cfg.logFormat !== 'json' && cfg.logFormat !== 'pretty') problems.push(`logFormat must be json or pretty, got "${cfg.logFormat}"`);
  if (!cfg.database?.url || !/^(sqlite:|postgres(ql)?:\/\/)/.test(cfg.database.url)) {
    problems.push(`database.url must start with sqlite: or postgres://, got "${cfg.database?.url}"`);
  }
  if (!Array.isArray(cfg.stores) || cfg.stores.length === 0) problems.push('at least one store must be configured');
  const ids = new Set<string>();
  for (const s of cfg.stores ?? []) {
    s.description ??= '';
    s.readOnly ??= false;
    if (!s.id || !/^[A-Za-z0-9_.-]+$/.test(s.id)) problems.push(`store id "${s.id}" must match [A-Za-z0-9_.-]+`);
    if (s.id?.startsWith('os_glance_')) problems.push(`store id "${s.id}" is reserved`);
    if (ids.has(s.id)) problems.push(`store id "${s.id}" is configured twice`);
    ids.add(s.id);
    problems.push(...storeProblems(s, cfg.dataDir));
  }
  if (!ids.has(cfg.defaultStore)) problems.push(`defaultStore "${cfg.defaultStore}" is not a configured store`);
  problems.push(...storeProblems(cfg.staging, cfg.dataDir));
  if (!['static', 'keystone', 'none'].includes(cfg.auth.mode)) problems.push(`auth.mode must be static or keystone, got "${cfg.auth.mode}"`);
  if (cfg.auth.mode === 'keystone') {
    const k = cfg.auth.keystone;
    if (!k?.authUrl || !k.username || !k.password || !k.projectName) {
      problems.push('auth.keystone needs authUrl, username, password and projectName');
    } else {
      k.userDomainName ??= 'Default';
      k.projectDomainName ??= 'Default';
      k.cacheSeconds ??= 300;
      k.wwwAuthenticateUri ??= k.authUrl.replace(/\/v3\/?$/, '');
    }
  }
  cfg.auth.tokensFile = path.resolve(cfg.dataDir, cfg.auth.tokensFile);
  if (!Number.isInteger(cfg.imageSizeCap) || cfg.imageSizeCap < 0) problems.push('imageSizeCap must be a non-negative integer');
  if (!Number.isInteger(cfg.hashWorkers) || cfg.hashWorkers < 1 || cfg.hashWorkers > 64) problems.push('hashWorkers must be 1..64');
  const known = ['glance-direct', 'web-download', 'copy-image', 'glance-download'];
  for (const m of cfg.import.methods) if (!known.includes(m)) problems.push(`unknown import method "${m}"`);
  problems.push(...importProblems(cfg));
  problems.push(...opsProblems(cfg));
  problems.push(...quotaProblems(cfg));
  if (problems.length) throw new ConfigError(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  return cfg;
}

function storeProblems(s: StoreConfig, dataDir: string): string[] {
  if (s.type === 'filesystem') {
    if (!s.path) return [`filesystem store "${s.id}" needs a path`];
    s.path = path.resolve(dataDir, s.path);
    return [];
  }
  if (s.type === 's3') return s.s3?.bucket ? [] : [`s3 store "${s.id}" needs s3.bucket`];
  return [`store "${s.id}" has unknown type "${s.type}"`];
}

function importProblems(cfg: Config): string[] {
  const problems: string[] = [];
  const imp = cfg.import;
  imp.workDir = path.resolve(cfg.dataDir, imp.workDir);
  for (const k of ['maxConcurrentTasks', 'maxParallelStores'] as const) {
    if (!Number.isInteger(imp[k]) || imp[k] < 1 || imp[k] > 64) problems.push(`import.${k} must be 1..64`);
  }
  const outputs = ['raw', 'qcow2', 'vmdk', 'vdi', 'vhdx', 'vhd'];
  if (imp.plugins.conversion.enabled && !outputs.includes(imp.plugins.conversion.outputFormat)) {
    problems.push(`import.plugins.conversion.outputFormat must be one of ${outputs.join(', ')}`);
  }
  for (const p of [...imp.webDownload.allowedPorts, ...imp.webDownload.disallowedPorts]) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) problems.push(`import.webDownload ports must be 1..65535, got ${p}`);
  }
  for (const [k, v] of Object.entries(imp.plugins.injectMetadata.properties)) {
    if (typeof v !== 'string') problems.push(`import.plugins.injectMetadata.properties.${k} must be a string`);
  }
  return problems;
}

function quotaProblems(cfg: Config): string[] {
  const problems: string[] = [];
  const q = cfg.quotas;
  const names = ['image_size_total', 'image_stage_total', 'image_count_total', 'image_count_uploading'];
  const check = (where: string, limits: Record<string, unknown>) => {
    for (const [k, v] of Object.entries(limits)) {
      if (!names.includes(k)) problems.push(`${where}.${k} is not a quota (known: ${names.join(', ')})`);
      else if (!Number.isInteger(v) || (v as number) < -1) problems.push(`${where}.${k} must be an integer, -1 for unlimited`);
    }
  };
  if (typeof q.enabled !== 'boolean') problems.push('quotas.enabled must be true or false');
  check('quotas.defaults', q.defaults as unknown as Record<string, unknown>);
  for (const [project, limits] of Object.entries(q.projects ?? {})) check(`quotas.projects.${project}`, limits as Record<string, unknown>);
  return problems;
}

function opsProblems(cfg: Config): string[] {
  const problems: string[] = [];
  const m = cfg.metrics;
  if (typeof m.enabled !== 'boolean') problems.push('metrics.enabled must be true or false');
  if (!Number.isInteger(m.port) || m.port < 0 || m.port > 65535) problems.push(`metrics.port must be 0..65535, got ${m.port}`);
  if (m.enabled && m.port !== 0 && m.port === cfg.port && m.host === cfg.host) problems.push('metrics.port must differ from port: metrics have a listener of their own');
  if (!Array.isArray(m.allow)) problems.push('metrics.allow must be a list of addresses or CIDR ranges');
  else for (const a of m.allow) if (!isAddressOrRange(a)) problems.push(`metrics.allow: "${a}" is not an IP address or CIDR range`);
  const h = cfg.health;
  if (typeof h.cacheSeconds !== 'number' || !(h.cacheSeconds >= 0) || h.cacheSeconds > 300) problems.push('health.cacheSeconds must be 0..300');
  if (h.disableByFile !== undefined) {
    if (typeof h.disableByFile !== 'string' || !h.disableByFile) problems.push('health.disableByFile must be a file path');
    else h.disableByFile = path.resolve(cfg.dataDir, h.disableByFile);
  }
  return problems;
}

function isAddressOrRange(a: unknown): boolean {
  if (typeof a !== 'string') return false;
  const [address, bits, extra] = a.split('/');
  const family = isIP(address);
  if (!family || extra !== undefined) return false;
  return bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
}

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { explainError, propertyPath } from './domain/json-validator.js';
import { CONFIG_ANNOTATIONS, ConfigSchema, envKeys, type Config, type StoreConfig } from './config-schema.js';

export type { AuthMode, Config, KeystoneConfig, QuotaLimits, S3StoreSettings, StoreConfig, StoreType, WebDownloadFilter } from './config-schema.js';

/**
 * Builds the configuration: the file named by IMAGO_CONFIG (YAML, or JSON when
 * the name ends in .json), then IMAGO_* environment variables, then the
 * schema's defaults (src/config-schema.ts) for whatever is still unset. Every
 * problem is listed in one ConfigError: values the schema refuses, unknown
 * keys (with the key that was probably meant) and settings that contradict
 * each other. Relative paths resolve against dataDir.
 */
export class ConfigError extends Error {}

const ajv = new Ajv({ allErrors: true, useDefaults: true, verbose: true, strict: true, strictTypes: false, strictRequired: false });
ajv.addVocabulary(CONFIG_ANNOTATIONS);
/** Compiled once; fills defaults into the object it checks. */
const checkConfig = ajv.compile(ConfigSchema);

type Json = Record<string, any>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

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

/** The object at a dotted key, created on the way when missing. */
function parentOf(root: Json, key: string): [Json, string] {
  const parts = key.split('.');
  let at = root;
  for (const p of parts.slice(0, -1)) {
    if (!isObject(at[p])) at[p] = {};
    at = at[p];
  }
  return [at, parts[parts.length - 1]];
}

/** IMAGO_* variables over the file's values; numbers are parsed here, ranges are the schema's business. */
function applyEnv(raw: Json, env: NodeJS.ProcessEnv, problems: string[], fromEnv: Map<string, string>): void {
  for (const { env: name, key, schema } of envKeys()) {
    const value = env[name];
    if (value === undefined || value === '' || name === 'IMAGO_DATA_DIR') continue;
    let parsed: unknown = value;
    if (schema.type === 'integer' || schema.type === 'number') {
      parsed = Number(value.trim());
      const ok = value.trim() !== '' && Number.isFinite(parsed) && (schema.type === 'number' || Number.isInteger(parsed)) && (parsed as number) >= 0;
      if (!ok) {
        problems.push(`${name} must be a non-negative ${schema.type === 'integer' ? 'integer' : 'number'}, got "${value}"`);
        continue;
      }
    }
    if (schema.type === 'boolean') {
      const v = value.trim().toLowerCase();
      if (!['true', 'false', '1', '0'].includes(v)) {
        problems.push(`${name} must be true or false, got "${value}"`);
        continue;
      }
      parsed = v === 'true' || v === '1';
    }
    const [parent, last] = parentOf(raw, key);
    parent[last] = parsed;
    fromEnv.set(key, name);
  }
  // Naming a metrics port is asking for metrics.
  if (fromEnv.has('metrics.port')) parentOf(raw, 'metrics.enabled')[0].enabled = true;
}

/** Defaults that depend on dataDir (the schema's own defaults are filled by ajv). */
function fillDataDirDefaults(raw: Json, dataDir: string): void {
  if (raw.database === undefined) raw.database = {};
  if (isObject(raw.database)) raw.database.url ??= `sqlite:${path.join(dataDir, 'imago.sqlite')}`;
  raw.stores ??= [{ id: 'local', type: 'filesystem', description: 'Local filesystem store', path: path.join(dataDir, 'images') }];
  raw.staging ??= { id: 'os_glance_staging_store', type: 'filesystem', description: 'Staging area', path: path.join(dataDir, 'staging') };
  if (isObject(raw.auth) || raw.auth === undefined) {
    raw.auth ??= {};
    raw.auth.tokensFile ??= 'tokens.json';
    const k = raw.auth.keystone;
    if (isObject(k) && typeof k.authUrl === 'string') k.wwwAuthenticateUri ??= k.authUrl.replace(/\/+$/, '').replace(/\/v3$/, '');
  }
  if (isObject(raw.cache) || raw.cache === undefined) {
    raw.cache ??= {};
    raw.cache.dir ??= 'cache';
  }
  if (isObject(raw.import) || raw.import === undefined) {
    raw.import ??= {};
    raw.import.workDir ??= 'import-work';
  }
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1));
    prev = row;
  }
  return prev[b.length];
}

export function closestKey(unknown: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = distance(unknown, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}

/** One schema error as a line of the ConfigError. */
function describeProblem(err: ErrorObject, fromEnv: Map<string, string>): string {
  const parent = (err.parentSchema ?? {}) as Json;
  if (err.keyword === 'additionalProperties') {
    const unknown = (err.params as Json).additionalProperty as string;
    const key = propertyPath(err.instancePath, unknown);
    const known = Object.keys(parent.properties ?? {});
    const noun = parent.unknownKeyNoun ?? 'configuration key';
    const guess = closestKey(unknown, known);
    return `${key} is not a ${noun}${guess ? `; did you mean ${propertyPath(err.instancePath, guess)}?` : ` (known here: ${known.join(', ')})`}`;
  }
  let line = explainError(err, 'the configuration').replace(/\.$/, '').replace(/^'([^']*)'/, '$1');
  if (typeof parent.hint === 'string') line += ` (${parent.hint})`;
  const env = fromEnv.get(propertyPath(err.instancePath).replace(/\[(\d+)\]/g, '.$1'));
  if (env) line += ` (set by ${env})`;
  return line;
}

function isAddressOrRange(a: string): boolean {
  const [address, bits, extra] = a.split('/');
  const family = isIP(address);
  if (!family || extra !== undefined) return false;
  return bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
}

function storeContradictions(s: StoreConfig, where: string): string[] {
  const problems: string[] = [];
  if (s.type === 'filesystem' && !s.path) problems.push(`${where}: filesystem store "${s.id}" needs a path`);
  if (s.type === 's3') {
    const o = s.s3;
    if (!o) problems.push(`${where}: s3 store "${s.id}" needs an s3 section with at least a bucket`);
    else {
      if ((o.accessKeyId === undefined) !== (o.secretAccessKey === undefined)) problems.push(`${where}: s3 store "${s.id}": set both s3.accessKeyId and s3.secretAccessKey, or neither`);
      if (o.minPartSizeMiB > o.partSizeMiB) problems.push(`${where}: s3 store "${s.id}": s3.minPartSizeMiB (${o.minPartSizeMiB}) is larger than s3.partSizeMiB (${o.partSizeMiB})`);
    }
  }
  if (s.type === 'memory' && s.path) problems.push(`${where}: memory store "${s.id}" keeps its data in the process and takes no path`);
  if (s.type !== 's3' && s.s3) problems.push(`${where}: store "${s.id}" is of type ${s.type} but has an s3 section`);
  if (s.type === 'http' && !s.http) problems.push(`${where}: http store "${s.id}" needs an http section with allowedPrefixes`);
  if (s.type !== 'http' && s.http) problems.push(`${where}: store "${s.id}" is of type ${s.type} but has an http section`);
  return problems;
}

/** Settings each valid on its own that cannot hold together. */
function contradictions(cfg: Config): string[] {
  const problems: string[] = [];
  const ids = new Set<string>();
  cfg.stores.forEach((s, i) => {
    if (s.id.startsWith('os_glance_')) problems.push(`stores[${i}].id "${s.id}" is reserved (os_glance_ is the server's prefix)`);
    if (ids.has(s.id)) problems.push(`stores[${i}].id "${s.id}" is configured twice`);
    ids.add(s.id);
    problems.push(...storeContradictions(s, `stores[${i}]`));
  });
  if (!ids.has(cfg.defaultStore)) problems.push(`defaultStore "${cfg.defaultStore}" is not a configured store (configured: ${[...ids].join(', ')})`);
  if (cfg.stores.find((s) => s.id === cfg.defaultStore)?.type === 'http') problems.push(`defaultStore "${cfg.defaultStore}" is an http store, which is read-only: uploads need a writable store`);
  if (cfg.staging.type === 'http') problems.push('staging cannot be an http store: it is read-only');
  problems.push(...storeContradictions(cfg.staging, 'staging'));
  if (cfg.auth.mode === 'keystone' && !cfg.auth.keystone) problems.push('auth.mode is keystone but there is no auth.keystone section (authUrl, username, password, projectName)');
  const web = cfg.import.webDownload;
  for (const p of web.allowedPorts) if (web.disallowedPorts.includes(p)) problems.push(`import.webDownload: port ${p} is both allowed and disallowed`);
  for (const s of web.allowedSchemes) if (web.disallowedSchemes.includes(s)) problems.push(`import.webDownload: scheme ${s} is both allowed and disallowed`);
  const m = cfg.metrics;
  if (m.enabled && m.port !== 0 && m.port === cfg.port && m.host === cfg.host) problems.push('metrics.port must differ from port: metrics have a listener of their own');
  for (const a of m.allow) if (!isAddressOrRange(a)) problems.push(`metrics.allow: "${a}" is not an IP address or CIDR range`);
  if (cfg.notifications.driver === 'messagingv2' && !cfg.notifications.transportUrl) problems.push('notifications.driver is messagingv2 but notifications.transportUrl is not set (rabbit://user:pass@host:5672/)');
  return problems;
}

function resolvePaths(cfg: Config): void {
  for (const s of [...cfg.stores, cfg.staging]) if (s.path) s.path = path.resolve(cfg.dataDir, s.path);
  cfg.auth.tokensFile = path.resolve(cfg.dataDir, cfg.auth.tokensFile);
  cfg.import.workDir = path.resolve(cfg.dataDir, cfg.import.workDir);
  cfg.cache.dir = path.resolve(cfg.dataDir, cfg.cache.dir);
  if (cfg.health.disableByFile) cfg.health.disableByFile = path.resolve(cfg.dataDir, cfg.health.disableByFile);
  if (cfg.propertyProtection) cfg.propertyProtection.file = path.resolve(cfg.dataDir, cfg.propertyProtection.file);
}

/** Validates a configuration object (as a file would hold it) for `dataDir`, filling defaults; throws ConfigError listing every problem. */
export function configFrom(raw: Json, dataDir: string, env: NodeJS.ProcessEnv = {}): Config {
  const problems: string[] = [];
  const fromEnv = new Map<string, string>();
  const candidate = structuredClone(raw);
  applyEnv(candidate, env, problems, fromEnv);
  candidate.dataDir = dataDir;
  fillDataDirDefaults(candidate, dataDir);
  if (!checkConfig(candidate)) problems.push(...new Set((checkConfig.errors ?? []).map((e) => describeProblem(e, fromEnv))));
  try {
    problems.push(...contradictions(candidate as Config));
  } catch {
    // the schema already refused the shape these checks read; its problems are listed
  }
  if (problems.length) throw new ConfigError(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  const cfg = candidate as Config;
  resolvePaths(cfg);
  return cfg;
}

/** Every default, for `dataDir`. */
export function defaultConfig(dataDir: string): Config {
  return configFrom({}, dataDir);
}

/**
 * Builds the configuration: defaults, then the file named by IMAGO_CONFIG,
 * then IMAGO_* environment variables. Relative paths resolve against dataDir.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const file = env.IMAGO_CONFIG ? readConfigFile(env.IMAGO_CONFIG) : {};
  const dataDir = path.resolve(env.IMAGO_DATA_DIR || (typeof file.dataDir === 'string' && file.dataDir) || 'data');
  return configFrom(file, dataDir, env);
}

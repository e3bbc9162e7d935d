import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, configFrom, loadConfig } from '../../src/config.js';
import { envKeys } from '../../src/config-schema.js';
import { CONFIG_DOC, renderConfigDoc } from '../../scripts/config-doc.js';

const dir = mkdtempSync(path.join(tmpdir(), 'imago-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** loadConfig with a YAML or JSON file holding `content` and the given environment. */
function load(content: string | Record<string, unknown> | undefined, env: Record<string, string> = {}, name = 'imago.yaml') {
  const base: Record<string, string> = { IMAGO_DATA_DIR: dir };
  if (content !== undefined) {
    const file = path.join(dir, name);
    writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
    base.IMAGO_CONFIG = file;
  }
  return loadConfig({ ...base, ...env });
}

/** The ConfigError's message. */
function refused(content: string | Record<string, unknown> | undefined, env: Record<string, string> = {}): string {
  try {
    load(content, env, 'imago.json');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail('the configuration was accepted');
}

describe('configuration', () => {
  test('defaults: every key as before', () => {
    const c = load(undefined);
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.port, 9292);
    assert.equal(c.dataDir, dir);
    assert.equal(c.logLevel, 'info');
    assert.equal(c.database.url, `sqlite:${path.join(dir, 'imago.sqlite')}`);
    assert.deepEqual(c.stores, [{ id: 'local', type: 'filesystem', description: 'Local filesystem store', readOnly: false, path: path.join(dir, 'images') }]);
    assert.equal(c.defaultStore, 'local');
    assert.deepEqual(c.staging, { id: 'os_glance_staging_store', type: 'filesystem', description: 'Staging area', readOnly: false, path: path.join(dir, 'staging') });
    assert.equal(c.imageSizeCap, 1024 ** 4);
    assert.equal(c.maxImageProperties, 128);
    assert.equal(c.maxImageTags, 128);
    assert.deepEqual(c.auth, { mode: 'static', tokensFile: path.join(dir, 'tokens.json') });
    assert.deepEqual(c.import.methods, ['glance-direct', 'web-download', 'copy-image', 'glance-download']);
    assert.deepEqual(c.import.webDownload, {
      allowedSchemes: ['http', 'https'], disallowedSchemes: [], allowedHosts: [], disallowedHosts: [], allowedPorts: [80, 443], disallowedPorts: [], allowPrivateNetworks: false,
    });
    assert.deepEqual(c.import.plugins, {
      formatInspection: true, conversion: { enabled: false, outputFormat: 'raw' }, decompression: false,
      injectMetadata: { enabled: false, properties: {}, ignoreUserRoles: ['admin'] },
    });
    assert.equal(c.import.taskTimeToLiveHours, 48);
    assert.equal(c.import.maxConcurrentTasks, 4);
    assert.equal(c.import.maxParallelStores, 4);
    assert.deepEqual(c.import.glanceDownload.extraProperties, ['hw_', 'trait:', 'os_distro', 'os_secure_boot', 'os_type']);
    assert.equal(c.import.workDir, path.join(dir, 'import-work'));
    assert.deepEqual(c.quotas, { enabled: false, defaults: { image_size_total: 1024000, image_stage_total: 1024000, image_count_total: 1000, image_count_uploading: 100 }, projects: {} });
    assert.equal(c.hashWorkers, 2);
    assert.equal(c.nodeTimeoutSeconds, 30);
    assert.equal(c.shutdownGraceSeconds, 30);
    assert.equal(c.publicEndpoint, undefined);
  });

  test('the file, then IMAGO_* variables; relative paths resolve against dataDir', () => {
    const c = load('port: 1234\nhost: 0.0.0.0\nstores:\n  - {id: a, type: filesystem, path: rel}\ndefaultStore: a\nauth: {tokensFile: t.json}\n', {
      IMAGO_PORT: '4321', IMAGO_HOST: '::1', IMAGO_DATABASE_URL: 'postgres://u@h/db', IMAGO_PUBLIC_ENDPOINT: 'https://images.example.org',
      IMAGO_LOG_LEVEL: 'warn', IMAGO_AUTH_MODE: 'static', IMAGO_IMAGE_SIZE_CAP: '1000', IMAGO_NODE_TIMEOUT_SECONDS: '2.5', IMAGO_SHUTDOWN_GRACE_SECONDS: '0',
    });
    assert.equal(c.port, 4321);
    assert.equal(c.host, '::1');
    assert.equal(c.database.url, 'postgres://u@h/db');
    assert.equal(c.publicEndpoint, 'https://images.example.org');
    assert.equal(c.logLevel, 'warn');
    assert.equal(c.imageSizeCap, 1000);
    assert.equal(c.nodeTimeoutSeconds, 2.5);
    assert.equal(c.shutdownGraceSeconds, 0);
    assert.equal(c.stores[0].path, path.join(dir, 'rel'));
    assert.equal(c.stores[0].description, '');
    assert.equal(c.auth.tokensFile, path.join(dir, 't.json'));
  });

  test('every environment variable the schema names is read', () => {
    const names = envKeys().map((e) => e.env).sort();
    assert.deepEqual(names, ['IMAGO_AUTH_MODE', 'IMAGO_CACHE_DIR', 'IMAGO_CONSOLE_ENABLED', 'IMAGO_DATABASE_URL', 'IMAGO_DATA_DIR', 'IMAGO_HOST', 'IMAGO_IMAGE_SIZE_CAP', 'IMAGO_LOG_FORMAT', 'IMAGO_LOG_LEVEL', 'IMAGO_METRICS_PORT', 'IMAGO_NODE_TIMEOUT_SECONDS', 'IMAGO_NOTIFICATIONS_DRIVER', 'IMAGO_NOTIFICATIONS_TRANSPORT_URL', 'IMAGO_PORT', 'IMAGO_PUBLIC_ENDPOINT', 'IMAGO_SHUTDOWN_GRACE_SECONDS'].sort());
    const metrics = load(undefined, { IMAGO_METRICS_PORT: '9999', IMAGO_LOG_FORMAT: 'json' });
    assert.deepEqual([metrics.metrics.port, metrics.metrics.enabled, metrics.logFormat], [9999, true, 'json']);
    // The cache dir defaults into the data dir, and IMAGO_CACHE_DIR (relative to it) moves it.
    assert.equal(load(undefined, {}).cache.dir, path.join(dir, 'cache'));
    assert.equal(load(undefined, { IMAGO_CACHE_DIR: 'cache-b' }).cache.dir, path.join(dir, 'cache-b'));
    const bus = load(undefined, { IMAGO_NOTIFICATIONS_DRIVER: 'messagingv2', IMAGO_NOTIFICATIONS_TRANSPORT_URL: 'rabbit://u:p@mq:5672/' });
    assert.deepEqual([bus.notifications.driver, bus.notifications.transportUrl, bus.notifications.exchange, bus.notifications.topics], ['messagingv2', 'rabbit://u:p@mq:5672/', 'glance', ['notifications']]);
  });

  test('the web console is on by default; IMAGO_CONSOLE_ENABLED takes true/false/1/0 and nothing else', () => {
    assert.deepEqual(load(undefined).console, { enabled: true, loginsPerMinute: 10 });
    assert.equal(load(undefined, { IMAGO_CONSOLE_ENABLED: 'false' }).console.enabled, false);
    assert.equal(load(undefined, { IMAGO_CONSOLE_ENABLED: '0' }).console.enabled, false);
    assert.equal(load({ console: { enabled: false } }, { IMAGO_CONSOLE_ENABLED: 'true' }).console.enabled, true);
    assert.match(refused(undefined, { IMAGO_CONSOLE_ENABLED: 'maybe' }), /IMAGO_CONSOLE_ENABLED must be true or false, got "maybe"/);
    assert.match(refused({ console: { loginsPerMinute: 0 } }), /console\.loginsPerMinute must be an integer ≥ 1, got 0/);
  });

  test('an unknown key is refused with the key probably meant', () => {
    assert.match(refused({ prot: 1 }), /prot is not a configuration key; did you mean port\?/);
    assert.match(refused({ import: { methdos: [] } }), /import\.methdos is not a configuration key; did you mean import\.methods\?/);
    assert.match(refused({ stores: [{ id: 'a', type: 'filesystem', path: 'x', readonly: true }], defaultStore: 'a' }), /stores\[0\]\.readonly is not a configuration key; did you mean stores\[0\]\.readOnly\?/);
    assert.match(refused({ zzzzzz: 1 }), /zzzzzz is not a configuration key \(known here: host, port/);
    assert.match(refused({ database: 'sqlite:x' }), /database must be an object, got "sqlite:x"/);
  });

  test('every problem is listed in one message, each naming its key', () => {
    const message = refused({ port: 70000, hashWorkers: 0, logLevel: 'loud', import: { maxConcurrentTasks: 'four' } }, { IMAGO_IMAGE_SIZE_CAP: '-5' });
    for (const expected of [/port must be an integer ≤ 65535, got 70000/, /hashWorkers must be an integer ≥ 1, got 0/, /logLevel must be one of .*"info".*got "loud"/, /import\.maxConcurrentTasks must be an integer, got "four"/, /IMAGO_IMAGE_SIZE_CAP must be a non-negative integer, got "-5"/]) {
      assert.match(message, expected);
    }
    assert.equal(message.split('\n  - ').length - 1, 5, message);
    assert.match(refused(undefined, { IMAGO_PORT: '99999' }), /port must be an integer ≤ 65535, got 99999 \(set by IMAGO_PORT\)/);
  });

  test('contradictory settings are refused', () => {
    const store = (id: string, extra: Record<string, unknown> = {}) => ({ id, type: 'filesystem', path: id, ...extra });
    assert.match(refused({ stores: [store('a')], defaultStore: 'b' }), /defaultStore "b" is not a configured store \(configured: a\)/);
    assert.match(refused({ stores: [store('a'), store('a')], defaultStore: 'a' }), /"a" is configured twice/);
    assert.match(refused({ stores: [store('os_glance_x')], defaultStore: 'os_glance_x' }), /reserved/);
    assert.match(refused({ stores: [{ id: 'a', type: 'filesystem' }], defaultStore: 'a' }), /filesystem store "a" needs a path/);
    assert.match(refused({ stores: [{ id: 'a', type: 's3' }], defaultStore: 'a' }), /s3 store "a" needs an s3 section/);
    assert.match(refused({ stores: [{ id: 'a', type: 's3', s3: { bucket: 'bkt', accessKeyId: 'k' } }], defaultStore: 'a' }), /set both s3\.accessKeyId and s3\.secretAccessKey/);
    assert.match(refused({ stores: [{ id: 'a', type: 's3', s3: { bucket: 'bkt', partSizeMiB: 5, minPartSizeMiB: 6 } }], defaultStore: 'a' }), /minPartSizeMiB \(6\) is larger than s3\.partSizeMiB \(5\)/);
    assert.match(refused({ auth: { mode: 'keystone' } }), /auth\.mode is keystone but there is no auth\.keystone section/);
    assert.match(refused({ import: { webDownload: { allowedPorts: [80, 8080], disallowedPorts: [8080] } } }), /port 8080 is both allowed and disallowed/);
    assert.match(refused({ metrics: { enabled: true, port: 9292 } }), /metrics\.port must differ from port/);
    // A shape problem and a contradiction are listed together.
    const both = refused({ port: 'x', stores: [store('a')], defaultStore: 'b' });
    assert.match(both, /port must be an integer/);
    assert.match(both, /defaultStore "b"/);
  });

  test('an auth mode this build cannot serve is refused clearly', () => {
    assert.match(refused({ auth: { mode: 'none' } }), /auth\.mode must be one of "static", "keystone", got "none" \(no other mode exists in this build\)/);
    assert.match(refused(undefined, { IMAGO_AUTH_MODE: 'noauth' }), /auth\.mode .* got "noauth".*\(set by IMAGO_AUTH_MODE\)/);
  });

  test('keystone: defaults filled, WWW-Authenticate URI derived from authUrl', () => {
    const c = configFrom({ auth: { mode: 'keystone', keystone: { authUrl: 'http://k:5000/v3', username: 'u', password: 'p', projectName: 'service' } } }, dir);
    assert.deepEqual(c.auth.keystone, {
      authUrl: 'http://k:5000/v3', username: 'u', password: 'p', projectName: 'service', wwwAuthenticateUri: 'http://k:5000', userDomainName: 'Default', projectDomainName: 'Default', cacheSeconds: 300, checkAtStart: 'degraded',
    });
  });

  test('s3 store settings: defaults and ranges', () => {
    const c = configFrom({ stores: [{ id: 'o', type: 's3', s3: { bucket: 'images', endpoint: 'http://127.0.0.1:8080' } }], defaultStore: 'o' }, dir);
    assert.deepEqual(c.stores[0].s3, {
      bucket: 'images', endpoint: 'http://127.0.0.1:8080', region: 'us-east-1', partSizeMiB: 8, queueSize: 4, maxParts: 10000, minPartSizeMiB: 5, createBucket: false, maxCopyObjectMiB: 5120, maxAttempts: 3, connectTimeoutMs: 5000, requestTimeoutMs: 60000,
    });
    assert.match(refused({ stores: [{ id: 'o', type: 's3', s3: { bucket: 'B!', queueSize: 0 } }], defaultStore: 'o' }), /stores\[0\]\.s3\.bucket must match/);
  });

  test('docs/configuration.md holds the table the schema gives (npm run docs:config)', () => {
    const doc = readFileSync(CONFIG_DOC, 'utf8');
    assert.equal(renderConfigDoc(doc), doc, 'docs/configuration.md is out of date: run npm run docs:config');
    for (const { env } of envKeys()) assert.ok(doc.includes(env), env);
  });
});

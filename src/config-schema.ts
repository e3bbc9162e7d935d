import { Type as T, type Static, type TSchema } from '@sinclair/typebox';

/**
 * The configuration, described once. TypeBox rather than zod: a TypeBox
 * schema *is* a JSON Schema document, so the same ajv engine that checks
 * request bodies validates it (one engine, not two), `Static` gives the
 * TypeScript type, and scripts/config-doc.ts walks the same document to write
 * the key table of docs/configuration.md. Annotations of our own:
 *
 * - `env`: the environment variable that sets the key;
 * - `defaultText`: the default when it depends on dataDir (filled in by
 *   config.ts) or reads better in words;
 * - `hint`: added to every message about the key;
 * - `unknownKeyNoun`: what an unknown key under this object is not
 *   ("quota"), for messages;
 * - `docSummary`: the docs table shows this object as one row.
 *
 * Every object refuses keys it does not define (`additionalProperties: false`).
 */

const closed = { additionalProperties: false } as const;
const int = (min: number, max: number, o: Record<string, unknown> = {}) => T.Integer({ minimum: min, maximum: max, ...o });
/** A string out of a list: `enum` in the document (clear messages), the union of literals in the type. */
const oneOf = <V extends string>(values: readonly V[], o: Record<string, unknown> = {}) => T.Unsafe<V>(T.String({ enum: [...values], ...o }));
const port = (description: string, o: Record<string, unknown> = {}) => int(0, 65535, { description, ...o });

export const StoreType = oneOf(['filesystem', 's3', 'http', 'memory'] as const, { description: '`filesystem`, `s3`, `http` (read-only: data on web servers, for the locations API) or `memory` (tests and trials only: the data lives in the process and is lost when it stops)' });

export const HttpStoreSettingsSchema = T.Object({
  allowedPrefixes: T.Array(T.String({ pattern: '^https?://[^/]+/', description: 'a URL prefix, scheme, host and at least `/`' }), { minItems: 1, description: 'the only URLs the store serves: a location must start with one of these (no other address is ever fetched)' }),
  timeoutMs: int(1, 600_000, { default: 30_000, description: 'longest wait for an answer or silence while reading one, ms' }),
}, closed);

export const S3StoreSettingsSchema = T.Object({
  endpoint: T.Optional(T.String({ pattern: '^https?://[^/]+', description: 'S3 endpoint URL, e.g. `http://127.0.0.1:8080`; the AWS endpoint of `region` when unset' })),
  bucket: T.String({ pattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$', description: 'bucket holding the objects' }),
  region: T.String({ default: 'us-east-1', description: 'region' }),
  accessKeyId: T.Optional(T.String({ description: 'with `secretAccessKey`; unset: the SDK\'s standard chain (AWS_ACCESS_KEY_ID, profiles)' })),
  secretAccessKey: T.Optional(T.String({ description: 'secret of `accessKeyId`' })),
  forcePathStyle: T.Optional(T.Boolean({ description: 'bucket in the path rather than the host name', defaultText: 'true when `endpoint` is set' })),
  prefix: T.Optional(T.String({ pattern: '^[^/]', description: 'prepended to every object key, e.g. `imago/`' })),
  partSizeMiB: int(1, 5120, { default: 8, description: 'multipart part size, MiB; raised for large known sizes so an image fits in `maxParts`' }),
  queueSize: int(1, 64, { default: 4, description: 'part requests in flight per upload; memory per upload is at most (queueSize + 1) parts' }),
  maxParts: int(1, 10_000, { default: 10_000, description: 'most parts per multipart upload' }),
  minPartSizeMiB: int(0, 5120, { default: 5, description: 'smallest part the service accepts, MiB' }),
  maxCopyObjectMiB: int(1, 5120, { default: 5120, description: 'largest object copied by one CopyObject; larger ones are copied in parts (UploadPartCopy), MiB' }),
  createBucket: T.Boolean({ default: false, description: 'create the bucket at start when it is missing (otherwise a missing bucket stops the start)' }),
  maxAttempts: int(1, 10, { default: 3, description: 'attempts per S3 request, retries included' }),
  connectTimeoutMs: int(1, 600_000, { default: 5000, description: 'connect timeout, ms' }),
  requestTimeoutMs: int(1, 3_600_000, { default: 60_000, description: 'longest silence on an open S3 request, ms' }),
}, closed);

export const StoreSchema = T.Object({
  id: T.String({ pattern: '^[A-Za-z0-9_.-]+$', description: 'store id, `[A-Za-z0-9_.-]+`, not starting with `os_glance_`' }),
  type: StoreType,
  description: T.String({ default: '', description: 'shown in `GET /v2/info/stores`' }),
  readOnly: T.Boolean({ default: false, description: 'serves downloads, refuses writes with 503' }),
  path: T.Optional(T.String({ minLength: 1, description: 'filesystem: directory holding the objects (relative to dataDir)' })),
  s3: T.Optional(S3StoreSettingsSchema),
  http: T.Optional(HttpStoreSettingsSchema),
}, closed);

export const KeystoneSchema = T.Object({
  authUrl: T.String({ pattern: '^https?://', description: 'Keystone endpoint that validates tokens, e.g. `http://127.0.0.1:5000/v3`' }),
  wwwAuthenticateUri: T.String({ description: 'Keystone public endpoint named in `WWW-Authenticate`', defaultText: '`authUrl` without `/v3`' }),
  username: T.String({ minLength: 1, description: 'Imago\'s service user' }),
  password: T.String({ minLength: 1, description: 'its password' }),
  projectName: T.String({ minLength: 1, description: 'its project' }),
  userDomainName: T.String({ default: 'Default', description: 'domain of the service user' }),
  projectDomainName: T.String({ default: 'Default', description: 'domain of the service project' }),
  cacheSeconds: int(0, 86_400, { default: 300, description: 'longest a validated token is trusted without asking Keystone again' }),
  region: T.Optional(T.String({ description: 'region of this image service in the catalog (glance-download)' })),
  checkAtStart: oneOf(['degraded', 'fail'] as const, { default: 'degraded', description: 'Imago\'s own credentials are checked at start; when Keystone refuses them or cannot be reached: `degraded` starts anyway (logged, `/healthcheck` answers 503 until it works), `fail` refuses to start (exit status 2)' }),
}, closed);

export const WebDownloadFilterSchema = T.Object({
  allowedSchemes: T.Array(T.String(), { default: ['http', 'https'], description: 'URI schemes web-download may fetch' }),
  disallowedSchemes: T.Array(T.String(), { default: [], description: 'schemes refused' }),
  allowedHosts: T.Array(T.String(), { default: [], description: 'when not empty, only these hosts' }),
  disallowedHosts: T.Array(T.String(), { default: [], description: 'hosts refused' }),
  allowedPorts: T.Array(int(1, 65535), { default: [80, 443], description: 'ports web-download may connect to' }),
  disallowedPorts: T.Array(int(1, 65535), { default: [], description: 'ports refused' }),
  allowPrivateNetworks: T.Boolean({ default: false, description: 'private, loopback, link-local and metadata addresses are refused unless true' }),
}, { ...closed, default: {}, description: 'web-download filtering, see [import.md](import.md)' });

const quota = (description: string, dflt?: number) => int(-1, Number.MAX_SAFE_INTEGER, { description, hint: '-1 for unlimited', ...(dflt === undefined ? {} : { default: dflt }) });
const MIB_1000_GIB = 1000 * 1024;

export const QuotaLimitsSchema = T.Object({
  image_size_total: quota('MiB of image data a project may keep', MIB_1000_GIB),
  image_stage_total: quota('MiB a project may have staged', MIB_1000_GIB),
  image_count_total: quota('images a project may have', 1000),
  image_count_uploading: quota('images a project may upload or import at once', 100),
}, { ...closed, default: {}, unknownKeyNoun: 'quota', description: 'limits of every project; sizes in MiB, -1 unlimited' });

export const ProjectQuotaSchema = T.Object({
  image_size_total: T.Optional(quota('MiB of image data')),
  image_stage_total: T.Optional(quota('MiB staged')),
  image_count_total: T.Optional(quota('images')),
  image_count_uploading: T.Optional(quota('images uploading at once')),
}, { ...closed, unknownKeyNoun: 'quota' });

const IMPORT_METHODS = ['glance-direct', 'web-download', 'copy-image', 'glance-download'] as const;
const CONVERSION_FORMATS = ['raw', 'qcow2', 'vmdk', 'vdi', 'vhdx', 'vhd'] as const;

export const ConfigSchema = T.Object({
  host: T.String({ minLength: 1, default: '127.0.0.1', env: 'IMAGO_HOST', description: 'listen address' }),
  port: port('listen port (0 picks a free one)', { default: 9292, env: 'IMAGO_PORT' }),
  dataDir: T.String({ minLength: 1, env: 'IMAGO_DATA_DIR', description: 'where embedded data lives; relative paths below resolve against it', defaultText: '`./data`' }),
  publicEndpoint: T.Optional(T.String({ pattern: '^https?://', env: 'IMAGO_PUBLIC_ENDPOINT', description: 'base URL used in version documents, e.g. behind a load balancer', defaultText: 'the request\'s `Host`' })),
  logLevel: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, { default: 'info', env: 'IMAGO_LOG_LEVEL', description: 'log level' }),
  logFormat: T.Optional(oneOf(['json', 'pretty'] as const, { env: 'IMAGO_LOG_FORMAT', description: '`json` (one object a line) or `pretty`', defaultText: 'pretty on a terminal, json otherwise' })),
  database: T.Object({
    url: T.String({ pattern: '^(sqlite:|postgres(ql)?://)', env: 'IMAGO_DATABASE_URL', description: '`sqlite:<file>` or `postgres://user@host/db`', defaultText: '`sqlite:<dataDir>/imago.sqlite`' }),
  }, { ...closed, default: {} }),
  stores: T.Array(StoreSchema, { minItems: 1, description: 'stores, see below', defaultText: 'one filesystem store `local` in `<dataDir>/images`' }),
  defaultStore: T.String({ default: 'local', description: 'id of the store uploads go to without `X-Image-Meta-Store`' }),
  staging: T.Object(StoreSchema.properties, { ...closed, docSummary: true, description: 'the store `PUT /stage` (glance-direct) writes to; the keys of a store', defaultText: 'filesystem, `<dataDir>/staging`' }),
  locations: T.Object({
    showMultiple: T.Boolean({ default: false, description: 'show `locations` in image representations and accept JSON-patch on `/locations` (Glance\'s `show_multiple_locations`)' }),
    showDirectUrl: T.Boolean({ default: false, description: 'show `direct_url`, the first location\'s URL (Glance\'s `show_image_direct_url`)' }),
  }, { ...closed, default: {}, description: 'the locations API (docs/locations.md); both off, as in Glance' }),
  imageSizeCap: int(0, Number.MAX_SAFE_INTEGER, { default: 1024 ** 4, env: 'IMAGO_IMAGE_SIZE_CAP', description: 'largest image, bytes (Glance\'s `image_size_cap`)', defaultText: '1 TiB' }),
  maxImageProperties: int(0, 100_000, { default: 128, description: 'extra properties per image (`image_property_quota`)' }),
  maxImageTags: int(0, 100_000, { default: 128, description: 'tags per image (`image_tag_quota`)' }),
  auth: T.Object({
    mode: oneOf(['static', 'keystone'] as const, { default: 'static', env: 'IMAGO_AUTH_MODE', description: '`static` (token file) or `keystone`', hint: 'no other mode exists in this build' }),
    tokensFile: T.String({ minLength: 1, description: 'static tokens, see below', defaultText: '`<dataDir>/tokens.json`, created with one admin token' }),
    keystone: T.Optional(KeystoneSchema),
  }, { ...closed, default: {} }),
  policyFile: T.Optional(T.String({ minLength: 1, description: 'YAML policy overrides in oslo.policy syntax, see [policy.md](policy.md)', defaultText: 'none' })),
  import: T.Object({
    methods: T.Array(oneOf(IMPORT_METHODS), { uniqueItems: true, default: [...IMPORT_METHODS], description: 'enabled import methods', defaultText: 'all four' }),
    webDownload: WebDownloadFilterSchema,
    plugins: T.Object({
      formatInspection: T.Boolean({ default: true, description: 'inspect image formats on upload and import' }),
      conversion: T.Object({
        enabled: T.Boolean({ default: false, description: 'convert imported images' }),
        outputFormat: oneOf(CONVERSION_FORMATS, { default: 'raw', description: 'format converted to' }),
      }, { ...closed, default: {} }),
      decompression: T.Boolean({ default: false, description: 'decompress imported images' }),
      injectMetadata: T.Object({
        enabled: T.Boolean({ default: false, description: 'add properties to imported images' }),
        properties: T.Record(T.String(), T.String(), { default: {}, description: 'the properties added' }),
        ignoreUserRoles: T.Array(T.String(), { default: ['admin'], description: 'users with these roles get no injected properties' }),
      }, { ...closed, default: {} }),
    }, { ...closed, default: {}, description: 'see [import.md](import.md)' }),
    taskTimeToLiveHours: int(0, 100_000, { default: 48, description: 'how long finished tasks are kept' }),
    maxConcurrentTasks: int(1, 64, { default: 4, description: 'import tasks one process runs at once; more wait as pending' }),
    maxParallelStores: int(1, 64, { default: 4, description: 'target stores one import writes to at once' }),
    glanceDownload: T.Object({
      extraProperties: T.Array(T.String(), { default: ['hw_', 'trait:', 'os_distro', 'os_secure_boot', 'os_type'], description: 'property-name prefixes glance-download copies from the remote image' }),
    }, { ...closed, default: {} }),
    workDir: T.String({ minLength: 1, description: 'scratch space for conversion and decompression; emptied at start', defaultText: '`<dataDir>/import-work`' }),
  }, { ...closed, default: {} }),
  quotas: T.Object({
    enabled: T.Boolean({ default: false, description: 'enforce per-project limits, see [quotas.md](quotas.md)' }),
    defaults: QuotaLimitsSchema,
    projects: T.Record(T.String(), ProjectQuotaSchema, { default: {}, description: 'per-project overrides of `quotas.defaults`' }),
  }, { ...closed, default: {} }),
  cache: T.Object({
    enabled: T.Boolean({ default: false, description: 'a read-through cache of image data on this node\'s disk, and Glance\'s `/v2/cache` API (API versions 2.14 and 2.16); see [cache.md](cache.md)' }),
    dir: T.String({ minLength: 1, env: 'IMAGO_CACHE_DIR', description: 'directory of this node\'s cache: the cached images and their index (`cache.sqlite`); one process per directory (relative to dataDir)', defaultText: '`<dataDir>/cache`' }),
    maxSizeGiB: T.Number({ exclusiveMinimum: 0, maximum: 1_000_000, default: 10, description: 'most image data the cache holds, GiB; the least recently used images are evicted to make room' }),
    prefetchIntervalSeconds: T.Number({ exclusiveMinimum: 0, maximum: 86_400, default: 5, description: 'how often the prefetcher looks for images queued by `PUT /v2/cache/{id}` (an image is taken once it has been queued this long)' }),
    prefetchConcurrency: int(1, 64, { default: 2, description: 'queued images the prefetcher reads into the cache at once' }),
  }, { ...closed, default: {} }),
  uploads: T.Object({
    resumable: T.Boolean({ default: true, description: 'resumable uploads (tus 1.0) at `/v2/uploads`, see [api.md](api.md#resumable-uploads-tus)' }),
    expirySeconds: int(60, 365 * 86_400, { default: 86_400, description: 'an upload no byte reached for this long expires: its partial data is removed and the image goes back to `queued`' }),
    lockSeconds: int(5, 3_600, { default: 30, description: 'lease of the lock one request holds on an upload while it appends; renewed while it writes, so it only runs out when a node dies' }),
    sweepSeconds: int(1, 86_400, { default: 60, description: 'how often each node looks for expired uploads' }),
  }, { ...closed, default: {}, description: 'resumable uploads (tus)' }),
  hashWorkers: int(1, 64, { default: 2, description: 'worker threads hashing image data' }),
  metrics: T.Object({
    enabled: T.Boolean({ default: false, description: 'Prometheus metrics on a listener of their own' }),
    host: T.String({ minLength: 1, default: '127.0.0.1', description: 'metrics listen address' }),
    port: port('metrics listen port', { default: 9293, env: 'IMAGO_METRICS_PORT', hint: 'setting IMAGO_METRICS_PORT also enables metrics' }),
    allow: T.Array(T.String(), { default: [], description: 'addresses or CIDR ranges allowed to scrape; empty: anyone who reaches host:port' }),
  }, { ...closed, default: {} }),
  health: T.Object({
    disableByFile: T.Optional(T.String({ minLength: 1, description: 'while this file exists, `/healthcheck` answers 503 (drain a node)' })),
    cacheSeconds: T.Number({ minimum: 0, maximum: 300, default: 5, description: 'how long one round of health checks is reused' }),
  }, { ...closed, default: {} }),
  console: T.Object({
    enabled: T.Boolean({ default: true, env: 'IMAGO_CONSOLE_ENABLED', description: 'the web console at `/console/` (static files and its sign-in endpoints `/console/api/login`, `/console/api/projects`), see [console.md](console.md); `false` answers 404 there' }),
    loginsPerMinute: int(1, 10_000, { default: 10, description: 'sign-in attempts one remote address may make per minute; more get 429' }),
  }, { ...closed, default: {} }),
  notifications: T.Object({
    driver: oneOf(['noop', 'log', 'messagingv2'] as const, { default: 'noop', env: 'IMAGO_NOTIFICATIONS_DRIVER', description: 'where events about images, members, tasks and metadefs go: `noop` (nowhere), `log` (the log), `messagingv2` (the message bus, as oslo.messaging), see [notifications.md](notifications.md)' }),
    transportUrl: T.Optional(T.String({ pattern: '^rabbit://', env: 'IMAGO_NOTIFICATIONS_TRANSPORT_URL', description: 'the bus, as oslo.messaging\'s `transport_url`: `rabbit://user:pass@host:5672/vhost` (several hosts separated by commas)', hint: 'needed by the messagingv2 driver' })),
    exchange: T.String({ minLength: 1, default: 'glance', description: 'the topic exchange events are published to (oslo.messaging\'s `control_exchange`)' }),
    topics: T.Array(T.String({ minLength: 1 }), { minItems: 1, default: ['notifications'], description: 'each event goes to `<topic>.<priority>` of every topic (`[oslo_messaging_notifications] topics`)' }),
    publisherId: T.Optional(T.String({ minLength: 1, description: 'the events\' `publisher_id`', defaultText: '`image.<host name>`' })),
    disabled: T.Array(T.String({ minLength: 1 }), { default: [], description: 'event types (`image.update`) or groups (`image`, `image.member`, `task`, `metadef_tag`) not sent (Glance\'s `disabled_notifications`)' }),
    queueSize: int(1, 1_000_000, { default: 10_000, description: 'events waiting for the bus; when full, new events are dropped (counted and logged)' }),
  }, { ...closed, default: {} }),
  propertyProtection: T.Optional(T.Object({
    file: T.String({ minLength: 1, description: 'Glance\'s property protections INI file (`property_protection_file`), relative to dataDir' }),
    ruleFormat: oneOf(['roles', 'policies'] as const, { default: 'roles', description: '`roles`: the file lists role names; `policies`: policy rule names (`property_protection_rule_format`)' }),
  }, { ...closed, description: 'who may create, read, update and delete which image properties, see [property-protections.md](property-protections.md)', defaultText: 'none: every property is open' })),
  nodeTimeoutSeconds: T.Number({ exclusiveMinimum: 0, maximum: 86_400, default: 30, env: 'IMAGO_NODE_TIMEOUT_SECONDS', description: 'shared database: how long a node may miss heartbeats before its uploads and imports are taken as dead' }),
  shutdownGraceSeconds: T.Number({ minimum: 0, maximum: 86_400, default: 30, env: 'IMAGO_SHUTDOWN_GRACE_SECONDS', description: 'on SIGTERM, how long running uploads may finish before they are cut' }),
}, closed);

export type Config = Static<typeof ConfigSchema>;
export type StoreConfig = Static<typeof StoreSchema>;
export type S3StoreSettings = Static<typeof S3StoreSettingsSchema>;
export type KeystoneConfig = Static<typeof KeystoneSchema>;
export type WebDownloadFilter = Static<typeof WebDownloadFilterSchema>;
export type QuotaLimits = Static<typeof QuotaLimitsSchema>;
export type StoreType = Static<typeof StoreType>;
export type AuthMode = 'static' | 'keystone';

/** Keys of our own in the schema (annotations, not rules); config.ts tells ajv about them. */
export const CONFIG_ANNOTATIONS = ['env', 'defaultText', 'hint', 'unknownKeyNoun', 'docSummary'];

/** Every environment variable the schema names, with the dotted key it sets and that key's schema. */
export function envKeys(schema: TSchema = ConfigSchema, prefix = ''): Array<{ env: string; key: string; schema: TSchema }> {
  const out: Array<{ env: string; key: string; schema: TSchema }> = [];
  for (const [name, sub] of Object.entries((schema.properties ?? {}) as Record<string, TSchema>)) {
    const key = prefix ? `${prefix}.${name}` : name;
    if (typeof sub.env === 'string') out.push({ env: sub.env, key, schema: sub });
    if (sub.type === 'object') out.push(...envKeys(sub, key));
  }
  return out;
}

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createImage, startTestServer, type TestServer } from '../support/server.js';
import { SCHEMAS } from '../../src/domain/schemas.js';
import { METADEF_SCHEMAS } from '../../src/metadefs/schemas.js';
import { validate } from '../../src/metadefs/json-schema.js';
import { ConfigSchema } from '../../src/config-schema.js';

/**
 * Walks every document /v2/schemas/* serves and, for each constraint in it
 * (type, enum, lengths, pattern, bounds, items, required, additional
 * properties), sends the route that takes that document a body violating
 * exactly that constraint: 400 with a message naming the property. Then every
 * JSON example in docs/ is checked to be what it claims to be.
 */

type Json = Record<string, any>;

interface Violation {
  /** what was broken, for the assertion message */
  rule: string;
  /** the property the answer must name */
  name: string;
  value: unknown;
}

const CANDIDATES: Array<[string, unknown]> = [['string', 'x'], ['number', 1.5], ['boolean', true], ['array', []], ['object', {}], ['null', null]];

function typesOf(s: Json): string[] | undefined {
  if (s.type === undefined) return undefined;
  const types: string[] = Array.isArray(s.type) ? s.type : [s.type];
  return types.includes('number') ? [...types, 'integer'] : types;
}

function resolve(s: Json, root: Json): Json {
  let out = s;
  while (typeof out.$ref === 'string') out = root.definitions[out.$ref.replace('#/definitions/', '')];
  return out;
}

/** The smallest value `s` accepts. */
function sample(schema: Json, root: Json): unknown {
  const s = resolve(schema, root);
  if (s.allOf) return sample(s.allOf[0], root);
  if (s.enum) return s.enum.find((e: unknown) => e !== null) ?? s.enum[0];
  const types = typesOf(s);
  const t = types?.find((x) => x !== 'null') ?? (types ? 'null' : s.properties ? 'object' : undefined);
  switch (t) {
    case 'string': return s.pattern ? '0b1e4a9e-0000-4000-8000-000000000001' : 'x'.repeat(Math.max(1, s.minLength ?? 1));
    case 'integer': case 'number': return s.minimum ?? 0;
    case 'boolean': return false;
    case 'null': return null;
    case 'array': return Array.from({ length: s.minItems ?? 0 }, (_, i) => `${sample(s.items ?? {}, root)}${i}`);
    case 'object': return Object.fromEntries(((s.required ?? []) as string[]).map((k) => [k, sample(s.properties?.[k] ?? {}, root)]));
    default: return 'x';
  }
}

/** Every way to break `schema`, each breaking one constraint; `name` is the property that holds it. */
function violations(schema: Json, root: Json, name: string, depth = 0, base?: Json): Violation[] {
  if (depth > 6) return [];
  const s = resolve(schema, root);
  const out: Violation[] = [];
  for (const sub of s.allOf ?? []) out.push(...violations(sub, root, name, depth + 1));
  const types = typesOf(s);
  if (types) {
    const wrong = CANDIDATES.find(([t]) => !types.includes(t));
    if (wrong) out.push({ rule: `type ${types}`, name, value: wrong[1] });
  }
  const takesStrings = !types || types.includes('string');
  if (s.enum && takesStrings) out.push({ rule: 'enum', name, value: 'none-of-these' });
  if (s.maxLength !== undefined) out.push({ rule: 'maxLength', name, value: 'x'.repeat(s.maxLength + 1) });
  if (s.minLength > 0) out.push({ rule: 'minLength', name, value: '' });
  if (s.pattern !== undefined) out.push({ rule: 'pattern', name, value: '!' });
  if (s.minimum !== undefined) out.push({ rule: 'minimum', name, value: s.minimum - 1 });
  if (s.maximum !== undefined) out.push({ rule: 'maximum', name, value: s.maximum + 1 });
  if (s.minItems > 0) out.push({ rule: 'minItems', name, value: [] });
  if (s.uniqueItems) out.push({ rule: 'uniqueItems', name, value: [sample(s.items ?? {}, root), sample(s.items ?? {}, root)] });
  if (s.items && typeof s.items === 'object') {
    const filler = Array.from({ length: Math.max(0, (s.minItems ?? 0) - 1) }, (_, i) => `${sample(s.items, root)}${i}`);
    for (const v of violations(s.items, root, name, depth + 1)) out.push({ ...v, rule: `items: ${v.rule}`, value: [v.value, ...filler] });
  }
  // the document's own valid body (the route's) at the top, the smallest valid value below
  const valid = () => ({ ...(base ?? (sample(s, root) as Json)) });
  for (const [key, prop] of Object.entries((s.properties ?? {}) as Json)) {
    for (const v of violations(prop, root, key, depth + 1)) out.push({ ...v, rule: `${key}: ${v.rule}`, value: { ...valid(), [key]: v.value } });
  }
  for (const key of (s.required ?? []) as string[]) {
    const { [key]: _missing, ...rest } = valid();
    out.push({ rule: `required ${key}`, name: key, value: rest });
  }
  if (s.additionalProperties === false) out.push({ rule: 'additionalProperties', name: 'zz_unknown', value: { ...valid(), zz_unknown: 1 } });
  else if (s.additionalProperties && typeof s.additionalProperties === 'object') {
    for (const v of violations(s.additionalProperties, root, 'k1', depth + 1)) out.push({ ...v, rule: `k1: ${v.rule}`, value: { ...valid(), k1: v.value } });
  }
  return out;
}

/** Documents that describe answers only: no request carries them. */
const RESPONSE_ONLY = ['images', 'members', 'task', 'tasks', 'metadefs/namespaces', 'metadefs/resource_types', 'metadefs/properties', 'metadefs/objects', 'metadefs/tags'];

describe('every served schema, every constraint', () => {
  let s: TestServer;
  let imageId: string;
  const ns = `Walk::NS::${process.pid}`;
  const served: Record<string, Json> = {};
  before(async () => {
    s = await startTestServer();
    for (const name of [...Object.keys(SCHEMAS), ...Object.keys(METADEF_SCHEMAS)]) {
      const res = await s.req('GET', `/v2/schemas/${name}`);
      assert.equal(res.status, 200, name);
      served[name] = (await res.json()) as Json;
    }
    imageId = (await createImage(s, { visibility: 'shared', os_distro: 'debian' })).id;
    assert.equal((await s.req('POST', `/v2/images/${imageId}/members`, { json: { member: 'p2' } })).status, 200);
    assert.equal((await s.req('POST', '/v2/metadefs/namespaces', { json: { namespace: ns } })).status, 201);
    assert.equal((await s.req('POST', `/v2/metadefs/namespaces/${ns}/tags/t0`)).status, 201);
  });
  after(async () => { await s.close(); });

  /** How each request document is sent: method, path, the valid body the violation goes into, and attributes refused 403 before validation. */
  const routes: Record<string, () => { method: string; url: string; base: Json; readOnly: string[]; wrap?: (v: Json) => Json }> = {
    image: () => ({ method: 'POST', url: '/v2/images', base: {}, readOnly: ['direct_url', 'self', 'file', 'schema', 'stores'] }),
    'metadefs/namespace': () => ({ method: 'POST', url: '/v2/metadefs/namespaces', base: { namespace: 'Walk::Other' }, readOnly: ['self', 'schema', 'created_at', 'updated_at'] }),
    'metadefs/object': () => ({ method: 'POST', url: `/v2/metadefs/namespaces/${ns}/objects`, base: { name: 'o' }, readOnly: ['self', 'schema', 'created_at', 'updated_at'] }),
    'metadefs/property': () => ({ method: 'POST', url: `/v2/metadefs/namespaces/${ns}/properties`, base: { name: 'p', title: 'P', type: 'string' }, readOnly: ['created_at', 'updated_at'] }),
    'metadefs/tag': () => ({ method: 'PUT', url: `/v2/metadefs/namespaces/${ns}/tags/t0`, base: { name: 't1' }, readOnly: ['created_at', 'updated_at'] }),
    'metadefs/resource_type': () => ({ method: 'POST', url: `/v2/metadefs/namespaces/${ns}/resource_types`, base: { name: 'OS::Nova::Flavor' }, readOnly: ['created_at', 'updated_at'] }),
  };

  test('every served document is either walked here or describes answers only', () => {
    const names = Object.keys(served).sort();
    assert.deepEqual(names, [...Object.keys(routes), 'member', ...RESPONSE_ONLY].sort());
  });

  for (const name of ['image', 'metadefs/namespace', 'metadefs/object', 'metadefs/property', 'metadefs/tag', 'metadefs/resource_type']) {
    test(`${name}: each constraint violated is 400 naming the property`, async () => {
      const route = routes[name]();
      const schema = served[name];
      const all = violations(schema, schema, '', 0, route.base).filter((v) => v.name !== '');
      assert.ok(all.length >= 4, `${name}: only ${all.length} constraints found`);
      for (const v of all) {
        const body = v.value as Json;
        const res = await s.req(route.method, route.url, { json: body });
        const text = await res.text();
        const refusedFirst = route.readOnly.includes(v.rule.split(':')[0]);
        assert.equal(res.status, refusedFirst ? 403 : 400, `${name} ${v.rule}: ${JSON.stringify(body).slice(0, 200)} → ${text.slice(0, 300)}`);
        const error = JSON.parse(text).error;
        assert.equal(error.code, res.status);
        assert.ok(error.message.includes(v.name), `${name} ${v.rule}: the message should name '${v.name}': ${error.message}`);
      }
    });
  }

  test('member: the member id and the status are checked by the member schema', async () => {
    const props = served.member.properties;
    assert.equal(props.member_id.type, 'string');
    const added = await s.req('POST', `/v2/images/${imageId}/members`, { json: { member: 5 } });
    assert.equal(added.status, 400);
    assert.match((await added.json()).error.message, /member must be a string, got 5/);
    const status = await s.req('PUT', `/v2/images/${imageId}/members/p2`, { token: 'other', json: { status: 'none-of-these' } });
    assert.equal(status.status, 400);
    const message = (await status.json()).error.message;
    for (const allowed of props.status.enum) assert.match(message, new RegExp(allowed));
  });

  test('the messages say the rule and the value in our words', async () => {
    const cases: Array<[Json, RegExp]> = [
      [{ min_ram: -1 }, /'min_ram' must be an integer ≥ 0, got -1/],
      [{ min_disk: '1' }, /'min_disk' must be an integer, got "1"/],
      [{ visibility: 'everyone' }, /'visibility' must be one of "community", "public", "private", "shared", got "everyone"/],
      [{ name: 'n'.repeat(256) }, /'name' must be at most 255 characters long, got 256/],
      [{ tags: ['ok', 7] }, /'tags\[1\]' must be a string, got 7/],
      [{ kernel_id: 'nope' }, /'kernel_id' must match the pattern/],
      [{ locations: [{ url: 'x' }] }, /'locations\[0\]\.metadata' is required/],
    ];
    for (const [body, message] of cases) {
      const res = await s.req('POST', '/v2/images', { json: body });
      assert.equal(res.status, 400);
      assert.match((await res.json()).error.message, message);
    }
    const nested = await s.req('POST', '/v2/metadefs/namespaces', { json: { namespace: 'Walk::M', objects: [{ name: 'o', properties: { p: { title: 'P' } } }] } });
    assert.equal(nested.status, 400);
    assert.match((await nested.json()).error.message, /'objects\[0\]\.properties\.p\.type' is required/);
  });

  describe('JSON examples in docs/', () => {
    const docsDir = path.resolve(import.meta.dirname, '../../../docs');
    const blocks: Array<{ where: string; text: string }> = [];
    for (const file of readdirSync(docsDir).filter((f) => f.endsWith('.md')).sort()) {
      const text = readFileSync(path.join(docsDir, file), 'utf8');
      let i = 0;
      for (const m of text.matchAll(/```json\n([\s\S]*?)```/g)) blocks.push({ where: `${file}#${++i}`, text: m[1] });
    }
    const errorBody = (doc: Json) => {
      assert.deepEqual(Object.keys(doc), ['error']);
      assert.deepEqual(Object.keys(doc.error).sort(), ['code', 'details', 'message']);
      assert.equal(typeof doc.error.code, 'number');
    };
    const configFragment = (doc: Json, schema: Json = ConfigSchema as unknown as Json, where = '') => {
      for (const [k, v] of Object.entries(doc)) {
        const prop = schema.properties?.[k];
        assert.ok(prop, `${where}${k} is a configuration key`);
        if (v && typeof v === 'object' && !Array.isArray(v) && prop.properties) configFragment(v as Json, prop, `${where}${k}.`);
      }
    };
    /** What each example is, and how it is checked; an example not listed here fails the test until it is. */
    const checks: Record<string, (text: string) => Promise<void> | void> = {
      'api.md#1': (t) => assert.equal(validate(JSON.parse(t), served.image), undefined),
      'api.md#2': (t) => assert.equal(validate(JSON.parse(t), served.images), undefined),
      'api.md#3': async (t) => {
        const res = await s.req('PATCH', `/v2/images/${imageId}`, { body: t, headers: { 'content-type': 'application/openstack-images-v2.1-json-patch' } });
        assert.equal(res.status, 200, await res.text());
      },
      'api.md#4': (t) => errorBody(JSON.parse(t)),
      'configuration.md#1': (t) => {
        for (const identity of Object.values(JSON.parse(t)) as Json[]) {
          assert.deepEqual(Object.keys(identity).sort(), ['project', 'roles', 'user']);
          assert.ok(Array.isArray(identity.roles));
        }
      },
      // One import request per line.
      'import.md#1': (t) => {
        for (const line of t.trim().split('\n')) {
          const body = JSON.parse(line);
          assert.ok(['glance-direct', 'web-download', 'copy-image', 'glance-download'].includes(body.method.name), line);
        }
      },
      // A request log line: the fields docs/operations.md's table explains.
      'operations.md#1': (t) => {
        const line = JSON.parse(t);
        for (const k of ['time', 'requestId', 'method', 'route', 'path', 'status', 'bytesIn', 'bytesOut', 'durationMs', 'user', 'project', 'remoteAddress']) assert.ok(k in line, k);
        assert.match(line.time, /^\d{4}-\d\d-\d\dT/);
      },
      // configuration fragments: every key is one the configuration schema defines
      'notifications.md#1': (t) => configFragment(JSON.parse(t)),
      'notifications.md#3': (t) => configFragment(JSON.parse(t)),
      'property-protections.md#1': (t) => configFragment(JSON.parse(t)),
      // the oslo.messaging v2 envelope; its message is shortened with "..." in the page
      'notifications.md#2': (t) => {
        const env = JSON.parse(t);
        assert.deepEqual(Object.keys(env), ['oslo.version', 'oslo.message']);
        assert.equal(env['oslo.version'], '2.0');
        for (const k of ['message_id', 'publisher_id', 'event_type', 'priority', 'payload', 'timestamp']) assert.ok(env['oslo.message'].includes(`"${k}"`), k);
      },
      'quotas.md#1': (t) => errorBody(JSON.parse(t)),
      'quotas.md#2': (t) => {
        for (const limit of Object.values(JSON.parse(t).usage) as Json[]) assert.deepEqual(Object.keys(limit), ['limit', 'usage']);
      },
    };

    test('every example is listed and passes its check', async () => {
      assert.ok(blocks.length > 0);
      assert.deepEqual(blocks.map((b) => b.where).sort(), Object.keys(checks).sort(), 'a JSON example in docs/ needs a check here');
      for (const b of blocks) {
        try {
          await checks[b.where](b.text);
        } catch (err) {
          assert.fail(`${b.where}: ${(err as Error).message}`);
        }
      }
    });
  });
});

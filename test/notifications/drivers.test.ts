import { after, before, describe, test } from 'node:test';
import { rmSync } from 'node:fs';
import assert from 'node:assert/strict';
import { isDisabled } from '../../src/notifications/notifier.js';
import { amqpUrls, redact } from '../../src/notifications/amqp.js';
import { startLoggedServer } from '../ops/helpers.js';
import { makeDataDir, testConfig, TOKENS, writeTokens } from '../support/server.js';
import { startServer } from '../../src/server/start.js';
import { ConfigError } from '../../src/config.js';

test('disabled notifications: one type, or a group named by any dotted prefix', () => {
  const off = ['image.update', 'image.member', 'task', 'metadef_tag'];
  for (const t of ['image.update', 'image.member.create', 'image.member.delete', 'task.create', 'task.success', 'metadef_tag.create']) assert.equal(isDisabled(t, off), true, t);
  for (const t of ['image.create', 'image.upload', 'image.send', 'metadef_namespace.create', 'tasks.x', 'image.updated']) assert.equal(isDisabled(t, off), false, t);
  assert.equal(isDisabled('image.create', ['image']), true);
  assert.equal(isDisabled('image.create', []), false);
});

test('transport URLs: oslo.messaging\'s rabbit:// with several hosts and a vhost become amqplib URLs', () => {
  assert.deepEqual(amqpUrls('rabbit://guest:guest@127.0.0.1:5672/'), ['amqp://guest:guest@127.0.0.1:5672/?heartbeat=15']);
  assert.deepEqual(amqpUrls('rabbit://u:p%40ss@h1,u:p%40ss@h2:5673/openstack'), ['amqp://u:p%40ss@h1:5672/openstack?heartbeat=15', 'amqp://u:p%40ss@h2:5673/openstack?heartbeat=15']);
  assert.throws(() => amqpUrls('amqp://h/'), /not a rabbit:\/\/ transport URL/);
  assert.throws(() => amqpUrls('rabbit:///'), /not a rabbit/);
  assert.equal(redact('rabbit://u:secret@h1:5672,v:other@h2/'), 'rabbit://u:***@h1:5672,v:***@h2/');
});

test('a messagingv2 driver without a transport URL is a configuration error naming the key', () => {
  const dir = makeDataDir();
  assert.throws(() => testConfig(dir, { notifications: { driver: 'messagingv2' } }), (err: Error) => err instanceof ConfigError && /notifications\.transportUrl is not set/.test(err.message));
  assert.throws(() => testConfig(dir, { notifications: { driver: 'kafka' } }), (err: Error) => err instanceof ConfigError && /notifications\.driver/.test(err.message));
  rmSync(dir, { recursive: true, force: true });
});

test('a bus that is down at start does not stop the start', async () => {
  const dir = makeDataDir();
  writeTokens(dir);
  // port 1: nothing listens; the server starts, events queue
  const server = await startServer(testConfig(dir, { notifications: { driver: 'messagingv2', transportUrl: 'rabbit://guest:guest@127.0.0.1:1/' } }));
  try {
    const res = await fetch(`${server.url}/v2/images`, { method: 'POST', headers: { 'x-auth-token': TOKENS.admin, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(res.status, 201);
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('the log driver: one log line per event, at the priority\'s level', () => {
  let s: Awaited<ReturnType<typeof startLoggedServer>>;
  before(async () => {
    s = await startLoggedServer({ notifications: { driver: 'log', publisherId: 'image.logged', disabled: ['image.update'] } });
  });
  after(() => s?.close());

  test('image.create is logged with its envelope; a disabled image.update is not', async () => {
    const res = await fetch(`${s.url}/v2/images`, { method: 'POST', headers: { 'x-auth-token': TOKENS.admin, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'logged' }) });
    assert.equal(res.status, 201);
    const id = ((await res.json()) as { id: string }).id;
    const patch = await fetch(`${s.url}/v2/images/${id}`, { method: 'PATCH', headers: { 'x-auth-token': TOKENS.admin, 'content-type': 'application/openstack-images-v2.1-json-patch' }, body: JSON.stringify([{ op: 'replace', path: '/name', value: 'renamed' }]) });
    assert.equal(patch.status, 200);
    const events = s.logs.json().filter((l) => l.notification);
    assert.deepEqual(events.map((l) => l.notification.event_type), ['image.create']);
    const n = events[0].notification;
    assert.equal(n.publisher_id, 'image.logged');
    assert.equal(n.priority, 'INFO');
    assert.equal(n.payload.id, id);
    assert.equal(n.payload.name, 'logged');
    assert.equal(events[0].level, 30);
  });
});

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createImage, startTestServer, type TestServer } from '../support/server.js';
import { startRelay, type Relay } from '../support/relay.js';
import { waitFor } from '../support/wait.js';
import { busUnavailableReason, notificationConfig, RABBIT_HOST, RABBIT_PORT, startListener, type Listener, type Received } from './helpers.js';

const skip = await busUnavailableReason();

/** How long the publisher may take to connect before giving up (src/notifications/amqp.ts): a request that waited for the bus would take at least this. */
const CONNECT_TIMEOUT_MS = 5_000;

async function timed<T>(f: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await f();
  return { value, ms: performance.now() - t0 };
}

/** The events about these images, each once: delivery is at least once, so a reconnection may repeat one (same message_id). */
function received(l: Listener, ids: string[]): Received[] {
  const seen = new Set<string>();
  return l.events.filter((e) => ids.includes(e.payload?.id) && !seen.has(e.message_id) && seen.add(e.message_id));
}

async function counter(s: TestServer, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = await s.rt.metrics.registry.getSingleMetric(name)!.get();
  const v = metric.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

describe('a message bus that goes away: requests do not wait for it, events follow when it returns', { skip, timeout: 120_000 }, () => {
  let relay: Relay;
  let l: Listener;
  let s: TestServer;

  before(async () => {
    relay = await startRelay(RABBIT_HOST, RABBIT_PORT);
    l = await startListener();
    s = await startTestServer({ config: notificationConfig(l, `rabbit://guest:guest@127.0.0.1:${relay.port}/`, { queueSize: 20 }) });
  });
  after(async () => {
    await s?.close();
    relay?.stop();
    await l?.stop();
  });

  test('stalled bus: requests answer without waiting, the events queued meanwhile arrive in order once it is back', async () => {
    // Connected and delivering first.
    const warm = await createImage(s, { name: 'before-outage' });
    await waitFor('the first event', () => l.events.some((e) => e.payload?.id === warm.id));

    // A bus that accepts connections and then says nothing: a publisher that waited would hang.
    relay.stall();
    const names = Array.from({ length: 6 }, (_, i) => `during-outage-${i}`);
    const ids: string[] = [];
    for (const name of names) {
      const { value, ms } = await timed(() => createImage(s, { name }));
      ids.push(value.id);
      assert.ok(ms < CONNECT_TIMEOUT_MS, `a create took ${Math.round(ms)} ms while the bus was stalled: it waited for the bus`);
    }
    const { value: patched, ms } = await timed(() => s.req('PATCH', `/v2/images/${ids[0]}`, { headers: { 'content-type': 'application/openstack-images-v2.1-json-patch' }, json: [{ op: 'add', path: '/k', value: 'v' }] }));
    assert.equal(patched.status, 200);
    assert.ok(ms < CONNECT_TIMEOUT_MS, `a PATCH took ${Math.round(ms)} ms while the bus was stalled`);
    assert.ok(!l.events.some((e) => ids.includes(e.payload?.id)), 'nothing got through the stalled relay');
    await waitFor('the events to be queued', async () => (await counter(s, 'imago_notifications_queued')) >= 7 || s.rt.metrics.registry.getSingleMetric('imago_notifications_queued') === undefined);

    // Back: everything queued is delivered, in the order it happened.
    relay.restore();
    const got = await waitFor(() => `the queued events (${l.events.length} received)`, () => {
      const mine = received(l, ids);
      return mine.length >= 7 && mine;
    }, 30_000);
    assert.deepEqual(got.map((e) => `${e.event_type} ${e.payload.name}`), [...names.map((n) => `image.create ${n}`), `image.update ${names[0]}`]);
    assert.equal(await counter(s, 'imago_notifications_dropped_total', { reason: 'queue_full' }), 0);
  });

  test('bus refused for longer than the queue holds: the overflow is dropped and counted, the rest delivered', async () => {
    relay.cut();
    // queueSize 20: 25 creates while the bus refuses connections.
    const ids: string[] = [];
    for (let i = 0; i < 25; i++) ids.push((await createImage(s, { name: `overflow-${i}` })).id);
    assert.equal(await counter(s, 'imago_notifications_dropped_total', { reason: 'queue_full' }), 5);
    relay.restore();
    const got = await waitFor(() => 'the 20 queued events', () => {
      const mine = received(l, ids);
      return mine.length >= 20 && mine;
    }, 30_000);
    // the first 20 were kept, the last 5 dropped
    assert.deepEqual(got.map((e) => e.payload.name), ids.slice(0, 20).map((_, i) => `overflow-${i}`));
    // counted once the broker's confirms are in, which may be a moment after the listener has the events
    let published = 0;
    await waitFor(() => `imago_notifications_published_total to reach 28 (is ${published})`, async () => (published = await counter(s, 'imago_notifications_published_total')) >= 28);
  });
});

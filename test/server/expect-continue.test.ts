import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { startTestServer, createImage, uploadBytes, data1k, TOKENS, type TestServer } from '../support/server.js';

/**
 * `Expect: 100-continue` over a raw socket: uploads (PUT .../file and
 * .../stage) are decided before `100 Continue`, so a refused client never
 * sends its body; every other request gets `100 Continue` at once.
 */

interface Head {
  status: number;
  headers: Record<string, string>;
}

/** A raw HTTP/1.1 connection that reads response heads (and bodies by Content-Length) one at a time. */
class RawClient {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  static open(url: string): Promise<RawClient> {
    const u = new URL(url);
    return new Promise((resolve, reject) => {
      const s = connect(Number(u.port), u.hostname, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private async until<T>(take: () => T | undefined, ms: number): Promise<T | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = take();
      if (v !== undefined) return v;
      if (this.closed || Date.now() >= deadline) return undefined;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The next response head (and its body, consumed), or undefined if none comes within `ms`. */
  async next(ms = 5_000): Promise<(Head & { body: string }) | undefined> {
    return this.until(() => {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end === -1) return undefined;
      const [statusLine, ...lines] = this.buf.subarray(0, end).toString().split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
      const length = Number(headers['content-length'] ?? 0);
      if (this.buf.length < end + 4 + length) return undefined;
      const body = this.buf.subarray(end + 4, end + 4 + length).toString();
      this.buf = this.buf.subarray(end + 4 + length);
      return { status: Number(statusLine.split(' ')[1]), headers, body };
    }, ms);
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  async waitClosed(ms = 5_000): Promise<boolean> {
    await this.until(() => (this.closed ? true : undefined), ms);
    return this.closed;
  }

  close(): void {
    this.socket.destroy();
  }
}

function head(method: string, path: string, headers: Record<string, string | number>): string {
  return `${method} ${path} HTTP/1.1\r\nHost: test\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

const uploadHeaders = (length: number, token: string | null = TOKENS.admin): Record<string, string | number> => ({
  'Content-Type': 'application/octet-stream',
  'Content-Length': length,
  Expect: '100-continue',
  ...(token ? { 'X-Auth-Token': token } : {}),
});

describe('Expect: 100-continue', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({
      config: {
        imageSizeCap: 2 * 1024 * 1024,
        quotas: { enabled: true, defaults: { image_size_total: 1, image_stage_total: 1, image_count_total: -1, image_count_uploading: -1 }, projects: {} },
      },
    });
  });
  after(async () => { await s.close(); });

  const status = async (id: string) => ((await (await s.req('GET', `/v2/images/${id}`)).json()) as Record<string, unknown>).status;

  test('PUT /file accepted: 100 Continue first, then the body, then 204', async () => {
    const img = await createImage(s, { disk_format: 'raw', container_format: 'bare' });
    const c = await RawClient.open(s.url);
    try {
      c.send(head('PUT', `/v2/images/${img.id}/file`, uploadHeaders(1000)));
      const interim = await c.next();
      assert.equal(interim?.status, 100);
      c.send(data1k());
      const final = await c.next();
      assert.equal(final?.status, 204);
      assert.equal(await status(img.id), 'active');
    } finally {
      c.close();
    }
  });

  test('PUT /file refused before 100 Continue: no token, unknown image, wrong status, size over the cap or the quota', async () => {
    const queued = await createImage(s, { disk_format: 'raw', container_format: 'bare' });
    const active = await createImage(s, { disk_format: 'raw', container_format: 'bare' });
    assert.equal((await uploadBytes(s, active.id, data1k())).status, 204);
    const member = await createImage(s, { disk_format: 'raw', container_format: 'bare' }, 'member');
    const cases: [string, string, Record<string, string | number>, number][] = [
      ['no token', `/v2/images/${queued.id}/file`, uploadHeaders(1000, null), 401],
      ['unknown image', '/v2/images/00000000-0000-4000-8000-000000000000/file', uploadHeaders(1000), 404],
      ['active image', `/v2/images/${active.id}/file`, uploadHeaders(1000), 409],
      ['over the size cap', `/v2/images/${queued.id}/file`, uploadHeaders(3 * 1024 * 1024), 413],
      ['declared over the cap', `/v2/images/${queued.id}/file`, { ...uploadHeaders(1000), 'x-openstack-image-size': 3 * 1024 * 1024 }, 413],
      ['over the quota (1 MiB)', `/v2/images/${member.id}/file`, uploadHeaders(4000, TOKENS.member), 413],
      ['wrong content type', `/v2/images/${queued.id}/file`, { ...uploadHeaders(1000), 'Content-Type': 'application/json' }, 415],
      ['a versioned prefix is an upload too', `/v2.1/images/${active.id}/file`, uploadHeaders(1000), 409],
    ];
    // the member's quota is 1 MiB: fill it but for 100 bytes, so 4000 more do not fit
    const filler = await createImage(s, { disk_format: 'raw', container_format: 'bare' }, 'member');
    assert.equal((await s.req('PUT', `/v2/images/${filler.id}/file`, { token: 'member', headers: { 'content-type': 'application/octet-stream' }, body: Buffer.alloc(1024 * 1024 - 100) })).status, 204);
    for (const [what, path, headers, expected] of cases) {
      const c = await RawClient.open(s.url);
      try {
        c.send(head('PUT', path, headers));
        const r = await c.next();
        assert.equal(r?.status, expected, `${what}: ${r?.body}`);
        assert.equal(r?.headers.connection, 'close', `${what}: the announced body will not come`);
        assert.equal(JSON.parse(r!.body).error.code, expected, what);
        assert.ok(await c.waitClosed(), `${what}: the server ends the connection`);
      } finally {
        c.close();
      }
    }
    assert.equal(await status(queued.id), 'queued', 'nothing changed');
    assert.equal(await status(member.id), 'queued');
  });

  test('PUT /stage: 100 Continue only once the image may be staged', async () => {
    const img = await createImage(s, { disk_format: 'raw', container_format: 'bare' });
    const ok = await RawClient.open(s.url);
    try {
      ok.send(head('PUT', `/v2/images/${img.id}/stage`, uploadHeaders(1000)));
      assert.equal((await ok.next())?.status, 100);
      ok.send(data1k());
      assert.equal((await ok.next())?.status, 204);
    } finally {
      ok.close();
    }
    const again = await RawClient.open(s.url);
    try {
      again.send(head('PUT', `/v2/images/${img.id}/stage`, uploadHeaders(1000)));
      const r = await again.next();
      assert.equal(r?.status, 409, 'already staged (uploading): refused without 100');
      assert.equal(r?.headers.connection, 'close');
    } finally {
      again.close();
    }
  });

  test('every other request gets 100 Continue at once: JSON bodies do not stall', async () => {
    const c = await RawClient.open(s.url);
    try {
      const json = JSON.stringify({ name: 'expecting', disk_format: 'raw', container_format: 'bare' });
      c.send(head('POST', '/v2/images', { 'X-Auth-Token': TOKENS.admin, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(json), Expect: '100-continue' }));
      assert.equal((await c.next())?.status, 100);
      c.send(json);
      const created = await c.next();
      assert.equal(created?.status, 201);
      const id = JSON.parse(created!.body).id as string;
      // the same connection goes on: a PATCH, also expecting
      const patch = JSON.stringify([{ op: 'replace', path: '/name', value: 'renamed' }]);
      c.send(head('PATCH', `/v2/images/${id}`, { 'X-Auth-Token': TOKENS.admin, 'Content-Type': 'application/openstack-images-v2.1-json-patch', 'Content-Length': Buffer.byteLength(patch), Expect: '100-continue' }));
      assert.equal((await c.next())?.status, 100);
      c.send(patch);
      const patched = await c.next();
      assert.equal(patched?.status, 200);
      assert.equal(JSON.parse(patched!.body).name, 'renamed');
    } finally {
      c.close();
    }
  });
});

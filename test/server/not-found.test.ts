import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer } from '../support/server.js';

test('an unknown path answers 404 whatever body it carries', async () => {
  const s = await startTestServer();
  try {
    const cases: [string, string, string, Buffer | string][] = [
      ['PUT', '/v2/images/abc/nothing', 'application/octet-stream', Buffer.alloc(2_000_000, 7)],
      ['POST', '/v2/nothing', 'application/json', 'not json'],
      ['POST', '/v2/nothing', 'application/json', Buffer.alloc(2_000_000, 0x20)],
    ];
    for (const [method, url, type, body] of cases) {
      const res = await s.req(method, url, { headers: { 'content-type': type }, body });
      assert.equal(res.status, 404, `${method} ${url}`);
      assert.match(res.headers.get('content-type') ?? '', /application\/json/);
      const json = (await res.json()) as { error: { code: number; message: string } };
      assert.equal(json.error.code, 404);
    }
  } finally {
    await s.close();
  }
});

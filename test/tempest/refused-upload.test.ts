/**
 * Found by tempest (glance_tempest_plugin ImagesProjectMemberTests.test_upload_image):
 * tempest sends `Connection: close` on every request and its chunked body in
 * separate writes; an upload refused before its body arrived, on a connection
 * the server then closes, used to crash the server (unhandled 'error' event).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startTestServer, createImage, TOKENS } from '../support/server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends the headers, waits, then the chunked body; resolves with the status line and whether the server closed. */
async function slowChunkedPut(url: string, path: string, token: string, body: string | null, waitMs = 5000): Promise<string> {
  const u = new URL(url);
  const sock = connect(Number(u.port), u.hostname);
  let received = '';
  sock.on('data', (d) => { received += d.toString('latin1'); });
  sock.on('error', () => undefined);
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  await new Promise<void>((r) => sock.once('connect', () => r()));
  sock.write(`PUT ${path} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: close\r\nX-Auth-Token: ${token}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n`);
  await sleep(200);
  if (!sock.destroyed && body !== null) sock.write(body);
  await Promise.race([closed, sleep(waitMs)]);
  sock.destroy();
  return received.split('\r\n')[0];
}

test('an upload refused before its body arrives, on a Connection: close request, leaves the server running', async () => {
  const s = await startTestServer();
  try {
    const image = await createImage(s, {}, 'member');
    for (const [token, status] of [[TOKENS.reader, '403'], [TOKENS.other, '404']] as const) {
      const line = await slowChunkedPut(s.url, `/v2/images/${image.id}/file`, token, '400\r\n' + 'x'.repeat(1024) + '\r\n0\r\n\r\n');
      assert.match(line, new RegExp(`^HTTP/1.1 ${status} `));
    }
    await sleep(300);
    const res = await s.req('GET', `/v2/images/${image.id}`);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).status, 'queued');
  } finally {
    await s.close();
  }
});

test('a refused upload whose client never sends the body is cut without bringing the server down', async () => {
  const s = await startTestServer();
  try {
    const image = await createImage(s, {}, 'member');
    // the server discards an unread body for at most 10 s, then cuts the connection
    const line = await slowChunkedPut(s.url, `/v2/images/${image.id}/file`, TOKENS.reader, null, 12_000);
    assert.match(line, /^HTTP\/1.1 403 /);
    await sleep(300);
    const res = await s.req('GET', `/v2/images/${image.id}`);
    assert.equal(res.status, 200);
  } finally {
    await s.close();
  }
});

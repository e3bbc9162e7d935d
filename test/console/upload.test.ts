import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { CHUNK_BYTES } from '../../console/src/upload.js';
import { pattern } from '../support/bytes.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { assertAccessible, assertSameOrigin, chromiumMissing, clientFor, openConsole, screenshot, signInWithToken, type ConsoleBrowser } from './helpers.js';

/**
 * Uploads from the browser through tus (tus-js-client against /v2/uploads):
 * a 200 MiB file (progress to 100 %, the image active with the right digest,
 * PATCHes of one chunk at contiguous offsets); connections the test cuts
 * mid-PATCH (tus-js-client resumes from the server's offset by itself, at
 * most one chunk sent again per cut); a tab closed mid-upload (choosing the same
 * file again offers to resume, and only the rest is sent); Cancel; the plain PUT where
 * resumable uploads are off.
 */
const skip = chromiumMissing();
const SIZE = 200 * 1024 * 1024;
const MiB = 1024 * 1024;

/** Writes `size` bytes of pattern() to a file, 8 MiB at a time; returns its sha512. */
function writePatternFile(file: string, size: number): string {
  const hash = createHash('sha512');
  const fd = openSync(file, 'w');
  const chunk = 8 * MiB;
  for (let at = 0, seed = 1; at < size; at += chunk, seed++) {
    const b = pattern(Math.min(chunk, size - at), seed);
    hash.update(b);
    writeSync(fd, b);
  }
  closeSync(fd);
  return hash.digest('hex');
}

/** Records every value the upload status takes, from inside the page (no polling race). */
async function recordProgress(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as { __progress: Array<{ percent: number; state: string; text: string }> };
    w.__progress = [];
    new MutationObserver((records) => {
      for (const r of records) {
        const el = (r.target instanceof Element ? r.target : r.target.parentElement)?.closest('[data-testid="upload-status"]');
        if (el) w.__progress.push({ percent: Number(el.getAttribute('data-percent')), state: el.getAttribute('data-state') ?? '', text: el.textContent ?? '' });
      }
    }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ['data-percent', 'data-state'] });
  });
}

const progressOf = (page: Page) => page.evaluate(() => (window as unknown as { __progress: Array<{ percent: number; state: string; text: string }> }).__progress);

interface Patch { offset: number; length: number; status: number | 'cut' }

/**
 * What the server sees of the uploads: each PATCH (its offset, its length, its
 * answer or 'cut') and every byte it read from the browser's
 * connections. Idle keep-alive connections are closed first, so every byte read
 * from now on is on a socket opened from now on.
 */
function watchServer(s: TestServer) {
  const patches: Patch[] = [];
  const sockets = new Set<Socket>();
  s.app.server.closeIdleConnections();
  const onConnection = (sock: Socket) => { sockets.add(sock); };
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'PATCH') return;
    const p: Patch = { offset: Number(req.headers['upload-offset']), length: Number(req.headers['content-length']), status: 'cut' };
    patches.push(p);
    res.on('finish', () => { p.status = res.statusCode; });
  };
  s.app.server.on('connection', onConnection);
  s.app.server.on('request', onRequest);
  return {
    patches,
    bytesRead: () => [...sockets].reduce((n, sock) => n + sock.bytesRead, 0),
    stop: () => {
      s.app.server.off('connection', onConnection);
      s.app.server.off('request', onRequest);
    },
  };
}

describe('console uploads (tus)', { skip }, () => {
  let s: TestServer;
  let b: ConsoleBrowser;
  let page: Page;
  let dir: string;
  let file: string;
  let digest: string;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'imago-console-upload-'));
    file = path.join(dir, 'big-disk.raw');
    digest = writePatternFile(file, SIZE);
    s = await startTestServer();
    b = await openConsole({ signIn: s });
    page = b.page;
  });
  after(async () => {
    await b?.close();
    await s?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const imageNamed = async (name: string) => {
    const { images } = await clientFor(s).listImages({ name });
    assert.equal(images.length, 1, `one image named ${name}`);
    return images[0];
  };
  const startUpload = async (p: Page, name: string) => {
    await p.goto(`${s.url}/console/#/upload`);
    await p.getByLabel('Image file (or drop it here)').setInputFiles(file);
    await p.getByLabel('Name').fill(name);
    await recordProgress(p);
    await p.getByRole('button', { name: 'Create and upload' }).click();
  };
  const done = (p: Page) => p.locator('[data-testid="upload-status"][data-state="done"]').waitFor({ timeout: 150_000 });

  test('a 200 MiB upload: progress with speed and time left up to 100 %, one chunk per PATCH, then the image is active', async () => {
    const server = watchServer(s);
    try {
      await page.goto(`${s.url}/console/#/upload`);
      await page.getByLabel('Image file (or drop it here)').setInputFiles(file);
      assert.equal(await page.getByLabel('Name').inputValue(), 'big-disk.raw');
      await recordProgress(page);
      // the page's JavaScript heap while it uploads (DevTools protocol): the file is never in it
      const cdp = await b.context.newCDPSession(page);
      let heapMax = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const { usedSize } = await cdp.send('Runtime.getHeapUsage');
          heapMax = Math.max(heapMax, usedSize);
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      const t0 = Date.now();
      await page.getByRole('button', { name: 'Create and upload' }).click();
      await done(page);
      sampling = false;
      await sampler;
      await cdp.detach();
      console.log(`# 200 MiB through tus in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${server.patches.length} PATCHes; the page's JS heap at most ${(heapMax / MiB).toFixed(1)} MiB`);
      assert.ok(heapMax < 32 * MiB, `the page's JS heap stayed small (${(heapMax / MiB).toFixed(1)} MiB): the file is not read into memory`);
    } finally {
      server.stop();
    }
    const seen = await progressOf(page);
    assert.equal(seen.at(-1)!.percent, 100);
    assert.match(seen.at(-1)!.text, /Upload complete: 100 %/);
    const percents = seen.map((p) => p.percent);
    assert.deepEqual([...percents].sort((a, b) => a - b), percents, 'progress never goes back');
    assert.ok(percents.some((p) => p > 0 && p < 100), `intermediate progress shown: ${[...new Set(percents)].join(' ')}`);
    assert.ok(seen.some((p) => /MiB\/s · .+ left/.test(p.text)), 'speed and time left are shown');
    assert.equal(await page.locator('#upload-progress').evaluate((e) => (e as HTMLProgressElement).value), 100);
    await screenshot(page, 'upload');

    // tus, not the plain PUT: chunks of CHUNK_BYTES at contiguous offsets, each answered 204
    const patches = server.patches;
    assert.equal(patches.length, Math.ceil(SIZE / CHUNK_BYTES));
    patches.forEach((p, i) => {
      assert.deepEqual(p, { offset: i * CHUNK_BYTES, length: Math.min(CHUNK_BYTES, SIZE - i * CHUNK_BYTES), status: 204 });
    });

    await page.getByRole('link', { name: 'Open the image page' }).click();
    await page.getByRole('heading', { name: 'big-disk.raw', level: 1 }).waitFor();
    const id = page.url().split('/').pop()!;
    const im = await clientFor(s).getImage(id);
    assert.equal(im.status, 'active');
    assert.equal(im.size, SIZE);
    assert.equal(im.os_hash_value, digest);
    assert.equal(await page.locator('.summary .status').textContent(), 'active');
    assert.equal(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('tus::')).length), 0, 'a finished upload is forgotten');
  });

  test('connections cut mid-PATCH: the upload continues from the server\'s offset by itself, each cut costs at most one chunk sent again', async () => {
    // the test cuts the PATCH's TCP connection once 6 MiB of it arrived, in the PATCHes from 32 MiB and from 120 MiB
    const cutFrom = [32 * MiB, 120 * MiB];
    const cuts: number[] = [];
    const onRequest = (req: IncomingMessage) => {
      if (req.method !== 'PATCH' || cuts.length >= cutFrom.length || Number(req.headers['upload-offset']) < cutFrom[cuts.length]) return;
      const start = req.socket.bytesRead;
      const t = setInterval(() => {
        if (req.socket.destroyed || req.complete) { clearInterval(t); return; }
        if (req.socket.bytesRead - start > 6 * MiB && cuts.length < cutFrom.length) {
          cuts.push(Number(req.headers['upload-offset']));
          clearInterval(t);
          req.socket.destroy();
        }
      }, 5);
    };
    const server = watchServer(s);
    s.app.server.on('request', onRequest);
    try {
      await startUpload(page, 'cut-off');
      await done(page);
    } finally {
      s.app.server.off('request', onRequest);
      server.stop();
    }
    assert.equal(cuts.length, 2, 'both connections were cut');
    const im = await imageNamed('cut-off');
    assert.equal(im.status, 'active');
    assert.equal(im.size, SIZE);
    assert.equal(im.os_hash_value, digest);
    const resent = server.bytesRead() - SIZE;
    const history = server.patches.map((p) => `${+(p.offset / MiB).toFixed(2)}+${+(p.length / MiB).toFixed(2)}→${p.status}`).join(' ');
    console.log(`# cut in the PATCHes at ${cuts.map((c) => (c / MiB).toFixed(2)).join(', ')} MiB; the server read ${(resent / MiB).toFixed(1)} MiB more than the file; PATCHes (MiB offset+length→status): ${history}`);
    // What a cut PATCH delivered is kept: the next accepted PATCH starts past the cut one's offset, not at it.
    for (const at of cuts) {
      const next = server.patches.find((p) => p.status === 204 && p.offset >= at);
      assert.ok(next && next.offset > at, `after the cut at ${at / MiB} MiB the upload went on from ${next && next.offset / MiB} MiB`);
    }
    // Bytes sent twice: Chromium silently re-sends a PATCH whose keep-alive connection broke, the server
    // refuses it (423 while the cut one is being recorded, or 409) and reads its body away: one chunk per cut.
    assert.ok(resent <= cuts.length * CHUNK_BYTES + MiB, `bytes sent again (and request headers): ${(resent / MiB).toFixed(1)} MiB, at most one chunk (${CHUNK_BYTES / MiB} MiB) per cut`);
  });

  test('a tab closed mid-upload: choosing the same file again offers to resume, and only the rest is sent', async () => {
    let uploadUrl = '';
    const first = await b.context.newPage();
    await signInWithToken(first, s);
    // the tab closes while the PATCH from 48 MiB is on its way (the server keeps what of it arrived)
    let reached!: () => void;
    const at48 = new Promise<void>((r) => { reached = r; });
    const onRequest = (req: IncomingMessage) => {
      if (req.method === 'PATCH' && Number(req.headers['upload-offset']) >= 48 * MiB) reached();
    };
    s.app.server.on('request', onRequest);
    try {
      await startUpload(first, 'lid-closed');
      await at48;
      const url = await uploadUrlIn(first);
      await first.close();
      assert.ok(url);
      uploadUrl = url;
    } finally {
      s.app.server.off('request', onRequest);
    }
    const im = await imageNamed('lid-closed');
    // the image stays held by the upload
    assert.equal((await clientFor(s).getImage(im.id)).status, 'saving');

    const again = await b.context.newPage();
    await signInWithToken(again, s);
    await again.goto(`${s.url}/console/#/upload`);
    await again.getByLabel('Image file (or drop it here)').setInputFiles(file);
    const offer = again.getByTestId('resumable');
    await offer.waitFor();
    const text = await offer.textContent() ?? '';
    await screenshot(again, 'upload-resume');
    await assertAccessible(again, 'the upload page offering to resume');
    assert.match(text, /An upload of this file to lid-closed stopped at \d+ % \(.+ of 200 MiB are on the server\)/);
    const stored = Number((await s.req('HEAD', new URL(uploadUrl).pathname, { headers: { 'tus-resumable': '1.0.0' } })).headers.get('upload-offset'));
    assert.ok(stored >= 48 * MiB && stored < SIZE, `stored ${stored}`);
    await recordProgress(again);
    const server = watchServer(s);
    try {
      await again.getByRole('button', { name: 'Resume upload' }).click();
      await done(again);
    } finally {
      server.stop();
    }
    const seen = await progressOf(again);
    assert.ok(seen[0].percent >= Math.floor((stored / SIZE) * 100), `resumed from ${seen[0].percent} %, not 0`);
    const sent = server.bytesRead();
    console.log(`# resumed after a closed tab from ${(stored / MiB).toFixed(1)} MiB: the server read ${(sent / MiB).toFixed(1)} MiB for the remaining ${((SIZE - stored) / MiB).toFixed(1)} MiB`);
    assert.ok(server.patches.every((p) => p.offset >= stored), 'no PATCH starts before the stored offset');
    assert.ok(sent - (SIZE - stored) < MiB, 'only the rest is sent');
    const done2 = await imageNamed('lid-closed');
    assert.equal(done2.id, im.id, 'the same image, no new one');
    assert.equal(done2.status, 'active');
    assert.equal(done2.os_hash_value, digest);
    assert.equal(await again.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('tus::')).length), 0);
    await again.close();
  });

  test('Cancel terminates the upload: the server drops what arrived, the image is queued again, retry starts over', async () => {
    let reached!: () => void;
    const at32 = new Promise<void>((r) => { reached = r; });
    const onRequest = (req: IncomingMessage) => {
      if (req.method === 'PATCH' && Number(req.headers['upload-offset']) >= 32 * MiB) reached();
    };
    s.app.server.on('request', onRequest);
    let url: string | null;
    try {
      await startUpload(page, 'cancelled');
      await at32;
      url = await uploadUrlIn(page);
      await page.getByRole('button', { name: 'Cancel' }).click();
    } finally {
      s.app.server.off('request', onRequest);
    }
    await page.getByRole('alert').filter({ hasText: 'The upload was cancelled. The image is still queued.' }).waitFor();
    const im = await imageNamed('cancelled');
    assert.equal((await clientFor(s).getImage(im.id)).status, 'queued');
    assert.ok(url);
    assert.equal((await s.req('HEAD', new URL(url).pathname, { headers: { 'tus-resumable': '1.0.0' } })).status, 404, 'the upload is gone');
    assert.equal(await uploadUrlIn(page), null, 'and forgotten by the page');
    await page.getByRole('button', { name: 'Retry upload' }).click();
    await done(page);
    const after = await clientFor(s).getImage(im.id);
    assert.equal(after.status, 'active');
    assert.equal(after.os_hash_value, digest);
  });

  test('every request stayed on the origin', () => {
    assertSameOrigin(b.requests, s.url);
  });
});

/** The URL of the one upload the page's tus-js-client keeps in localStorage (it stays while unfinished). */
async function uploadUrlIn(page: Page): Promise<string | null> {
  const urls = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('tus::')).map((k) => (JSON.parse(localStorage.getItem(k)!) as { uploadUrl: string }).uploadUrl));
  assert.ok(urls.length <= 1, `one stored upload: ${urls.join(' ')}`);
  return urls[0] ?? null;
}

describe('console uploads where resumable uploads are off', { skip }, () => {
  let s: TestServer;
  let b: ConsoleBrowser;

  before(async () => {
    s = await startTestServer({ config: { uploads: { resumable: false } } });
    b = await openConsole({ signIn: s });
  });
  after(async () => {
    await b?.close();
    await s?.close();
  });

  test('the console falls back to one PUT /file', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'imago-console-put-'));
    try {
      const small = path.join(dir, 'small.raw');
      const sha = writePatternFile(small, 5 * MiB + 3);
      const puts: string[] = [];
      b.page.on('request', (r) => { if (r.method() === 'PUT') puts.push(new URL(r.url()).pathname); });
      await b.page.goto(`${s.url}/console/#/upload`);
      await b.page.getByLabel('Image file (or drop it here)').setInputFiles(small);
      await b.page.getByRole('button', { name: 'Create and upload' }).click();
      await b.page.locator('[data-testid="upload-status"][data-state="done"]').waitFor({ timeout: 60_000 });
      const { images } = await clientFor(s).listImages({ name: 'small.raw' });
      assert.equal(images[0].status, 'active');
      assert.equal(images[0].os_hash_value, sha);
      assert.deepEqual(puts, [`/v2/images/${images[0].id}/file`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, openSync, rmSync, writeSync, closeSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { pattern } from '../support/bytes.js';
import { filesUnder } from '../support/files.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';
import { assertSameOrigin, chromiumMissing, clientFor, launchChromium, openContext, screenshot, signInWithToken } from './helpers.js';

/**
 * Uploads from the browser: a 200 MiB file through the upload page (progress
 * to 100 %, the image active with the right digest), and an upload whose
 * connection the test cuts (a clear error, the image left queued, retry works).
 * Resuming where it stopped waits for the resumable upload (tus, issue 16).
 */
const skip = chromiumMissing();
const SIZE = 200 * 1024 * 1024;

/** Writes `size` bytes of pattern() to a file, 8 MiB at a time; returns its sha512. */
function writePatternFile(file: string, size: number): string {
  const hash = createHash('sha512');
  const fd = openSync(file, 'w');
  const chunk = 8 * 1024 * 1024;
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

describe('console uploads', { skip }, () => {
  let s: TestServer;
  let browser: Browser;
  let context: BrowserContext;
  let requests: string[];
  let page: Page;
  let dir: string;
  let file: string;
  let digest: string;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'imago-console-upload-'));
    file = path.join(dir, 'big-disk.raw');
    digest = writePatternFile(file, SIZE);
    s = await startTestServer();
    browser = await launchChromium();
    ({ context, requests } = await openContext(browser));
    page = await context.newPage();
    await signInWithToken(page, s);
  });
  after(async () => {
    await context?.close();
    await browser?.close();
    await s?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a 200 MiB upload: progress with speed and time left up to 100 %, then the image is active', async () => {
    await page.goto(`${s.url}/console/#/upload`);
    await page.getByLabel('Image file (or drop it here)').setInputFiles(file);
    assert.equal(await page.getByLabel('Name').inputValue(), 'big-disk.raw');
    await recordProgress(page);
    await page.getByRole('button', { name: 'Create and upload' }).click();
    await page.locator('[data-testid="upload-status"][data-state="done"]').waitFor({ timeout: 120_000 });
    const seen = await progressOf(page);
    assert.equal(seen.at(-1)!.percent, 100);
    assert.match(seen.at(-1)!.text, /Upload complete: 100 %/);
    const percents = seen.map((p) => p.percent);
    assert.deepEqual([...percents].sort((a, b) => a - b), percents, 'progress never goes back');
    assert.ok(percents.some((p) => p > 0 && p < 100), `intermediate progress shown: ${[...new Set(percents)].join(' ')}`);
    assert.ok(seen.some((p) => /MiB\/s · .+ left/.test(p.text)), 'speed and time left are shown');
    assert.equal(await page.locator('#upload-progress').evaluate((e) => (e as HTMLProgressElement).value), 100);
    await screenshot(page, 'upload');

    await page.getByRole('link', { name: 'Open the image page' }).click();
    await page.getByRole('heading', { name: 'big-disk.raw', level: 1 }).waitFor();
    const id = page.url().split('/').pop()!;
    const im = await clientFor(s).getImage(id);
    assert.equal(im.status, 'active');
    assert.equal(im.size, SIZE);
    assert.equal(im.os_hash_value, digest);
    assert.equal(await page.locator('.summary .status').textContent(), 'active');
  });

  test('a cut connection: the page says so, the image stays queued, retry uploads it', async () => {
    // the test cuts the upload's TCP connection once 16 MiB have arrived (socket.bytesRead; the body is not touched)
    // Every upload attempt is cut while `cutting` is on: Chromium silently re-sends a request whose connection
    // broke before an answer, so the first cut alone may not reach the page.
    let cutting = true;
    let cut = 0;
    const onRequest = (req: IncomingMessage) => {
      if (req.method !== 'PUT' || !req.url?.endsWith('/file') || !cutting) return;
      const t = setInterval(() => {
        if (req.socket.destroyed || !cutting) { clearInterval(t); return; }
        if (req.socket.bytesRead > 16 * 1024 * 1024) {
          cut++;
          clearInterval(t);
          req.socket.destroy();
        }
      }, 5);
    };
    s.app.server.on('request', onRequest);
    try {
      await page.goto(`${s.url}/console/#/upload`);
      await page.getByLabel('Image file (or drop it here)').setInputFiles(file);
      await page.getByLabel('Name').fill('cut-off');
      await page.getByRole('button', { name: 'Create and upload' }).click();
      const alert = page.getByRole('alert').filter({ hasText: 'connection to the server was lost' });
      await alert.waitFor({ timeout: 120_000 });
      cutting = false;
      assert.ok(cut >= 1);
      assert.match(await alert.textContent() ?? '', /nothing of it was kept\. Retry sends the file again/);
      assert.equal(await page.locator('[data-testid="upload-status"]').getAttribute('data-state'), 'failed');
      await screenshot(page, 'upload-interrupted');
    } finally {
      s.app.server.off('request', onRequest);
    }
    const api = clientFor(s);
    const { images } = await api.listImages({ name: 'cut-off' });
    assert.equal(images.length, 1);
    const id = images[0].id;
    // invariant 3: the interrupted write leaves nothing, the image is queued again
    const queued = await waitFor('the cut upload rolled back', async () => {
      const im = await api.getImage(id);
      return im.status === 'queued' ? im : undefined;
    }, 30_000);
    assert.equal(queued.size, null);
    assert.deepEqual(filesUnder(path.join(s.dataDir, 'images')).filter((f) => f.includes(id)), []);

    await page.getByRole('button', { name: 'Retry upload' }).click();
    await page.locator('[data-testid="upload-status"][data-state="done"]').waitFor({ timeout: 120_000 });
    const im = await api.getImage(id);
    assert.equal(im.status, 'active');
    assert.equal(im.os_hash_value, digest);
  });

  test('every request stayed on the origin', () => {
    assertSameOrigin(requests, s.url);
  });
});

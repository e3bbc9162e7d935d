import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { pattern } from '../support/bytes.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';
import { serveFiles, type FileServer } from '../import/helpers.js';
import { assertAccessible, assertSameOrigin, chromiumMissing, clientFor, openConsole, type ConsoleBrowser, screenshot, signInWithToken } from './helpers.js';

/**
 * The console in Debian's chromium against a real Imago: sign-in with a
 * token, the image list and page (tags, properties, deactivate, delete),
 * sharing and accepting, import from a URL, stores and quotas, the admin view,
 * a download through the service worker; axe-core on every page and no
 * request outside the origin.
 */
const skip = chromiumMissing();

describe('console in a browser', { skip }, () => {
  let s: TestServer;
  let web: FileServer;
  let b: ConsoleBrowser;
  let page: Page;
  const webBytes = pattern(3 * 1024 * 1024 + 17, 7);

  before(async () => {
    web = await serveFiles({
      '/disk.raw': (_req, res) => { res.writeHead(200, { 'content-length': webBytes.length }); res.end(webBytes); },
    });
    s = await startTestServer({
      config: {
        import: { webDownload: { allowedHosts: ['127.0.0.1'], allowedPorts: [web.port], allowPrivateNetworks: true } },
        quotas: { enabled: true },
        stores: [
          { id: 'local', type: 'filesystem', path: 'images', description: 'Fast local disks' },
          { id: 'archive', type: 'filesystem', path: 'archive', description: 'Slow archive' },
        ],
      },
    });
    b = await openConsole();
    page = b.page;
  });
  after(async () => {
    await b?.close();
    await s?.close();
    await web?.close();
  });

  test('sign in with a token; the list shows the images with their columns', async () => {
    const api = clientFor(s);
    const a = await api.createImage({ name: 'debian-12', disk_format: 'raw', container_format: 'bare', visibility: 'public' });
    const res = await s.req('PUT', `/v2/images/${a.id}/file`, { headers: { 'content-type': 'application/octet-stream' }, body: pattern(5 * 1024 * 1024 + 3) });
    assert.equal(res.status, 204);
    await api.createImage({ name: 'empty-one', disk_format: 'raw', container_format: 'bare' });

    await page.goto(`${s.url}/console/`);
    await assertAccessible(page, 'the sign-in page');
    await screenshot(page, 'login');
    await signInWithToken(page, s);
    const row = page.getByRole('row', { name: /debian-12/ });
    await row.waitFor();
    const cells = await row.getByRole('cell').allTextContents();
    assert.equal(cells[0], 'debian-12');
    assert.equal(cells[1], 'active');
    assert.equal(cells[2], '5.0 MiB');
    assert.equal(cells[3], 'raw / bare');
    assert.equal(cells[4], 'public');
    assert.equal(cells[5], 'admin');
    assert.equal(cells[6], 'local');
    assert.match(cells[7], /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    assert.equal(await page.getByRole('row', { name: /empty-one/ }).getByRole('cell').nth(1).textContent(), 'queued');
    // the token lives in the tab's session storage, nowhere else
    const stored = await page.evaluate(() => ({ session: sessionStorage.getItem('imago.session'), local: localStorage.length, cookie: document.cookie }));
    assert.match(stored.session!, /"token":"admin-token"/);
    assert.equal(stored.local, 0);
    assert.equal(stored.cookie, '');
    await assertAccessible(page, 'the image list');
    await screenshot(page, 'images');
  });

  test('a filter narrows the list through the API query', async () => {
    await page.getByLabel('Status').selectOption('queued');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByText('Showing 1 image, page 1.').waitFor();
    assert.equal(await page.getByRole('row', { name: /debian-12/ }).count(), 0);
    assert.match(page.url(), /status=queued/);
    await page.getByLabel('Status').selectOption('');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByText('Showing 2 images, page 1.').waitFor();
  });

  test('image page: tags, typed properties, deactivate and reactivate', async () => {
    await page.getByRole('link', { name: 'debian-12' }).click();
    await page.getByRole('heading', { name: 'debian-12', level: 1 }).waitFor();
    const id = page.url().split('/').pop()!;
    const api = clientFor(s);

    await page.getByLabel('New tag').fill('lts');
    await page.getByRole('button', { name: 'Add tag' }).click();
    await page.getByRole('button', { name: 'Remove tag lts' }).waitFor();
    assert.deepEqual((await api.getImage(id)).tags, ['lts']);

    // min_ram is an integer in the image schema: the editor is a number field and sends a number
    await page.getByRole('button', { name: 'Edit min_ram' }).click();
    const minRam = page.getByLabel('Value of min_ram');
    assert.equal(await minRam.getAttribute('type'), 'number');
    await minRam.fill('2048');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('button', { name: 'Edit min_ram' }).waitFor();
    assert.equal((await api.getImage(id)).min_ram, 2048);
    // protected is a boolean: a true/false choice, sent as a boolean
    await page.getByRole('button', { name: 'Edit protected' }).click();
    await page.getByLabel('Value of protected').selectOption('true');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('button', { name: 'Edit protected' }).waitFor();
    assert.equal((await api.getImage(id)).protected, true);
    // an extra property: a string, then removed
    await page.getByLabel('New property').fill('os_distro');
    await page.locator('#new-prop-value').fill('debian');
    await page.getByRole('button', { name: 'Add property' }).click();
    await page.getByRole('button', { name: 'Remove os_distro' }).waitFor();
    assert.equal((await api.getImage(id)).os_distro, 'debian');
    // the API's refusal is shown in its words: a protected image cannot be deleted
    await page.getByRole('button', { name: 'Delete…' }).click();
    await page.getByRole('button', { name: 'Delete permanently' }).click();
    await page.getByRole('alert').filter({ hasText: /protected/i }).waitFor();
    assert.equal((await api.getImage(id)).status, 'active');
    await page.getByRole('button', { name: 'Keep it' }).click();

    await page.getByRole('button', { name: 'Deactivate' }).click();
    await page.getByRole('button', { name: 'Reactivate' }).waitFor();
    assert.equal((await api.getImage(id)).status, 'deactivated');
    await assertAccessible(page, 'an image page');
    await page.getByRole('button', { name: 'Reactivate' }).click();
    await page.getByRole('button', { name: 'Deactivate' }).waitFor();
    assert.equal((await api.getImage(id)).status, 'active');
    await screenshot(page, 'image');
  });

  test('download: streamed by the service worker to disk, same bytes as uploaded', async () => {
    const id = page.url().split('/').pop()!;
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 30_000 }), page.getByRole('button', { name: 'Download' }).click()]);
    assert.equal(download.suggestedFilename(), 'debian-12');
    const file = await download.path();
    const got = readFileSync(file);
    assert.equal(createHash('sha512').update(got).digest('hex'), (await clientFor(s).getImage(id)).os_hash_value);
  });

  test('delete with confirmation', async () => {
    const api = clientFor(s);
    const im = await api.createImage({ name: 'to-delete' });
    await page.goto(`${s.url}/console/#/images/${im.id}`);
    await page.getByRole('heading', { name: 'to-delete' }).waitFor();
    await page.getByRole('button', { name: 'Delete…' }).click();
    const dialog = page.getByRole('alertdialog', { name: 'Delete this image?' });
    await dialog.waitFor();
    await assertAccessible(page, 'the delete confirmation');
    await dialog.getByRole('button', { name: 'Delete permanently' }).click();
    await page.getByRole('heading', { name: 'Images', level: 1 }).waitFor();
    await assert.rejects(api.getImage(im.id), (e: { status: number }) => e.status === 404);
  });

  test('share with another project; that project\'s user accepts it', async () => {
    const api = clientFor(s, 'member');
    const im = await api.createImage({ name: 'shared-one', visibility: 'shared' });
    // as the owner (p1)
    const owner = await b.browser.newContext();
    const op = await owner.newPage();
    owner.on('request', (r) => { b.requests.push(r.url()); });
    await signInWithToken(op, s, 'member');
    await op.goto(`${s.url}/console/#/images/${im.id}`);
    await op.getByLabel('Share with project (id)').fill('p2');
    await op.getByRole('button', { name: 'Add member' }).click();
    const memberRow = op.getByRole('row', { name: /p2/ });
    await memberRow.getByText('pending').waitFor();
    await owner.close();
    // as p2: pending images are listed with member_status=pending, then accepted on the image page
    const consumer = await b.browser.newContext();
    consumer.on('request', (r) => { b.requests.push(r.url()); });
    const cp = await consumer.newPage();
    await signInWithToken(cp, s, 'other');
    assert.equal(await cp.getByRole('row', { name: /shared-one/ }).count(), 0, 'a pending image is not in the default list');
    await cp.goto(`${s.url}/console/#/images?visibility=shared&member_status=pending`);
    await cp.getByRole('link', { name: 'shared-one' }).click();
    await cp.getByRole('button', { name: 'Accept' }).click();
    await cp.getByRole('row', { name: /p2/ }).getByText('accepted').waitFor();
    assert.equal((await clientFor(s, 'other').member(im.id, 'p2')).status, 'accepted');
    await assertAccessible(cp, 'a shared image page as its consumer');
    await cp.goto(`${s.url}/console/#/images`);
    await cp.getByRole('row', { name: /shared-one/ }).waitFor();
    await consumer.close();
  });

  test('import from a URL: the task succeeds and the image becomes active', async () => {
    await page.goto(`${s.url}/console/#/import`);
    await page.getByLabel('URL of the image').fill(`${web.url}/disk.raw`);
    await page.getByLabel('Name').fill('from-the-web');
    await assertAccessible(page, 'the import page');
    await screenshot(page, 'import');
    await page.getByRole('button', { name: 'Import' }).click();
    await page.getByRole('heading', { name: 'from-the-web', level: 1 }).waitFor();
    // the page refreshes itself while the import runs
    await page.locator('.tasks .status-success').waitFor({ timeout: 30_000 });
    await page.locator('.summary .status-active').waitFor({ timeout: 30_000 });
    const id = page.url().split('/').pop()!;
    const im = await clientFor(s).getImage(id);
    assert.equal(im.status, 'active');
    assert.equal(im.size, webBytes.length);
    assert.equal(im.os_hash_value, createHash('sha512').update(webBytes).digest('hex'));
    assert.ok(web.requests.includes('/disk.raw'));
  });

  test('a failing import shows the task\'s message', async () => {
    await page.goto(`${s.url}/console/#/import`);
    await page.getByLabel('URL of the image').fill(`${web.url}/missing.raw`);
    await page.getByLabel('Name').fill('broken-import');
    await page.getByRole('button', { name: 'Import' }).click();
    await page.getByRole('heading', { name: 'broken-import', level: 1 }).waitFor();
    const failure = page.locator('.tasks .task').filter({ has: page.locator('.status-failure') });
    await failure.waitFor({ timeout: 30_000 });
    assert.match(await failure.textContent() ?? '', /404/);
  });

  test('copy-image to another store', async () => {
    const api = clientFor(s);
    const { images } = await api.listImages({ name: 'from-the-web' });
    await page.goto(`${s.url}/console/#/images/${images[0].id}`);
    await page.getByLabel(/archive/).check();
    await page.getByRole('button', { name: 'Copy' }).click();
    await waitFor('copy to archive', async () => String((await api.getImage(images[0].id)).stores).split(',').sort().join() === 'archive,local', 30_000);
    await page.locator('.tasks .status-success').nth(1).waitFor({ timeout: 30_000 });
  });

  test('stores and quota usage bars', async () => {
    await page.goto(`${s.url}/console/#/stores`);
    await page.getByText('Fast local disks').waitFor();
    await page.getByText('Slow archive').waitFor();
    const bar = page.getByRole('meter', { name: /^Images: \d+ of 1000$/ });
    await bar.waitFor();
    const count = (await clientFor(s).usage()).image_count_total;
    assert.equal(await bar.getAttribute('value'), String((count.usage / count.limit) * 100));
    await assertAccessible(page, 'the stores and quotas page');
    await screenshot(page, 'stores');
  });

  test('admin view: failed imports first', async () => {
    await page.goto(`${s.url}/console/#/admin`);
    const failed = page.getByRole('region', { name: 'Failed tasks' });
    await failed.locator('.task').first().waitFor();
    assert.match(await failed.textContent() ?? '', /404/);
    await page.getByRole('table', { name: 'Images of all projects' }).getByRole('link', { name: 'shared-one' }).waitFor();
    await assertAccessible(page, 'the admin page');
    await screenshot(page, 'admin');
  });

  test('upload page and a narrow screen pass axe too', async () => {
    await page.goto(`${s.url}/console/#/upload`);
    await page.getByRole('heading', { name: 'Upload an image' }).waitFor();
    await assertAccessible(page, 'the upload page');
    await page.setViewportSize({ width: 380, height: 800 });
    await page.goto(`${s.url}/console/#/images`);
    await page.getByRole('row', { name: /debian-12/ }).waitFor();
    await assertAccessible(page, 'the image list on a narrow screen');
    await screenshot(page, 'narrow');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  test('sign-out forgets the token', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Token').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('imago.session')), null);
  });

  test('a token the API no longer accepts leads back to the sign-in form', async () => {
    await page.evaluate(() => sessionStorage.setItem('imago.session', JSON.stringify({
      token: 'revoked-token', mode: 'static', expires_at: null, user: { id: 'x', name: 'x' }, project: null, roles: [], is_admin: false,
    })));
    await page.goto(`${s.url}/console/#/images`);
    await page.reload();
    await page.getByLabel('Token').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('imago.session')), null);
  });

  test('no request left the console\'s origin', () => {
    assert.ok(b.requests.length > 20, `${b.requests.length} requests seen`);
    assertSameOrigin(b.requests, s.url);
  });
});

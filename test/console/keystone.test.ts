import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { ApiError, ImagoClient } from '../../console/src/api/client.js';
import { keystoneUnavailableReason, startKeystone, type Keystone } from '../support/keystone.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { assertAccessible, assertSameOrigin, chromiumMissing, type ConsoleBrowser, openConsole, screenshot } from './helpers.js';

/**
 * Keystone sign-in through the console: POST /console/api/login exchanges user
 * name and password for a project-scoped token with a real Keystone;
 * /console/api/projects and a rescoped login switch projects; in the browser,
 * the password form and the project switcher.
 */
const skip = process.env.IMAGO_TEST_SKIP_KEYSTONE === '1' ? 'IMAGO_TEST_SKIP_KEYSTONE=1' : keystoneUnavailableReason() ?? chromiumMissing() ?? false;

describe('console sign-in with Keystone', { skip }, () => {
  let ks: Keystone;
  let s: TestServer;
  let b: ConsoleBrowser;
  let page: Page;
  let anon: ImagoClient;

  before(async () => {
    ks = await startKeystone();
    // demo-member gets a second project (alt), for the switcher
    const admin = await ks.token('admin');
    const u = ks.users['demo-member'];
    const res = await fetch(`${ks.authUrl}/projects/${ks.projects.alt}/users/${u.id}/roles/${ks.roles.member}`, { method: 'PUT', headers: { 'x-auth-token': admin } });
    assert.equal(res.status, 204, await res.text());
    s = await startTestServer({ config: { auth: { mode: 'keystone', keystone: ks.keystoneConfig() } } });
    anon = new ImagoClient(s.url, null);
    b = await openConsole();
    page = b.page;
  });
  after(async () => {
    await b?.close();
    await s?.close();
    await ks?.stop();
  });

  test('user name + password + project: a scoped token that works on /v2', async () => {
    const u = ks.users['demo-member'];
    const session = await anon.login({ user: u.name, password: u.password, domain: 'Default', project: 'demo' });
    assert.equal(session.mode, 'keystone');
    assert.equal(session.user.name, 'demo-member');
    assert.equal(session.user.id, u.id);
    assert.deepEqual(session.project && { id: session.project.id, name: session.project.name }, { id: ks.projects.demo, name: 'demo' });
    assert.ok(session.roles.includes('member'));
    assert.equal(session.is_admin, false);
    assert.ok(session.expires_at && Date.parse(session.expires_at) > Date.now());
    const api = new ImagoClient(s.url, session.token);
    const im = await api.createImage({ name: 'ks-image', disk_format: 'raw', container_format: 'bare' });
    assert.equal(im.owner, ks.projects.demo);
  });

  test('without a project: the user\'s first project by name; the projects endpoint lists both; switching rescopes', async () => {
    const u = ks.users['demo-member'];
    const session = await anon.login({ user: u.name, password: u.password });
    assert.equal(session.project?.name, 'alt');
    const api = new ImagoClient(s.url, session.token);
    const { projects, current } = await api.projects();
    assert.deepEqual(projects.map((p) => p.name), ['alt', 'demo']);
    assert.equal(current, ks.projects.alt);
    const switched = await anon.login({ token: session.token, project_id: ks.projects.demo });
    assert.equal(switched.project?.id, ks.projects.demo);
    assert.notEqual(switched.token, session.token);
    const mine = await new ImagoClient(s.url, switched.token).listImages({ name: 'ks-image' });
    assert.equal(mine.images.length, 1);
    // a project the user has no role on is refused
    await assert.rejects(anon.login({ token: session.token, project_id: ks.projects.admin }), (e: ApiError) => e.status === 401);
  });

  test('a wrong password is a 401 in the JSON error body, which does not repeat the password', async () => {
    const res = await fetch(`${s.url}/console/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'demo-member', password: 'Secret-Wrong-Password', project: 'demo' }) });
    assert.equal(res.status, 401);
    const text = await res.text();
    assert.doesNotMatch(text, /Secret-Wrong-Password/);
    const body = JSON.parse(text) as { error: { code: number; message: string; details: string } };
    assert.equal(body.error.code, 401);
    assert.match(body.error.message, /Sign-in failed/);
    await assert.rejects(anon.login({ user: 'demo-member' }), (e: ApiError) => e.status === 400 && /needs "user" and "password"/.test(e.message));
  });

  test('in the browser: the password form, then the project switcher', async () => {
    const u = ks.users['demo-member'];
    await page.goto(`${s.url}/console/`);
    await page.getByLabel('User name').waitFor();
    await assertAccessible(page, 'the Keystone sign-in page');
    await screenshot(page, 'login-keystone');
    await page.getByLabel('User name').fill(u.name);
    await page.getByLabel('Password').fill(u.password);
    await page.getByLabel('Project (optional: your first project otherwise)').fill('demo');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Images', level: 1 }).waitFor();
    await page.getByRole('row', { name: /ks-image/ }).waitFor();
    assert.match(await page.locator('.who').textContent() ?? '', /demo-member · demo/);
    const switcher = page.getByLabel('Project', { exact: true });
    assert.equal(await switcher.inputValue(), ks.projects.demo);
    await assertAccessible(page, 'the image list signed in with Keystone');
    await switcher.selectOption({ label: 'alt' });
    await page.locator('.who').getByText('demo-member · alt').waitFor();
    await page.getByText('No image matches.').waitFor();
    const stored = JSON.parse(await page.evaluate(() => sessionStorage.getItem('imago.session') ?? 'null')) as { project: { id: string } };
    assert.equal(stored.project.id, ks.projects.alt);
  });

  test('the page never asked anyone but Imago (not even Keystone)', () => {
    assertSameOrigin(b.requests, s.url);
  });
});

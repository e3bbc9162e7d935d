import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page, type Request } from 'playwright-core';
import { ImagoClient } from '../../console/src/api/client.js';
import { TOKENS, type TestServer } from '../support/server.js';

/** Debian's chromium (scripts/test-all.sh installs it); playwright never downloads a browser. */
export const CHROMIUM = process.env.IMAGO_CHROMIUM ?? '/usr/bin/chromium';
// this machine's network is closed: without these chromium waits on services it cannot reach
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

export function chromiumMissing(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (apt-get install chromium)`;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 60_000 });
}

/** The repository root (test files run from dist/test/console). */
export const ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return dir;
})();

/**
 * Screenshots of the main pages: test artifacts in dist/console-screenshots; the ones shown in
 * docs/console.md are refreshed with IMAGO_CONSOLE_SCREENSHOTS=docs/console.
 */
export const SHOTS = path.resolve(ROOT, process.env.IMAGO_CONSOLE_SCREENSHOTS ?? 'dist/console-screenshots');

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: false });
}

/** The shared typed /v2 client, as a token of the test server. */
export function clientFor(s: TestServer, token: keyof typeof TOKENS = 'admin'): ImagoClient {
  return new ImagoClient(s.url, TOKENS[token]);
}

/**
 * A browser context that records every request, so a test can check the
 * console asks nothing outside its own origin.
 */
export async function openContext(browser: Browser, opts: { viewport?: { width: number; height: number }; acceptDownloads?: boolean } = {}): Promise<{ context: BrowserContext; requests: string[] }> {
  const context = await browser.newContext({ viewport: opts.viewport ?? { width: 1280, height: 800 }, acceptDownloads: opts.acceptDownloads ?? true });
  // a step that does not happen fails in 15 s, with the locator it waited for (longer waits say so)
  context.setDefaultTimeout(15_000);
  const requests: string[] = [];
  context.on('request', (r: Request) => { requests.push(r.url()); });
  return { context, requests };
}

export function assertSameOrigin(requests: string[], origin: string): void {
  const outside = requests.filter((u) => !u.startsWith(origin + '/') && !u.startsWith('data:') && !u.startsWith('blob:'));
  assert.deepEqual(outside, [], `the console asked outside ${origin}`);
}

/** Signs in on the login form with a static token; waits for the image list. */
export async function signInWithToken(page: Page, s: TestServer, token: keyof typeof TOKENS = 'admin'): Promise<void> {
  await page.goto(`${s.url}/console/`);
  await page.getByLabel('Token').fill(TOKENS[token]);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Images', level: 1 }).waitFor();
}

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

interface AxeViolation { id: string; impact: string; help: string; nodes: Array<{ target: string[]; failureSummary?: string }> }

/**
 * axe-core's WCAG 2 A/AA rules on the page as it is now. The source is
 * injected through the DevTools protocol (page.evaluate), which the page's
 * Content-Security-Policy does not restrict.
 */
export async function assertAccessible(page: Page, what: string): Promise<void> {
  await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(ctx: unknown, o: unknown): Promise<{ violations: unknown[] }> } }).axe;
    const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }, resultTypes: ['violations'] });
    return r.violations;
  }) as AxeViolation[];
  const summary = violations.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  assert.deepEqual(summary, [], `axe-core found WCAG 2 AA violations on ${what}`);
}

/** One browser, one recording context (openContext) and a page in it: the setup of every browser test file. */
export interface ConsoleBrowser {
  browser: Browser;
  context: BrowserContext;
  /** every URL the context asked for (assertSameOrigin) */
  requests: string[];
  page: Page;
  close(): Promise<void>;
}

/** `signIn`: the page is signed in there with the admin token (signInWithToken) before it is returned. */
export async function openConsole(opts: Parameters<typeof openContext>[1] & { signIn?: TestServer } = {}): Promise<ConsoleBrowser> {
  const browser = await launchChromium();
  try {
    const { context, requests } = await openContext(browser, opts);
    const page = await context.newPage();
    if (opts.signIn) await signInWithToken(page, opts.signIn);
    return { browser, context, requests, page, close: async () => { await context.close(); await browser.close(); } };
  } catch (err) {
    await browser.close();
    throw err;
  }
}

/*
 * Imago console service worker: authenticated downloads streamed to disk.
 *
 * A download is a same-origin navigation to /console/download/<image id>/<key>.
 * Just before it, the page hands this worker the token under a one-time random
 * key (postMessage). The worker answers the navigation with
 * GET /v2/images/<id>/file sent with X-Auth-Token, passing the response body
 * stream straight through with Content-Disposition: attachment, so the browser's
 * download manager writes it to disk chunk by chunk: the image never sits in
 * JavaScript memory, and the token never appears in a URL.
 */
const grants = new Map();

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('message', (event) => {
  const m = event.data;
  if (m && m.type === 'grant' && typeof m.key === 'string' && typeof m.token === 'string') {
    grants.set(m.key, { token: m.token, until: Date.now() + 60000 });
    if (event.ports[0]) event.ports[0].postMessage({ ok: true });
  }
});

function safeName(s) {
  return String(s || 'image').replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 200) || 'image';
}

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin) return;
  const m = /^\/console\/download\/([^/]+)\/([^/]+)$/.exec(url.pathname);
  if (!m) return;
  event.respondWith((async () => {
    const [, id, key] = m;
    const grant = grants.get(key);
    grants.delete(key);
    if (!grant || grant.until < Date.now()) {
      return new Response('This download link has expired; start the download again from the image page.', { status: 403, headers: { 'content-type': 'text/plain; charset=utf-8' } });
    }
    const res = await fetch('/v2/images/' + id + '/file', { headers: { 'x-auth-token': grant.token } });
    if (!res.ok) return res;
    const headers = new Headers();
    headers.set('content-type', 'application/octet-stream');
    const length = res.headers.get('content-length');
    if (length) headers.set('content-length', length);
    const md5 = res.headers.get('content-md5');
    if (md5) headers.set('content-md5', md5);
    headers.set('content-disposition', 'attachment; filename="' + safeName(url.searchParams.get('name') || id) + '"');
    return new Response(res.body, { status: 200, headers });
  })());
});

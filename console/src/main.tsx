import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ImagoClient, type Session } from './api/client.js';
import { ErrorNote, type AppContext } from './ui.js';
import { ImageList } from './images.js';
import { ImagePage } from './image.js';
import { UploadPage, ImportPage } from './upload-page.js';
import { StoresPage } from './stores.js';
import { AdminPage } from './admin.js';
import './style.css';

const KEY = 'imago.session';
const authMode = (document.querySelector('meta[name="imago-auth-mode"]')?.getAttribute('content') ?? 'static') as 'static' | 'keystone';

function loadSession(): Session | null {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) ?? 'null') as Session | null;
    return s?.token ? s : null;
  } catch {
    return null;
  }
}

/** `#/images/abc?x=1` → { path: ['images', 'abc'], query } */
function parseHash(): { path: string[]; query: URLSearchParams } {
  const h = location.hash.replace(/^#\/?/, '');
  const [p, q] = h.split('?');
  return { path: p.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(q ?? '') };
}

if ('serviceWorker' in navigator) {
  // downloads: see public/sw.js
  navigator.serviceWorker.register('/console/sw.js', { scope: '/console/' }).catch(() => {});
}

function Login({ onSession }: { onSession: (s: Session) => void }) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [useToken, setUseToken] = useState(authMode === 'static');
  const submit = async (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.target as HTMLFormElement);
    const val = (k: string) => String(f.get(k) ?? '').trim();
    setBusy(true);
    setError(null);
    try {
      const client = new ImagoClient('', null);
      const s = useToken
        ? await client.login({ token: val('token') })
        : await client.login({ user: val('user'), password: String(f.get('password') ?? ''), domain: val('domain') || undefined, project: val('project') || undefined });
      onSession(s);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" class="login">
      <h1>Sign in to Imago</h1>
      <form onSubmit={submit} class="card stack" aria-describedby="login-help">
        {useToken ? (
          <>
            <p id="login-help">Paste a token{authMode === 'static' ? ' from the token file (for instance data/admin-token)' : ''}.</p>
            <label for="token">Token</label>
            <input id="token" name="token" type="password" autocomplete="off" required />
          </>
        ) : (
          <>
            <p id="login-help">Sign in with your Keystone user. The password is sent to Imago, which exchanges it for a token; it is not stored.</p>
            <label for="user">User name</label>
            <input id="user" name="user" autocomplete="username" required />
            <label for="password">Password</label>
            <input id="password" name="password" type="password" autocomplete="current-password" required />
            <label for="domain">Domain</label>
            <input id="domain" name="domain" placeholder="Default" />
            <label for="project">Project (optional: your first project otherwise)</label>
            <input id="project" name="project" />
          </>
        )}
        <button type="submit" disabled={busy}>{busy ? 'Signing in…' : 'Sign in'}</button>
        {authMode === 'keystone' && (
          <button type="button" class="link" onClick={() => setUseToken(!useToken)}>
            {useToken ? 'Sign in with user name and password' : 'Paste a token instead'}
          </button>
        )}
        <ErrorNote error={error} />
      </form>
    </main>
  );
}

function ProjectSwitcher({ ctx, onSession }: { ctx: AppContext; onSession: (s: Session) => void }) {
  const [projects, setProjects] = useState<Array<{ id: string; name: string }>>([]);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    if (ctx.session.mode !== 'keystone') return;
    ctx.client.projects().then((r) => setProjects(r.projects), setError);
  }, [ctx.session.token]);
  if (projects.length < 2) return error ? <ErrorNote error={error} /> : null;
  const change = async (e: Event) => {
    const id = (e.target as HTMLSelectElement).value;
    try {
      onSession(await ctx.client.login({ token: ctx.session.token, project_id: id }));
    } catch (err) {
      setError(err);
    }
  };
  return (
    <span class="switcher">
      <label for="project-switch">Project</label>
      <select id="project-switch" value={ctx.session.project?.id} onChange={change}>
        {projects.map((p) => <option key={p.id} value={p.id}>{p.name}</option>)}
      </select>
      <ErrorNote error={error} />
    </span>
  );
}

function App() {
  const [session, setSession] = useState<Session | null>(loadSession);
  const [route, setRoute] = useState(parseHash);
  useEffect(() => {
    const on = () => setRoute(parseHash());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  const signIn = (s: Session) => {
    sessionStorage.setItem(KEY, JSON.stringify(s));
    setSession(s);
    if (!location.hash || location.hash === '#/login') location.hash = '#/images';
  };
  const signOut = () => {
    sessionStorage.removeItem(KEY);
    setSession(null);
    location.hash = '#/login';
  };
  if (!session) return <Login onSession={signIn} />;

  // an expired or revoked token: back to the sign-in form rather than errors on every panel
  const client = new ImagoClient('', session.token, async (input, init) => {
    const res = await fetch(input, init);
    if (res.status === 401) signOut();
    return res;
  });
  const ctx: AppContext = { client, session, go: (h) => { location.hash = h; } };
  const [page, arg] = route.path;
  let body;
  let title: string;
  switch (page) {
    case 'images':
      if (arg) { body = <ImagePage ctx={ctx} id={arg} />; title = 'Image'; }
      else { body = <ImageList ctx={ctx} query={route.query} />; title = 'Images'; }
      break;
    case 'upload': body = <UploadPage ctx={ctx} />; title = 'Upload'; break;
    case 'import': body = <ImportPage ctx={ctx} />; title = 'Import'; break;
    case 'stores': body = <StoresPage ctx={ctx} />; title = 'Stores and quotas'; break;
    case 'admin': body = <AdminPage ctx={ctx} />; title = 'Admin'; break;
    default: body = <ImageList ctx={ctx} query={route.query} />; title = 'Images';
  }
  document.title = `${title} · Imago console`;
  const link = (href: string, label: string, name: string) => (
    <a href={href} aria-current={page === name || (!page && name === 'images') ? 'page' : undefined}>{label}</a>
  );
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>Skip to content</a>
      <header class="top">
        <span class="brand">Imago</span>
        <nav aria-label="Main">
          {link('#/images', 'Images', 'images')}
          {link('#/upload', 'Upload', 'upload')}
          {link('#/import', 'Import', 'import')}
          {link('#/stores', 'Stores and quotas', 'stores')}
          {session.is_admin && link('#/admin', 'Admin', 'admin')}
        </nav>
        <span class="who">
          <span>{session.user.name}{session.project ? ` · ${session.project.name}` : ''}</span>
          <ProjectSwitcher ctx={ctx} onSession={signIn} />
          <button type="button" onClick={signOut}>Sign out</button>
        </span>
      </header>
      <main id="main" tabIndex={-1} key={session.token}>{body}</main>
    </>
  );
}

render(<App />, document.getElementById('app')!);

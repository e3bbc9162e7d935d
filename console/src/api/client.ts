/**
 * The one typed client for Imago's public /v2 API (and the console's two
 * sign-in endpoints). The console uses it in the browser; the end-to-end tests
 * use it from Node (test/console/) to set up and check what the page did.
 * It only needs `fetch`, so it runs in both.
 */

export type ImageStatus = 'queued' | 'saving' | 'uploading' | 'importing' | 'active' | 'deactivated' | 'killed' | 'deleted' | 'pending_delete';
export type Visibility = 'public' | 'private' | 'shared' | 'community';
export type MemberStatus = 'pending' | 'accepted' | 'rejected';

export interface Image {
  id: string;
  name: string | null;
  status: ImageStatus;
  visibility: Visibility;
  size: number | null;
  virtual_size: number | null;
  disk_format: string | null;
  container_format: string | null;
  owner: string | null;
  protected: boolean;
  os_hidden: boolean;
  tags: string[];
  created_at: string;
  updated_at: string;
  checksum: string | null;
  os_hash_algo: string | null;
  os_hash_value: string | null;
  min_disk: number;
  min_ram: number;
  stores?: string;
  os_glance_failed_import?: string;
  os_glance_importing_to_stores?: string;
  [property: string]: unknown;
}

export interface ImagePage {
  images: Image[];
  /** the marker of the next page, when there is one */
  next?: string;
}

export interface ListQuery {
  limit?: number;
  marker?: string;
  name?: string;
  status?: string;
  visibility?: string;
  owner?: string;
  tag?: string;
  disk_format?: string;
  member_status?: string;
  sort_key?: string;
  sort_dir?: 'asc' | 'desc';
}

export interface Member {
  image_id: string;
  member_id: string;
  status: MemberStatus;
  created_at: string;
  updated_at: string;
}

export interface Task {
  id: string;
  type: string;
  status: 'pending' | 'processing' | 'success' | 'failure';
  message: string;
  input?: Record<string, unknown>;
  result?: Record<string, unknown> | null;
  owner?: string;
  created_at: string;
  updated_at: string;
  expires_at?: string | null;
  image_id?: string;
}

export interface StoreInfo {
  id: string;
  description?: string;
  default?: boolean;
  read_only?: boolean;
}

export interface UsageEntry {
  limit: number;
  usage: number;
}

export type PatchOp =
  | { op: 'add' | 'replace'; path: string; value: unknown }
  | { op: 'remove'; path: string };

export interface Session {
  token: string;
  mode: 'static' | 'keystone';
  expires_at: string | null;
  user: { id: string; name: string };
  project: { id: string; name: string } | null;
  roles: string[];
  is_admin: boolean;
}

export interface LoginRequest {
  token?: string;
  user?: string;
  password?: string;
  domain?: string;
  project?: string;
  project_id?: string;
}

/** A failed call: the HTTP status and the message of the API's JSON error body. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly details = '') {
    super(message);
    this.name = 'ApiError';
  }
}

type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export async function errorFrom(res: Response): Promise<ApiError> {
  let message = `${res.status} ${res.statusText}`;
  let details = '';
  try {
    const body = (await res.json()) as { error?: { message?: string; details?: string } };
    if (body?.error?.message) message = body.error.message;
    if (body?.error?.details) details = body.error.details;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(res.status, message, details);
}

export class ImagoClient {
  /** `base` is Imago's origin ('' in the console: same origin). */
  constructor(readonly base: string, public token: string | null, private readonly fetchImpl: FetchLike = (i, o) => fetch(i, o)) {}

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { accept: 'application/json', ...(this.token ? { 'x-auth-token': this.token } : {}), ...extra };
  }

  async call<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const res = await this.fetchImpl(this.base + path, {
      method,
      headers: this.headers(body === undefined ? {} : { 'content-type': contentType }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) throw await errorFrom(res);
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  // ---- sign-in (the console's own endpoints) ----
  login(req: LoginRequest): Promise<Session> {
    return this.call<Session>('POST', '/console/api/login', req);
  }

  projects(): Promise<{ projects: Array<{ id: string; name: string }>; current: string | null }> {
    return this.call('GET', '/console/api/projects');
  }

  // ---- images ----
  async listImages(q: ListQuery = {}): Promise<ImagePage> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== '') params.set(k, String(v));
    const qs = params.toString();
    const body = await this.call<{ images: Image[]; next?: string }>('GET', `/v2/images${qs ? `?${qs}` : ''}`);
    const next = body.next ? new URLSearchParams(body.next.split('?')[1] ?? '').get('marker') ?? undefined : undefined;
    return { images: body.images, next };
  }

  getImage(id: string): Promise<Image> {
    return this.call('GET', `/v2/images/${encodeURIComponent(id)}`);
  }

  createImage(body: Record<string, unknown>): Promise<Image> {
    return this.call('POST', '/v2/images', body);
  }

  patchImage(id: string, ops: PatchOp[]): Promise<Image> {
    return this.call('PATCH', `/v2/images/${encodeURIComponent(id)}`, ops, 'application/openstack-images-v2.1-json-patch');
  }

  deleteImage(id: string): Promise<void> {
    return this.call('DELETE', `/v2/images/${encodeURIComponent(id)}`);
  }

  deactivate(id: string): Promise<void> {
    return this.call('POST', `/v2/images/${encodeURIComponent(id)}/actions/deactivate`);
  }

  reactivate(id: string): Promise<void> {
    return this.call('POST', `/v2/images/${encodeURIComponent(id)}/actions/reactivate`);
  }

  addTag(id: string, tag: string): Promise<void> {
    return this.call('PUT', `/v2/images/${encodeURIComponent(id)}/tags/${encodeURIComponent(tag)}`);
  }

  removeTag(id: string, tag: string): Promise<void> {
    return this.call('DELETE', `/v2/images/${encodeURIComponent(id)}/tags/${encodeURIComponent(tag)}`);
  }

  /** where the image's data is uploaded (PUT) and downloaded (GET) */
  fileUrl(id: string): string {
    return `${this.base}/v2/images/${encodeURIComponent(id)}/file`;
  }

  // ---- members ----
  async members(id: string): Promise<Member[]> {
    return (await this.call<{ members: Member[] }>('GET', `/v2/images/${encodeURIComponent(id)}/members`)).members;
  }

  member(id: string, project: string): Promise<Member> {
    return this.call('GET', `/v2/images/${encodeURIComponent(id)}/members/${encodeURIComponent(project)}`);
  }

  addMember(id: string, project: string): Promise<Member> {
    return this.call('POST', `/v2/images/${encodeURIComponent(id)}/members`, { member: project });
  }

  setMemberStatus(id: string, project: string, status: MemberStatus): Promise<Member> {
    return this.call('PUT', `/v2/images/${encodeURIComponent(id)}/members/${encodeURIComponent(project)}`, { status });
  }

  removeMember(id: string, project: string): Promise<void> {
    return this.call('DELETE', `/v2/images/${encodeURIComponent(id)}/members/${encodeURIComponent(project)}`);
  }

  // ---- import and tasks ----
  importImage(id: string, body: { method: { name: string; uri?: string }; stores?: string[]; all_stores?: boolean; all_stores_must_succeed?: boolean }): Promise<void> {
    return this.call('POST', `/v2/images/${encodeURIComponent(id)}/import`, body);
  }

  async imageTasks(id: string): Promise<Task[]> {
    return (await this.call<{ tasks: Task[] }>('GET', `/v2/images/${encodeURIComponent(id)}/tasks`)).tasks;
  }

  async tasks(q: { status?: string; limit?: number; sort_dir?: string } = {}): Promise<Task[]> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== undefined) params.set(k, String(v));
    return (await this.call<{ tasks: Task[] }>('GET', `/v2/tasks?${params}`)).tasks;
  }

  task(id: string): Promise<Task> {
    return this.call('GET', `/v2/tasks/${encodeURIComponent(id)}`);
  }

  importInfo(): Promise<{ 'import-methods': { value: string[] } }> {
    return this.call('GET', '/v2/info/import');
  }

  // ---- stores, quotas, schema ----
  async stores(): Promise<StoreInfo[]> {
    return (await this.call<{ stores: StoreInfo[] }>('GET', '/v2/info/stores')).stores;
  }

  async usage(): Promise<Record<string, UsageEntry>> {
    return (await this.call<{ usage: Record<string, UsageEntry> }>('GET', '/v2/info/usage')).usage;
  }

  imageSchema(): Promise<{ properties: Record<string, { type?: string | string[]; enum?: unknown[]; readOnly?: boolean; description?: string }> }> {
    return this.call('GET', '/v2/schemas/image');
  }
}

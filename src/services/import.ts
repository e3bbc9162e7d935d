import { randomUUID } from 'node:crypto';
import type { RequestContext } from '../auth/context.js';
import type { Config } from '../config.js';
import type { Policy } from '../domain/policy.js';
import type { DialectName } from '../db/database.js';
import type { ImagesRepo } from '../db/images-repo.js';
import type { StoreRegistry } from '../stores/registry.js';
import type { QuotaChecker } from './quotas.js';
import type { DataService } from './image-data.js';
import type { TaskService } from './tasks.js';
import { BadRequest, Conflict, Forbidden, NotFound, imageNotFound, statusTransition } from '../domain/errors.js';
import type { Image } from '../domain/image.js';
import { LOCK_PROPERTY } from '../db/tasks-repo.js';
import { checkGlanceDownload, parseImportBody } from '../import/request.js';
import type { ImportRequest, ImportTaskInput, Task } from '../domain/task.js';
import { type UriFilter, redactUserinfo } from '../import/uri-filter.js';
import { targetOf, type ImageAccess } from './image-access.js';

/** A lock whose task has not moved for this long may be taken over (pending tasks: twice as long), as Glance does. */
const LOCK_EXPIRY_MS = 60 * 60_000;

/** What the import request uses; built by the composition root (src/runtime.ts). */
export interface ImportServiceDeps {
  access: ImageAccess;
  policy: Policy;
  images: ImagesRepo;
  stores: StoreRegistry;
  tasks: Pick<TaskService, 'repo' | 'failStale' | 'startImport' | 'taskEvent'>;
  data: Pick<DataService, 'removeLocations'>;
  quotas?: Pick<QuotaChecker, 'remainingBytes'>;
  /** web-download's URL rules, shared with the task runner that opens the URL */
  filter: UriFilter;
  nodeId: string;
  dialect: DialectName;
  config: Pick<Config, 'import'>;
}

/**
 * POST /v2/images/{id}/import: every precondition Glance checks, in Glance's
 * order, then one transaction that creates the task and takes the image's
 * import lock. The work itself is done by the task runner.
 */
export class ImportService {
  readonly filter: UriFilter;

  constructor(private readonly deps: ImportServiceDeps) {
    this.filter = deps.filter;
  }

  /** Returns the task id, or undefined when there was nothing to do (copy-image to stores that all have the image). */
  async request(imageId: string, body: unknown, headerStore: string | undefined, ctx: RequestContext): Promise<string | undefined> {
    const d = this.deps;
    const req = parseImportBody(body, d.config.import.methods);
    const method = req.method.name;

    const { image, membership } = await d.access.getVisible(imageId, ctx);
    const quota = await d.quotas?.remainingBytes(ctx, image.owner);
    if (quota && quota.bytes <= 0) throw quota.error(quota.bytes);

    if (image.status === 'active' && method !== 'copy-image') throw new Conflict('Image with status active cannot be target for import');
    if (image.status !== 'active' && method === 'copy-image') throw new Conflict('Only images with status active can be targeted for copying');
    if (image.status !== 'queued' && (method === 'web-download' || method === 'glance-download')) {
      throw new Conflict(`Image needs to be in 'queued' state to use '${method}' method`);
    }
    if (image.status !== 'uploading' && method === 'glance-direct') throw new Conflict("Image needs to be staged before 'glance-direct' method can be used");
    if (!image.containerFormat) throw new Conflict("'container_format' needs to be set before import");
    if (!image.diskFormat) throw new Conflict("'disk_format' needs to be set before import");
    if (method === 'glance-download') checkGlanceDownload(req);

    const target = targetOf(image, membership);
    if (method === 'copy-image') d.policy.enforce('copy_image', ctx, target, 'You are not permitted to copy this image to other stores.');
    else d.policy.enforce('modify_image', ctx, target, 'You are not permitted to import data into this image.');

    const stale = await this.staleLock(image);

    let stores = this.storesOf(req, headerStore);
    if (method === 'copy-image') {
      const present = new Set(image.locations.filter((l) => l.status === 'active').map((l) => l.storeId));
      if (req.all_stores) {
        stores = stores.filter((s) => !present.has(s));
        if (stores.length === 0) return undefined;
      } else {
        const already = stores.find((s) => present.has(s));
        if (already) throw new BadRequest(`Image is already present at store '${already}'`);
      }
      // Every copy counts toward image_size_total.
      const need = (image.size ?? 0) * stores.length;
      if (quota && need > quota.bytes) throw quota.error(need - 1);
    }
    if (method === 'web-download') {
      const checked = this.filter.checkUrl(req.method.uri!);
      if (!checked.ok) throw new BadRequest(`URI for web-download does not pass filtering: ${redactUserinfo(req.method.uri!)}`, checked.reason);
    }

    const taskId = randomUUID();
    const input: ImportTaskInput = { image_id: image.id, import_req: req, backend: stores };
    const claim =
      method === 'glance-direct' ? { from: ['uploading' as const], to: 'importing' as const, node: d.nodeId }
      : method === 'copy-image' ? undefined
      : { from: ['queued' as const], to: 'importing' as const, node: d.nodeId };
    const outcome = await d.tasks.repo.createImportTask(
      {
        id: taskId,
        type: 'api_image_import',
        owner: ctx.projectId,
        userId: ctx.userId,
        requestId: ctx.requestId,
        imageId: image.id,
        input: input as unknown as Record<string, unknown>,
        state: { roles: ctx.roles },
      },
      { claim, stores, bust: stale?.id },
    );
    if (outcome === 'missing') throw imageNotFound(image.id);
    if (outcome === 'locked') throw new Conflict(`New operation on image '${image.id}' is not permitted as prior operation is still in progress`);
    if (outcome === 'status') {
      const now = await d.images.get(image.id);
      throw statusTransition(now?.status ?? 'deleted', 'importing');
    }
    await d.tasks.taskEvent('create', taskId);
    if (stale) await d.tasks.failStale(stale, image.id);
    d.tasks.startImport(taskId, ctx.token);
    return taskId;
  }

  /**
   * DELETE /v2/stores/{store}/{image}: removes one store's copy of an active
   * image. The last copy cannot go this way (delete the image instead).
   */
  async deleteFromStore(storeId: string, imageId: string, ctx: RequestContext): Promise<void> {
    const d = this.deps;
    if (!d.stores.byId.has(storeId)) throw new Conflict(`The selected store ${storeId} is not available on this node.`);
    const { image, membership } = await d.access.getVisible(imageId, ctx).catch(() => {
      throw new NotFound(`Failed to find image ${imageId}`);
    });
    const target = targetOf(image, membership);
    d.policy.enforce('get_image_location', ctx, target, 'You are not permitted to see the locations of this image.');
    d.policy.enforce('delete_image_location', ctx, target, 'You are not permitted to remove image data from a store.');
    if (image.status !== 'active') throw new Conflict(`Image data can be removed from a store only while the image is active; it is ${image.status}.`);
    const marked = await d.tasks.repo.markStoreCopyDeleting(image.id, storeId, d.dialect);
    if (marked.outcome === 'absent') throw new NotFound(`Image ${image.id} is not stored in store ${storeId}.`);
    // 403 as Glance: removing the last copy is refused, not a state the client could wait out.
    if (marked.outcome === 'last') throw new Forbidden(`Store ${storeId} holds the only copy of image ${image.id}; delete the image instead.`);
    await d.data.removeLocations([marked.location!]);
  }

  /**
   * The stores an import targets: `all_stores`, `stores`, the
   * X-Image-Meta-Store header, or the default store. Unknown stores are a
   * 409 as in Glance; read-only stores cannot take imports.
   */
  private storesOf(req: ImportRequest, headerStore: string | undefined): string[] {
    const { stores } = this.deps;
    if (req.all_stores) {
      if (req.stores !== undefined || headerStore !== undefined) {
        throw new BadRequest("All_stores parameter can't be used with x-image-meta-store header or stores parameter");
      }
      return stores.stores.filter((s) => !s.info.readOnly).map((s) => s.info.id);
    }
    if (req.stores !== undefined && headerStore !== undefined) throw new BadRequest("Stores parameter and x-image-meta-store header can't be both specified");
    const ids = [...new Set(req.stores ?? [headerStore ?? stores.defaultId])];
    for (const id of ids) {
      const store = stores.named(id); // UnknownStore: the import route answers 409, as Glance
      if (store.info.readOnly) throw new Conflict(`Store ${id} is read-only and cannot take imported data.`);
    }
    return ids;
  }

  /**
   * A lock held by a task that is over, gone, or has not moved for an hour
   * (two for pending ones) no longer protects anything: Glance lets the next
   * import take it. Any other lock is a 409.
   */
  private async staleLock(image: Image): Promise<{ id: string; task?: Task } | undefined> {
    const holder = image.properties[LOCK_PROPERTY];
    if (holder === undefined) return undefined;
    const task = await this.deps.tasks.repo.get(holder);
    if (!task) return { id: holder };
    const age = Date.now() - Date.parse(task.updatedAt);
    const expiry = task.status === 'pending' ? 2 * LOCK_EXPIRY_MS : LOCK_EXPIRY_MS;
    if (task.status === 'success' || task.status === 'failure' || age >= expiry) return { id: holder, task };
    throw new Conflict('Image has active task');
  }
}

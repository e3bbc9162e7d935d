import type { RequestContext } from '../auth/context.js';
import type { Config } from '../config.js';
import type { ImagesRepo, LocationActivation, NewLocation } from '../db/images-repo.js';
import type { StoreRegistry } from '../stores/registry.js';
import type { Store } from '../stores/store.js';
import type { DataService } from './image-data.js';
import { BadRequest, Conflict, Forbidden, ImagoError } from '../domain/errors.js';
import type { Image } from '../domain/image.js';
import type { Policy, PolicyTarget } from '../domain/policy.js';
import { checkLocationChange, checkLocationValue, digestsToSet, locationIndex, sameLocation, type LocationChange, type LocationValue, type ValidationData } from '../domain/locations.js';
import { ObjectNotFound, StoreError } from '../stores/errors.js';
import { randomUUID } from 'node:crypto';
import { NotFound } from '../domain/errors.js';
import { LOCATION_IMPORT, type ImportTaskInput } from '../domain/task.js';
import { targetOf, type ImageAccess } from './image-access.js';
import type { TaskService } from './tasks.js';

/** What the locations API uses; built by the composition root (src/runtime.ts). */
export interface LocationServiceDeps {
  access: ImageAccess;
  images: Pick<ImagesRepo, 'setLocations' | 'imagesAt' | 'get'>;
  stores: Pick<StoreRegistry, 'owning'>;
  policy: Policy;
  data: Pick<DataService, 'removeLocations'>;
  /** POST /v2/images/{id}/locations runs as a location_import task */
  tasks: Pick<TaskService, 'repo' | 'startImport' | 'taskEvent'>;
  nodeId: string;
  config: Pick<Config, 'locations'>;
}

/** An image's locations as the API shows them, when it shows them. */
export interface LocationView {
  locations?: { url: string; metadata: Record<string, unknown> }[];
  directUrl?: string;
}

interface Entry extends NewLocation {
  /** the object's size, for an image that gets its size from its first location */
  size?: number;
}

/**
 * The locations API of Glance's `show_multiple_locations` (docs/locations.md):
 * JSON-patch on `/locations` adds, replaces and removes the URLs an image's
 * data lives at. A URL must name an object of a configured store (a file
 * inside a filesystem store, an object of an s3 store's bucket, a URL under an
 * http store's allowed prefixes); anything else is refused before any request
 * leaves Imago.
 */
export class LocationService {
  constructor(private readonly deps: LocationServiceDeps) {}

  /** `locations` and `direct_url` as the configuration and the caller's rights allow. */
  view(image: Image, ctx: RequestContext, target: PolicyTarget): LocationView {
    const cfg = this.deps.config.locations;
    if (!cfg.showMultiple && !cfg.showDirectUrl) return {};
    // As Glance: a caller who may not read locations sees an empty list and no direct_url.
    const allowed = this.deps.policy.check('get_image_location', ctx, target);
    const active = allowed ? image.locations.filter((l) => l.status === 'active') : [];
    const view: LocationView = {};
    if (cfg.showMultiple) view.locations = active.map((l) => ({ url: l.url, metadata: l.metadata ?? {} }));
    if (cfg.showDirectUrl && active.length) view.directUrl = active[0].url;
    return view;
  }

  /**
   * GET /v2/images/{id}/locations (API 2.17): for services (fetch_image_location),
   * whatever locations.showMultiple says.
   */
  async list(imageId: string, ctx: RequestContext): Promise<{ url: string; metadata: Record<string, unknown> }[]> {
    const { image, membership } = await this.deps.access.getVisible(imageId, ctx);
    this.deps.policy.enforce('fetch_image_location', ctx, targetOf(image, membership), 'Only services may read the locations of images.');
    return image.locations.filter((l) => l.status === 'active').map((l) => ({ url: l.url, metadata: { ...(l.metadata ?? {}), store: l.storeId } }));
  }

  /**
   * POST /v2/images/{id}/locations (API 2.17): a queued image gets its data
   * from a URL, asynchronously: a location_import task (holding the image's
   * import lock) reads the object once to hash it, checks validation_data when
   * given, and only then records the location and activates the image.
   * Callers other than services may name only URLs of http stores.
   */
  async addAsync(imageId: string, body: unknown, ctx: RequestContext): Promise<string> {
    const d = this.deps;
    const { url, validationData } = parseAddLocationBody(body);
    const { image, membership } = await d.access.getVisible(imageId, ctx);
    const target = targetOf(image, membership);
    d.policy.enforce('add_image_location', ctx, target, 'You are not permitted to add locations to this image.');
    if (image.status !== 'queued') throw new Conflict(`A location can be added this way only to a queued image (this one is ${image.status}).`);
    const store = this.storeNaming(url);
    if (store.info.type !== 'http' && !d.policy.check('service_api', ctx, target)) {
      throw new Forbidden(`Only services may add locations in store ${store.info.id}; other callers may add URLs of http stores.`);
    }
    await this.assertNotAnotherImages(store, url, image.id);
    if (validationData) digestsToSet(image, [{ url, metadata: {}, validation_data: validationData }]);
    const taskId = randomUUID();
    const input: ImportTaskInput = { image_id: image.id, import_req: { method: { name: LOCATION_IMPORT, uri: url, ...(validationData ? { validation_data: validationData } : {}) } }, backend: [store.info.id] };
    const outcome = await d.tasks.repo.createImportTask(
      { id: taskId, type: 'location_import', owner: image.owner, userId: ctx.userId, requestId: ctx.requestId, imageId: image.id, input: input as unknown as Record<string, unknown>, state: { roles: ctx.roles } },
      { claim: { from: ['queued'], to: 'importing', node: d.nodeId }, stores: [store.info.id] },
    );
    if (outcome === 'missing') throw new NotFound(`No image found with ID ${image.id}`);
    if (outcome === 'locked') throw new Conflict('Image has active task');
    if (outcome === 'status') throw new Conflict(`A location can be added this way only to a queued image (image ${image.id} changed meanwhile).`);
    await d.tasks.taskEvent('create', taskId);
    d.tasks.startImport(taskId);
    return taskId;
  }

  /** Applies a patch's `/locations` changes, in order, as one change of the image. */
  async apply(image: Image, target: PolicyTarget, changes: LocationChange[], ctx: RequestContext): Promise<void> {
    if (!this.deps.config.locations.showMultiple) {
      throw new Forbidden('Image locations are not shown by this service (locations.showMultiple is off), so they cannot be changed.');
    }
    let status = image.status;
    let list: Entry[] = image.locations
      .filter((l) => l.status === 'active')
      .map((l) => ({ id: l.id, storeId: l.storeId, url: l.url, metadata: l.metadata ?? {} }));
    let digests: ValidationData = {};
    const asked: LocationValue[] = [];
    for (const change of changes) {
      checkLocationChange(change.op, status, list.length);
      if (change.op === 'remove') {
        this.deps.policy.enforce('delete_image_location', ctx, target, 'You are not permitted to remove locations of this image.');
        list.splice(locationIndex(change.position, list.length, false), 1);
        continue;
      }
      this.deps.policy.enforce('set_image_location', ctx, target, 'You are not permitted to set locations of this image.');
      const values = change.op === 'add' ? [change.value] : change.value;
      if (change.op === 'replace' && values.length === 0) throw new Forbidden('The locations cannot be replaced by an empty list; remove them one by one instead.');
      asked.push(...values);
      digests = { ...digests, ...digestsToSet({ status: image.status, checksum: image.checksum, osHashAlgo: image.osHashAlgo, osHashValue: image.osHashValue }, asked) };
      if (change.op === 'add') {
        const index = locationIndex(change.position, list.length, true);
        if (list.some((l) => sameLocation(l, change.value))) throw new BadRequest(`The image already has the location ${change.value.url} with the same metadata.`);
        list.splice(index, 0, await this.resolve(change.value, image.id));
      } else {
        list = await this.replace(image.id, list, change.value);
      }
      if (status === 'queued') status = 'active';
    }
    let activate: LocationActivation | undefined;
    if (image.status === 'queued' && status === 'active') {
      const size = image.size ?? list.find((l) => l.size)?.size;
      if (!size) throw new BadRequest('Invalid location: its object is empty.');
      activate = { size, ...digests };
    }
    const removed = await this.deps.images.setLocations(image.id, { status: image.status, locationIds: image.locations.filter((l) => l.status === 'active').map((l) => l.id) }, list, activate);
    if (removed === false) throw new Conflict(`Image ${image.id} changed while its locations were being updated; try again.`);
    await this.deps.data.removeLocations(removed);
  }

  /**
   * Glance's replace: with locations already there, only their metadata may
   * change (the same URLs, in any order); an image without locations takes
   * the new list whole.
   */
  private async replace(imageId: string, list: Entry[], values: LocationValue[]): Promise<Entry[]> {
    const urls = (ls: { url: string }[]) => ls.map((l) => l.url).sort().join('\n');
    for (const [i, v] of values.entries()) {
      if (values.some((w, j) => j < i && sameLocation(v, w))) throw new BadRequest(`The location ${v.url} is listed twice.`);
    }
    if (list.length && urls(list) !== urls(values)) {
      throw new BadRequest('Replacing locations may change their metadata only: the new list must have the same URLs (add or remove locations one at a time).');
    }
    if (!list.length) return Promise.all(values.map((v) => this.resolve(v, imageId)));
    const unused = [...list];
    return values.map((v) => {
      const i = unused.findIndex((l) => l.url === v.url);
      const [kept] = unused.splice(i, 1);
      return { ...kept, metadata: v.metadata };
    });
  }

  /** The configured store whose object `url` names; 400 when none does (no request leaves Imago for it). */
  private storeNaming(url: string): Store & { size(location: string): Promise<number> } {
    const store = this.deps.stores.owning(url);
    if (!store?.size) throw new BadRequest(`Invalid location ${url}: it names no object of a configured store (see docs/locations.md for the URLs each store accepts).`);
    return store as Store & { size(location: string): Promise<number> };
  }

  /** 409 when `url` is an object of a filesystem or s3 store that another image's location names (see resolve). */
  private async assertNotAnotherImages(store: Store, url: string, imageId: string): Promise<void> {
    if (store.info.type !== 'http' && (await this.deps.images.imagesAt(url)).some((id) => id !== imageId)) {
      throw new Conflict(`The location ${url} holds the data of another image; an image may not point at it.`);
    }
  }

  /**
   * The store a URL names and the size of its object; 400 when it names none
   * or nothing is there. An object of a filesystem or s3 store that another
   * image's location names is refused: pointing at it would hand that image's
   * data to whoever may read this one, and removing one would delete the
   * other's data.
   */
  private async resolve(v: LocationValue, imageId: string): Promise<Entry> {
    const store = this.storeNaming(v.url);
    await this.assertNotAnotherImages(store, v.url, imageId);
    let size: number;
    try {
      size = await store.size(v.url);
    } catch (err) {
      if (err instanceof ObjectNotFound) throw new BadRequest(`Invalid location ${v.url}: store ${store.info.id} has no such object.`);
      throw err instanceof ImagoError || err instanceof StoreError ? err : new BadRequest(`Invalid location ${v.url}: ${(err as Error).message}`);
    }
    if (size <= 0) throw new BadRequest(`Invalid location ${v.url}: its object is empty.`);
    return { storeId: store.info.id, url: v.url, metadata: v.metadata, size };
  }
}

/** The body of POST /v2/images/{id}/locations: `{"url": ..., "validation_data": {...}}`. */
function parseAddLocationBody(body: unknown): { url: string; validationData?: ValidationData } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new BadRequest('The body must be a JSON object with a "url".');
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) if (k !== 'url' && k !== 'validation_data') throw new BadRequest(`Unknown attribute '${k}': the body takes url and validation_data.`);
  // the same checks as a location of a JSON-patch (metadata is not part of this API)
  const v = checkLocationValue({ url: b.url, metadata: {}, ...(b.validation_data === undefined ? {} : { validation_data: b.validation_data }) });
  return { url: v.url, validationData: v.validation_data };
}

import type { RequestContext } from '../auth/context.js';
import type { Config } from '../config.js';
import type { ImagesRepo, LocationActivation, NewLocation } from '../db/images-repo.js';
import type { StoreRegistry } from '../stores/registry.js';
import type { DataService } from './image-data.js';
import { BadRequest, Conflict, Forbidden, ImagoError } from '../domain/errors.js';
import type { Image } from '../domain/image.js';
import type { Policy, PolicyTarget } from '../domain/policy.js';
import { checkLocationChange, digestsToSet, locationIndex, sameLocation, type LocationChange, type LocationValue, type ValidationData } from '../domain/locations.js';
import { ObjectNotFound } from '../stores/errors.js';

/** What the locations API uses; built by the composition root (src/runtime.ts). */
export interface LocationServiceDeps {
  images: Pick<ImagesRepo, 'setLocations' | 'imagesAt'>;
  stores: Pick<StoreRegistry, 'owning'>;
  policy: Policy;
  data: Pick<DataService, 'removeLocations'>;
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

  /**
   * The store a URL names and the size of its object; 400 when it names none
   * or nothing is there. An object of a filesystem or s3 store that another
   * image's location names is refused: pointing at it would hand that image's
   * data to whoever may read this one, and removing one would delete the
   * other's data.
   */
  private async resolve(v: LocationValue, imageId: string): Promise<Entry> {
    const store = this.deps.stores.owning(v.url);
    if (!store?.size) throw new BadRequest(`Invalid location ${v.url}: it names no object of a configured store (see docs/locations.md for the URLs each store accepts).`);
    if (store.info.type !== 'http' && (await this.deps.images.imagesAt(v.url)).some((id) => id !== imageId)) {
      throw new Conflict(`The location ${v.url} holds the data of another image; an image may not point at it.`);
    }
    let size: number;
    try {
      size = await store.size(v.url);
    } catch (err) {
      if (err instanceof ObjectNotFound) throw new BadRequest(`Invalid location ${v.url}: store ${store.info.id} has no such object.`);
      throw err instanceof ImagoError ? err : new BadRequest(`Invalid location ${v.url}: ${(err as Error).message}`);
    }
    if (size <= 0) throw new BadRequest(`Invalid location ${v.url}: its object is empty.`);
    return { storeId: store.info.id, url: v.url, metadata: v.metadata, size };
  }
}

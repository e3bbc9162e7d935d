import { randomUUID } from 'node:crypto';
import type { RequestContext } from '../auth/context.js';
import type { Config } from '../config.js';
import type { ImagesRepo } from '../db/images-repo.js';
import type { WriterRegistry } from './writers.js';
import type { QuotaChecker } from './quotas.js';
import type { DataService } from './image-data.js';
import type { StagingService } from './staging.js';
import { targetOf, type ImageAccess } from './image-access.js';
import { BadRequest, Conflict, Forbidden, NotFound, imageNotFound } from '../domain/errors.js';
import { setOwn, type Image, type Visibility } from '../domain/image.js';
import { checkLimits, checkTag, isUuid, parseCreateBody, storable } from '../domain/image-input.js';
import { applyPatch, parsePatch, splitLocationChanges, type PatchState } from '../domain/patch.js';
import { canSee, type MemberStatus } from '../domain/visibility.js';
import type { Policy, PolicyTarget } from '../domain/policy.js';
import { parseImageListQuery, type Query } from '../domain/list-query.js';
import type { ImageChanges } from '../db/images-repo.js';
import type { ImageCache } from '../cache/image-cache.js';
import type { Notifier } from '../notifications/notifier.js';
import type { PropertyProtections } from '../domain/property-protection.js';
import type { LocationService } from './locations.js';

/** What the metadata operations use; built by the composition root (src/runtime.ts). */
export interface ImageServiceDeps {
  access: ImageAccess;
  images: ImagesRepo;
  policy: Policy;
  writers: Pick<WriterRegistry, 'abort'>;
  /** a deleted image's data goes through these two */
  data: Pick<DataService, 'removeLocations'>;
  staging: Pick<StagingService, 'discard'>;
  quotas?: Pick<QuotaChecker, 'admitCreate'>;
  /** this node's image cache: a deleted image's entry goes at once (other nodes' sweeps remove theirs) */
  cache?: Pick<ImageCache, 'remove'>;
  config: Pick<Config, 'maxImageProperties' | 'maxImageTags'>;
  /** JSON-patch on /locations */
  locations: Pick<LocationService, 'apply'>;
  /** events after each committed change (image.create, image.update, image.delete) */
  events: Notifier;
  /** who may create, read, update and delete which properties (config.propertyProtection); none: all open */
  protections?: PropertyProtections;
}

/** Image metadata operations: every rule check and state change, no HTTP. */
export class ImageService {
  constructor(private readonly deps: ImageServiceDeps) {}

  /** How the caller relates to a shared image (ImageAccess; kept here for callers that hold an ImageService). */
  membership(image: Image, ctx: RequestContext): Promise<MemberStatus | undefined> {
    return this.deps.access.membership(image, ctx);
  }

  /** The image if the caller may see it; 404 otherwise (ImageAccess). */
  getVisible(id: string, ctx: RequestContext): Promise<{ image: Image; membership?: MemberStatus }> {
    return this.deps.access.getVisible(id, ctx);
  }

  async show(id: string, ctx: RequestContext): Promise<Image> {
    const { image, membership } = await this.getVisible(id, ctx);
    this.deps.policy.enforce('get_image', ctx, targetOf(image, membership));
    return this.asSeenBy(image, ctx);
  }

  /** The image as `ctx` may see it: properties it may not read are left out (property protections). */
  private asSeenBy(image: Image, ctx: RequestContext): Image {
    const p = this.deps.protections;
    return p ? { ...image, properties: p.readable(image.properties, ctx) } : image;
  }

  async create(body: unknown, ctx: RequestContext): Promise<Image> {
    const input = parseCreateBody(body);
    const owner = Object.hasOwn(input.base, 'owner') ? (input.base.owner as string | null) : ctx.projectId;
    if (owner !== ctx.projectId && !ctx.isAdmin) {
      throw new Forbidden('You are not permitted to create images owned by another project.');
    }
    const visibility = (input.base.visibility as Visibility | undefined) ?? 'shared';
    this.deps.policy.enforce('add_image', ctx, { owner, visibility }, 'You are not permitted to create images.');
    this.checkVisibilityChange(visibility, ctx, { owner, visibility });
    checkLimits(Object.keys(input.properties).length, input.tags.length, this.limits());
    if (this.deps.protections) for (const name of Object.keys(input.properties)) this.deps.protections.enforce(name, 'create', ctx);
    const id = input.id ?? randomUUID();
    // A generated id cannot collide; a client's own id may (the insert's unique key catches a race).
    if (input.id !== undefined && (await this.deps.images.exists(id))) throw new Conflict(`An image with identifier ${id} already exists.`);
    const admitted = await this.deps.quotas?.admitCreate(owner, id);
    try {
      const created = await this.deps.images.create({
        id,
        name: (input.base.name as string | null | undefined) ?? null,
        visibility,
        protected: (input.base.protected as boolean | undefined) ?? false,
        osHidden: (input.base.os_hidden as boolean | undefined) ?? false,
        diskFormat: (input.base.disk_format as string | null | undefined) ?? null,
        containerFormat: (input.base.container_format as string | null | undefined) ?? null,
        minDisk: (input.base.min_disk as number | undefined) ?? 0,
        minRam: (input.base.min_ram as number | undefined) ?? 0,
        owner,
        tags: input.tags,
        properties: input.properties,
      });
      this.deps.events.imageCreated(created);
      return this.asSeenBy(created, ctx);
    } catch (err) {
      if (/unique|duplicate|constraint/i.test(String((err as Error).message))) throw new Conflict(`An image with identifier ${id} already exists.`);
      throw err;
    } finally {
      await admitted?.release();
    }
  }

  private checkVisibilityChange(visibility: string, ctx: RequestContext, target: PolicyTarget): void {
    if (visibility === 'public') this.deps.policy.enforce('publicize_image', ctx, target, 'You are not authorized to set image visibility to public.');
    if (visibility === 'community') this.deps.policy.enforce('communitize_image', ctx, target, 'You are not authorized to set image visibility to community.');
  }

  /** One page of images; `more` when the page is full (the client should follow `next`). */
  async list(query: Query, ctx: RequestContext): Promise<{ images: Image[]; more: boolean }> {
    this.deps.policy.enforce('get_images', ctx, { project_id: ctx.projectId }, 'You are not permitted to list images.');
    const q = parseImageListQuery(query);
    let marker: Image | undefined;
    if (q.marker !== undefined) {
      marker = isUuid(q.marker) ? await this.deps.images.get(q.marker) : undefined;
      const visible = marker && canSee(marker, ctx, await this.membership(marker, ctx));
      if (!visible) throw new BadRequest(`Invalid marker: no image found with ID ${q.marker}.`);
    }
    const images = await this.deps.images.list(q, ctx, marker);
    return { images: this.deps.protections ? images.map((i) => this.asSeenBy(i, ctx)) : images, more: images.length > 0 && images.length === q.limit };
  }

  async update(id: string, body: unknown, draft: 4 | 10, ctx: RequestContext): Promise<Image> {
    const all = parsePatch(body, draft);
    let { image, membership } = await this.getVisible(id, ctx);
    if (all.length === 0) return this.asSeenBy(image, ctx);
    const protections = this.deps.protections;
    const target = targetOf(image, membership);
    // Locations have their own policies (set_image_location, delete_image_location), as in Glance.
    const { locations, others: changes } = splitLocationChanges(all);
    if (changes.length) this.deps.policy.enforce('modify_image', ctx, target, 'You are not permitted to modify this image.');
    if (locations.length) {
      await this.deps.locations.apply(image, target, locations, ctx);
      image = (await this.deps.images.get(id)) ?? image;
      if (!changes.length) {
        this.deps.events.imageUpdated(image);
        return this.asSeenBy(image, ctx);
      }
    }
    // The patch applies to what the caller sees; properties it may not read stay as they are.
    const seen = this.asSeenBy(image, ctx).properties;
    const unseen = Object.keys(image.properties).length - Object.keys(seen).length;
    const before: PatchState = {
      base: {
        name: image.name, visibility: image.visibility, protected: image.protected, os_hidden: image.osHidden,
        disk_format: image.diskFormat, container_format: image.containerFormat, min_disk: image.minDisk, min_ram: image.minRam, owner: image.owner,
      },
      properties: seen,
      tags: image.tags,
    };
    const after = applyPatch(before, changes, {
      draft,
      isAdmin: ctx.isAdmin,
      status: image.status,
      checkVisibility: (v) => this.checkVisibilityChange(v, ctx, target),
      checkProperty: protections ? (name, op) => protections.enforce(name, op, ctx) : undefined,
    });
    const delta: ImageChanges = {};
    for (const [k, v] of Object.entries(after.base)) {
      if (v !== before.base[k]) (delta as Record<string, unknown>)[k] = typeof v === 'boolean' ? (v ? 1 : 0) : v;
    }
    checkLimits(Object.keys(after.properties).length + unseen, after.tags.length, this.limits());
    const set: Record<string, string> = {};
    for (const [k, v] of Object.entries(after.properties)) if (before.properties[k] !== v) setOwn(set, k, v);
    const remove = Object.keys(before.properties).filter((k) => !Object.hasOwn(after.properties, k));
    const tagsChanged = [...after.tags].sort().join('\0') !== [...before.tags].sort().join('\0');
    const ok = await this.deps.images.update(id, delta, { set, remove }, tagsChanged ? after.tags : undefined);
    if (!ok) throw imageNotFound(id);
    const updated = (await this.deps.images.get(id))!;
    this.deps.events.imageUpdated(updated);
    return this.asSeenBy(updated, ctx);
  }

  async delete(id: string, ctx: RequestContext): Promise<void> {
    const { image, membership } = await this.getVisible(id, ctx);
    this.deps.policy.enforce('delete_image', ctx, targetOf(image, membership), 'You are not permitted to delete this image.');
    if (image.protected) throw new Forbidden(`Image ${id} is protected and cannot be deleted.`);
    const locations = await this.deps.images.delete(id);
    if (!locations) throw imageNotFound(id);
    this.deps.events.imageDeleted({ ...image, status: 'deleted' as Image['status'] });
    // A writer still streaming into this image learns now, not at commit (invariant 4).
    this.deps.writers.abort(id);
    this.deps.cache?.remove(id);
    // Data goes only once the delete is durable: removeLocations syncs first when there are locations, discard
    // when there are none (a power loss must not bring back an image whose data is already gone).
    await this.deps.data.removeLocations(locations);
    await this.deps.staging.discard(id, { durableFirst: locations.length === 0 });
  }

  async deactivate(id: string, ctx: RequestContext): Promise<void> {
    const { image, membership } = await this.getVisible(id, ctx);
    this.deps.policy.enforce('deactivate', ctx, targetOf(image, membership), 'You are not permitted to deactivate this image.');
    if (image.status === 'deactivated') return;
    // 403 as Glance's domain model answers (it raises Forbidden), whatever its API reference says.
    if (image.status !== 'active') throw new Forbidden(`Not allowed to deactivate image in status '${image.status}': only active images can be deactivated.`);
    if (!(await this.deps.images.setStatus(id, ['active'], 'deactivated'))) throw new Conflict('The image changed status meanwhile; try again.');
    await this.updated(id);
  }

  async reactivate(id: string, ctx: RequestContext): Promise<void> {
    const { image, membership } = await this.getVisible(id, ctx);
    this.deps.policy.enforce('reactivate', ctx, targetOf(image, membership), 'You are not permitted to reactivate this image.');
    if (image.status === 'active') return;
    if (image.status !== 'deactivated') throw new Forbidden(`Not allowed to reactivate image in status '${image.status}': only deactivated images can be reactivated.`);
    if (!(await this.deps.images.setStatus(id, ['deactivated'], 'active'))) throw new Conflict('The image changed status meanwhile; try again.');
    await this.updated(id);
  }

  async addTag(id: string, tag: string, ctx: RequestContext): Promise<void> {
    checkTag(tag);
    const { image, membership } = await this.getVisible(id, ctx);
    this.deps.policy.enforce('modify_image', ctx, targetOf(image, membership), `Not allowed to update tags for image ${id}.`);
    if (!image.tags.includes(tag)) checkLimits(0, image.tags.length + 1, this.limits());
    await this.deps.images.addTag(id, tag);
    await this.updated(id);
  }

  async removeTag(id: string, tag: string, ctx: RequestContext): Promise<void> {
    if (!storable(tag)) throw new NotFound(`Tag ${JSON.stringify(tag)} not found on image ${id}.`);
    const { image, membership } = await this.getVisible(id, ctx);
    this.deps.policy.enforce('modify_image', ctx, targetOf(image, membership), `Not allowed to delete tags for image ${id}.`);
    if (!(await this.deps.images.removeTag(id, tag))) throw new NotFound(`Tag ${tag} not found on image ${id}.`);
    await this.updated(id);
  }

  /** image.update after a change made without reading the image back (read only when someone listens). */
  private async updated(id: string): Promise<void> {
    if (!this.deps.events.wants('image.update')) return;
    const image = await this.deps.images.get(id).catch(() => undefined);
    if (image) this.deps.events.imageUpdated(image);
  }

  private limits() {
    return { maxProperties: this.deps.config.maxImageProperties, maxTags: this.deps.config.maxImageTags };
  }
}

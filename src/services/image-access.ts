import type { RequestContext } from '../auth/context.js';
import { imageNotFound } from '../domain/errors.js';
import type { Image } from '../domain/image.js';
import { isUuid } from '../domain/image-input.js';
import type { PolicyTarget } from '../domain/policy.js';
import { canSee, type MemberStatus } from '../domain/visibility.js';
import type { ImagesRepo } from '../db/images-repo.js';
import type { MembersRepo } from '../db/members-repo.js';

export function targetOf(image: Image, membership?: MemberStatus): PolicyTarget {
  // `id` marks an image target: Policy.enforce answers 404 to callers who may not see it.
  return { ...image.properties, id: image.id, owner: image.owner, visibility: image.visibility, member_status: membership, project_id: image.owner };
}

/**
 * "May this caller see this image?", the first step of nearly every
 * operation. Kept apart from ImageService so that the data, staging, import,
 * task and member services can use it without depending on ImageService
 * (which itself calls the data and staging services when an image is deleted).
 */
export class ImageAccess {
  constructor(
    private readonly images: ImagesRepo,
    private readonly members: MembersRepo,
  ) {}

  async membership(image: Image, ctx: RequestContext): Promise<MemberStatus | undefined> {
    if (image.visibility !== 'shared' || ctx.projectId === null || image.owner === ctx.projectId) return undefined;
    return this.members.statusOf(image.id, ctx.projectId);
  }

  /** The image if the caller may see it; 404 otherwise, also for ids that are not UUIDs (clients look names up this way). */
  async getVisible(id: string, ctx: RequestContext): Promise<{ image: Image; membership?: MemberStatus }> {
    const image = isUuid(id) ? await this.images.get(id) : undefined;
    if (!image) throw imageNotFound(id);
    const membership = await this.membership(image, ctx);
    if (!canSee(image, ctx, membership)) throw imageNotFound(id);
    return { image, membership };
  }
}

import type { RequestContext } from '../auth/context.js';
import type { Image } from './image.js';

export type MemberStatus = 'pending' | 'accepted' | 'rejected';

/**
 * Whether `ctx` may see `image` at all (show, download, members...). Invisible
 * images answer 404, never 403, so their existence does not leak.
 * `membership` is the caller's member status on the image, if any.
 */
export function canSee(image: Image, ctx: RequestContext, membership: MemberStatus | undefined): boolean {
  if (ctx.isAdmin) return true;
  if (image.visibility === 'public' || image.visibility === 'community') return true;
  if (ctx.projectId !== null && image.owner === ctx.projectId) return true;
  return image.visibility === 'shared' && membership !== undefined;
}

import type { RequestContext } from '../auth/context.js';
import type { Policy } from '../domain/policy.js';
import type { MembersRepo } from '../db/members-repo.js';
import { BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge } from '../domain/errors.js';
import type { Image } from '../domain/image.js';
import type { MemberStatus } from '../domain/visibility.js';
import type { Member } from '../db/members-repo.js';
import { compileSchema, describeValue } from '../domain/json-validator.js';
import { memberSchema } from '../domain/schemas.js';
import { targetOf, type ImageAccess } from './image-access.js';
import type { Notifier } from '../notifications/notifier.js';

const STATUSES: readonly MemberStatus[] = ['pending', 'accepted', 'rejected'];
/** Glance's image_member_quota default. */
export const MAX_MEMBERS_PER_IMAGE = 128;
const MAX_MEMBER_ID = 255;
/** The served /v2/schemas/member document, compiled once: the types of member_id and status come from it. */
const checkMemberSchema = compileSchema(memberSchema(), 'the member');

function body(value: unknown): Record<string, unknown> {
  if (value === undefined) throw new BadRequest('Body expected in request.');
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new BadRequest('The request body must be a JSON object.');
  return value as Record<string, unknown>;
}

/** `{"member": "<project id>"}` of POST /members. */
export function parseNewMember(value: unknown): string {
  const b = body(value);
  if (!('member' in b)) throw new BadRequest('Member to be added not specified: send {"member": "<project id>"}.');
  const m = b.member;
  if (checkMemberSchema({ member_id: m }) !== undefined) {
    throw new BadRequest(`Expected a member in the form {"member": "<project id>"}: the member must be a string, got ${describeValue(m)}.`);
  }
  const member = m as string;
  if (member.trim() === '') throw new BadRequest("Member can't be empty.");
  if (member.length > MAX_MEMBER_ID) throw new BadRequest(`Member id is longer than ${MAX_MEMBER_ID} characters.`);
  return member;
}

/** `{"status": "accepted|rejected|pending"}` of PUT /members/{member}. */
export function parseMemberStatus(value: unknown): unknown {
  const b = body(value);
  if (!('status' in b)) throw new BadRequest('Status not specified: send {"status": "accepted"}, "rejected" or "pending".');
  return b.status;
}

function checkStatus(status: unknown): MemberStatus {
  if (checkMemberSchema({ status }) !== undefined) {
    throw new BadRequest(`Invalid status ${describeValue(status)}: the status of an image member is one of ${STATUSES.join(', ')}.`);
  }
  return status as MemberStatus;
}

/** What member operations use; built by the composition root (src/runtime.ts). */
export interface MemberServiceDeps {
  access: ImageAccess;
  policy: Policy;
  members: MembersRepo;
  /** image.member.create/update/delete after each committed change */
  events: Notifier;
}

/**
 * Image sharing: who an owner shares a `shared` image with, and each
 * member project's answer. Rules follow Glance's image_members controller:
 * only shared images have members; an owner sees all its image's members, a
 * member sees only itself; only the member (or an admin) answers.
 */
export class MemberService {
  constructor(private readonly deps: MemberServiceDeps) {}

  /** The image and the policy target for member operations; 404 when the caller cannot see it. */
  private async image(imageId: string, ctx: RequestContext): Promise<{ image: Image; target: ReturnType<typeof targetOf> }> {
    const { image, membership } = await this.deps.access.getVisible(imageId, ctx);
    const target = targetOf(image, membership);
    this.deps.policy.enforce('get_image', ctx, target);
    return { image, target };
  }

  private requireShared(image: Image, asNotFound = false): void {
    if (image.visibility === 'shared') return;
    const msg = `Only shared images have members; image ${image.id} is ${image.visibility}.`;
    throw asNotFound ? new NotFound(msg) : new Forbidden(msg);
  }

  /** The membership if the caller may see it: everything for admins and the owner, its own membership otherwise. */
  private async lookup(image: Image, memberId: string, ctx: RequestContext): Promise<Member> {
    const seesAll = ctx.isAdmin || (ctx.projectId !== null && ctx.projectId === image.owner);
    const m = seesAll || memberId === ctx.projectId ? await this.deps.members.get(image.id, memberId) : undefined;
    if (!m) throw new NotFound(`${memberId} not found in the member list of the image ${image.id}.`);
    return m;
  }

  async list(imageId: string, ctx: RequestContext): Promise<Member[]> {
    const { image, target } = await this.image(imageId, ctx);
    this.requireShared(image);
    this.deps.policy.enforce('get_members', ctx, target, `You are not permitted to list the members of image ${imageId}.`);
    const all = await this.deps.members.list(image.id);
    const seesAll = ctx.isAdmin || (ctx.projectId !== null && ctx.projectId === image.owner);
    const visible = seesAll ? all : all.filter((m) => m.memberId === ctx.projectId);
    return this.deps.policy.check('get_member', ctx, target) ? visible : [];
  }

  async get(imageId: string, memberId: string, ctx: RequestContext): Promise<Member> {
    const { image, target } = await this.image(imageId, ctx);
    // Glance answers 404 rather than 403 here, so membership cannot be probed.
    this.requireShared(image, true);
    if (!this.deps.policy.check('get_member', ctx, target)) throw new NotFound(`${memberId} not found in the member list of the image ${image.id}.`);
    return this.lookup(image, memberId, ctx);
  }

  async add(imageId: string, body: unknown, ctx: RequestContext): Promise<Member> {
    const memberId = parseNewMember(body);
    const { image, target } = await this.image(imageId, ctx);
    this.requireShared(image);
    this.deps.policy.enforce('add_member', ctx, target, `You are not permitted to share image ${imageId}.`);
    if (await this.deps.members.get(image.id, memberId)) throw new Conflict(`Member ${memberId} is already a member of image ${imageId}.`);
    if ((await this.deps.members.count(image.id)) >= MAX_MEMBERS_PER_IMAGE) {
      throw new PayloadTooLarge(`Image ${imageId} already has ${MAX_MEMBERS_PER_IMAGE} members, the most an image may have (image_member_quota).`);
    }
    try {
      const added = await this.deps.members.add(image.id, memberId);
      this.deps.events.member('create', added);
      return added;
    } catch (err) {
      if (/unique|duplicate|constraint/i.test(String((err as Error).message))) throw new Conflict(`Member ${memberId} is already a member of image ${imageId}.`);
      throw err;
    }
  }

  async update(imageId: string, memberId: string, body: unknown, ctx: RequestContext): Promise<Member> {
    const status = parseMemberStatus(body);
    const { image, target } = await this.image(imageId, ctx);
    this.requireShared(image);
    await this.lookup(image, memberId, ctx);
    this.deps.policy.enforce('modify_member', ctx, target, `Only the member project ${memberId} may accept or reject image ${imageId}.`);
    const updated = await this.deps.members.setStatus(image.id, memberId, checkStatus(status));
    if (!updated) throw new NotFound(`${memberId} not found in the member list of the image ${image.id}.`);
    this.deps.events.member('update', updated);
    return updated;
  }

  async remove(imageId: string, memberId: string, ctx: RequestContext): Promise<void> {
    const { image, target } = await this.image(imageId, ctx);
    this.requireShared(image);
    const member = await this.lookup(image, memberId, ctx);
    this.deps.policy.enforce('delete_member', ctx, target, `Only the owner of image ${imageId} may remove its members.`);
    if (!(await this.deps.members.remove(image.id, memberId))) throw new NotFound(`${memberId} not found in the member list of the image ${image.id}.`);
    this.deps.events.member('delete', member);
  }
}

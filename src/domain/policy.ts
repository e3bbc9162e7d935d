import type { RequestContext } from '../auth/context.js';
import { Forbidden } from './errors.js';

/**
 * What a rule sees about the thing acted on, named as Glance's policy
 * targets name it (`owner`, `visibility`, `member_id`...).
 */
export interface PolicyTarget {
  owner?: string | null;
  visibility?: string;
  member_id?: string;
  member_status?: string;
  project_id?: string | null;
  [k: string]: unknown;
}

export type Rule = (ctx: RequestContext, target: PolicyTarget) => boolean;

const has = (ctx: RequestContext, role: string) => ctx.roles.includes(role);
const admin: Rule = (ctx) => has(ctx, 'admin');
const member: Rule = (ctx) => has(ctx, 'member') || has(ctx, 'admin');
const reader: Rule = (ctx) => has(ctx, 'reader') || member(ctx, {});
const ownsIt: Rule = (ctx, t) => ctx.projectId !== null && ctx.projectId === t.owner;
const projectMember: Rule = (ctx, t) => member(ctx, t) && ownsIt(ctx, t);
const projectReader: Rule = (ctx, t) => reader(ctx, t) && ownsIt(ctx, t);
const sharedWithMe: Rule = (ctx, t) => t.visibility === 'shared' && t.member_status !== undefined;
const openToAll: Rule = (_ctx, t) => t.visibility === 'public' || t.visibility === 'community';

const any = (...rules: Rule[]): Rule => (ctx, t) => rules.some((r) => r(ctx, t));

const readImage: Rule = any(admin, projectReader, (ctx, t) => reader(ctx, t) && (openToAll(ctx, t) || sharedWithMe(ctx, t)));
const writeImage: Rule = any(admin, projectMember);

/**
 * Glance's policy rule names with the defaults of its secure-RBAC policies
 * (2024.x): admin, project member, project reader. An operator's policy file
 * can replace any of them (src/domain/policy-file.ts).
 */
export const DEFAULT_RULES: Record<string, Rule> = {
  add_image: any(admin, (ctx, t) => member(ctx, t) && (t.owner === undefined || t.owner === null || ownsIt(ctx, t))),
  get_image: readImage,
  get_images: reader,
  modify_image: writeImage,
  delete_image: writeImage,
  upload_image: writeImage,
  download_image: readImage,
  publicize_image: admin,
  communitize_image: writeImage,
  deactivate: writeImage,
  reactivate: writeImage,
  copy_image: admin,
  add_member: writeImage,
  delete_member: writeImage,
  get_member: any(admin, projectReader, (ctx, t) => reader(ctx, t) && ctx.projectId === t.member_id),
  get_members: any(admin, projectReader, (ctx, t) => reader(ctx, t) && sharedWithMe(ctx, t)),
  modify_member: any(admin, (ctx, t) => member(ctx, t) && ctx.projectId === t.member_id),
  add_tag: writeImage,
  delete_tag: writeImage,
  get_task: admin,
  get_tasks: admin,
  add_task: admin,
  tasks_api_access: admin,
  get_image_location: admin,
  delete_image_location: admin,
  set_image_location: admin,
  stores_info_detail: admin,
  manage_image_cache: admin,
  get_metadef_namespace: reader,
  get_metadef_namespaces: reader,
  modify_metadef_namespace: admin,
  add_metadef_namespace: admin,
  delete_metadef_namespace: admin,
  get_metadef_object: reader,
  get_metadef_objects: reader,
  modify_metadef_object: admin,
  add_metadef_object: admin,
  delete_metadef_object: admin,
  delete_metadef_objects: admin,
  list_metadef_resource_types: reader,
  get_metadef_resource_type: reader,
  add_metadef_resource_type_association: admin,
  remove_metadef_resource_type_association: admin,
  get_metadef_property: reader,
  get_metadef_properties: reader,
  modify_metadef_property: admin,
  add_metadef_property: admin,
  remove_metadef_property: admin,
  delete_metadef_properties: admin,
  get_metadef_tag: reader,
  get_metadef_tags: reader,
  modify_metadef_tag: admin,
  add_metadef_tag: admin,
  add_metadef_tags: admin,
  delete_metadef_tag: admin,
  delete_metadef_tags: admin,
};

export class Policy {
  private readonly rules: Record<string, Rule>;

  constructor(overrides: Record<string, Rule> = {}) {
    this.rules = { ...DEFAULT_RULES, ...overrides };
  }

  check(rule: string, ctx: RequestContext, target: PolicyTarget = {}): boolean {
    const r = this.rules[rule];
    if (!r) return admin(ctx, target);
    return r(ctx, target);
  }

  enforce(rule: string, ctx: RequestContext, target: PolicyTarget = {}, message?: string): void {
    if (!this.check(rule, ctx, target)) throw new Forbidden(message ?? `You are not authorized to complete ${rule} action.`);
  }
}

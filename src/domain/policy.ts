import type { RequestContext } from '../auth/context.js';
import { Forbidden, imageNotFound } from './errors.js';
import { parseRule, referencedRules, PolicySyntaxError, type Check } from './policy-file.js';

/**
 * What a rule sees about the thing acted on, named as Glance's policy
 * targets name it. For an image: `id`, `owner` (also readable as
 * `project_id`), `visibility`, `member_id` (the caller's project when it sees
 * someone else's shared image as a member), any extra property by name.
 */
export interface PolicyTarget {
  id?: string;
  owner?: string | null;
  visibility?: string;
  member_id?: string | null;
  member_status?: string;
  project_id?: string | null;
  [k: string]: unknown;
}

// Building blocks of the defaults, as Glance's secure-RBAC (2024.x) policies compose them.
const ADMIN = 'rule:context_is_admin';
const OWNER_MEMBER = 'role:member and project_id:%(project_id)s';
const OWNER_READER = 'role:reader and project_id:%(project_id)s';
const IMAGE_REACHABLE = "project_id:%(project_id)s or project_id:%(member_id)s or 'community':%(visibility)s or 'public':%(visibility)s or 'shared':%(visibility)s";
const ADMIN_OR_OWNER_MEMBER = `${ADMIN} or (${OWNER_MEMBER})`;
const ADMIN_OR_OWNER_READER = `${ADMIN} or (${OWNER_READER})`;
const NAMESPACE_READER = `${ADMIN} or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))`;
const METADEF_ADMIN = 'rule:metadef_admin';

/**
 * Glance's rule names with the check strings of its 2024.x defaults. An
 * operator's policy file (config.policyFile, oslo.policy syntax) replaces any
 * of them; see docs/policy.md.
 */
export const DEFAULT_RULES: Readonly<Record<string, string>> = {
  default: '',
  context_is_admin: 'role:admin',
  service_api: 'role:service or role:admin',

  add_image: `${ADMIN} or (${OWNER_MEMBER} and project_id:%(owner)s)`,
  get_image: `${ADMIN} or (role:reader and (${IMAGE_REACHABLE}))`,
  get_images: ADMIN_OR_OWNER_READER,
  modify_image: ADMIN_OR_OWNER_MEMBER,
  delete_image: ADMIN_OR_OWNER_MEMBER,
  upload_image: ADMIN_OR_OWNER_MEMBER,
  download_image: `${ADMIN} or (role:member and (${IMAGE_REACHABLE}))`,
  download_from_store: `${ADMIN} or (role:member and (${IMAGE_REACHABLE}))`,
  publicize_image: ADMIN,
  communitize_image: ADMIN_OR_OWNER_MEMBER,
  deactivate: ADMIN_OR_OWNER_MEMBER,
  reactivate: ADMIN_OR_OWNER_MEMBER,
  copy_image: ADMIN,

  get_image_location: ADMIN_OR_OWNER_READER,
  set_image_location: ADMIN_OR_OWNER_MEMBER,
  delete_image_location: ADMIN,
  add_image_location: `rule:service_api or (${OWNER_MEMBER} and project_id:%(owner)s)`,
  fetch_image_location: 'rule:service_api',

  add_member: ADMIN_OR_OWNER_MEMBER,
  delete_member: ADMIN_OR_OWNER_MEMBER,
  get_member: `${ADMIN} or (role:reader and (project_id:%(project_id)s or project_id:%(member_id)s))`,
  get_members: `${ADMIN} or (role:reader and (project_id:%(project_id)s or project_id:%(member_id)s))`,
  modify_member: `${ADMIN} or (role:member and project_id:%(member_id)s)`,

  get_task: 'rule:default',
  get_tasks: 'rule:default',
  add_task: 'rule:default',
  modify_task: 'rule:default',
  tasks_api_access: ADMIN,

  stores_info_detail: `${ADMIN} or rule:service_api`,

  manage_image_cache: ADMIN,
  cache_image: ADMIN,
  cache_list: ADMIN,
  cache_delete: ADMIN,
  cache_clean: ADMIN,
  cache_prune: ADMIN,
  list_cached_nodes: ADMIN,

  metadef_default: '',
  metadef_admin: ADMIN,
  get_metadef_namespace: NAMESPACE_READER,
  get_metadef_namespaces: ADMIN_OR_OWNER_READER,
  modify_metadef_namespace: METADEF_ADMIN,
  add_metadef_namespace: METADEF_ADMIN,
  delete_metadef_namespace: METADEF_ADMIN,
  get_metadef_object: NAMESPACE_READER,
  get_metadef_objects: NAMESPACE_READER,
  modify_metadef_object: METADEF_ADMIN,
  add_metadef_object: METADEF_ADMIN,
  delete_metadef_object: METADEF_ADMIN,
  delete_metadef_objects: METADEF_ADMIN,
  list_metadef_resource_types: NAMESPACE_READER,
  get_metadef_resource_type: NAMESPACE_READER,
  add_metadef_resource_type_association: METADEF_ADMIN,
  remove_metadef_resource_type_association: METADEF_ADMIN,
  get_metadef_property: NAMESPACE_READER,
  get_metadef_properties: NAMESPACE_READER,
  modify_metadef_property: METADEF_ADMIN,
  add_metadef_property: METADEF_ADMIN,
  remove_metadef_property: METADEF_ADMIN,
  delete_metadef_properties: METADEF_ADMIN,
  get_metadef_tag: NAMESPACE_READER,
  get_metadef_tags: NAMESPACE_READER,
  modify_metadef_tag: METADEF_ADMIN,
  add_metadef_tag: METADEF_ADMIN,
  add_metadef_tags: METADEF_ADMIN,
  delete_metadef_tag: METADEF_ADMIN,
  delete_metadef_tags: METADEF_ADMIN,
};

/** Keystone's default role hierarchy: admin implies member implies reader. */
const IMPLIED_ROLES: Record<string, string[]> = { admin: ['member', 'reader'], member: ['reader'] };

function effectiveRoles(roles: string[]): Set<string> {
  const out = new Set<string>();
  for (const r of roles) {
    const lower = r.toLowerCase();
    out.add(lower);
    for (const implied of IMPLIED_ROLES[lower] ?? []) out.add(implied);
  }
  return out;
}

/** Renders a value as oslo.policy compares it: as Python's str() would. */
function pyString(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'string' || typeof v === 'number') return String(v);
  return undefined;
}

/** `%(field)s` replaced from the target; undefined when a field is absent or null (the check then fails). */
function substitute(match: string, target: PolicyTarget): string | undefined {
  let missing = false;
  const out = match.replace(/%\(([^)]+)\)s/g, (_m, key: string) => {
    const v = pyString(target[key]);
    if (v === undefined) missing = true;
    return v ?? '';
  });
  return missing ? undefined : out;
}

/** A quoted, numeric or boolean literal on the left side of a check, as oslo.policy's literal_eval reads it. */
function literal(left: string): string | undefined {
  const q = /^'(.*)'$/.exec(left) ?? /^"(.*)"$/.exec(left);
  if (q) return q[1];
  if (/^-?\d+(\.\d+)?$/.test(left) || left === 'True' || left === 'False') return left;
  return undefined;
}

interface Creds {
  [k: string]: unknown;
}

function credentialsOf(ctx: RequestContext): Creds {
  return {
    user_id: ctx.userId,
    user: ctx.userId,
    project_id: ctx.projectId,
    tenant: ctx.projectId,
    domain_id: ctx.domainId,
    system_scope: ctx.systemScope,
    roles: [...effectiveRoles(ctx.roles)],
    service_roles: ctx.serviceRoles ?? [],
    is_admin: ctx.isAdmin,
  };
}

function readPath(creds: Creds, path: string): unknown {
  let cur: unknown = creds;
  for (const seg of path.split('.')) {
    if (typeof cur !== 'object' || cur === null || !(seg in cur)) return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

/**
 * Evaluates Glance's rules: the defaults above, overridden by an operator's
 * policy file. Rules are parsed and cross-checked once, at construction.
 */
export class Policy {
  private rules = new Map<string, Check>();
  source: Readonly<Record<string, string>>;

  constructor(overrides: Record<string, string> = {}) {
    this.source = { ...DEFAULT_RULES, ...overrides };
    this.rules = Policy.compile(this.source);
  }

  /** Swaps in new overrides (the policy file changed); on any error the current rules stay. */
  reload(overrides: Record<string, string>): void {
    const source = { ...DEFAULT_RULES, ...overrides };
    this.rules = Policy.compile(source);
    this.source = source;
  }

  private static compile(source: Record<string, string>): Map<string, Check> {
    const rules = new Map<string, Check>();
    const problems: string[] = [];
    for (const [name, text] of Object.entries(source)) {
      try {
        rules.set(name, parseRule(text));
      } catch (err) {
        problems.push(`rule "${name}": ${(err as Error).message}`);
      }
    }
    for (const [name, check] of rules) {
      for (const ref of referencedRules(check)) if (!rules.has(ref)) problems.push(`rule "${name}" refers to undefined rule "${ref}"`);
    }
    if (problems.length) throw new PolicySyntaxError(`invalid policy:\n  - ${problems.join('\n  - ')}`);
    const done = new Set<string>();
    const visit = (name: string, path: string[]): void => {
      if (path.includes(name)) throw new PolicySyntaxError(`invalid policy: rules refer to each other in a loop: ${[...path, name].join(' -> ')}`);
      if (done.has(name)) return;
      for (const ref of referencedRules(rules.get(name)!)) visit(ref, [...path, name]);
      done.add(name);
    };
    for (const name of rules.keys()) visit(name, []);
    return rules;
  }

  /** Whether `ctx` passes `rule` on `target`. Rules the code asks for but nobody defined allow admins only. */
  check(rule: string, ctx: RequestContext, target: PolicyTarget = {}): boolean {
    // Every Glance rule has scope_types ['project'] and scope is enforced (as
    // Glance with [oslo_policy] enforce_scope): system- and domain-scoped
    // tokens pass none, whatever their roles.
    if (!ctx.projectId) return false;
    const check = this.rules.get(rule);
    if (!check) return ctx.isAdmin;
    return this.evaluate(check, credentialsOf(ctx), normalize(target, ctx));
  }

  /**
   * Throws 403 when `ctx` fails `rule`. For an image target (one with an
   * `id`), a caller who may not even see the image gets 404 instead, so a
   * refusal never tells it the image exists (as Glance does).
   */
  enforce(rule: string, ctx: RequestContext, target: PolicyTarget = {}, message?: string): void {
    if (this.check(rule, ctx, target)) return;
    if (typeof target.id === 'string' && (rule === 'get_image' || !this.check('get_image', ctx, target))) {
      throw imageNotFound(target.id);
    }
    throw new Forbidden(message ?? `You are not authorized to complete ${rule} action.`);
  }

  /** Glance's `is_admin`: the caller passes `context_is_admin`. */
  isAdmin(ctx: RequestContext): boolean {
    return this.check('context_is_admin', ctx, {});
  }

  private evaluate(check: Check, creds: Creds, target: PolicyTarget): boolean {
    switch (check.kind) {
      case 'true':
        return true;
      case 'false':
        return false;
      case 'and':
        return check.items.every((c) => this.evaluate(c, creds, target));
      case 'or':
        return check.items.some((c) => this.evaluate(c, creds, target));
      case 'not':
        return !this.evaluate(check.item, creds, target);
      case 'rule':
        return this.evaluate(this.rules.get(check.name)!, creds, target);
      case 'role': {
        const role = substitute(check.match, target);
        return role !== undefined && (creds.roles as string[]).includes(role.toLowerCase());
      }
      case 'generic': {
        const match = substitute(check.match, target);
        if (match === undefined) return false;
        const lit = literal(check.left);
        if (lit !== undefined) return lit === match;
        const value = readPath(creds, check.left);
        if (Array.isArray(value)) return value.some((v) => pyString(v) === match);
        const have = pyString(value);
        return have !== undefined && have === match;
      }
    }
  }
}

/**
 * Fills in the target fields Glance derives: `project_id` is the owner; for
 * an image shared with the caller's project, `member_id` is that project.
 */
function normalize(target: PolicyTarget, ctx: RequestContext): PolicyTarget {
  const project = target.project_id === undefined && 'owner' in target;
  const member = target.member_id === undefined && typeof target.id === 'string' && target.visibility === 'shared' && ctx.projectId !== null && target.owner !== ctx.projectId;
  if (!project && !member) return target;
  // A small object over the target (rules only read fields by name) instead of a copy: an image
  // target carries every property, and one request checks several rules.
  const t: PolicyTarget = Object.create(target);
  if (project) t.project_id = target.owner;
  if (member) t.member_id = ctx.projectId;
  return t;
}

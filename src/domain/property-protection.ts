import type { RequestContext } from '../auth/context.js';
import { Forbidden } from './errors.js';
import type { Policy } from './policy.js';

/**
 * Property protections (Glance's `property_protection_file`): which callers
 * may create, read, update and delete which extra image properties. Pure:
 * the file's text is parsed here, the services ask `allows`.
 *
 * The file is INI: one section per regular expression over property names,
 * tried in file order (the first whose pattern matches anywhere in the name
 * decides; a name no section matches is refused every operation), each with
 * exactly the four operations. A value lists roles (`ruleFormat: roles`,
 * comma-separated) or names one policy rule (`policies`); `@` allows
 * everyone, `!` no one, an empty value no one.
 */

export const OPERATIONS = ['create', 'read', 'update', 'delete'] as const;
export type PropertyOperation = (typeof OPERATIONS)[number];
export type RuleFormat = 'roles' | 'policies';

export class PropertyProtectionError extends Error {}

export interface ProtectionRule {
  /** the section name, as written */
  pattern: string;
  regex: RegExp;
  /** per operation: the roles (or the one policy rule name), `@` or `!` */
  ops: Record<PropertyOperation, string[]>;
}

/**
 * Parses the file as Python's configparser reads it (sections, `key = value`
 * or `key: value`, `#` and `;` comment lines, keys case-insensitive, a
 * DEFAULT section whose keys every section inherits) and checks it as Glance
 * does at start, and more: every pattern must compile, every section must
 * name each of the four operations and no other key, `@` and `!` do not mix,
 * and a policies file names one rule per operation. Every problem is listed.
 */
export function parseProtectionFile(text: string, format: RuleFormat, opts: { ruleExists?: (name: string) => boolean } = {}): ProtectionRule[] {
  const problems: string[] = [];
  const sections: { name: string; line: number; keys: Map<string, { value: string; line: number }> }[] = [];
  const defaults = new Map<string, { value: string; line: number }>();
  let current: Map<string, { value: string; line: number }> | undefined;
  const seen = new Set<string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    if (/^\s*([#;].*)?$/.test(raw)) return;
    if (/^\s/.test(raw)) {
      problems.push(`line ${line}: indented line (continuation values are not supported): ${raw.trim()}`);
      return;
    }
    const section = /^\[(.*)\]\s*$/.exec(raw);
    if (section) {
      const name = section[1];
      if (seen.has(name)) problems.push(`line ${line}: section [${name}] appears twice`);
      seen.add(name);
      if (name === 'DEFAULT') current = defaults;
      else {
        current = new Map();
        sections.push({ name, line, keys: current });
      }
      return;
    }
    const kv = /^([^=:]+?)\s*[=:]\s*(.*?)\s*$/.exec(raw);
    if (!kv) {
      problems.push(`line ${line}: neither a [section] nor "operation = value": ${raw.trim()}`);
      return;
    }
    if (!current) {
      problems.push(`line ${line}: "${kv[1]}" comes before any [section]`);
      return;
    }
    const key = kv[1].toLowerCase();
    if (current.has(key)) problems.push(`line ${line}: "${key}" given twice in one section`);
    current.set(key, { value: kv[2], line });
  });
  for (const key of defaults.keys()) {
    if (!(OPERATIONS as readonly string[]).includes(key)) problems.push(`[DEFAULT]: unknown operation "${key}" (the operations are ${OPERATIONS.join(', ')})`);
  }

  const rules: ProtectionRule[] = [];
  for (const s of sections) {
    const where = `[${s.name}] (line ${s.line})`;
    let regex: RegExp | undefined;
    try {
      // Python's re.search: the pattern may match anywhere in the name.
      regex = new RegExp(s.name);
    } catch (err) {
      problems.push(`${where}: not a valid regular expression: ${(err as Error).message}`);
    }
    for (const key of s.keys.keys()) {
      if (!(OPERATIONS as readonly string[]).includes(key)) problems.push(`${where}: unknown operation "${key}" (the operations are ${OPERATIONS.join(', ')})`);
    }
    const ops = {} as Record<PropertyOperation, string[]>;
    for (const op of OPERATIONS) {
      const entry = s.keys.get(op) ?? defaults.get(op);
      if (!entry) {
        problems.push(`${where}: no "${op}" operation (each section lists create, read, update and delete; an empty value allows no one)`);
        continue;
      }
      const items = entry.value === '' ? [] : entry.value.split(',').map((r) => r.trim());
      if (items.some((r) => r === '')) problems.push(`${where}: "${op}" has an empty item in "${entry.value}"`);
      if (items.includes('@') && items.includes('!')) problems.push(`${where}: "${op}" mixes "@" (everyone) and "!" (no one)`);
      if (format === 'policies' && items.length > 1) {
        problems.push(`${where}: "${op}" names several policy rules (${entry.value}); name one, and combine rules in the policy file`);
      }
      if (format === 'policies' && items.length === 1 && items[0] !== '@' && items[0] !== '!' && opts.ruleExists && !opts.ruleExists(items[0])) {
        problems.push(`${where}: "${op}" names policy rule "${items[0]}", which the policy does not define`);
      }
      ops[op] = items;
    }
    if (regex) rules.push({ pattern: s.name, regex, ops });
  }
  if (problems.length) throw new PropertyProtectionError(problems.join('\n  - '));
  return rules;
}

/** Who asks, as an import task remembers its requester. */
export type Caller = Pick<RequestContext, 'roles' | 'projectId' | 'userId'> & Partial<RequestContext>;

export class PropertyProtections {
  constructor(
    private readonly rules: ProtectionRule[],
    private readonly format: RuleFormat,
    /** the policy engine, for `policies` files */
    private readonly policy?: Pick<Policy, 'check'>,
  ) {}

  /** The section deciding for `name`: the first whose pattern matches it. */
  ruleFor(name: string): ProtectionRule | undefined {
    return this.rules.find((r) => r.regex.test(name));
  }

  allows(name: string, op: PropertyOperation, who: Caller): boolean {
    if (this.rules.length === 0) return true;
    const rule = this.ruleFor(name);
    if (!rule) return false;
    const items = rule.ops[op];
    if (items.length === 0 || items.includes('!')) return false;
    if (items.includes('@')) return true;
    if (this.format === 'policies') {
      const ctx: RequestContext = { requestId: '', isAdmin: who.roles.includes('admin'), ...who };
      return this.policy?.check(items[0], ctx, {}) ?? false;
    }
    const roles = new Set([...who.roles, ...(who.serviceRoles ?? [])].map((r) => r.toLowerCase()));
    return items.some((r) => roles.has(r.toLowerCase()));
  }

  /** 403 unless `who` may `op` the property `name`. */
  enforce(name: string, op: PropertyOperation, who: Caller): void {
    if (!this.allows(name, op, who)) throw new Forbidden(`Property "${name}" is protected: you may not ${op} it.`);
  }

  /** The properties `who` may read; the others are left out, as if absent. */
  readable(properties: Record<string, string>, who: Caller): Record<string, string> {
    const out = Object.create(null) as Record<string, string>;
    for (const [k, v] of Object.entries(properties)) if (this.allows(k, 'read', who)) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    return out;
  }

  /**
   * Setting `names` on an image that has `existing`: an existing property
   * the caller can read is updated, any other created (as Glance).
   */
  enforceWrites(names: Iterable<string>, existing: Record<string, string>, who: Caller): void {
    for (const name of names) {
      const op = Object.hasOwn(existing, name) && this.allows(name, 'read', who) ? 'update' : 'create';
      this.enforce(name, op, who);
    }
  }
}

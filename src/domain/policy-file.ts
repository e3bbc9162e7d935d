import { parse as parseYaml } from 'yaml';

/**
 * The subset of oslo.policy's check-string language that Glance's policies
 * use, parsed into a tree once at start so that a request never re-parses a
 * rule and a typo in an operator's file stops the server instead of silently
 * denying (or allowing) requests.
 *
 *   check   := "@" | "!" | "role:" VALUE | "rule:" NAME | KIND ":" VALUE
 *   expr    := or ;  or := and ("or" and)* ;  and := not ("and" not)* ;
 *   not     := "not" not | "(" expr ")" | check
 *
 * KIND is a credential attribute (project_id, user_id, is_admin, roles...) or a
 * quoted literal ('public'); VALUE is a literal or `%(field)s` taken from the
 * target. An empty string allows everything, as in oslo.policy.
 */
export type Check =
  | { kind: 'true' }
  | { kind: 'false' }
  | { kind: 'role'; match: string }
  | { kind: 'rule'; name: string }
  | { kind: 'generic'; left: string; match: string }
  | { kind: 'and'; items: Check[] }
  | { kind: 'or'; items: Check[] }
  | { kind: 'not'; item: Check };

export class PolicySyntaxError extends Error {}

type Token = { t: '(' | ')' | 'and' | 'or' | 'not' } | { t: 'check'; text: string };

function tokenize(text: string): Token[] {
  const out: Token[] = [];
  for (const word of text.trim().split(/\s+/)) {
    if (word === '') continue;
    let w = word;
    let opens = 0;
    while (w.startsWith('(')) {
      opens++;
      w = w.slice(1);
    }
    let closes = 0;
    while (w.endsWith(')')) {
      closes++;
      w = w.slice(0, -1);
    }
    for (let i = 0; i < opens; i++) out.push({ t: '(' });
    if (w !== '') {
      const lower = w.toLowerCase();
      if (lower === 'and' || lower === 'or' || lower === 'not') out.push({ t: lower });
      else out.push({ t: 'check', text: w });
    }
    for (let i = 0; i < closes; i++) out.push({ t: ')' });
  }
  return out;
}

function parseCheck(text: string): Check {
  if (text === '@') return { kind: 'true' };
  if (text === '!') return { kind: 'false' };
  const colon = text.indexOf(':');
  if (colon <= 0) throw new PolicySyntaxError(`"${text}" is not a check: expected kind:value, @ or !`);
  const kind = text.slice(0, colon);
  const match = text.slice(colon + 1);
  if (kind === 'role') return { kind: 'role', match };
  if (kind === 'rule') {
    if (!match) throw new PolicySyntaxError('rule: needs a rule name');
    return { kind: 'rule', name: match };
  }
  if (kind === 'http' || kind === 'https') throw new PolicySyntaxError(`"${text}": remote (http) checks are not supported`);
  if (/%\(/.test(kind)) throw new PolicySyntaxError(`"${text}": the left side of a check cannot read the target`);
  for (const m of match.matchAll(/%\(([^)]*)\)(.)?/g)) {
    if (m[2] !== 's' || !m[1]) throw new PolicySyntaxError(`"${text}": target fields are written %(name)s`);
  }
  return { kind: 'generic', left: kind, match };
}

/** Parses one oslo.policy check string. */
export function parseRule(text: string): Check {
  const tokens = tokenize(text);
  if (tokens.length === 0) return { kind: 'true' };
  let pos = 0;
  const peek = () => tokens[pos];
  const fail = (what: string): never => {
    throw new PolicySyntaxError(`${what} in "${text}"`);
  };

  const parseOr = (): Check => {
    const items = [parseAnd()];
    while (peek()?.t === 'or') {
      pos++;
      items.push(parseAnd());
    }
    return items.length === 1 ? items[0] : { kind: 'or', items };
  };
  const parseAnd = (): Check => {
    const items = [parseNot()];
    while (peek()?.t === 'and') {
      pos++;
      items.push(parseNot());
    }
    return items.length === 1 ? items[0] : { kind: 'and', items };
  };
  const parseNot = (): Check => {
    const tok = peek();
    if (!tok) return fail('unexpected end');
    pos++;
    if (tok.t === 'not') return { kind: 'not', item: parseNot() };
    if (tok.t === '(') {
      const inner = parseOr();
      if (peek()?.t !== ')') fail('missing ")"');
      pos++;
      return inner;
    }
    if (tok.t === 'check') return parseCheck(tok.text);
    return fail(`unexpected "${tok.t}"`);
  };

  const tree = parseOr();
  if (pos !== tokens.length) {
    const tok = tokens[pos];
    fail(`unexpected "${tok.t === 'check' ? tok.text : tok.t}"`);
  }
  return tree;
}

/**
 * oslo.policy's legacy list form: a list of lists is an "or" of "and"s; an
 * empty list allows everything.
 */
function fromList(value: unknown[], name: string): string {
  if (value.length === 0) return '@';
  return value
    .map((alt) => {
      if (!Array.isArray(alt) || alt.some((c) => typeof c !== 'string')) throw new PolicySyntaxError(`rule "${name}": a list rule must be a list of lists of strings`);
      return alt.length === 0 ? '@' : `(${alt.join(' and ')})`;
    })
    .join(' or ');
}

/**
 * Reads an operator's policy file (YAML, or JSON which YAML accepts): a
 * mapping of rule name to check string. Returns the check strings; syntax is
 * checked by Policy when it compiles them.
 */
export function parsePolicyDocument(text: string, source = 'policy file'): Record<string, string> {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new PolicySyntaxError(`${source} is not valid YAML: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new PolicySyntaxError(`${source} must be a mapping of rule names to check strings`);
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(doc as Record<string, unknown>)) {
    if (typeof value === 'string') out[name] = value;
    else if (Array.isArray(value)) out[name] = fromList(value, name);
    else throw new PolicySyntaxError(`${source}: rule "${name}" must be a check string, got ${JSON.stringify(value)}`);
  }
  return out;
}

/** The rule names a check refers to with `rule:`. */
export function referencedRules(check: Check): string[] {
  switch (check.kind) {
    case 'rule':
      return [check.name];
    case 'and':
    case 'or':
      return check.items.flatMap(referencedRules);
    case 'not':
      return referencedRules(check.item);
    default:
      return [];
  }
}

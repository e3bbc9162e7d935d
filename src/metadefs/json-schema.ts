/**
 * Validates a value against the subset of JSON Schema (draft 4) that the
 * metadefs schemas use, so request bodies are checked against exactly the
 * schemas served under /v2/schemas/metadefs/*. Returns the first problem as a
 * sentence naming where it is, or undefined when the value conforms.
 */
export type JsonSchema = Record<string, any>;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function typeMatches(type: string, v: unknown): boolean {
  switch (type) {
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'array':
      return Array.isArray(v);
    case 'object':
      return isObject(v);
    case 'null':
      return v === null;
    default:
      return true;
  }
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function describe(path: string): string {
  return path === '' ? 'the request body' : `'${path}'`;
}

function resolve(schema: JsonSchema, root: JsonSchema): JsonSchema {
  let s = schema;
  for (let hops = 0; typeof s.$ref === 'string' && hops < 16; hops++) {
    const m = /^#\/definitions\/(.+)$/.exec(s.$ref);
    const target = m ? root.definitions?.[m[1]] : undefined;
    if (!target) throw new Error(`unresolvable $ref ${s.$ref}`);
    s = target;
  }
  return s;
}

export function validate(value: unknown, schema: JsonSchema, root: JsonSchema = schema, path = ''): string | undefined {
  const s = resolve(schema, root);
  for (const sub of s.allOf ?? []) {
    const problem = validate(value, sub, root, path);
    if (problem) return problem;
  }
  if (s.type !== undefined) {
    const types: string[] = Array.isArray(s.type) ? s.type : [s.type];
    if (!types.some((t) => typeMatches(t, value))) return `${describe(path)} must be of type ${types.join(' or ')}.`;
  }
  if (s.enum && !s.enum.some((e: unknown) => sameJson(e, value))) {
    return `${describe(path)} must be one of ${s.enum.map((e: unknown) => JSON.stringify(e)).join(', ')}.`;
  }
  if (typeof value === 'string') {
    const length = [...value].length;
    if (s.maxLength !== undefined && length > s.maxLength) return `${describe(path)} is longer than ${s.maxLength} characters.`;
    if (s.minLength !== undefined && length < s.minLength) return `${describe(path)} is shorter than ${s.minLength} characters.`;
  }
  if (typeof value === 'number') {
    if (s.minimum !== undefined && value < s.minimum) return `${describe(path)} must be at least ${s.minimum}.`;
    if (s.maximum !== undefined && value > s.maximum) return `${describe(path)} must be at most ${s.maximum}.`;
  }
  if (Array.isArray(value)) {
    if (s.minItems !== undefined && value.length < s.minItems) return `${describe(path)} needs at least ${s.minItems} item(s).`;
    if (s.maxItems !== undefined && value.length > s.maxItems) return `${describe(path)} allows at most ${s.maxItems} item(s).`;
    if (s.uniqueItems && new Set(value.map((v) => JSON.stringify(v))).size !== value.length) return `${describe(path)} has duplicate items.`;
    if (isObject(s.items)) {
      for (let i = 0; i < value.length; i++) {
        const problem = validate(value[i], s.items, root, `${path}[${i}]`);
        if (problem) return problem;
      }
    }
  }
  if (isObject(value)) {
    for (const key of s.required ?? []) {
      if (!(key in value)) return `${describe(path)} is missing the required attribute '${key}'.`;
    }
    const props: JsonSchema = s.properties ?? {};
    for (const [key, v] of Object.entries(value)) {
      const child = path === '' ? key : `${path}.${key}`;
      if (key in props) {
        const problem = validate(v, props[key], root, child);
        if (problem) return problem;
      } else if (s.additionalProperties === false) {
        return `${describe(path)} has an attribute '${key}' that is not allowed.`;
      } else if (isObject(s.additionalProperties)) {
        const problem = validate(v, s.additionalProperties, root, child);
        if (problem) return problem;
      }
    }
  }
  return undefined;
}

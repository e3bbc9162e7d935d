import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';

/**
 * The one JSON Schema engine for request bodies: images, members and every
 * metadefs resource are checked by ajv against the very documents
 * /v2/schemas/* serves, each compiled once when its module loads (never per
 * request). What this module adds is only the wording: ajv's first error
 * becomes a sentence in our words naming the property, the rule and the
 * value sent ("'min_ram' must be an integer ≥ 0, got -1").
 *
 * Callers bound the input first (the JSON body reader refuses bodies nested
 * deeper than MAX_JSON_DEPTH), and nothing here recurses over the value: the
 * generated validators follow the schema, whose depth is ours.
 */
export type JsonSchema = Record<string, any>;

/** Returns why `value` does not conform, as a sentence, or undefined when it does. */
export type SchemaCheck = (value: unknown) => string | undefined;

const ajv = new Ajv({
  // The first problem is what we report; stopping there keeps refusals cheap.
  allErrors: false,
  // Errors carry the offending value and its schema, for "got ..." and "an integer ≥ 0".
  verbose: true,
  // Unknown keywords are mistakes, except the annotations Glance's documents carry (below).
  strict: true,
  // Glance's documents pair `enum` with union types and put `minLength` next to `type: ["null","string"]`.
  strictTypes: false,
  strictTuples: false,
  strictRequired: false,
  // Glance declares these formats but never checks them (jsonschema without a format checker); neither do we.
  formats: { 'date-time': true, regex: true },
});
// Annotations of Glance's schema documents: the schema's name, its link templates, and "not a base property".
ajv.addVocabulary(['name', 'links', 'is_base']);

/**
 * Deepest nesting of objects and arrays a request body may have. The deepest
 * legitimate body (a metadefs namespace: objects → properties → definition →
 * items → enum) is 7 levels; 32 leaves room, and bounds every recursive step
 * after parsing (schema validation, NUL checks, JSON.stringify of answers).
 */
export const MAX_JSON_DEPTH = 32;

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * How deep `text` nests, counted by one pass over its characters (no
 * recursion, no allocation), stopping as soon as `limit` is passed. Brackets
 * inside strings do not count. The text need not be valid JSON: JSON.parse
 * judges that afterwards.
 */
export function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > limit) return true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
  }
  return false;
}

/** Compiles `schema` now; the returned check reuses the compiled code for every value. */
export function compileSchema(schema: JsonSchema, what = 'the request body'): SchemaCheck {
  const validate: ValidateFunction = ajv.compile(schema);
  return (value) => (validate(value) ? undefined : explainError(validate.errors?.[0], what));
}

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  null: 'null',
  array: 'an array',
  object: 'an object',
};

function typeWords(type: unknown): string {
  const types = Array.isArray(type) ? type : String(type).split(',');
  const words = types.map((t) => TYPE_WORDS[t] ?? t);
  return words.length === 1 ? words[0] : `${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}`;
}

/** A short, bounded picture of a value; never walks into objects or arrays. */
export function describeValue(v: unknown): string {
  if (typeof v === 'string') {
    const chars = [...v.slice(0, 61)];
    return chars.length > 60 ? `${JSON.stringify(chars.slice(0, 57).join(''))}...` : JSON.stringify(v);
  }
  if (Array.isArray(v)) return `an array of ${v.length} item${v.length === 1 ? '' : 's'}`;
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  return String(v);
}

/** `/objects/0/properties/p1` → `objects[0].properties.p1` (JSON pointer escapes decoded). */
export function propertyPath(pointer: string, extra?: string): string {
  const parts = pointer === '' ? [] : pointer.slice(1).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) parts.push(extra);
  let out = '';
  for (const p of parts) out += /^\d+$/.test(p) && out !== '' ? `[${p}]` : out === '' ? p : `.${p}`;
  return out;
}

function quoteList(values: unknown[]): string {
  return values.map((v) => JSON.stringify(v)).join(', ');
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** One ajv error in our words (the configuration's messages use it too). */
export function explainError(err: ErrorObject | undefined, what: string): string {
  if (!err) return `${what} does not conform to its schema.`;
  const params = err.params as Record<string, any>;
  const at = propertyPath(err.instancePath);
  const subject = at === '' ? what : `'${at}'`;
  const got = `got ${describeValue(err.data)}`;
  const parentType = (err.parentSchema as JsonSchema | undefined)?.type;
  const numberWord = parentType === 'integer' ? 'an integer' : 'a number';
  switch (err.keyword) {
    case 'type':
      return `${subject} must be ${typeWords(params.type)}, ${got}.`;
    case 'enum':
      return `${subject} must be one of ${quoteList(params.allowedValues ?? [])}, ${got}.`;
    case 'const':
      return `${subject} must be ${JSON.stringify(params.allowedValue)}, ${got}.`;
    case 'maxLength':
      return `${subject} must be at most ${plural(params.limit, 'character')} long, got ${[...String(err.data)].length}.`;
    case 'minLength':
      return params.limit === 1 ? `${subject} must not be empty.` : `${subject} must be at least ${plural(params.limit, 'character')} long, got ${[...String(err.data)].length}.`;
    case 'pattern':
      return `${subject} must match the pattern '${params.pattern}', ${got}.`;
    case 'minimum':
      return `${subject} must be ${numberWord} ≥ ${params.limit}, ${got}.`;
    case 'maximum':
      return `${subject} must be ${numberWord} ≤ ${params.limit}, ${got}.`;
    case 'exclusiveMinimum':
      return `${subject} must be ${numberWord} > ${params.limit}, ${got}.`;
    case 'exclusiveMaximum':
      return `${subject} must be ${numberWord} < ${params.limit}, ${got}.`;
    case 'multipleOf':
      return `${subject} must be a multiple of ${params.multipleOf}, ${got}.`;
    case 'minItems':
      return `${subject} needs at least ${plural(params.limit, 'item')}, ${got}.`;
    case 'maxItems':
      return `${subject} allows at most ${plural(params.limit, 'item')}, ${got}.`;
    case 'uniqueItems':
      return `${subject} must not repeat an item (items ${params.j} and ${params.i} are the same).`;
    case 'required':
      return `'${propertyPath(err.instancePath, params.missingProperty)}' is required${at === '' ? '' : ` in '${at}'`}.`;
    case 'additionalProperties':
      return `'${propertyPath(err.instancePath, params.additionalProperty)}' is not an attribute ${at === '' ? what : `'${at}'`} may have.`;
    case 'minProperties':
      return `${subject} needs at least ${plural(params.limit, 'attribute')}.`;
    case 'maxProperties':
      return `${subject} allows at most ${plural(params.limit, 'attribute')}.`;
    default:
      return `${subject} does not satisfy the schema's '${err.keyword}' rule, ${got}.`;
  }
}

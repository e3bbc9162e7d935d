import { compileSchema, type JsonSchema, type SchemaCheck } from '../domain/json-validator.js';

export type { JsonSchema } from '../domain/json-validator.js';

const compiled = new Map<string, SchemaCheck>();

/**
 * Checks a value against any schema document (tools and tests use it to check
 * answers against what /v2/schemas/metadefs/* serves). Compiled on first use
 * of each distinct document and kept; request paths do not come here, they
 * hold their own checks compiled at start (src/metadefs/input.ts).
 */
export function validate(value: unknown, schema: JsonSchema): string | undefined {
  const key = JSON.stringify(schema);
  let check = compiled.get(key);
  if (!check) {
    check = compileSchema(schema);
    compiled.set(key, check);
  }
  return check(value);
}

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { compileSchema, describeValue, explainError, jsonDepthExceeds, propertyPath } from '../../src/domain/json-validator.js';

describe('compileSchema: the first problem, in our words', () => {
  const check = compileSchema({
    type: 'object',
    required: ['name'],
    additionalProperties: false,
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 5 },
      size: { type: 'integer', minimum: 0, maximum: 10 },
      ratio: { type: 'number', exclusiveMinimum: 0 },
      kind: { enum: ['a', 'b'] },
      code: { type: 'string', pattern: '^[a-z]+$' },
      list: { type: 'array', minItems: 1, maxItems: 2, uniqueItems: true, items: { type: ['string', 'null'] } },
      nested: { type: 'object', properties: { 'a/b': { type: 'boolean' } } },
    },
  }, 'the widget');

  test('a conforming value: undefined', () => {
    assert.equal(check({ name: 'x', size: 0, ratio: 0.5, kind: 'a', code: 'ab', list: ['p', null], nested: { 'a/b': true } }), undefined);
  });

  test('each rule has its sentence, naming the attribute and the value sent', () => {
    const cases: [unknown, string][] = [
      [{}, "'name' is required."],
      [[], 'the widget must be an object, got an array of 0 items.'],
      [{ name: 'x', extra: 1 }, "'extra' is not an attribute the widget may have."],
      [{ name: '' }, "'name' must not be empty."],
      [{ name: 'toolong' }, "'name' must be at most 5 characters long, got 7."],
      [{ name: 'x', size: -1 }, "'size' must be an integer ≥ 0, got -1."],
      [{ name: 'x', size: 11 }, "'size' must be an integer ≤ 10, got 11."],
      [{ name: 'x', size: 1.5 }, "'size' must be an integer, got 1.5."],
      [{ name: 'x', ratio: 0 }, "'ratio' must be a number > 0, got 0."],
      [{ name: 'x', kind: 'c' }, `'kind' must be one of "a", "b", got "c".`],
      [{ name: 'x', code: 'A1' }, `'code' must match the pattern '^[a-z]+$', got "A1".`],
      [{ name: 'x', list: [] }, "'list' needs at least 1 item, got an array of 0 items."],
      [{ name: 'x', list: ['a', 'b', 'c'] }, "'list' allows at most 2 items, got an array of 3 items."],
      [{ name: 'x', list: [1] }, "'list[0]' must be a string or null, got 1."],
      [{ name: 'x', nested: { 'a/b': 'yes' } }, `'nested.a/b' must be true or false, got "yes".`],
    ];
    for (const [value, sentence] of cases) assert.equal(check(value), sentence, JSON.stringify(value));
    // ajv decides which of the two repeats it names first; the sentence names both
    assert.match(check({ name: 'x', list: ['a', 'a'] }) ?? '', /^'list' must not repeat an item \(items (0 and 1|1 and 0) are the same\)\.$/);
  });
});

describe('helpers', () => {
  test('describeValue: short and bounded, never walking into objects', () => {
    assert.equal(describeValue('abc'), '"abc"');
    assert.equal(describeValue('x'.repeat(61)), `"${'x'.repeat(57)}"...`);
    assert.equal(describeValue('x'.repeat(60)), `"${'x'.repeat(60)}"`);
    assert.equal(describeValue([1]), 'an array of 1 item');
    assert.equal(describeValue({ a: 1 }), 'an object');
    assert.equal(describeValue(null), 'null');
    assert.equal(describeValue(false), 'false');
  });

  test('propertyPath: JSON pointer to a dotted path with indexes; escapes decoded', () => {
    assert.equal(propertyPath(''), '');
    assert.equal(propertyPath('/objects/0/properties/p1'), 'objects[0].properties.p1');
    assert.equal(propertyPath('/a~1b/c~0d'), 'a/b.c~d');
    assert.equal(propertyPath('/list', 'x'), 'list.x');
    assert.equal(propertyPath('', 'name'), 'name');
  });

  test('explainError without an error still says something', () => {
    assert.equal(explainError(undefined, 'the body'), 'the body does not conform to its schema.');
  });

  test('jsonDepthExceeds counts nesting outside strings, escapes included', () => {
    assert.equal(jsonDepthExceeds('[[[]]]', 3), false);
    assert.equal(jsonDepthExceeds('[[[[]]]]', 3), true);
    assert.equal(jsonDepthExceeds('{"a":{"b":[1]}}', 3), false);
    assert.equal(jsonDepthExceeds('["[[[[[[", "\\"[[[[["]', 1), false);
    assert.equal(jsonDepthExceeds('[][][][]', 1), false);
    assert.equal(jsonDepthExceeds('not json at all', 0), false);
  });
});

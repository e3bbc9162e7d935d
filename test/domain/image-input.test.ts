import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { throwsWith } from '../support/throws.js';
import { checkImageFields, checkLimits, checkNotReserved, checkPropertyName, checkTag, checkValue, codePoints, isUuid, parseCreateBody, storable } from '../../src/domain/image-input.js';
import { BadRequest, Forbidden, PayloadTooLarge } from '../../src/domain/errors.js';


describe('strings', () => {
  test('isUuid: with or without dashes, any case; nothing else', () => {
    assert.equal(isUuid('0f3c3a3e-6f5b-4b5e-9d6a-1c2b3d4e5f60'), true);
    assert.equal(isUuid('0F3C3A3E6F5B4B5E9D6A1C2B3D4E5F60'), true);
    assert.equal(isUuid('0f3c3a3e-6f5b-4b5e-9d6a-1c2b3d4e5f6'), false);
    assert.equal(isUuid('not-a-uuid'), false);
    assert.equal(isUuid(' 0f3c3a3e-6f5b-4b5e-9d6a-1c2b3d4e5f60'), false);
  });

  test('storable: no NUL, no unpaired surrogate; paired surrogates are fine', () => {
    assert.equal(storable('plain é ✓'), true);
    assert.equal(storable('emoji \uD83D\uDE00'), true);
    assert.equal(storable('a\u0000b'), false);
    assert.equal(storable('lone high \uD83D'), false);
    assert.equal(storable('\uDE00 lone low'), false);
  });

  test('codePoints counts code points, not UTF-16 units', () => {
    assert.equal(codePoints('abc'), 3);
    assert.equal(codePoints('\uD83D\uDE00'), 1);
    assert.equal(codePoints(''), 0);
  });
});

describe('attribute checks', () => {
  test('the served schema and the storage bounds: 400 naming the attribute and the rule', () => {
    throwsWith(() => checkImageFields({ min_ram: -1 }), BadRequest, 400, /^Invalid image: 'min_ram' must be an integer ≥ 0, got -1\.$/);
    throwsWith(() => checkImageFields({ min_disk: 2 ** 31 }), BadRequest, 400, /'min_disk' must be an integer ≤ 2147483647/);
    throwsWith(() => checkImageFields({ name: 'n'.repeat(256) }), BadRequest, 400, /'name' must be at most 255 characters long, got 256/);
    throwsWith(() => checkImageFields({ disk_format: 'floppy' }), BadRequest, 400, /'disk_format' must be one of/);
    throwsWith(() => checkImageFields({ protected: 'yes' }), BadRequest, 400, /'protected' must be true or false/);
    throwsWith(() => checkImageFields({ extra: 'x'.repeat(65536) }), BadRequest, 400, /'extra' must be at most 65535 characters/);
    assert.doesNotThrow(() => checkImageFields({ name: null, min_ram: 0, extra: 'x'.repeat(65535), tags: ['a'] }));
  });

  test('characters are checked after the schema, unless the caller says they were', () => {
    throwsWith(() => checkImageFields({ name: 'a\u0000' }), BadRequest, 400, /Invalid value for 'name': it contains a NUL/);
    throwsWith(() => checkImageFields({ tags: ['ok', 'b\uD800'] }), BadRequest, 400, /Invalid value for 'tags'/);
    assert.doesNotThrow(() => checkImageFields({ name: 'a\u0000' }, { charactersChecked: true }));
  });

  test('checkValue returns tags without repeats and other values as they are', () => {
    assert.deepEqual(checkValue('tags', ['b', 'a', 'b']), ['b', 'a']);
    assert.equal(checkValue('name', 'x'), 'x');
    throwsWith(() => checkValue('min_ram', 'lots'), BadRequest, 400, /'min_ram' must be an integer/);
  });

  test('checkTag: at most 255 characters, storable', () => {
    assert.equal(checkTag('t'.repeat(255)), 't'.repeat(255));
    throwsWith(() => checkTag('t'.repeat(256)), BadRequest, 400, /^Invalid tag: /);
    throwsWith(() => checkTag('a\u0000'), BadRequest, 400, /Invalid tag: it contains a NUL/);
  });

  test('property names: not empty, at most 255 code points, storable', () => {
    assert.doesNotThrow(() => checkPropertyName('\uD83D\uDE00'.repeat(255)));
    throwsWith(() => checkPropertyName(''), BadRequest, 400, /cannot be empty/);
    throwsWith(() => checkPropertyName('p'.repeat(256)), BadRequest, 400, /at most 255 characters/);
    throwsWith(() => checkPropertyName('p\u0000'), BadRequest, 400, /NUL character/);
  });

  test('reserved names and the os_glance_ prefix are 403', () => {
    for (const k of ['location', 'deleted', 'deleted_at', 'os_glance_anything']) throwsWith(() => checkNotReserved(k), Forbidden, 403, new RegExp(`Attribute '${k}' is reserved`));
    assert.doesNotThrow(() => checkNotReserved('os_glance'));
    assert.doesNotThrow(() => checkNotReserved('os_distro'));
  });

  test('checkLimits: at the limit is fine, one past it is 413 naming the limit and the count', () => {
    assert.doesNotThrow(() => checkLimits(3, 2, { maxProperties: 3, maxTags: 2 }));
    throwsWith(() => checkLimits(4, 0, { maxProperties: 3, maxTags: 2 }), PayloadTooLarge, 413, /at most 3 extra properties, this request would give it 4/);
    throwsWith(() => checkLimits(0, 3, { maxProperties: 3, maxTags: 2 }), PayloadTooLarge, 413, /at most 2 tags, this request would give it 3/);
  });
});

describe('parseCreateBody', () => {
  test('splits base attributes, extra properties and tags (de-duplicated)', () => {
    const id = '0f3c3a3e-6f5b-4b5e-9d6a-1c2b3d4e5f60';
    const r = parseCreateBody({ id, name: 'n', visibility: 'private', min_ram: 1, owner: null, tags: ['a', 'a', 'b'], os_distro: 'debian', extra: 'e' });
    assert.equal(r.id, id);
    assert.deepEqual(r.base, { id, name: 'n', visibility: 'private', min_ram: 1, owner: null });
    assert.deepEqual({ ...r.properties }, { os_distro: 'debian', extra: 'e' });
    assert.deepEqual(r.tags, ['a', 'b']);
  });

  test('a custom property given as null is simply not set', () => {
    assert.deepEqual({ ...parseCreateBody({ kernel_id: null }).properties }, {});
  });

  test('a property called __proto__ is an own property, not the prototype', () => {
    const r = parseCreateBody(JSON.parse('{"__proto__": "x"}'));
    assert.equal(Object.getOwnPropertyDescriptor(r.properties, '__proto__')?.value, 'x');
  });

  test('the body must be a JSON object', () => {
    throwsWith(() => parseCreateBody(undefined), BadRequest, 400, /Body expected/);
    for (const b of [null, [], 'x', 3]) throwsWith(() => parseCreateBody(b), BadRequest, 400, /must be a JSON object/);
  });

  test("Glance's order: server links 403 before the schema's 400, schema before names, reserved before read-only", () => {
    throwsWith(() => parseCreateBody({ self: '/x', min_ram: 'bad' }), Forbidden, 403, /Attribute 'self' is read-only/);
    throwsWith(() => parseCreateBody({ min_ram: 'bad', deleted: 'x' }), BadRequest, 400, /'min_ram'/);
    throwsWith(() => parseCreateBody({ deleted: 'x' }), Forbidden, 403, /Attribute 'deleted' is reserved/);
    throwsWith(() => parseCreateBody({ os_glance_x: 'y' }), Forbidden, 403, /is reserved/);
    throwsWith(() => parseCreateBody({ size: 3 }), Forbidden, 403, /Attribute 'size' is read-only/);
    throwsWith(() => parseCreateBody({ locations: [] }), Forbidden, 403, /Attribute 'locations' is reserved/);
    throwsWith(() => parseCreateBody({ id: 'not-a-uuid' }), BadRequest, 400, /'id' must match the pattern/);
  });
});

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { throwsWith } from '../support/throws.js';
import { applyPatch, parsePatch, patchDraft, type PatchRules, type PatchState } from '../../src/domain/patch.js';
import { BadRequest, Conflict, Forbidden, ImagoError } from '../../src/domain/errors.js';


const V21 = 'application/openstack-images-v2.1-json-patch';

describe('patchDraft: the media type picks the JSON-patch draft', () => {
  test('v2.1 is draft 10, v2.0 is draft 4; parameters and case do not matter', () => {
    assert.equal(patchDraft(V21), 10);
    assert.equal(patchDraft('application/openstack-images-v2.0-json-patch'), 4);
    assert.equal(patchDraft(`${V21.toUpperCase()}; charset=utf-8`), 10);
    assert.equal(patchDraft([V21, 'text/plain']), 10);
  });

  test('anything else is 415 with Accept-Patch listing both', () => {
    for (const ct of ['application/json', undefined, '', 'application/json-patch+json']) {
      assert.throws(() => patchDraft(ct), (e: unknown) => {
        assert.ok(e instanceof ImagoError);
        assert.equal(e.status, 415);
        assert.match(e.message, /expects Content-Type one of/);
        assert.equal(e.headers['accept-patch'], 'application/openstack-images-v2.0-json-patch, application/openstack-images-v2.1-json-patch');
        return true;
      });
    }
  });
});

describe('parsePatch: syntax and per-attribute rules', () => {
  test('draft 10: op/path/value objects; paths are decoded JSON pointers', () => {
    assert.deepEqual(parsePatch([
      { op: 'replace', path: '/name', value: 'n' },
      { op: 'add', path: '/a~1b~0c', value: 'x' },
      { op: 'remove', path: '/foo' },
    ], 10), [
      { op: 'replace', path: 'name', value: 'n' },
      { op: 'add', path: 'a/b~c', value: 'x' },
      { op: 'remove', path: 'foo' },
    ]);
  });

  test('draft 4: the op is the member name holding the path', () => {
    assert.deepEqual(parsePatch([{ replace: '/min_ram', value: 512 }, { remove: '/foo' }], 4), [
      { op: 'replace', path: 'min_ram', value: 512 },
      { op: 'remove', path: 'foo' },
    ]);
    throwsWith(() => parsePatch([{ add: '/a', replace: '/a', value: 'x' }], 4), BadRequest, 400, /only one member/);
    throwsWith(() => parsePatch([{ path: '/a', value: 'x' }], 4), BadRequest, 400, /exactly one member/);
  });

  test('tags are de-duplicated as they are parsed', () => {
    assert.deepEqual(parsePatch([{ op: 'replace', path: '/tags', value: ['a', 'b', 'a'] }], 10), [{ op: 'replace', path: 'tags', value: ['a', 'b'] }]);
  });

  test('the body must be an array of objects', () => {
    throwsWith(() => parsePatch(undefined, 10), BadRequest, 400, /Body expected/);
    throwsWith(() => parsePatch({ op: 'add' }, 10), BadRequest, 400, /JSON array of operation objects/);
    throwsWith(() => parsePatch(['x'], 10), BadRequest, 400, /Operations must be JSON objects/);
    throwsWith(() => parsePatch([[]], 10), BadRequest, 400, /Operations must be JSON objects/);
  });

  test('draft 10: missing or unknown op, missing path, missing value', () => {
    throwsWith(() => parsePatch([{ path: '/name', value: 'x' }], 10), BadRequest, 400, /Unable to find `op`/);
    throwsWith(() => parsePatch([{ op: 'move', path: '/name', value: 'x' }], 10), BadRequest, 400, /Invalid operation: `move`/);
    throwsWith(() => parsePatch([{ op: 'add', value: 'x' }], 10), BadRequest, 400, /Unable to find 'path'/);
    throwsWith(() => parsePatch([{ op: 'add', path: '/name' }], 10), BadRequest, 400, /requires a member named "value"/);
  });

  test('bad pointers: not a string, no leading slash, adjacent or trailing slashes, bad escapes, too deep', () => {
    throwsWith(() => parsePatch([{ op: 'remove', path: 3 }], 10), BadRequest, 400, /must be a JSON pointer string/);
    throwsWith(() => parsePatch([{ op: 'remove', path: 'name' }], 10), BadRequest, 400, /does not start with "\/"/);
    throwsWith(() => parsePatch([{ op: 'remove', path: '/a//b' }], 10), BadRequest, 400, /adjacent "\/"/);
    throwsWith(() => parsePatch([{ op: 'remove', path: '/a/' }], 10), BadRequest, 400, /ends with "\/"/);
    throwsWith(() => parsePatch([{ op: 'remove', path: '/a~2' }], 10), BadRequest, 400, /recognized escape sequence/);
    throwsWith(() => parsePatch([{ op: 'remove', path: '/a~' }], 10), BadRequest, 400, /recognized escape sequence/);
    throwsWith(() => parsePatch([{ op: 'remove', path: '/a/b' }], 10), BadRequest, 400, /Invalid JSON pointer for this resource: '\/a\/b'/);
  });

  test('read-only attributes are 403, reserved names are 403; /locations changes are parsed for the locations API', () => {
    for (const attr of ['status', 'checksum', 'size', 'id', 'os_hash_value', 'stores', 'created_at']) {
      throwsWith(() => parsePatch([{ op: 'replace', path: `/${attr}`, value: 'x' }], 10), Forbidden, 403, new RegExp(`Attribute '${attr}' is read-only`));
    }
    for (const name of ['deleted', 'location', 'os_glance_import_task']) {
      throwsWith(() => parsePatch([{ op: 'add', path: `/${name}`, value: 'x' }], 10), Forbidden, 403, new RegExp(`Attribute '${name}' is reserved`));
    }
    for (const name of ['imago_received_bytes']) {
      throwsWith(() => parsePatch([{ op: 'add', path: `/${name}`, value: '1' }], 10), Forbidden, 403, new RegExp(`Attribute '${name}' is reserved`));
    }
    // whether locations may change is the locations service's decision (locations.showMultiple, policies)
    assert.deepEqual(parsePatch([{ op: 'replace', path: '/locations', value: [] }], 10), [{ op: 'replace', path: 'locations', value: [] }]);
    assert.deepEqual(parsePatch([{ op: 'add', path: '/locations/-', value: { url: 'http://a/b', metadata: { k: 'v' } } }], 10), [{ op: 'add', path: 'locations', position: '-', value: { url: 'http://a/b', metadata: { k: 'v' } } }]);
    assert.deepEqual(parsePatch([{ op: 'remove', path: '/locations/1' }], 10), [{ op: 'remove', path: 'locations', position: '1' }]);
    throwsWith(() => parsePatch([{ op: 'replace', path: '/locations', value: {} }], 10), BadRequest, 400, /JSON array of locations/);
    throwsWith(() => parsePatch([{ op: 'add', path: '/locations/-', value: { url: 'http://a/b' } }], 10), BadRequest, 400, /'metadata' must be a JSON object/);
    throwsWith(() => parsePatch([{ op: 'add', path: '/locations', value: { url: 'http://a/b', metadata: {} } }], 10), BadRequest, 400, /Invalid JSON pointer/);
  });

  test('values are checked against the image schema: 400 naming the attribute', () => {
    throwsWith(() => parsePatch([{ op: 'replace', path: '/min_ram', value: -1 }], 10), BadRequest, 400, /'min_ram'/);
    throwsWith(() => parsePatch([{ op: 'replace', path: '/visibility', value: 'everyone' }], 10), BadRequest, 400, /'visibility'/);
    throwsWith(() => parsePatch([{ op: 'add', path: '/prop', value: 5 }], 10), BadRequest, 400, /'prop'/);
    throwsWith(() => parsePatch([{ op: 'add', path: '/prop', value: 'a\u0000b' }], 10), BadRequest, 400, /NUL/);
  });

  test('property names: empty or longer than 255 characters is 400', () => {
    throwsWith(() => parsePatch([{ op: 'add', path: '/', value: 'x' }], 10), BadRequest, 400, /cannot be empty/);
    throwsWith(() => parsePatch([{ op: 'add', path: `/${'p'.repeat(256)}`, value: 'x' }], 10), BadRequest, 400, /at most 255 characters/);
    assert.equal(parsePatch([{ op: 'add', path: `/${'p'.repeat(255)}`, value: 'x' }], 10).length, 1);
  });
});

describe('applyPatch: changes applied in order to a copy', () => {
  const state = (): PatchState => ({ base: { name: 'old', min_ram: 0 }, properties: { foo: 'bar' }, tags: ['t1'] });
  const rules = (over: Partial<PatchRules> = {}): PatchRules => ({ draft: 10, isAdmin: false, status: 'queued', checkVisibility: () => {}, ...over });
  const apply = (changes: unknown[], r: Partial<PatchRules> = {}, s = state()) => applyPatch(s, parsePatch(changes, r.draft ?? 10), rules(r));

  test('add, replace and remove of properties, base attributes and tags; the input is untouched', () => {
    const before = state();
    const next = applyPatch(before, parsePatch([
      { op: 'add', path: '/new', value: 'v' },
      { op: 'replace', path: '/foo', value: 'baz' },
      { op: 'replace', path: '/name', value: 'fresh' },
      { op: 'add', path: '/tags', value: ['x', 'y'] },
    ], 10), rules());
    assert.deepEqual(next.base, { name: 'fresh', min_ram: 0 });
    assert.deepEqual({ ...next.properties }, { foo: 'baz', new: 'v' });
    assert.deepEqual(next.tags, ['x', 'y']);
    assert.deepEqual(before, state());
    assert.deepEqual({ ...apply([{ op: 'remove', path: '/foo' }]).properties }, {});
  });

  test('later changes see earlier ones', () => {
    const next = apply([{ op: 'add', path: '/p', value: '1' }, { op: 'replace', path: '/p', value: '2' }, { op: 'remove', path: '/foo' }]);
    assert.deepEqual({ ...next.properties }, { p: '2' });
  });

  test('removing a property that does not exist, or a base attribute, is refused', () => {
    throwsWith(() => apply([{ op: 'remove', path: '/nope' }]), Conflict, 409, /Property nope does not exist/);
    throwsWith(() => apply([{ op: 'remove', path: '/name' }]), Forbidden, 403, /Property name may not be removed/);
  });

  test('replacing a property that does not exist is 409; adding one replaces it (draft 10) or is 409 (draft 4)', () => {
    throwsWith(() => apply([{ op: 'replace', path: '/nope', value: 'x' }]), Conflict, 409, /Property nope does not exist/);
    assert.equal(apply([{ op: 'add', path: '/foo', value: 'again' }]).properties.foo, 'again');
    throwsWith(() => apply([{ add: '/foo', value: 'again' }], { draft: 4 }), Conflict, 409, /Property foo already present/);
    throwsWith(() => apply([{ add: '/name', value: 'again' }], { draft: 4 }), Conflict, 409, /Property name already present/);
  });

  test('owner changes only for admins', () => {
    throwsWith(() => apply([{ op: 'replace', path: '/owner', value: 'p2' }]), Forbidden, 403, /Owner can't be updated by non admin/);
    assert.equal(apply([{ op: 'replace', path: '/owner', value: 'p2' }], { isAdmin: true }).base.owner, 'p2');
  });

  test('disk and container formats change only while queued or importing', () => {
    assert.equal(apply([{ op: 'replace', path: '/disk_format', value: 'raw' }], { status: 'importing' }).base.disk_format, 'raw');
    throwsWith(() => apply([{ op: 'replace', path: '/container_format', value: 'bare' }], { status: 'active' }), Forbidden, 403, /only replaced for a queued image \(this image is active\)/);
  });

  test('each requested visibility goes through the policy hook, whose refusal stands', () => {
    const seen: string[] = [];
    apply([{ op: 'replace', path: '/visibility', value: 'shared' }], { checkVisibility: (v) => seen.push(v) });
    assert.deepEqual(seen, ['shared']);
    const refuse = () => {
      throw new Forbidden('no publicizing');
    };
    throwsWith(() => apply([{ op: 'replace', path: '/visibility', value: 'public' }], { checkVisibility: refuse }), Forbidden, 403, /no publicizing/);
  });

  test('a custom property set to null goes away', () => {
    const s = state();
    s.properties.kernel_id = 'abc';
    assert.equal('kernel_id' in apply([{ op: 'replace', path: '/kernel_id', value: null }], {}, s).properties, false);
  });

  test('a property named __proto__ is an ordinary property', () => {
    const next = apply([{ op: 'add', path: '/__proto__', value: 'x' }]);
    assert.equal(Object.getOwnPropertyDescriptor(next.properties, '__proto__')?.value, 'x');
    assert.equal(Object.getPrototypeOf(next.base), Object.prototype);
  });
});

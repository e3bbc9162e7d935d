import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { throwsWith } from '../support/throws.js';
import { checkLocationChange, checkLocationValue, digestsToSet, locationIndex, sameLocation } from '../../src/domain/locations.js';
import { digestMismatch, expectedDigest, expectedFromHeaders, expectedFromProperties } from '../../src/domain/expected-digests.js';
import { BadRequest, Conflict, Forbidden } from '../../src/domain/errors.js';

const queued = { status: 'queued', checksum: null, osHashAlgo: null, osHashValue: null };
const sha = 'ab'.repeat(64);

describe('locations: the rules of JSON-patch on /locations', () => {
  test('a location value: url and metadata required, validation_data a pair, nothing else', () => {
    assert.deepEqual(checkLocationValue({ url: 'http://a/b', metadata: {} }), { url: 'http://a/b', metadata: {} });
    throwsWith(() => checkLocationValue({ url: '', metadata: {} }), BadRequest, 400, /'url'/);
    throwsWith(() => checkLocationValue({ url: 'x'.repeat(256), metadata: {} }), BadRequest, 400, /'url'/);
    throwsWith(() => checkLocationValue({ url: 'http://a', metadata: [] }), BadRequest, 400, /'metadata'/);
    throwsWith(() => checkLocationValue({ url: 'http://a', metadata: {}, other: 1 }), BadRequest, 400, /no attribute 'other'/);
    throwsWith(() => checkLocationValue({ url: 'http://a', metadata: {}, validation_data: { checksum: '1'.repeat(32) } }), BadRequest, 400, /both os_hash_algo and os_hash_value/);
  });

  test('positions: "-" or an index; an insert may name the end, a removal an existing entry only', () => {
    assert.equal(locationIndex('-', 2, true), 2);
    assert.equal(locationIndex('0', 2, true), 0);
    assert.equal(locationIndex('2', 2, true), 2);
    assert.equal(locationIndex('-', 2, false), 1);
    throwsWith(() => locationIndex('3', 2, true), BadRequest, 400, /Invalid position/);
    throwsWith(() => locationIndex('2', 2, false), BadRequest, 400, /Invalid position/);
    throwsWith(() => locationIndex('x', 2, true), BadRequest, 400, /Invalid position/);
  });

  test('statuses: add/replace on queued or active (409 else); remove on active, never the last (403)', () => {
    checkLocationChange('add', 'queued', 0);
    checkLocationChange('replace', 'active', 1);
    throwsWith(() => checkLocationChange('add', 'saving', 0), Conflict, 409, /queued or active/);
    throwsWith(() => checkLocationChange('remove', 'queued', 2), Conflict, 409, /active image/);
    throwsWith(() => checkLocationChange('remove', 'active', 1), Forbidden, 403, /last location/);
  });

  test('validation_data: taken as given on a queued image; equal values pass; others 409', () => {
    const vd = { checksum: '1'.repeat(32), os_hash_algo: 'sha512', os_hash_value: sha };
    assert.deepEqual(digestsToSet(queued, [{ url: 'u', metadata: {}, validation_data: vd }]), vd);
    const active = { status: 'active', checksum: vd.checksum, osHashAlgo: 'sha512', osHashValue: sha };
    assert.deepEqual(digestsToSet(active, [{ url: 'u', metadata: {}, validation_data: vd }]), {});
    throwsWith(() => digestsToSet(active, [{ url: 'u', metadata: {}, validation_data: { ...vd, checksum: '2'.repeat(32) } }]), Conflict, 409, /already/);
    throwsWith(() => digestsToSet(queued, [{ url: 'u', metadata: {}, validation_data: { ...vd, os_hash_algo: 'sha256' } }]), Conflict, 409, /sha512/);
    throwsWith(() => digestsToSet(queued, [{ url: 'u', metadata: {}, validation_data: { ...vd, checksum: 'zz' } }]), Conflict, 409, /md5 digest/);
    throwsWith(() => digestsToSet(queued, [{ url: 'a', metadata: {}, validation_data: vd }, { url: 'b', metadata: {}, validation_data: { ...vd, os_hash_value: 'cd'.repeat(64) } }]), Conflict, 409, /two different values/);
  });

  test('a duplicate is the same URL with the same metadata, key order aside', () => {
    assert.ok(sameLocation({ url: 'u', metadata: { a: 1, b: 2 } }, { url: 'u', metadata: { b: 2, a: 1 } }));
    assert.ok(!sameLocation({ url: 'u', metadata: { a: 1 } }, { url: 'u', metadata: {} }));
    assert.ok(!sameLocation({ url: 'u', metadata: {} }, { url: 'u#new', metadata: {} }));
  });
});

describe('expected digests: what a client declares for its bytes', () => {
  test('owner_specified properties: non-empty ones count, lowercased; empty means absent', () => {
    assert.deepEqual(expectedFromProperties({ 'owner_specified.openstack.md5': 'ABC', 'owner_specified.openstack.sha256': '' }), [{ algo: 'md5', value: 'abc', source: 'property owner_specified.openstack.md5' }]);
    assert.deepEqual(expectedFromProperties({ 'owner_specified.shade.sha256': 'f'.repeat(64) }).map((e) => e.algo), ['sha256']);
  });

  test('headers and expected_digest: malformed values are 400 at once', () => {
    assert.deepEqual(expectedFromHeaders({ 'x-image-meta-expected-sha512': sha.toUpperCase() }), [{ algo: 'sha512', value: sha, source: 'Header X-Image-Meta-Expected-Sha512' }]);
    throwsWith(() => expectedFromHeaders({ 'x-image-meta-expected-md5': 'abc' }), BadRequest, 400, /32 hexadecimal digits/);
    throwsWith(() => expectedFromHeaders({ 'x-image-meta-expected-md5': ['a', 'b'] }), BadRequest, 400, /only once/);
    throwsWith(() => expectedDigest('crc32', '00', "'expected_digest'"), BadRequest, 400, /unknown digest algorithm/);
  });

  test('a mismatch names the source and both digests; a digest not computed is not judged', () => {
    const e = [{ algo: 'md5' as const, value: 'a'.repeat(32), source: 'property owner_specified.openstack.md5' }];
    assert.equal(digestMismatch(e, { md5: 'a'.repeat(32) }), undefined);
    assert.match(digestMismatch(e, { md5: 'b'.repeat(32) })!, /owner_specified\.openstack\.md5.*expected a{32}, received b{32}/);
    assert.equal(digestMismatch([{ algo: 'sha256', value: 'c'.repeat(64), source: 's' }], { md5: 'x' }), undefined);
  });
});

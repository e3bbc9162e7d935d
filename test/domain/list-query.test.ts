import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_LIMIT, MAX_LIMIT, parseImageListQuery, parseIsoTime, splitList, type Query } from '../../src/domain/list-query.js';
import { BadRequest } from '../../src/domain/errors.js';

const parse = (q: Query) => parseImageListQuery(q);

function refused(q: Query, fragment: RegExp): void {
  assert.throws(() => parse(q), (e: unknown) => {
    assert.ok(e instanceof BadRequest, `a BadRequest, got ${String(e)}`);
    assert.equal(e.status, 400);
    assert.match(e.message, fragment);
    return true;
  });
}

describe('defaults', () => {
  test('an empty query: default limit, accepted members, newest first with id as tie-breaker', () => {
    assert.deepEqual(parse({}), {
      conditions: [], tags: [], visibility: undefined, osHidden: false, memberStatus: 'accepted',
      sort: [{ key: 'created_at', dir: 'desc' }, { key: 'id', dir: 'desc' }], limit: DEFAULT_LIMIT, marker: undefined,
    });
  });
});

describe('limit and marker', () => {
  test('limit is an integer, capped at the maximum; 0 is allowed', () => {
    assert.equal(parse({ limit: '5' }).limit, 5);
    assert.equal(parse({ limit: ' 7 ' }).limit, 7);
    assert.equal(parse({ limit: '0' }).limit, 0);
    assert.equal(parse({ limit: String(MAX_LIMIT + 1) }).limit, MAX_LIMIT);
    assert.equal(parse({ limit: ['3', '9'] }).limit, 3, 'the first of repeated limits');
  });

  test('a limit that is not an integer, or negative, is 400', () => {
    refused({ limit: 'ten' }, /limit param must be an integer, got "ten"/);
    refused({ limit: '1.5' }, /must be an integer/);
    refused({ limit: '-1' }, /limit param must be positive/);
  });

  test('marker passes through as given', () => {
    assert.equal(parse({ marker: 'abc' }).marker, 'abc');
  });
});

describe('sort', () => {
  test('sort=key:dir,... ; a key without a direction is descending; tie-breakers follow', () => {
    assert.deepEqual(parse({ sort: 'name:asc,size' }).sort, [
      { key: 'name', dir: 'asc' }, { key: 'size', dir: 'desc' }, { key: 'created_at', dir: 'desc' }, { key: 'id', dir: 'desc' },
    ]);
  });

  test('sort_key/sort_dir: one direction applies to every key and to the tie-breakers', () => {
    assert.deepEqual(parse({ sort_key: ['name', 'id'], sort_dir: 'asc' }).sort, [
      { key: 'name', dir: 'asc' }, { key: 'id', dir: 'asc' }, { key: 'created_at', dir: 'asc' },
    ]);
    assert.deepEqual(parse({ sort_key: ['name', 'size'], sort_dir: ['asc', 'desc'] }).sort.slice(0, 2), [
      { key: 'name', dir: 'asc' }, { key: 'size', dir: 'desc' },
    ]);
  });

  test('unknown keys, unknown directions, mixed syntaxes and mismatched counts are 400', () => {
    refused({ sort: 'owner' }, /Invalid sort key: owner/);
    refused({ sort_key: 'nope' }, /Invalid sort key: nope/);
    refused({ sort: 'name:up' }, /Invalid sort direction: up/);
    refused({ sort_dir: 'sideways' }, /Invalid sort direction: sideways/);
    refused({ sort: 'name', sort_key: 'id' }, /cannot be combined/);
    refused({ sort_key: ['name', 'size', 'id'], sort_dir: ['asc', 'desc'] }, /Number of sort dirs does not match/);
  });
});

describe('filters', () => {
  test('listable attributes: plain, eq: and in: lists (quoted items may hold commas)', () => {
    assert.deepEqual(parse({ name: 'debian' }).conditions, [{ field: 'name', op: 'eq', values: ['debian'] }]);
    assert.deepEqual(parse({ name: 'eq:debian' }).conditions, [{ field: 'name', op: 'eq', values: ['debian'] }]);
    assert.deepEqual(parse({ status: 'in:active,queued' }).conditions, [{ field: 'status', op: 'in', values: ['active', 'queued'] }]);
    assert.deepEqual(parse({ name: 'in:"a,b",c' }).conditions, [{ field: 'name', op: 'in', values: ['a,b', 'c'] }]);
  });

  test('a prefix that is no operator is part of the value; a known one the attribute does not take is 400', () => {
    assert.deepEqual(parse({ name: 'debian:12' }).conditions, [{ field: 'name', op: 'eq', values: ['debian:12'] }]);
    refused({ name: 'gt:a' }, /unknown operator 'gt'/);
  });

  test('times: operators with ISO 8601 instants normalised to UTC; in: and bad times are 400', () => {
    assert.deepEqual(parse({ created_at: 'gt:2024-01-31T12:00:00+01:00' }).conditions, [{ field: 'created_at', op: 'gt', values: ['2024-01-31T11:00:00'] }]);
    assert.deepEqual(parse({ updated_at: '2024-01-31' }).conditions, [{ field: 'updated_at', op: 'eq', values: ['2024-01-31T00:00:00'] }]);
    refused({ updated_at: 'in:2024-01-01' }, /unknown operator/);
    refused({ created_at: 'lt:yesterday' }, /Bad "created_at" query filter format "yesterday"/);
  });

  test('ranges: _min is gte and _max is lte on integer attributes only', () => {
    assert.deepEqual(parse({ size_min: '10', size_max: '20' }).conditions, [
      { field: 'size', op: 'gte', values: ['10'] }, { field: 'size', op: 'lte', values: ['20'] },
    ]);
    refused({ size_min: 'big' }, /non-numeric value/);
    refused({ name_max: '3' }, /Unable to filter on a range of name/);
  });

  test('integer columns want integers; other columns and extra properties match exactly', () => {
    assert.deepEqual(parse({ min_ram: '+512' }).conditions, [{ field: 'min_ram', op: 'eq', values: ['512'] }]);
    refused({ min_disk: 'x' }, /Invalid value "x" for min_disk/);
    assert.deepEqual(parse({ owner: 'p1' }).conditions, [{ field: 'owner', op: 'eq', values: ['p1'] }]);
    assert.deepEqual(parse({ hw_disk_bus: 'in:ide' }).conditions, [{ field: 'prop:hw_disk_bus', op: 'eq', values: ['in:ide'] }]);
  });

  test('repeated filters must all hold; deleted_at matches nothing', () => {
    assert.deepEqual(parse({ name: ['a', 'b'] }).conditions.map((c) => c.values[0]), ['a', 'b']);
    assert.deepEqual(parse({ deleted_at: 'x' }).conditions, [{ field: 'id', op: 'in', values: [] }]);
  });

  test('protected and os_hidden are true/false; anything else is 400', () => {
    assert.deepEqual(parse({ protected: 'true' }).conditions, [{ field: 'protected', op: 'eq', values: ['1'] }]);
    assert.equal(parse({ os_hidden: 'TRUE' }).osHidden, true);
    refused({ protected: 'yes' }, /Invalid value 'yes' for 'protected' filter/);
    refused({ os_hidden: '1' }, /for 'os_hidden' filter/);
  });

  test('visibility, member_status, tags; changes-since is gone', () => {
    assert.equal(parse({ visibility: ['public', 'shared'] }).visibility, 'shared', 'the last one counts');
    assert.equal(parse({ member_status: 'all' }).memberStatus, 'all');
    assert.deepEqual(parse({ tag: [' a ', 'b'] }).tags, ['a', 'b']);
    refused({ visibility: 'everyone' }, /Invalid visibility value: everyone/);
    refused({ member_status: 'maybe' }, /Invalid status: maybe/);
    refused({ 'changes-since': '2024-01-01' }, /no longer available/);
  });

  test('a NUL or an unpaired surrogate in a key or a value is 400', () => {
    refused({ name: 'a\u0000' }, /NUL character or an unpaired surrogate/);
    refused({ ['x\uD800']: 'v' }, /NUL character or an unpaired surrogate/);
  });
});

describe('splitList and parseIsoTime', () => {
  test('splitList: quotes group, escaped quotes stay, empty items are kept', () => {
    assert.deepEqual(splitList('a,b'), ['a', 'b']);
    assert.deepEqual(splitList('"a,b",c'), ['a,b', 'c']);
    assert.deepEqual(splitList('a,,b'), ['a', '', 'b']);
    assert.throws(() => splitList('a"b"'), /no comma before opening quotation mark/);
    assert.throws(() => splitList('"a"b'), /no comma after closing quotation mark/);
    assert.throws(() => splitList('"a'), /quote is not closed/);
  });

  test('parseIsoTime: dates, times, fractions and offsets; impossible dates are undefined', () => {
    assert.equal(parseIsoTime('2024-02-29T23:59:59Z'), '2024-02-29T23:59:59');
    assert.equal(parseIsoTime('20240229T2359'), '2024-02-29T23:59:00');
    assert.equal(parseIsoTime('2024-01-01T00:00:00.25-02:30'), '2024-01-01T02:30:00.250');
    assert.equal(parseIsoTime('2023-02-29'), undefined);
    assert.equal(parseIsoTime('2024-01-01T24:00'), undefined);
    assert.equal(parseIsoTime('2024-01-01T00:00+24:00'), undefined);
    assert.equal(parseIsoTime('soon'), undefined);
  });
});

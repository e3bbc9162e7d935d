import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseProtectionFile, PropertyProtectionError, PropertyProtections } from '../../src/domain/property-protection.js';
import { Forbidden } from '../../src/domain/errors.js';
import { Policy } from '../../src/domain/policy.js';

const who = (roles: string[], projectId = 'p1') => ({ roles, projectId, userId: 'u' });

const ROLES = `
# comments and blank lines are skipped
[^x_.*]
create = admin,member,_member_
read = admin,member,_member_
update = admin,member,_member_
delete = admin,member,_member_

[.*]
create = admin
read = admin
update = admin
delete = admin
`;

test('roles: the first section whose pattern matches decides; roles compared case-insensitively', () => {
  const p = new PropertyProtections(parseProtectionFile(ROLES, 'roles'), 'roles');
  assert.equal(p.ruleFor('x_billing')!.pattern, '^x_.*');
  assert.equal(p.ruleFor('os_distro')!.pattern, '.*');
  for (const op of ['create', 'read', 'update', 'delete'] as const) {
    assert.equal(p.allows('x_billing', op, who(['member'])), true);
    assert.equal(p.allows('x_billing', op, who(['Member'])), true);
    assert.equal(p.allows('x_billing', op, who(['reader'])), false);
    assert.equal(p.allows('os_distro', op, who(['member', 'reader'])), false);
    assert.equal(p.allows('os_distro', op, who(['admin'])), true);
  }
  assert.throws(() => p.enforce('os_distro', 'update', who(['member'])), (e: Error) => e instanceof Forbidden && /os_distro.*update/.test(e.message));
  assert.deepEqual({ ...p.readable({ x_a: '1', os_distro: 'd' }, who(['member'])) }, { x_a: '1' });
});

test('@ allows everyone, ! and an empty value no one; a name no section matches is refused', () => {
  const rules = parseProtectionFile('[^pub_]\ncreate = @\nread = @\nupdate = !\ndelete =\n', 'roles');
  const p = new PropertyProtections(rules, 'roles');
  assert.equal(p.allows('pub_x', 'create', who([])), true);
  assert.equal(p.allows('pub_x', 'read', who([])), true);
  assert.equal(p.allows('pub_x', 'update', who(['admin'])), false);
  assert.equal(p.allows('pub_x', 'delete', who(['admin'])), false);
  assert.equal(p.allows('other', 'read', who(['admin'])), false);
});

test('updating an existing readable property is an update; anything else a create', () => {
  const p = new PropertyProtections(parseProtectionFile('[^a$]\ncreate = !\nread = @\nupdate = @\ndelete = @\n[^b$]\ncreate = @\nread = !\nupdate = !\ndelete = !\n', 'roles'), 'roles');
  p.enforceWrites(['a'], { a: '1' }, who([])); // update: allowed
  assert.throws(() => p.enforceWrites(['a'], {}, who([])), /you may not create/);
  p.enforceWrites(['b'], { b: '1' }, who([])); // unreadable: a create, allowed
});

test('policies: each operation names one rule of the policy, evaluated for the caller', () => {
  const text = '[^x_.*]\ncreate = default\nread = default\nupdate = default\ndelete = default\n[.*]\ncreate = context_is_admin\nread = context_is_admin\nupdate = context_is_admin\ndelete = context_is_admin\n';
  const policy = new Policy();
  const p = new PropertyProtections(parseProtectionFile(text, 'policies', { ruleExists: (n) => Object.hasOwn(policy.source, n) }), 'policies', policy);
  assert.equal(p.allows('x_a', 'read', who(['reader'])), true);
  assert.equal(p.allows('os_a', 'read', who(['member', 'reader'])), false);
  assert.equal(p.allows('os_a', 'read', who(['admin'])), true);
});

test('a bad file is refused with every problem listed', () => {
  const bad = '[(unclosed]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n[^y]\ncreate = admin\nread = admin\nupdate = admin\nremove = admin\n[^z]\ncreate = @,!\nread = @\nupdate = @\ndelete = @\ngarbage line\n';
  assert.throws(() => parseProtectionFile(bad, 'roles'), (e: Error) => {
    assert.ok(e instanceof PropertyProtectionError);
    assert.match(e.message, /\[\(unclosed\].*not a valid regular expression/);
    assert.match(e.message, /\[\^y\].*unknown operation "remove"/);
    assert.match(e.message, /\[\^y\].*no "delete" operation/);
    assert.match(e.message, /mixes "@" \(everyone\) and "!"/);
    assert.match(e.message, /line 16: neither a \[section\]/);
    return true;
  });
  assert.throws(() => parseProtectionFile('[a]\ncreate = r1,r2\nread = r1\nupdate = r1\ndelete = r1\n', 'policies'), /several policy rules/);
  assert.throws(() => parseProtectionFile('[a]\ncreate = nope\nread = @\nupdate = @\ndelete = @\n', 'policies', { ruleExists: () => false }), /policy rule "nope", which the policy does not define/);
  assert.throws(() => parseProtectionFile('create = admin\n', 'roles'), /before any \[section\]/);
});

test('[DEFAULT] gives every section the operations it does not name (configparser)', () => {
  const p = new PropertyProtections(parseProtectionFile('[DEFAULT]\nread = @\nupdate = admin\ndelete = admin\n[^x_]\ncreate = member\n', 'roles'), 'roles');
  assert.equal(p.allows('x_a', 'create', who(['member'])), true);
  assert.equal(p.allows('x_a', 'read', who([])), true);
  assert.equal(p.allows('x_a', 'update', who(['member'])), false);
});

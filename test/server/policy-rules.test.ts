import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Policy, DEFAULT_RULES } from '../../src/domain/policy.js';
import { parseRule, parsePolicyDocument, PolicySyntaxError } from '../../src/domain/policy-file.js';
import { toContext } from '../../src/auth/context.js';
import { NotFound, Forbidden } from '../../src/domain/errors.js';

const ctx = (projectId: string | null, roles: string[], extra: Record<string, unknown> = {}) => ({ ...toContext({ userId: 'u1', projectId, roles }, 'req-1'), ...extra });

test('parser: precedence, parentheses, not, literals', () => {
  assert.deepEqual(parseRule(''), { kind: 'true' });
  assert.deepEqual(parseRule('@'), { kind: 'true' });
  assert.deepEqual(parseRule('!'), { kind: 'false' });
  // "a or b and c" is "a or (b and c)"
  const t = parseRule('role:a or role:b and role:c');
  assert.equal(t.kind, 'or');
  assert.equal((t as any).items[1].kind, 'and');
  const n = parseRule('not role:a and (role:b or rule:x)');
  assert.equal(n.kind, 'and');
  assert.equal((n as any).items[0].kind, 'not');
  assert.equal((n as any).items[1].kind, 'or');
  assert.deepEqual(parseRule("'public':%(visibility)s"), { kind: 'generic', left: "'public'", match: '%(visibility)s' });
  assert.deepEqual(parseRule('((role:admin))'), { kind: 'role', match: 'admin' });
  assert.deepEqual(parseRule('role:admin AND role:member'), { kind: 'and', items: [{ kind: 'role', match: 'admin' }, { kind: 'role', match: 'member' }] });
});

test('parser: refuses what it cannot evaluate safely', () => {
  for (const bad of ['role:a or', '(role:a', 'role:a)', 'and role:a', 'nonsense', 'http://example.com/check', 'project_id:%(owner)', '%(x)s:1', 'rule:', 'role:a role:b']) {
    assert.throws(() => parseRule(bad), PolicySyntaxError, bad);
  }
});

test('policy document: yaml strings, legacy lists, errors', () => {
  assert.deepEqual(parsePolicyDocument('a: "role:x"\nb: ""\n'), { a: 'role:x', b: '' });
  assert.deepEqual(parsePolicyDocument('{"a": [["role:x", "role:y"], ["role:z"]], "b": []}'), { a: '(role:x and role:y) or (role:z)', b: '@' });
  assert.deepEqual(parsePolicyDocument(''), {});
  assert.throws(() => parsePolicyDocument('- a\n- b\n'), PolicySyntaxError);
  assert.throws(() => parsePolicyDocument('a: 3\n'), PolicySyntaxError);
  assert.throws(() => parsePolicyDocument('a: [b\n'), PolicySyntaxError);
});

test('policy: undefined references and loops are refused at construction', () => {
  assert.throws(() => new Policy({ get_image: 'rule:nope' }), /undefined rule "nope"/);
  assert.throws(() => new Policy({ a: 'rule:b', b: 'rule:a' }), /loop/);
  assert.throws(() => new Policy({ get_image: 'role:' + 'x or' }), /get_image/);
  assert.ok(new Policy({ mine: 'role:x', get_image: 'rule:mine' }));
});

test('defaults: every default parses and every reference resolves', () => {
  const p = new Policy();
  assert.ok(Object.keys(DEFAULT_RULES).length > 50);
  assert.ok(p);
});

test('defaults: image rules follow Glance secure RBAC', () => {
  const p = new Policy();
  const admin = ctx('admin', ['admin']);
  const member = ctx('p1', ['member', 'reader']);
  const reader = ctx('p1', ['reader']);
  const other = ctx('p2', ['member', 'reader']);
  const own = { id: 'i', owner: 'p1', visibility: 'private' };
  const pub = { id: 'i', owner: 'p1', visibility: 'public' };
  assert.equal(p.check('get_image', reader, own), true);
  assert.equal(p.check('download_image', reader, own), false, 'readers do not download');
  assert.equal(p.check('download_image', member, own), true);
  assert.equal(p.check('download_image', other, pub), true);
  assert.equal(p.check('modify_image', other, pub), false);
  assert.equal(p.check('modify_image', admin, pub), true);
  assert.equal(p.check('publicize_image', member, own), false);
  assert.equal(p.check('communitize_image', member, own), true);
  assert.equal(p.check('add_image', member, { owner: 'p1', visibility: 'shared' }), true);
  assert.equal(p.check('add_image', member, { owner: 'p2', visibility: 'shared' }), false);
  assert.equal(p.check('add_image', reader, { owner: 'p1', visibility: 'shared' }), false);
  // admin implies member implies reader, as Keystone's default role tree
  assert.equal(p.check('get_images', ctx('p1', ['member']), {}), false, 'no project in target');
  assert.equal(p.check('get_images', ctx('p1', ['member']), { project_id: 'p1' }), true);
  // a shared image seen by a member project: member_id is the caller's project
  const shared = { id: 'i', owner: 'p1', visibility: 'shared' };
  assert.equal(p.check('modify_member', other, shared), true);
  assert.equal(p.check('modify_member', member, shared), false, 'the owner cannot accept for its members');
  assert.equal(p.check('get_members', ctx('p2', ['reader']), shared), true);
  assert.equal(p.check('add_member', other, shared), false);
  assert.equal(p.check('tasks_api_access', member, {}), false);
  assert.equal(p.check('get_task', member, {}), true);
  assert.equal(p.check('some_rule_nobody_defined', member, {}), false);
  assert.equal(p.check('some_rule_nobody_defined', admin, {}), true);
});

test('overrides: generic checks, literals, is_admin, target fields, not', () => {
  const p = new Policy({
    context_is_admin: 'role:cloud_admin',
    get_image: "not 'secret':%(classification)s or rule:context_is_admin",
    modify_image: 'user_id:%(created_by)s',
    delete_image: 'is_admin:True',
    upload_image: 'project_id:%(owner)s and not role:reader_only',
    deactivate: '@',
    reactivate: '!',
  });
  const cloudAdmin = ctx('x', ['cloud_admin']);
  const m = ctx('p1', ['member']);
  assert.equal(p.isAdmin(cloudAdmin), true);
  assert.equal(p.isAdmin(ctx('x', ['admin'])), false);
  assert.equal(p.check('get_image', m, { classification: 'secret' }), false);
  assert.equal(p.check('get_image', m, { classification: 'open' }), true);
  assert.equal(p.check('get_image', m, {}), true, 'a missing field fails the inner check');
  assert.equal(p.check('get_image', cloudAdmin, { classification: 'secret' }), true);
  assert.equal(p.check('modify_image', m, { created_by: 'u1' }), true);
  assert.equal(p.check('modify_image', m, { created_by: 'u2' }), false);
  assert.equal(p.check('modify_image', m, { created_by: null }), false);
  assert.equal(p.check('delete_image', { ...m, isAdmin: true }, {}), true);
  assert.equal(p.check('delete_image', m, {}), false);
  assert.equal(p.check('upload_image', m, { owner: 'p1' }), true);
  assert.equal(p.check('upload_image', ctx('p1', ['member', 'Reader_Only']), { owner: 'p1' }), false, 'roles compare case-insensitively');
  assert.equal(p.check('deactivate', m, {}), true);
  assert.equal(p.check('reactivate', cloudAdmin, {}), false);
});

test('enforce: 404 for image targets the caller may not see, 403 otherwise', () => {
  const p = new Policy();
  const other = ctx('p2', ['member', 'reader']);
  const noRoles = ctx('p2', []);
  const img = { id: 'abc', owner: 'p1', visibility: 'public' };
  assert.throws(() => p.enforce('modify_image', other, img), Forbidden);
  assert.throws(() => p.enforce('modify_image', noRoles, img), NotFound);
  assert.throws(() => p.enforce('get_image', noRoles, img), NotFound);
  assert.throws(() => p.enforce('tasks_api_access', other, {}), Forbidden);
});

test('docs/policy.md lists every default rule as the code has it', async () => {
  const { readFileSync } = await import('node:fs');
  const { renderPolicyDoc, POLICY_DOC } = await import('../policy-doc.js');
  const doc = readFileSync(POLICY_DOC, 'utf8');
  assert.equal(doc, renderPolicyDoc(doc), 'docs/policy.md is stale: run `npx tsx test/policy-doc.ts`');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canSee } from '../../src/domain/visibility.js';
import type { Image, Visibility } from '../../src/domain/image.js';
import type { RequestContext } from '../../src/auth/context.js';

const image = (visibility: Visibility, owner: string | null = 'owner-p'): Image => ({
  id: '0f3c3a3e-6f5b-4b5e-9d6a-1c2b3d4e5f60', name: 'i', status: 'active', visibility, protected: false, osHidden: false,
  diskFormat: null, containerFormat: null, size: null, virtualSize: null, checksum: null, osHashAlgo: null, osHashValue: null,
  minDisk: 0, minRam: 0, owner, createdAt: '', updatedAt: '', tags: [], properties: {}, locations: [], writerId: null,
});
const ctx = (projectId: string | null, isAdmin = false): RequestContext => ({ requestId: 'r', userId: 'u', projectId, roles: [], isAdmin });

test('public and community images are seen by everyone, a project-less caller included', () => {
  for (const v of ['public', 'community'] as const) {
    assert.equal(canSee(image(v), ctx('stranger'), undefined), true);
    assert.equal(canSee(image(v), ctx(null), undefined), true);
  }
});

test('private images: the owner and admins only', () => {
  assert.equal(canSee(image('private'), ctx('owner-p'), undefined), true);
  assert.equal(canSee(image('private'), ctx('stranger'), undefined), false);
  assert.equal(canSee(image('private'), ctx('stranger', true), undefined), true);
  // membership does not open a private image
  assert.equal(canSee(image('private'), ctx('stranger'), 'accepted'), false);
});

test('shared images: the owner, and members whatever their status', () => {
  assert.equal(canSee(image('shared'), ctx('owner-p'), undefined), true);
  for (const m of ['pending', 'accepted', 'rejected'] as const) assert.equal(canSee(image('shared'), ctx('member-p'), m), true);
  assert.equal(canSee(image('shared'), ctx('stranger'), undefined), false);
});

test('an image without owner is not owned by a caller without project', () => {
  assert.equal(canSee(image('private', null), ctx(null), undefined), false);
  assert.equal(canSee(image('shared', null), ctx(null), undefined), false);
});

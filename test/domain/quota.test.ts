import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GROWTH_STEP, MiB, QUOTA_NAMES, limitInUnits, limitsFor, nextReservation, noRoomLeft, overLimit, reportedUsage } from '../../src/domain/quota.js';
import { PayloadTooLarge } from '../../src/domain/errors.js';

describe('quota arithmetic', () => {
  test("Glance's four limit names", () => {
    assert.deepEqual([...QUOTA_NAMES], ['image_size_total', 'image_stage_total', 'image_count_total', 'image_count_uploading']);
  });

  test('limitsFor: a project override replaces only the limits it names', () => {
    const defaults = { image_size_total: 10, image_stage_total: 5, image_count_total: 100, image_count_uploading: -1 };
    assert.deepEqual(limitsFor(defaults, { p1: { image_size_total: 1 } }, 'p1'), { ...defaults, image_size_total: 1 });
    assert.deepEqual(limitsFor(defaults, { p1: { image_size_total: 1 } }, 'p2'), defaults);
  });

  test('limitInUnits: sizes are MiB turned into bytes, counts stay counts, negative is unlimited', () => {
    assert.equal(limitInUnits('image_size_total', 3), 3 * MiB);
    assert.equal(limitInUnits('image_stage_total', 0), 0);
    assert.equal(limitInUnits('image_count_total', 3), 3);
    assert.equal(limitInUnits('image_count_uploading', -1), Infinity);
    assert.equal(limitInUnits('image_size_total', -1), Infinity);
  });

  test('reportedUsage: bytes shown in whole MiB, rounded down; counts as they are', () => {
    assert.equal(reportedUsage('image_size_total', MiB - 1), 0);
    assert.equal(reportedUsage('image_size_total', MiB), 1);
    assert.equal(reportedUsage('image_stage_total', 5 * MiB + 1), 5);
    assert.equal(reportedUsage('image_count_total', 7), 7);
  });

  test('nextReservation: a step of headroom while there is plenty, exactly the need near the limit, nothing past it', () => {
    assert.equal(nextReservation(10, 10 + 2 * GROWTH_STEP), 10 + GROWTH_STEP);
    assert.equal(nextReservation(10, 10 + 2 * GROWTH_STEP - 1), 10);
    assert.equal(nextReservation(10, 10), 10);
    assert.equal(nextReservation(0, 0), 0);
    assert.equal(nextReservation(11, 10), undefined);
    assert.equal(nextReservation(1, Infinity), 1 + GROWTH_STEP);
  });
});

describe('the 413 messages', () => {
  test('overLimit on a size names the limit, the usage and the request in readable units', () => {
    const e = overLimit('p1', 'image_size_total', 1, 512 * 1024, MiB, 'this upload');
    assert.ok(e instanceof PayloadTooLarge);
    assert.equal(e.status, 413);
    assert.equal(e.message, 'Project p1 is over its image_size_total quota: the limit is 1 MiB, 512 KiB are in use, and this upload needs 1 MiB more.');
  });

  test('overLimit on a count speaks of images, singular or plural', () => {
    assert.equal(overLimit('p2', 'image_count_total', 1, 1, 1, 'this image').message,
      'Project p2 is over its image_count_total quota: the limit is 1 image and 1 exists already; this image would make 2.');
    assert.equal(overLimit('p2', 'image_count_uploading', 2, 2, 1, 'this upload').message,
      'Project p2 is over its image_count_uploading quota: the limit is 2 images and 2 exist already; this upload would make 3.');
  });

  test('sizes: bytes below 1 KiB, one decimal otherwise, 0 as MiB', () => {
    assert.match(overLimit('p', 'image_stage_total', 0, 0, 1, 'x').message, /the limit is 0 MiB, 0 MiB are in use, and x needs 1 byte more/);
    assert.match(overLimit('p', 'image_stage_total', 2, 1536, 1.5 * MiB, 'x').message, /1\.5 KiB are in use, and x needs 1\.5 MiB more/);
  });

  test('noRoomLeft names what was left, never less than nothing', () => {
    assert.equal(noRoomLeft('p1', 'image_size_total', 2, MiB, 'this upload').message,
      'Project p1 is over its image_size_total quota: the limit is 2 MiB, 1 MiB are in use, and this upload is larger than the 1 MiB left.');
    assert.match(noRoomLeft('p1', 'image_stage_total', 1, 3 * MiB, 'this stage').message, /larger than the 0 MiB left/);
  });
});

import type { QuotaLimits } from '../config.js';
import { PayloadTooLarge } from './errors.js';

/**
 * Glance's unified-limit names. Sizes are limited in MiB, as Glance and
 * Keystone registered limits count them; counts are numbers of images.
 * A limit of -1 means unlimited.
 */
export const QUOTA_NAMES = ['image_size_total', 'image_stage_total', 'image_count_total', 'image_count_uploading'] as const;
export type QuotaName = (typeof QUOTA_NAMES)[number];
export type ByteQuota = 'image_size_total' | 'image_stage_total';

export const MiB = 1024 * 1024;

/** The limits of one project: the configured defaults with that project's overrides. */
export function limitsFor(defaults: QuotaLimits, overrides: Record<string, Partial<QuotaLimits>>, project: string): QuotaLimits {
  return { ...defaults, ...(overrides[project] ?? {}) };
}

/** A limit in the unit usage is measured in (bytes for sizes); Infinity when unlimited. */
export function limitInUnits(name: QuotaName, limit: number): number {
  if (limit < 0) return Infinity;
  return name === 'image_size_total' || name === 'image_stage_total' ? limit * MiB : limit;
}

/** Usage as Glance reports it: sizes in whole MiB (rounded down), counts as they are. */
export function reportedUsage(name: QuotaName, usage: number): number {
  return name === 'image_size_total' || name === 'image_stage_total' ? Math.floor(usage / MiB) : usage;
}

const isCount = (name: QuotaName) => name === 'image_count_total' || name === 'image_count_uploading';
const oneDecimal = (x: number) => x.toFixed(1).replace(/\.0$/, '');

function show(name: QuotaName, n: number): string {
  if (isCount(name)) return `${n} image${n === 1 ? '' : 's'}`;
  if (n >= MiB || n === 0) return `${oneDecimal(n / MiB)} MiB`;
  return n >= 1024 ? `${oneDecimal(n / 1024)} KiB` : `${n} byte${n === 1 ? '' : 's'}`;
}

/** The 413 of a refused request, naming the limit, the usage and what was asked for. */
export function overLimit(project: string, name: QuotaName, limit: number, usage: number, delta: number, what: string): PayloadTooLarge {
  const head = `Project ${project} is over its ${name} quota: the limit is ${show(name, limitInUnits(name, limit))}`;
  if (isCount(name)) {
    return new PayloadTooLarge(`${head} and ${usage} ${usage === 1 ? 'exists' : 'exist'} already; ${what} would make ${usage + delta}.`);
  }
  return new PayloadTooLarge(`${head}, ${show(name, usage)} are in use, and ${what} needs ${show(name, delta)} more.`);
}

/** The 413 of a write that passed the room its owner had left (known only as a cap, not a size). */
export function noRoomLeft(project: string, name: ByteQuota, limit: number, usage: number, what: string): PayloadTooLarge {
  const left = Math.max(0, limitInUnits(name, limit) - usage);
  return new PayloadTooLarge(
    `Project ${project} is over its ${name} quota: the limit is ${show(name, limitInUnits(name, limit))}, ${show(name, usage)} are in use, ` +
      `and ${what} is larger than the ${show(name, left)} left.`,
  );
}

/** Bytes a writer asks for at a time when it does not know its size: fewer round trips, little hoarding. */
export const GROWTH_STEP = 16 * MiB;

/**
 * How much a writer that has streamed `need` bytes should hold, given the
 * `available` bytes nobody else holds: a step of headroom while there is
 * plenty, exactly `need` near the limit (so concurrent writers are not
 * refused for room another one merely hoards), undefined when `need` does
 * not fit.
 */
export function nextReservation(need: number, available: number): number | undefined {
  if (need > available) return undefined;
  const spare = available - need;
  return spare >= 2 * GROWTH_STEP ? need + GROWTH_STEP : need;
}

/** A writer admitted against its owner's quotas. */
export interface QuotaLease {
  /**
   * Charges the writer's bytes so far (`total`, a running count) to the lease:
   * undefined when they fit what is held (no work per chunk but a compare),
   * otherwise a promise that settles once the lease grew, or rejects with the
   * 413 past the limit. Called by the one metering stage (stores/metered-stream.ts).
   */
  charge(total: number): Promise<void> | undefined;
  /** Forgets the reservation (it stops counting anyway once the writer is gone). */
  release(): Promise<void>;
}

export interface WriterAdmission {
  /** the project charged: the image's owner */
  owner: string | null;
  imageId: string;
  /** the writer claim (images.writer_id) the reservation lives with */
  writerId: string;
  /** where the bytes go: a store (image_size_total) or the staging area (image_stage_total) */
  resource: ByteQuota;
  /** bytes known in advance (Content-Length, staged size × stores); reserved at once */
  bytes?: number;
  /** words for the 413, e.g. "this upload" */
  what?: string;
}

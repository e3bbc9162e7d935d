const MiB = 1024 * 1024;

/** S3's own limits: the largest part and the largest object. */
export const S3_MAX_PART_SIZE = 5 * 1024 * MiB;
export const S3_MAX_OBJECT_SIZE = 5 * 1024 * 1024 * MiB;

export interface PartSizing {
  /** the part size wanted, bytes */
  partSize: number;
  /** the smallest part the service accepts (all but the last), bytes */
  minPartSize: number;
  /** the most parts one upload may have */
  maxParts: number;
}

/**
 * The size of every part of one multipart upload. Parts start at `base`
 * bytes and double after every `group` parts (never above S3's 5 GiB), so an
 * upload of unknown length can still reach 5 TiB within `maxParts` while the
 * common case, an image far below that, keeps small parts and little memory.
 */
export class PartPlan {
  constructor(
    readonly base: number,
    readonly group: number,
    readonly maxParts: number,
  ) {}

  /** bytes of part `n` (1-based) */
  sizeOf(n: number): number {
    const doublings = Math.floor((n - 1) / this.group);
    return doublings >= 30 ? S3_MAX_PART_SIZE : Math.min(S3_MAX_PART_SIZE, this.base * 2 ** doublings);
  }

  /** the most bytes the plan can carry within maxParts */
  capacity(): number {
    return capacityOf(this.base, this.group, this.maxParts);
  }
}

function capacityOf(base: number, group: number, maxParts: number): number {
  let total = 0;
  for (let first = 1, k = 0; first <= maxParts; first += group, k++) {
    const parts = Math.min(group, maxParts - first + 1);
    total += parts * (k >= 30 ? S3_MAX_PART_SIZE : Math.min(S3_MAX_PART_SIZE, base * 2 ** k));
  }
  return total;
}

/**
 * Plans an upload. With the size known, parts are as large as needed for the
 * whole object to fit in maxParts (at least `partSize`) and stay that size
 * for every expected part; they grow only if the source runs past what it
 * announced. With the size unknown, parts grow as late as still lets 5 TiB
 * fit.
 */
export function planParts(sizing: PartSizing, expectedSize?: number): PartPlan {
  const floor = Math.max(sizing.partSize, sizing.minPartSize);
  if (expectedSize !== undefined && expectedSize >= 0) {
    const needed = Math.ceil(expectedSize / sizing.maxParts / MiB) * MiB;
    const base = Math.min(S3_MAX_PART_SIZE, Math.max(floor, needed));
    const group = Math.max(1, Math.ceil(expectedSize / base));
    return new PartPlan(base, group, sizing.maxParts);
  }
  // The largest group (latest growth) whose capacity still reaches the S3 maximum.
  let lo = 1;
  let hi = sizing.maxParts;
  if (capacityOf(floor, hi, sizing.maxParts) >= S3_MAX_OBJECT_SIZE) return new PartPlan(floor, hi, sizing.maxParts);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (capacityOf(floor, mid, sizing.maxParts) >= S3_MAX_OBJECT_SIZE) lo = mid;
    else hi = mid - 1;
  }
  return new PartPlan(floor, lo, sizing.maxParts);
}

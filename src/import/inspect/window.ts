/**
 * Bounded retention of stream bytes: a fixed-size prefix, a rolling tail (ring buffer)
 * and a handful of budgeted captures at offsets discovered while parsing.
 */

import type { Capture, FinalView } from './types.js';

/** Bytes kept from the end of the stream (VHD footer: 512; VMDK stream footer: 1536 + sector rounding). */
export const TAIL_BYTES = 4096;

class CaptureRegion implements Capture {
  readonly data: Buffer;
  private filled = 0;
  private wasMissed = false;

  constructor(
    readonly offset: number,
    readonly length: number,
    missed = false,
  ) {
    this.data = Buffer.alloc(missed ? 0 : length);
    this.wasMissed = missed;
  }

  get complete(): boolean {
    return !this.wasMissed && this.filled === this.length;
  }

  get missed(): boolean {
    return this.wasMissed;
  }

  /** Offset of the first byte the region still lacks. */
  get nextNeeded(): number {
    return this.offset + this.filled;
  }

  markMissed(): void {
    this.wasMissed = true;
  }

  get pending(): boolean {
    return !this.wasMissed && this.filled < this.length;
  }

  /** Offers a contiguous piece of the stream that starts at stream offset `at`. */
  feed(src: Buffer, at: number): void {
    if (!this.pending) return;
    const need = this.offset + this.filled;
    if (at + src.length <= need) return; // entirely before what we still need
    if (at > need) {
      // A gap: the stream moved past bytes we needed without us seeing them.
      this.wasMissed = true;
      return;
    }
    const start = need - at;
    const n = Math.min(src.length - start, this.length - this.filled);
    src.copy(this.data, this.filled, start, start + n);
    this.filled += n;
  }
}

export class ByteWindow implements FinalView {
  private readonly prefix: Buffer;
  private prefixLen = 0;
  private readonly tail = Buffer.alloc(TAIL_BYTES);
  /** Next write position in the tail ring. */
  private tailPos = 0;
  private count = 0;
  private captures: CaptureRegion[] = [];
  private captureBytes = 0;
  /** The chunk currently being absorbed, so captures requested mid-push can see it. */
  private current: { chunk: Buffer; at: number } | null = null;
  private total: number | null = null;

  constructor(
    maxPrefix: number,
    private readonly captureBudget: number,
  ) {
    this.prefix = Buffer.alloc(maxPrefix);
  }

  get received(): number {
    return this.count;
  }

  get prefixLength(): number {
    return this.prefixLen;
  }

  get totalSize(): number {
    if (this.total === null) throw new Error('totalSize is only known after finish()');
    return this.total;
  }

  /** Bytes currently held in memory on behalf of this inspection. */
  get retainedBytes(): number {
    return this.prefix.length + this.tail.length + this.captureBytes;
  }

  absorb(chunk: Buffer): void {
    const at = this.count;
    if (this.prefixLen < this.prefix.length) {
      const n = Math.min(chunk.length, this.prefix.length - this.prefixLen);
      chunk.copy(this.prefix, this.prefixLen, 0, n);
      this.prefixLen += n;
    }
    this.writeTail(chunk);
    for (const c of this.captures) c.feed(chunk, at);
    this.count += chunk.length;
    this.current = { chunk, at };
  }

  /** Ends the window of the chunk just absorbed (captures requested later cannot see it). */
  settle(): void {
    this.current = null;
    // Drop finished or missed captures from the hot list; probes keep their handles.
    this.captures = this.captures.filter((c) => c.pending);
  }

  close(totalSize: number): void {
    this.current = null;
    this.total = totalSize;
  }

  private writeTail(chunk: Buffer): void {
    if (chunk.length >= TAIL_BYTES) {
      chunk.copy(this.tail, 0, chunk.length - TAIL_BYTES);
      this.tailPos = 0;
      return;
    }
    const first = Math.min(chunk.length, TAIL_BYTES - this.tailPos);
    chunk.copy(this.tail, this.tailPos, 0, first);
    if (first < chunk.length) chunk.copy(this.tail, 0, first);
    this.tailPos = (this.tailPos + chunk.length) % TAIL_BYTES;
  }

  bytes(offset: number, length: number): Buffer | null {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) return null;
    const end = offset + length;
    if (end <= this.prefixLen) return this.prefix.subarray(offset, end);
    const tailLen = Math.min(this.count, TAIL_BYTES);
    const tailStart = this.count - tailLen;
    if (offset >= tailStart && end <= this.count) {
      // Linearise the ring: the oldest byte sits at tailPos once the ring is full.
      const out = Buffer.alloc(length);
      const ringStart = tailLen < TAIL_BYTES ? 0 : this.tailPos;
      for (let i = 0; i < length; i++) {
        out[i] = this.tail[(ringStart + (offset - tailStart) + i) % TAIL_BYTES]!;
      }
      return out;
    }
    return null;
  }

  capture(offset: number, length: number): Capture {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0) {
      return new CaptureRegion(0, 0, true);
    }
    if (this.captureBytes + length > this.captureBudget) return new CaptureRegion(offset, length, true);
    const region = new CaptureRegion(offset, length);
    this.captureBytes += length;
    region.feed(this.prefix.subarray(0, this.prefixLen), 0);
    if (this.current !== null) region.feed(this.current.chunk, this.current.at);
    // Anything still needed that lies before the end of the stream so far is gone for good.
    if (region.pending && region.nextNeeded < this.count) region.markMissed();
    if (region.pending) this.captures.push(region);
    return region;
  }
}

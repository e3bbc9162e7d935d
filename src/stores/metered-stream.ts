import { Transform, type TransformCallback } from 'node:stream';
import type { Digests, HashSession } from './hash-pool.js';

export type ChunkTap = (chunk: Buffer, offset: number) => void;

/**
 * What the bytes are charged to as they pass, besides the cap: the owner's
 * quota (domain/quota.ts QuotaLease). `charge(total)` returns undefined when
 * the running total fits (the usual case: a compare), or a promise that
 * settles once it does, or rejects with the refusal.
 */
export interface ByteBudget {
  charge(total: number): Promise<void> | undefined;
}

/**
 * The one metering stage between the incoming bytes and a store: counts
 * them, charges them to the budget (quota), stops the stream with
 * `tooLarge()` the moment the cap is passed, lets taps (format inspection,
 * progress) look at each chunk, and feeds the hash workers. The chunk goes
 * on to the store only once the hash ring has taken its copy, so a slow
 * hasher slows the socket instead of growing memory. One Transform for all
 * of it: every stage more would cost every chunk of every upload.
 */
export class MeteredStream extends Transform {
  size = 0;
  private digesting: Promise<Digests> | undefined;

  constructor(
    private readonly hash: HashSession,
    private readonly cap: number,
    private readonly tooLarge: (cap: number) => Error,
    private readonly taps: ChunkTap[] = [],
    private readonly budget?: ByteBudget,
  ) {
    // Small buffers on purpose: the hash ring and the store's writer already pipeline, and
    // every byte buffered here is multiplied by the number of concurrent uploads.
    super({ readableHighWaterMark: 64 * 1024, writableHighWaterMark: 64 * 1024 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    // The quota first (as when it had its own stage upstream), then the cap.
    let charging;
    try {
      charging = this.budget?.charge(this.size + chunk.length);
    } catch (err) {
      cb(err as Error);
      return;
    }
    if (charging) charging.then(() => this.pass(chunk, cb), cb);
    else this.pass(chunk, cb);
  }

  private pass(chunk: Buffer, cb: TransformCallback): void {
    const offset = this.size;
    this.size += chunk.length;
    if (this.size > this.cap) {
      cb(this.tooLarge(this.cap));
      return;
    }
    try {
      for (const tap of this.taps) tap(chunk, offset);
    } catch (err) {
      cb(err as Error);
      return;
    }
    let waiting;
    try {
      waiting = this.hash.tryUpdate(chunk);
    } catch (err) {
      cb(err as Error);
      return;
    }
    if (waiting) waiting.then(() => cb(null, chunk), cb);
    else cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.digesting = this.hash.digest();
    this.digesting.catch(() => {});
    cb();
  }

  /** Destroyed before the end (error, abort, or a store that gave up): the workers drop the session. */
  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    if (!this.digesting) this.hash.abort();
    cb(err);
  }

  /** Both digests of every byte that passed; only once the stream has ended. */
  digests(): Promise<Digests> {
    return this.digesting ?? Promise.reject(new Error('the stream did not end; there is nothing to digest'));
  }
}

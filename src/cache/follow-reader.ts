import { Readable } from 'node:stream';
import type { FileHandle } from 'node:fs/promises';
import type { Recycling } from '../stores/file-range-reader.js';

/** What a reader of a filling cache entry sees of the fill. */
export interface FillProgress {
  /** bytes of the image written to the file so far (a prefix of it) */
  readonly written: number;
  /** set when the fill failed: the image's bytes will not all arrive */
  readonly failure: Error | undefined;
  /** calls `cb` once, at the next progress (more bytes, the end, or a failure) */
  onProgress(cb: () => void): void;
}

const PER_READER = 4;

/**
 * Reads an image from the cache file a fill is still writing: bytes up to
 * `fill.written` are read from the file (positional reads on the fill's own
 * handle, so a rename or an eviction of the file does not matter), and the
 * reader waits for the fill when it has caught up. A reader therefore goes
 * at the speed of the store, or of its client when that is slower; the fill
 * does not wait for its readers, so memory stays at a few chunks per reader
 * (invariant 7). Chunks the consumer hands back through recycle() are reused
 * as FileRangeReader does. `release` is called once, when the reader ends or
 * is destroyed.
 */
export class FollowReader extends Readable implements Recycling {
  private position = 0;
  private readonly free: Buffer[] = [];
  private readonly owned = new Set<ArrayBuffer>();
  private readonly lent = new Set<ArrayBuffer>();
  private released = false;

  constructor(
    private readonly fill: FillProgress,
    private readonly handle: FileHandle,
    private readonly size: number,
    private readonly chunkSize: number,
    private readonly release: () => void,
  ) {
    super({ highWaterMark: 1 });
  }

  override _read(): void {
    if (this.position >= this.size) {
      this.push(null);
      return;
    }
    const available = this.fill.written - this.position;
    if (available <= 0) {
      if (this.fill.failure) this.destroy(this.fill.failure);
      else this.fill.onProgress(() => {
        if (!this.destroyed) this._read();
      });
      return;
    }
    const buf = this.free.pop() ?? this.allocate();
    const want = Math.min(available, buf.length);
    this.handle.read(buf, 0, want, this.position).then(
      ({ bytesRead }) => {
        if (this.destroyed) return;
        if (bytesRead === 0) {
          this.destroy(new Error(`the cache file ended at ${this.position}, before the ${this.fill.written} bytes written`));
          return;
        }
        this.position += bytesRead;
        if (this.owned.has(buf.buffer as ArrayBuffer)) this.lent.add(buf.buffer as ArrayBuffer);
        this.push(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead));
      },
      (err) => this.destroy(err),
    );
  }

  recycle(chunk: Buffer): void {
    const memory = chunk.buffer as ArrayBuffer;
    if (!this.lent.delete(memory) || this.destroyed) return;
    this.free.push(Buffer.from(memory, 0, this.chunkSize));
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.free.length = 0;
    if (!this.released) {
      this.released = true;
      this.release();
    }
    cb(err);
  }

  private allocate(): Buffer {
    const b = Buffer.allocUnsafeSlow(this.chunkSize);
    if (this.owned.size < PER_READER) this.owned.add(b.buffer as ArrayBuffer);
    return b;
  }
}

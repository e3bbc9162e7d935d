import type { FileHandle } from 'node:fs/promises';
import { RecyclingFileReader } from '../stores/file-range-reader.js';

/** What a reader of a filling cache entry sees of the fill. */
export interface FillProgress {
  /** bytes of the image written to the file so far (a prefix of it) */
  readonly written: number;
  /** set when the fill failed: the image's bytes will not all arrive */
  readonly failure: Error | undefined;
  /** calls `cb` once, at the next progress (more bytes, the end, or a failure) */
  onProgress(cb: () => void): void;
}

/**
 * Reads an image from the cache file a fill is still writing: bytes up to
 * `fill.written` are read from the file (positional reads on the fill's own
 * handle, so a rename or an eviction of the file does not matter), and the
 * reader waits for the fill when it has caught up. A reader therefore goes
 * at the speed of the store, or of its client when that is slower; the fill
 * does not wait for its readers, so memory stays at a few chunks per reader
 * (invariant 7). Chunks come from RecyclingFileReader's reused buffers. The
 * handle stays the fill's; `release` is called once, when the reader ends or
 * is destroyed.
 */
export class FollowReader extends RecyclingFileReader {
  private released = false;

  constructor(
    private readonly fill: FillProgress,
    handle: FileHandle,
    private readonly size: number,
    chunkSize: number,
    private readonly release: () => void,
  ) {
    super(handle, 0, chunkSize);
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
    this.readChunk(available, () => new Error(`the cache file ended at ${this.position}, before the ${this.fill.written} bytes written`));
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.releaseBuffers();
    if (!this.released) {
      this.released = true;
      this.release();
    }
    cb(err);
  }
}

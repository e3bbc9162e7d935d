import { Readable } from 'node:stream';
import type { FileHandle } from 'node:fs/promises';

/** A stream whose chunks may be handed back once the consumer is done with them. */
export interface Recycling {
  /** `chunk` (one this stream pushed) is no longer referenced by the caller and may be reused */
  recycle(chunk: Buffer): void;
}

export function isRecycling(s: unknown): s is Readable & Recycling {
  return typeof (s as Partial<Recycling>)?.recycle === 'function';
}

const POOL = 4;

/**
 * Reads bytes [start, end] of an open file in `chunkSize` reads. A plain
 * fs.ReadStream allocates a fresh buffer per read; at gigabytes per minute
 * that is tens of megabytes of garbage waiting for V8 to notice it. This
 * stream reuses up to POOL buffers that its consumer hands back through
 * recycle() (the HTTP layer does once the socket has taken a chunk); a
 * consumer that never recycles simply gets fresh buffers, as with fs.
 * The handle is closed when the stream ends or is destroyed.
 */
export class FileRangeReader extends Readable implements Recycling {
  private position: number;
  private readonly free: Buffer[] = [];
  /** the pooled buffers, by their memory, and those of them lent to the consumer now */
  private readonly pooled = new Map<ArrayBuffer, Buffer>();
  private readonly lent = new Set<ArrayBuffer>();

  constructor(
    private readonly handle: FileHandle,
    start: number,
    private readonly end: number,
    private readonly chunkSize: number,
  ) {
    // One chunk buffered ahead is enough: the socket holds the other.
    super({ highWaterMark: 1 });
    this.position = start;
  }

  override _read(): void {
    const left = this.end - this.position + 1;
    if (left <= 0) {
      this.push(null);
      return;
    }
    const buf = this.free.pop() ?? this.allocate();
    const want = Math.min(left, this.chunkSize);
    this.handle.read(buf, 0, want, this.position).then(
      ({ bytesRead }) => {
        if (this.destroyed) return;
        if (bytesRead === 0) {
          this.destroy(new Error(`the file ended at ${this.position}, before byte ${this.end}`));
          return;
        }
        this.position += bytesRead;
        if (this.pooled.has(buf.buffer as ArrayBuffer)) this.lent.add(buf.buffer as ArrayBuffer);
        this.push(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead));
      },
      (err) => this.destroy(err),
    );
  }

  recycle(chunk: Buffer): void {
    const memory = chunk.buffer as ArrayBuffer;
    if (!this.destroyed && this.lent.delete(memory)) this.free.push(this.pooled.get(memory)!);
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.free.length = 0;
    this.lent.clear();
    this.handle.close().then(() => cb(err), () => cb(err));
  }

  private allocate(): Buffer {
    const b = Buffer.allocUnsafeSlow(this.chunkSize);
    if (this.pooled.size < POOL) this.pooled.set(b.buffer as ArrayBuffer, b);
    return b;
  }
}

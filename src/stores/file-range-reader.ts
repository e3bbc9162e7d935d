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

/** Buffers one reader keeps for reuse. */
const PER_READER = 4;
/** Buffers kept between readers (of the most common size), so short range requests allocate nothing. */
const SHARED = 8;
const shared: Buffer[] = [];

function release(b: Buffer): void {
  if (shared.length < SHARED && (shared.length === 0 || shared[0].length === b.length)) shared.push(b);
}

/**
 * Reads a file in positional chunks into buffers that its consumer hands
 * back through recycle() (the HTTP layer does once the socket has taken a
 * chunk). A plain fs.ReadStream allocates a fresh buffer per read; at
 * gigabytes per minute that is tens of megabytes of garbage waiting for V8
 * to notice it, and a thousand 1 MiB range requests are a thousand 1 MiB
 * buffers. Buffers go on to the next reader when one ends. A consumer that
 * never recycles simply gets fresh buffers, as with fs. Subclasses say how
 * much to read next (FileRangeReader: a range; the cache's FollowReader: what
 * a fill has written so far).
 */
export abstract class RecyclingFileReader extends Readable implements Recycling {
  protected position: number;
  private readonly free: Buffer[] = [];
  /** the buffers this reader may reuse, by their memory, and those of them lent to the consumer now */
  private readonly owned = new Map<ArrayBuffer, Buffer>();
  private readonly lent = new Set<ArrayBuffer>();

  constructor(
    protected readonly handle: FileHandle,
    start: number,
    protected readonly chunkSize: number,
  ) {
    // One chunk buffered ahead is enough: the socket holds the other.
    super({ highWaterMark: 1 });
    this.position = start;
  }

  /** Reads up to `want` (≤ chunkSize) bytes at the position and pushes them; `short()` is the error when the file has none there. */
  protected readChunk(want: number, short: () => Error): void {
    const buf = this.free.pop() ?? this.allocate();
    this.handle.read(buf, 0, Math.min(want, this.chunkSize), this.position).then(
      ({ bytesRead }) => {
        if (this.destroyed) return;
        if (bytesRead === 0) {
          this.destroy(short());
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
    if (!this.lent.delete(memory)) return;
    const buf = this.owned.get(memory)!;
    if (this.destroyed) release(buf);
    else this.free.push(buf);
  }

  /** Hands the idle buffers on to the next reader (buffers still lent come back through recycle()). */
  protected releaseBuffers(): void {
    for (const b of this.free.splice(0)) release(b);
  }

  private allocate(): Buffer {
    const reused = shared.length && shared[0].length === this.chunkSize ? shared.pop() : undefined;
    const b = reused ?? Buffer.allocUnsafeSlow(this.chunkSize);
    if (this.owned.size < PER_READER) this.owned.set(b.buffer as ArrayBuffer, b);
    return b;
  }
}

/** Bytes [start, end] of an open file; the handle is closed when the stream ends or is destroyed. */
export class FileRangeReader extends RecyclingFileReader {
  constructor(handle: FileHandle, start: number, private readonly end: number, chunkSize: number) {
    super(handle, start, chunkSize);
  }

  override _read(): void {
    if (this.end - this.position + 1 <= 0) {
      this.push(null);
      return;
    }
    this.readChunk(this.end - this.position + 1, () => new Error(`the file ended at ${this.position}, before byte ${this.end}`));
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.releaseBuffers();
    this.handle.close().then(() => cb(err), () => cb(err));
  }
}

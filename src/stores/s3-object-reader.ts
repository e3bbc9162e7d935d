import { Readable } from 'node:stream';
import type { Recycling } from './file-range-reader.js';

/** Bytes per chunk handed to the consumer: the filesystem store's read size, so a download costs the HTTP layer the same few writes per MiB. */
export const S3_READ_CHUNK = 1024 * 1024;
/** Chunk buffers one reader keeps for reuse: one filling, one buffered, two in the socket. */
const PER_READER = 4;
/**
 * Buffers kept between readers, so that a run of 1 MiB range requests (each its own GetObject and its
 * own reader) allocates nothing: a fresh 1 MiB buffer per range is external memory V8 answers with
 * garbage collections on its helper threads, several CPU-ms per range.
 */
const SHARED = 8;
const shared: Buffer[] = [];

function allocate(size: number): Buffer {
  const b = size === S3_READ_CHUNK ? shared.pop() : undefined;
  return b ?? Buffer.allocUnsafeSlow(size);
}

function release(b: Buffer): void {
  if (b.length === S3_READ_CHUNK && shared.length < SHARED) shared.push(b);
}

/**
 * The body of a GetObject, regrouped into 1 MiB chunks.
 *
 * An S3 response arrives as one chunk per socket read: 64 KiB at most, often
 * less when the service sends slower than Imago reads. Passed on as they come,
 * each of those costs the download a socket write, a write request and a
 * callback towards the client, and keeps its own buffer alive until the
 * client's socket has taken it; a GiB is 16,000 of them. Copied into 1 MiB
 * buffers (a memcpy: a few hundredths of a CPU-second per GiB), the client
 * side costs what a filesystem download costs, the S3 socket's buffers die
 * young, and the chunk buffers are reused through recycle() (the HTTP layer
 * hands each back once its socket has taken it), as FileRangeReader's are.
 *
 * Backpressure: when the consumer is full the S3 response is paused, so the
 * socket towards S3 stops being read. Destroying this stream destroys the
 * response (its socket is not returned to the pool half-read).
 */
export class S3ObjectReader extends Readable implements Recycling {
  private filling: Buffer | undefined;
  private filled = 0;
  private readonly free: Buffer[] = [];
  private readonly lent = new Set<ArrayBuffer>();
  private sourceEnded = false;

  constructor(
    private readonly source: Readable,
    private readonly chunkSize = S3_READ_CHUNK,
  ) {
    // One regrouped chunk buffered ahead; the socket holds the others.
    super({ highWaterMark: 1 });
    source.on('data', (chunk: Buffer) => this.gather(chunk));
    source.once('end', () => {
      this.sourceEnded = true;
      this.flush();
      this.push(null);
    });
    source.once('error', (err) => this.destroy(err));
    // A response cut before its end (S3 went away mid-body) closes without 'end': that is an error, never a short image.
    source.once('close', () => {
      if (!this.sourceEnded && !this.destroyed) this.destroy(new Error('the S3 response ended before the whole object was read'));
    });
    source.pause();
  }

  private gather(chunk: Buffer): void {
    for (let off = 0; off < chunk.length; ) {
      this.filling ??= this.free.pop() ?? allocate(this.chunkSize);
      const n = Math.min(this.chunkSize - this.filled, chunk.length - off);
      chunk.copy(this.filling, this.filled, off, off + n);
      this.filled += n;
      off += n;
      if (this.filled === this.chunkSize && !this.flush()) this.source.pause();
    }
  }

  /** Pushes what the filling buffer holds; false when the consumer wants no more for now. */
  private flush(): boolean {
    const buf = this.filling;
    if (!buf || this.filled === 0) return true;
    const out = this.filled === buf.length ? buf : buf.subarray(0, this.filled);
    this.filling = undefined;
    this.filled = 0;
    this.lent.add(buf.buffer as ArrayBuffer);
    return this.push(out);
  }

  override _read(): void {
    if (!this.sourceEnded) this.source.resume();
  }

  recycle(chunk: Buffer): void {
    const memory = chunk.buffer as ArrayBuffer;
    if (!this.lent.delete(memory)) return;
    // A chunk is a whole buffer or its start (the last one): either way the buffer itself is reused.
    const buf = chunk.length === this.chunkSize && chunk.byteOffset === 0 ? chunk : Buffer.from(memory, 0, this.chunkSize);
    // Once this reader is done (the last chunk comes back after the end), its buffers serve the next one.
    if (this.destroyed || this.readableEnded) release(buf);
    else if (this.free.length < PER_READER) this.free.push(buf);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.source.destroy();
    if (this.filling) release(this.filling);
    for (const b of this.free.splice(0)) release(b);
    this.filling = undefined;
    cb(err);
  }
}

import { writev } from 'node:fs';
import { Writable } from 'node:stream';
import type { FileHandle } from 'node:fs/promises';

export interface FileSinkOptions {
  /** bytes the Writable queues while a write is in flight before it pushes back */
  highWaterMark?: number;
  /**
   * Chunks are gathered until this many bytes are ready, then written with
   * one writev: one threadpool hop (and one wake-up of a threadpool thread,
   * which on a busy machine costs more than the copy itself) per batch
   * instead of per 64 KiB socket chunk.
   */
  batchBytes?: number;
  /**
   * Every this many bytes written, an fdatasync starts in the background
   * (never more than one at a time, writes go on meanwhile), so the kernel
   * writes the data back while the upload runs and the fsync in _final has
   * little left to do. 0 turns it off.
   */
  syncEveryBytes?: number;
  /** the file offset of the first byte (resumable uploads append to a partial file); 0 by default */
  position?: number;
}

/**
 * A Writable over an open FileHandle that fsyncs in _final, so "finished"
 * means "durable". The caller keeps ownership of the handle (and closes it),
 * which fs.WriteStream does not allow without also skipping 'close'.
 * Writes use the callback API on the handle's descriptor: no promise per
 * chunk on the event loop.
 */
export class FileSink extends Writable {
  /** bytes handed to the file so far */
  bytesWritten = 0;
  /** background fdatasyncs started so far (the final fsync not counted) */
  dataSyncs = 0;
  private position = 0;
  private batch: Buffer[] = [];
  private batched = 0;
  private readonly batchBytes: number;
  private readonly syncEveryBytes: number;
  private syncedFrom = 0;
  private syncing: Promise<void> | undefined;
  private syncError: Error | undefined;

  constructor(private readonly handle: FileHandle, opts: FileSinkOptions = {}) {
    super({ highWaterMark: opts.highWaterMark ?? 256 * 1024 });
    this.batchBytes = opts.batchBytes ?? 512 * 1024;
    this.syncEveryBytes = opts.syncEveryBytes ?? 32 * 1024 * 1024;
    this.position = this.syncedFrom = opts.position ?? 0;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.take(chunk);
    this.flushWhenFull(cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    for (const c of chunks) this.take(c.chunk);
    this.flushWhenFull(cb);
  }

  private flushWhenFull(cb: (err?: Error | null) => void): void {
    if (this.batched >= this.batchBytes) this.flush(cb);
    else cb(this.syncError);
  }

  /** Writes what is gathered, waits for a background sync, then fsyncs: only then is the stream finished. */
  override _final(cb: (err?: Error | null) => void): void {
    this.flush((err) => {
      if (err) return cb(err);
      Promise.resolve(this.syncing)
        .then(() => {
          if (this.syncError) throw this.syncError;
          return this.handle.sync();
        })
        .then(() => cb(), cb);
    });
  }

  private take(chunk: Buffer): void {
    this.batch.push(chunk);
    this.batched += chunk.length;
  }

  private flush(cb: (err?: Error | null) => void): void {
    const buffers = this.batch;
    this.batch = [];
    this.batched = 0;
    if (buffers.length === 0) return cb(this.syncError);
    this.writeAll(buffers, (err) => {
      if (err) return cb(err);
      this.startSync();
      cb(this.syncError);
    });
  }

  /** An fdatasync of what is written so far, in the background, when enough was written since the last one started. */
  private startSync(): void {
    if (!this.syncEveryBytes || this.syncing || this.position - this.syncedFrom < this.syncEveryBytes) return;
    this.syncedFrom = this.position;
    this.dataSyncs++;
    // FileHandle counts the operation in flight: close() waits for it.
    this.syncing = this.handle.datasync().then(
      () => {
        this.syncing = undefined;
      },
      (err: Error) => {
        this.syncing = undefined;
        this.syncError ??= err;
      },
    );
  }

  /** writev until every byte is written (a short write continues where it stopped). */
  private writeAll(buffers: Buffer[], cb: (err?: Error | null) => void): void {
    writev(this.handle.fd, buffers, this.position, (err, written) => {
      if (err) return cb(err);
      this.position += written;
      this.bytesWritten += written;
      let skip = written;
      const rest: Buffer[] = [];
      for (const b of buffers) {
        if (skip >= b.length) {
          skip -= b.length;
          continue;
        }
        rest.push(skip ? b.subarray(skip) : b);
        skip = 0;
      }
      if (rest.length === 0) cb();
      else if (written === 0) cb(new Error('the file accepted no bytes'));
      else this.writeAll(rest, cb);
    });
  }
}

import { writev } from 'node:fs';
import { Writable } from 'node:stream';
import type { FileHandle } from 'node:fs/promises';

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
  private position = 0;

  constructor(private readonly handle: FileHandle, highWaterMark = 512 * 1024) {
    super({ highWaterMark });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writeAll([chunk], cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.writeAll(chunks.map((c) => c.chunk), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.handle.sync().then(() => cb(), cb);
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

import { Writable } from 'node:stream';
import type { FileHandle } from 'node:fs/promises';

/**
 * A Writable over an open FileHandle that fsyncs in _final, so "finished"
 * means "durable". The caller keeps ownership of the handle (and closes it),
 * which fs.WriteStream does not allow without also skipping 'close'.
 */
export class FileSink extends Writable {
  /** bytes handed to the file so far */
  bytesWritten = 0;

  constructor(private readonly handle: FileHandle, highWaterMark = 512 * 1024) {
    super({ highWaterMark });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.bytesWritten += chunk.length;
    writeAll(this.handle, [chunk]).then(() => cb(), cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    for (const c of chunks) this.bytesWritten += c.chunk.length;
    writeAll(this.handle, chunks.map((c) => c.chunk)).then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.handle.sync().then(() => cb(), cb);
  }
}

async function writeAll(handle: FileHandle, buffers: Buffer[]): Promise<void> {
  let pending = buffers;
  while (pending.length) {
    const total = pending.reduce((n, b) => n + b.length, 0);
    const { bytesWritten } = await handle.writev(pending);
    if (bytesWritten === total) return;
    let skip = bytesWritten;
    const rest: Buffer[] = [];
    for (const b of pending) {
      if (skip >= b.length) {
        skip -= b.length;
        continue;
      }
      rest.push(skip ? b.subarray(skip) : b);
      skip = 0;
    }
    pending = rest;
  }
}

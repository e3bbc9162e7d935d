import { spawn } from 'node:child_process';
import { Duplex, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';

export type Compression = 'gzip' | 'zstd' | 'xz';

const MAGIC: [Compression, number[]][] = [
  ['gzip', [0x1f, 0x8b]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
];

/** The compression the first bytes announce, if any. */
export function detectCompression(head: Buffer): Compression | undefined {
  for (const [kind, magic] of MAGIC) if (head.length >= magic.length && magic.every((b, i) => head[i] === b)) return kind;
  return undefined;
}

const TOOLS: Record<Exclude<Compression, 'gzip'>, string> = { zstd: 'zstd', xz: 'xz' };

/**
 * A stream that decompresses what flows through it: node's zlib for gzip,
 * the zstd and xz command-line tools for the others (node 20 has no zstd).
 * The output ends only once the tool has exited successfully, so a corrupt
 * or truncated archive fails the stream instead of yielding a short image.
 */
export function decompressor(kind: Compression): Duplex {
  if (kind === 'gzip') return createGunzip();
  return new ProcessStream(TOOLS[kind], ['-d', '-c', '-q']);
}

class ProcessStream extends Duplex {
  private readonly child;
  private stderr = '';
  private stdoutEnded = false;
  private exitCode: number | null | undefined;
  private failed = false;

  constructor(command: string, args: string[]) {
    super({ readableHighWaterMark: 1024 * 1024, writableHighWaterMark: 1024 * 1024 });
    this.child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.on('error', (err) => this.fail(new Error(`${command} could not run: ${err.message} (install it, or turn the decompression plugin off)`)));
    this.child.stderr.on('data', (d: Buffer) => { if (this.stderr.length < 4096) this.stderr += d.toString(); });
    this.child.stdin.on('error', () => {});
    this.child.stdout.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) this.child.stdout.pause();
    });
    this.child.stdout.on('end', () => { this.stdoutEnded = true; this.maybeEnd(); });
    this.child.on('close', (code) => {
      this.exitCode = code;
      if (code !== 0) this.fail(new Error(`${command} could not decompress the image: ${this.stderr.trim() || `exit code ${code}`}`));
      else this.maybeEnd();
    });
  }

  private maybeEnd(): void {
    if (this.stdoutEnded && this.exitCode === 0 && !this.failed) this.push(null);
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.destroy(err);
  }

  override _read(): void {
    this.child.stdout.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.child.stdin.write(chunk)) cb();
    else this.child.stdin.once('drain', () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.child.stdin.end(cb);
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    if (this.exitCode === undefined) this.child.kill('SIGKILL');
    cb(err);
  }
}

/** Reads the first `n` bytes of a stream and destroys it. */
export async function readHead(stream: Readable, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  try {
    for await (const chunk of stream) {
      parts.push(chunk as Buffer);
      got += (chunk as Buffer).length;
      if (got >= n) break;
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(parts).subarray(0, n);
}

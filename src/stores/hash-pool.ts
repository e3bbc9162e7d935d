import { Worker } from 'node:worker_threads';
import { ServiceUnavailable } from '../domain/errors.js';

/**
 * md5 and sha512 run on a fixed pool of worker threads so that the event
 * loop never hashes (invariant 9). Bytes reach the workers through a small
 * ring of SharedArrayBuffer blocks per session (4 × 256 KiB): each block is filled on the
 * main thread (one memcpy), then hashed by the md5 worker and the sha512
 * worker in parallel, then reused. A session never has more than
 * BLOCKS_PER_SESSION blocks in flight; when all are busy, update() returns a
 * promise and the caller waits, which is how backpressure reaches the socket.
 */
const BLOCK_SIZE = 256 * 1024;
const BLOCKS_PER_SESSION = 4;

// A block's SharedArrayBuffer is sent to a worker once ('block'); updates name it by index.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const sessions = new Map();
parentPort.on('message', (m) => {
  const key = m.id + '/' + m.algo;
  if (m.op === 'open') { sessions.set(key, { hash: createHash(m.algo), blocks: [] }); return; }
  const s = sessions.get(key);
  if (m.op === 'block') {
    if (s) s.blocks[m.block] = new Uint8Array(m.buf);
  } else if (m.op === 'update') {
    if (s) s.hash.update(s.blocks[m.block].subarray(0, m.len));
    parentPort.postMessage({ op: 'done', id: m.id, block: m.block });
  } else if (m.op === 'final') {
    sessions.delete(key);
    parentPort.postMessage({ op: 'digest', id: m.id, algo: m.algo, hex: s ? s.hash.digest('hex') : null });
  } else if (m.op === 'abort') {
    sessions.delete(key);
  }
});
`;

export interface Digests {
  md5: string;
  sha512: string;
}

interface Block {
  buf: SharedArrayBuffer;
  view: Uint8Array;
  pending: number;
}

type Listener = (m: { op: string; id: number; block?: number; algo?: string; hex?: string }) => void;

export class HashPool {
  private readonly workers: Worker[] = [];
  private readonly listeners = new Map<number, Listener>();
  private nextId = 1;
  private nextWorker = 0;
  private closing = false;

  constructor(size: number) {
    for (let i = 0; i < size; i++) this.workers.push(this.spawn(i));
  }

  /**
   * A worker that dies (a bug, out of memory) fails the sessions in flight,
   * which roll their writes back, and is replaced for the next ones.
   */
  private spawn(index: number): Worker {
    // The worker holds a few hash states: small heaps keep its memory small.
    const w = new Worker(WORKER_SOURCE, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 } });
    w.unref();
    w.on('message', (m) => this.listeners.get(m.id)?.(m));
    const fail = (why: string) => {
      for (const l of [...this.listeners.values()]) l({ op: 'error', id: -1, hex: why });
    };
    w.on('error', (err) => fail(String(err)));
    w.on('exit', (code) => {
      if (this.closing) return;
      fail(`hash worker exited with code ${code}`);
      if (this.workers[index] === w) this.workers[index] = this.spawn(index);
    });
    return w;
  }

  /** Starts hashing one stream; md5 and sha512 land on different workers when there are two or more. */
  open(): HashSession {
    const id = this.nextId++;
    const a = this.workers[this.nextWorker++ % this.workers.length];
    const b = this.workers[this.nextWorker % this.workers.length];
    return new HashSession(id, a, b, this.listeners);
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

export class HashSession {
  private readonly blocks: Block[] = [];
  private current: Block | undefined;
  private fill = 0;
  private waiter: (() => void) | undefined;
  private digests: Partial<Digests> = {};
  private finish: { resolve: (d: Digests) => void; reject: (e: Error) => void } | undefined;
  private ended = false;
  private failure: Error | undefined;

  constructor(
    private readonly id: number,
    private readonly md5Worker: Worker,
    private readonly shaWorker: Worker,
    private readonly listeners: Map<number, Listener>,
  ) {
    listeners.set(id, (m) => this.onMessage(m));
    md5Worker.postMessage({ op: 'open', id, algo: 'md5' });
    shaWorker.postMessage({ op: 'open', id, algo: 'sha512' });
  }

  /** Copies `chunk` into the ring; resolves when it is accepted (immediately unless the ring is full). */
  update(chunk: Uint8Array): Promise<void> {
    return this.tryUpdate(chunk) ?? Promise.resolve();
  }

  /**
   * The same, allocation-free in the common case: returns undefined when the
   * chunk was taken at once, a promise only when the caller has to wait for a
   * block. (It runs for every 64 KiB of every upload on the event loop.)
   */
  tryUpdate(chunk: Uint8Array): Promise<void> | undefined {
    let offset = 0;
    while (offset < chunk.length) {
      if (!this.current) {
        this.current = this.takeFreeBlock();
        if (!this.current) return this.updateSlowly(chunk, offset);
      }
      offset = this.copy(chunk, offset);
    }
    return undefined;
  }

  private async updateSlowly(chunk: Uint8Array, offset: number): Promise<void> {
    while (offset < chunk.length) {
      if (!this.current) this.current = await this.freeBlock();
      offset = this.copy(chunk, offset);
    }
  }

  private copy(chunk: Uint8Array, offset: number): number {
    const n = Math.min(chunk.length - offset, BLOCK_SIZE - this.fill);
    this.current!.view.set(chunk.subarray(offset, offset + n), this.fill);
    this.fill += n;
    if (this.fill === BLOCK_SIZE) this.dispatch();
    return offset + n;
  }

  /** Hashes what remains and returns both digests in hex. */
  digest(): Promise<Digests> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.fill > 0) this.dispatch();
    this.ended = true;
    return new Promise<Digests>((resolve, reject) => {
      this.finish = { resolve, reject };
      this.md5Worker.postMessage({ op: 'final', id: this.id, algo: 'md5' });
      this.shaWorker.postMessage({ op: 'final', id: this.id, algo: 'sha512' });
    });
  }

  abort(): void {
    if (this.ended) return;
    this.ended = true;
    this.md5Worker.postMessage({ op: 'abort', id: this.id, algo: 'md5' });
    this.shaWorker.postMessage({ op: 'abort', id: this.id, algo: 'sha512' });
    this.listeners.delete(this.id);
    this.waiter?.();
  }

  private dispatch(): void {
    const block = this.current!;
    const index = this.blocks.indexOf(block);
    block.pending = 2;
    this.md5Worker.postMessage({ op: 'update', id: this.id, algo: 'md5', block: index, len: this.fill });
    this.shaWorker.postMessage({ op: 'update', id: this.id, algo: 'sha512', block: index, len: this.fill });
    this.current = undefined;
    this.fill = 0;
  }

  private async freeBlock(): Promise<Block> {
    for (;;) {
      const block = this.takeFreeBlock();
      if (block) return block;
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  /** A block no worker is reading, or a new one while the ring is not full; undefined when all are busy. */
  private takeFreeBlock(): Block | undefined {
    if (this.failure) throw this.failure;
    if (this.ended) throw new Error('hash session ended');
    for (const b of this.blocks) if (b.pending === 0) return b;
    if (this.blocks.length === BLOCKS_PER_SESSION) return undefined;
    const buf = new SharedArrayBuffer(BLOCK_SIZE);
    const block = { buf, view: new Uint8Array(buf), pending: 0 };
    const index = this.blocks.push(block) - 1;
    this.md5Worker.postMessage({ op: 'block', id: this.id, algo: 'md5', block: index, buf });
    this.shaWorker.postMessage({ op: 'block', id: this.id, algo: 'sha512', block: index, buf });
    return block;
  }

  private onMessage(m: { op: string; block?: number; algo?: string; hex?: string }): void {
    if (m.op === 'done') {
      this.blocks[m.block!].pending--;
      const w = this.waiter;
      this.waiter = undefined;
      w?.();
    } else if (m.op === 'digest') {
      if (m.algo === 'md5') this.digests.md5 = m.hex;
      else this.digests.sha512 = m.hex;
      if (this.digests.md5 && this.digests.sha512) {
        this.listeners.delete(this.id);
        this.finish?.resolve(this.digests as Digests);
      }
    } else if (m.op === 'error') {
      this.listeners.delete(this.id);
      this.ended = true;
      this.waiter?.();
      this.failure = new ServiceUnavailable('The image data could not be hashed (a hashing worker stopped); try again.', m.hex ?? '');
      this.finish?.reject(this.failure);
    }
  }
}

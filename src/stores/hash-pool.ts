import type { Worker } from 'node:worker_threads';
import { moduleWorker } from '../module-worker.js';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { ServiceUnavailable } from '../domain/errors.js';
import { BLOCKS_PER_SESSION, BLOCK_SIZE, CONTROL_SLOTS, DONE, IDLE, LENGTHS, SUBMITTED, WAITING } from './hash-ring.js';

/**
 * md5 and sha512 run on a fixed pool of worker threads so that the event
 * loop never hashes (invariant 9). Bytes reach the workers through a small
 * ring of SharedArrayBuffer blocks per session (BLOCKS_PER_SESSION ×
 * BLOCK_SIZE): each block is filled on the main thread (one memcpy), then
 * hashed by the md5 worker and the sha512 worker in parallel, then reused.
 *
 * The ring's bookkeeping lives in shared memory too (a control array per
 * session), so that bytes cost few messages: the main thread publishes a
 * filled block by bumping a counter, and posts a 'kick' to a worker only
 * when that worker has gone idle on the session (it drains every published
 * block per kick); a worker reports progress in its own counter, and posts
 * 'done' only when the main thread said it is waiting for a block. A session
 * never has more than BLOCKS_PER_SESSION blocks in flight; when all are
 * busy, update() returns a promise and the caller waits, which is how
 * backpressure reaches the socket.
 */
export interface Digests {
  md5: string;
  sha512: string;
  /** resumable sessions only: both hash states after the last byte, to continue from in a later session */
  states?: HashStates;
}

/** md5 and sha512 states saved by hash-wasm (base64), as a resumable upload keeps them between requests. */
export interface HashStates {
  md5: string;
  sha512: string;
}

/**
 * A resumable session hashes with hash-wasm instead of node's crypto (whose
 * state cannot be saved), from `states` when given, and reports its states
 * with its digests.
 */
export interface ResumableHashing {
  states?: HashStates;
}

type Listener = (m: { op: string; id: number; block?: number; algo?: string; hex?: string; state?: string }) => void;

/** A session's shared memory: the ring of blocks and its control array. */
interface RingBuffers {
  ring: SharedArrayBuffer;
  control: SharedArrayBuffer;
}

/**
 * Most idle rings kept for reuse. A ring that is dropped instead is freed
 * only when each worker that saw it runs a full GC, which an idle worker may
 * not do for a long time: without reuse every abandoned upload left its
 * 1 MiB ring behind (issue 14, item 2). Rings in use are bounded by the
 * number of concurrent uploads; this bounds the ones kept between bursts.
 */
const MAX_IDLE_RINGS = 8;

export class HashPool {
  private readonly workers: Worker[] = [];
  private readonly listeners = new Map<number, Listener>();
  private nextId = 1;
  private nextWorker = 0;
  private closing = false;
  private readonly idleRings: RingBuffers[] = [];

  constructor(size: number) {
    for (let i = 0; i < size; i++) this.workers.push(this.spawn(i));
  }

  /**
   * A worker that dies (a bug, out of memory) fails the sessions in flight,
   * which roll their writes back, and is replaced for the next ones.
   */
  private spawn(index: number): Worker {
    // The worker holds a few hash states: small heaps keep its memory small.
    const w = moduleWorker('hash-worker', import.meta.url, { resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 } });
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
  open(resumable?: ResumableHashing): HashSession {
    const id = this.nextId++;
    const a = this.workers[this.nextWorker++ % this.workers.length];
    const b = this.workers[this.nextWorker % this.workers.length];
    const buffers = this.idleRings.pop() ?? { ring: new SharedArrayBuffer(BLOCK_SIZE * BLOCKS_PER_SESSION), control: new SharedArrayBuffer(CONTROL_SLOTS * 4) };
    new Int32Array(buffers.control).fill(0);
    return new HashSession(id, a, b, this.listeners, buffers, (done) => {
      if (this.idleRings.length < MAX_IDLE_RINGS) this.idleRings.push(done);
    }, resumable);
  }

  /** Rings kept for reuse (for tests). */
  get idleRingCount(): number {
    return this.idleRings.length;
  }

  private readonly lastLoop = new WeakMap<Worker, EventLoopUtilization>();

  /** Busy share (0..1) of each worker since the previous call (the metrics scrape): hashing is all they do. */
  utilization(): number[] {
    return this.workers.map((w) => {
      const current = w.performance.eventLoopUtilization();
      const previous = this.lastLoop.get(w);
      this.lastLoop.set(w, current);
      return previous ? w.performance.eventLoopUtilization(current, previous).utilization : current.utilization;
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

export class HashSession {
  private readonly ring: SharedArrayBuffer;
  private readonly view: Uint8Array;
  private readonly control: Int32Array;
  private readonly workers: [Worker, Worker];
  /** workers that no longer read this session's buffers (digest sent, or abort acknowledged) */
  private released = 0;
  /** blocks published so far; the one being filled is number `submitted` */
  private submitted = 0;
  /** true when block `submitted` is known to be free */
  private current = false;
  private fill = 0;
  private waiter: (() => void) | undefined;
  private digests: Partial<Digests> = {};
  private finish: { resolve: (d: Digests) => void; reject: (e: Error) => void } | undefined;
  private ended = false;
  private failure: Error | undefined;

  constructor(
    private readonly id: number,
    md5Worker: Worker,
    shaWorker: Worker,
    private readonly listeners: Map<number, Listener>,
    private readonly buffers: RingBuffers,
    private readonly recycle: (buffers: RingBuffers) => void,
    resumable?: ResumableHashing,
  ) {
    this.ring = buffers.ring;
    this.view = new Uint8Array(buffers.ring);
    this.control = new Int32Array(buffers.control);
    this.workers = [md5Worker, shaWorker];
    listeners.set(id, (m) => this.onMessage(m));
    Atomics.store(this.control, IDLE, 1);
    Atomics.store(this.control, IDLE + 1, 1);
    const r = resumable ? { resumable: true } : {};
    md5Worker.postMessage({ op: 'open', id, algo: 'md5', role: 0, ring: this.ring, control: this.control.buffer, ...r, state: resumable?.states?.md5 });
    shaWorker.postMessage({ op: 'open', id, algo: 'sha512', role: 1, ring: this.ring, control: this.control.buffer, ...r, state: resumable?.states?.sha512 });
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
      if (!this.current) await this.freeBlock();
      offset = this.copy(chunk, offset);
    }
  }

  private copy(chunk: Uint8Array, offset: number): number {
    const n = Math.min(chunk.length - offset, BLOCK_SIZE - this.fill);
    this.view.set(chunk.subarray(offset, offset + n), (this.submitted % BLOCKS_PER_SESSION) * BLOCK_SIZE + this.fill);
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
      this.workers[0].postMessage({ op: 'final', id: this.id, algo: 'md5' });
      this.workers[1].postMessage({ op: 'final', id: this.id, algo: 'sha512' });
    });
  }

  abort(): void {
    if (this.ended) return;
    this.ended = true;
    this.workers[0].postMessage({ op: 'abort', id: this.id, algo: 'md5' });
    this.workers[1].postMessage({ op: 'abort', id: this.id, algo: 'sha512' });
    this.waiter?.();
  }

  /** Once both workers let go of the buffers, the pool may hand them to another session. */
  private releasedBy(): void {
    if (++this.released < 2) return;
    this.listeners.delete(this.id);
    this.recycle(this.buffers);
  }

  /** Publishes the block being filled; kicks each worker that is idle (a busy one finds it when it looks again). */
  private dispatch(): void {
    const c = this.control;
    Atomics.store(c, LENGTHS + (this.submitted % BLOCKS_PER_SESSION), this.fill);
    Atomics.store(c, SUBMITTED, ++this.submitted);
    if (Atomics.exchange(c, IDLE, 0) === 1) this.workers[0].postMessage({ op: 'kick', id: this.id, algo: 'md5' });
    if (Atomics.exchange(c, IDLE + 1, 0) === 1) this.workers[1].postMessage({ op: 'kick', id: this.id, algo: 'sha512' });
    this.current = false;
    this.fill = 0;
  }

  private async freeBlock(): Promise<void> {
    for (;;) {
      if (this.takeFreeBlock()) {
        this.current = true;
        return;
      }
      const wait = new Promise<void>((resolve) => (this.waiter = resolve));
      // Ask the workers that hold the block for a message, then look again: a worker that moved on
      // before it saw the request is caught by the second look (the message then comes for nothing).
      for (const r of [0, 1]) if (this.submitted - Atomics.load(this.control, DONE + r) >= BLOCKS_PER_SESSION) Atomics.store(this.control, WAITING + r, 1);
      if (this.takeFreeBlock()) {
        this.waiter = undefined;
        this.current = true;
        return;
      }
      await wait;
    }
  }

  /** Whether block `submitted` is free: both workers are done with what was in it BLOCKS_PER_SESSION blocks ago. */
  private takeFreeBlock(): boolean {
    if (this.failure) throw this.failure;
    if (this.ended) throw new Error('hash session ended');
    const c = this.control;
    const done = Math.min(Atomics.load(c, DONE), Atomics.load(c, DONE + 1));
    return this.submitted - done < BLOCKS_PER_SESSION;
  }

  private states: Partial<HashStates> = {};

  private onMessage(m: { op: string; block?: number; algo?: string; hex?: string; state?: string }): void {
    if (m.op === 'done') {
      const w = this.waiter;
      this.waiter = undefined;
      w?.();
    } else if (m.op === 'released') {
      this.releasedBy();
    } else if (m.op === 'digest') {
      if (m.algo === 'md5') this.digests.md5 = m.hex;
      else this.digests.sha512 = m.hex;
      if (m.state) this.states[m.algo === 'md5' ? 'md5' : 'sha512'] = m.state;
      if (this.states.md5 && this.states.sha512) this.digests.states = this.states as HashStates;
      if (this.digests.md5 && this.digests.sha512) this.finish?.resolve(this.digests as Digests);
      this.releasedBy();
    } else if (m.op === 'error') {
      // A worker died: its buffers are not reused (the other worker is told to drop the session).
      this.listeners.delete(this.id);
      if (!this.ended) for (const [i, algo] of (['md5', 'sha512'] as const).entries()) this.workers[i].postMessage({ op: 'abort', id: this.id, algo });
      this.ended = true;
      this.waiter?.();
      this.failure = new ServiceUnavailable('The image data could not be hashed (a hashing worker stopped); try again.', m.hex ?? '');
      this.finish?.reject(this.failure);
    }
  }
}

/**
 * A hash worker of stores/hash-pool.ts: keeps md5 or sha512 states, one per
 * session, fed from the session's ring of shared blocks (layout in
 * hash-ring.ts). The pool's comment explains the protocol.
 */
import { createHash } from 'node:crypto';
import type { IHasher } from 'hash-wasm';
import { writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort } from 'node:worker_threads';
import { BLOCKS_PER_SESSION as BLOCKS, BLOCK_SIZE, DONE, IDLE, LENGTHS, SUBMITTED, WAITING } from './hash-ring.js';

/** What a session hashes with: node's crypto (fast, no saved state) or hash-wasm (its state can be saved and loaded). */
interface Hasher {
  update(data: Uint8Array): unknown;
}

interface Session {
  hash: Hasher;
  /** set for resumable sessions (hash-wasm): the state can be saved, and was loaded from `state` */
  wasm?: IHasher;
  /** messages that arrived while the wasm hasher was being created run after it, in order */
  ready?: Promise<void>;
  ring: Uint8Array;
  control: Int32Array;
  /** 0 md5, 1 sha512: which counters of the control array are this worker's */
  role: number;
  done: number;
}

interface Message {
  op: 'open' | 'kick' | 'final' | 'abort';
  id: number;
  algo: string;
  ring?: SharedArrayBuffer;
  control?: SharedArrayBuffer;
  role?: number;
  /** a resumable session: hash-wasm, starting from this saved state (base64) when given */
  resumable?: boolean;
  state?: string;
}

const port = parentPort!;

// Node names every thread `node`; this name lets `npm run bench` (and top -H) tell the hash workers apart.
try {
  writeFileSync('/proc/thread-self/comm', 'imago-hash');
} catch {
  // not Linux, or /proc is not mounted: the name is only a convenience
}
const sessions = new Map<string, Session>();

/**
 * A ring this worker let go of stays allocated until this isolate runs a full GC, and a hash
 * worker allocates so little that it hardly ever does: under many concurrent uploads (more than
 * the pool keeps idle) the dropped rings piled up, 154 MB after a 20 s soak. So the worker collects
 * itself every few released sessions; its heap is tiny, a full GC takes about a millisecond.
 */
setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;
const COLLECT_EVERY = 16;
let released = 0;
function forget(key: string): void {
  sessions.delete(key);
  if (++released % COLLECT_EVERY === 0) collect();
}

/** Hashes every published block, then goes idle; a block published meanwhile is taken too, or brings a kick. */
function drain(m: Message, s: Session): void {
  const c = s.control;
  const r = s.role;
  for (;;) {
    let done = s.done;
    const submitted = Atomics.load(c, SUBMITTED);
    while (done < submitted) {
      const i = done % BLOCKS;
      s.hash.update(s.ring.subarray(i * BLOCK_SIZE, i * BLOCK_SIZE + Atomics.load(c, LENGTHS + i)));
      done++;
      Atomics.store(c, DONE + r, done);
      if (Atomics.exchange(c, WAITING + r, 0) === 1) port.postMessage({ op: 'done', id: m.id });
    }
    s.done = done;
    Atomics.store(c, IDLE + r, 1);
    if (Atomics.load(c, SUBMITTED) === done) return;
    // More arrived: take it now unless the main thread already claimed the kick (then it comes as a message).
    if (Atomics.exchange(c, IDLE + r, 0) === 0) return;
  }
}

/** A resumable session's hasher: hash-wasm, fresh or continuing from a saved state. */
async function wasmHasher(algo: string, state: string | undefined): Promise<IHasher> {
  // Loaded on the first resumable session only: hash-wasm carries every algorithm's module, which a
  // worker that only ever hashes plain uploads (node's crypto) need not hold in memory.
  const { createMD5, createSHA512 } = await import('hash-wasm');
  const h = algo === 'md5' ? await createMD5() : await createSHA512();
  if (state) h.load(Buffer.from(state, 'base64'));
  else h.init();
  return h;
}

function handle(m: Message, key: string, s: Session | undefined): void {
  if (m.op === 'kick') {
    if (s) drain(m, s);
  } else if (m.op === 'final') {
    if (s) drain(m, s);
    forget(key);
    if (s?.wasm) {
      // The state is saved before the digest ends the hasher: a resumable write that stops here continues from it.
      const state = Buffer.from(s.wasm.save()).toString('base64');
      port.postMessage({ op: 'digest', id: m.id, algo: m.algo, hex: s.wasm.digest('hex'), state });
      return;
    }
    port.postMessage({ op: 'digest', id: m.id, algo: m.algo, hex: s ? (s.hash as ReturnType<typeof createHash>).digest('hex') : null });
  } else if (m.op === 'abort') {
    // The reply lets the main thread reuse the session's buffers: this worker reads them no more.
    forget(key);
    port.postMessage({ op: 'released', id: m.id, algo: m.algo });
  }
}

port.on('message', (m: Message) => {
  const key = `${m.id}/${m.algo}`;
  if (m.op === 'open') {
    const s: Session = { hash: createHash(m.algo), ring: new Uint8Array(m.ring!), control: new Int32Array(m.control!), role: m.role!, done: 0 };
    if (m.resumable) {
      s.ready = wasmHasher(m.algo, m.state).then(
        (h) => {
          s.hash = s.wasm = h;
          s.ready = undefined;
        },
        (err: Error) => {
          // A state that does not load: the session fails like a dead worker's (the write rolls back).
          sessions.delete(key);
          port.postMessage({ op: 'error', id: m.id, hex: `the saved ${m.algo} state could not be loaded: ${err.message}` });
        },
      );
    }
    sessions.set(key, s);
    return;
  }
  const s = sessions.get(key);
  if (s?.ready) {
    // Chained: kicks, final and abort keep their order behind the hasher's creation.
    s.ready = s.ready.then(() => handle(m, key, sessions.get(key)));
    return;
  }
  handle(m, key, s);
});

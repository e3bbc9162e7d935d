/**
 * A hash worker of stores/hash-pool.ts: keeps md5 or sha512 states, one per
 * session, fed from the session's ring of shared blocks (layout in
 * hash-ring.ts). The pool's comment explains the protocol.
 */
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { BLOCKS_PER_SESSION as BLOCKS, BLOCK_SIZE, DONE, IDLE, LENGTHS, SUBMITTED, WAITING } from './hash-ring.js';

interface Session {
  hash: Hash;
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
}

const port = parentPort!;
const sessions = new Map<string, Session>();

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

port.on('message', (m: Message) => {
  const key = `${m.id}/${m.algo}`;
  if (m.op === 'open') {
    sessions.set(key, { hash: createHash(m.algo), ring: new Uint8Array(m.ring!), control: new Int32Array(m.control!), role: m.role!, done: 0 });
    return;
  }
  const s = sessions.get(key);
  if (m.op === 'kick') {
    if (s) drain(m, s);
  } else if (m.op === 'final') {
    if (s) drain(m, s);
    sessions.delete(key);
    port.postMessage({ op: 'digest', id: m.id, algo: m.algo, hex: s ? s.hash.digest('hex') : null });
  } else if (m.op === 'abort') {
    // The reply lets the main thread reuse the session's buffers: this worker reads them no more.
    sessions.delete(key);
    port.postMessage({ op: 'released', id: m.id, algo: m.algo });
  }
});

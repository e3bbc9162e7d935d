import type { Readable } from 'node:stream';
import type { StoreDriver } from '../stores/store.js';
import type { Metrics } from './metrics.js';

/**
 * Times a store driver's operations and counts its bytes and errors, below
 * the wrapper (stores/guarded-store.ts), so refusals the wrapper answers
 * itself (read-only, bad keys) are not counted as backend operations. The
 * methods are replaced on the driver itself, so a driver's adopt() still
 * receives the other store's own driver. Returns the same driver.
 */
export function instrumentStore<S extends StoreDriver>(store: S, metrics: Metrics): S {
  const labels = { store: store.info.id };
  const timed = <A extends unknown[], R>(operation: string, fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const end = metrics.storeOpDuration.startTimer({ ...labels, operation });
      try {
        const result = await fn(...args);
        end();
        return result;
      } catch (err) {
        metrics.storeOpErrors.inc({ ...labels, operation });
        throw err;
      }
    };
  const put = timed('put', store.put.bind(store));
  store.put = async (...args) => {
    const result = await put(...args);
    metrics.storeBytesWritten.inc(labels, result.size);
    return result;
  };
  const get = timed('get', store.get.bind(store));
  store.get = async (...args) => countPushed(await get(...args), (n) => metrics.storeBytesRead.inc(labels, n));
  store.delete = timed('delete', store.delete.bind(store));
  store.exists = timed('exists', store.exists.bind(store));
  if (store.adopt) {
    const adopt = timed('adopt', store.adopt.bind(store));
    store.adopt = async (...args) => {
      const result = await adopt(...args);
      metrics.storeBytesWritten.inc(labels, result.size);
      return result;
    };
  }
  return store;
}

/**
 * Counts the bytes a readable produces as its implementation pushes them.
 * Listening for 'data' instead would switch the stream to flowing mode before
 * its consumer is attached, and lose bytes.
 */
export function countPushed<R extends Readable>(stream: R, count: (bytes: number) => void): R {
  const push = stream.push;
  stream.push = function (this: Readable, chunk: unknown, encoding?: BufferEncoding) {
    if (chunk != null) count(typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : (chunk as { length: number }).length);
    return push.call(this, chunk, encoding);
  };
  return stream;
}

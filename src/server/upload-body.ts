import { PassThrough, type Readable } from 'node:stream';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BadRequest } from '../domain/errors.js';
import { awaitsContinue, continueNow } from './expect-continue.js';

/** Most bytes of a refused body read and thrown away so that the connection can be reused. */
const DISCARD_BYTES = 64 * 1024 * 1024;
/** Longest a refused body is read after its response went out. */
const DISCARD_MS = 10_000;

const discarding = new WeakSet<IncomingMessage>();

/**
 * The request body as a stream the data path may destroy on failure.
 * Destroying an IncomingMessage destroys its socket, and with it the error
 * response (413, 410, 503...) that a client still busy sending has not read
 * yet. So the data path gets a PassThrough instead: if it fails, the request
 * is unpiped and the rest of its body discarded (see discardUnreadBody).
 */
export function uploadBody(req: IncomingMessage, res: ServerResponse): Readable {
  // Not a byte is read before the data path starts reading (after its checks and claim);
  // a client sending `Expect: 100-continue` is told to send only then.
  const body = new LazyBody(() => {
    continueNow(req, res);
    req.pipe(body);
  });
  // A refused upload's body has no reader: without this listener the error
  // below, when its connection goes, would be an uncaught exception.
  // Readers (pipeline) still get the error.
  body.on('error', () => undefined);
  const gone = () => body.destroy(new BadRequest('The client closed the connection before the upload finished.'));
  req.on('error', gone);
  req.on('close', () => {
    if (!req.complete) gone();
  });
  body.on('close', () => {
    req.unpipe(body);
    if (!req.complete && !req.destroyed) discardUnreadBody(req, res);
  });
  return body;
}

class LazyBody extends PassThrough {
  private started = false;

  constructor(private readonly start: () => void) {
    super({ highWaterMark: 64 * 1024 });
  }

  override _read(size: number): void {
    if (!this.started) {
      this.started = true;
      this.start();
    }
    super._read(size);
  }
}

/**
 * Called when a response goes out before the request body was read: reads
 * and discards the rest, up to a bound, so the client (which may read the
 * response only once it has sent everything, as python-requests does) gets
 * the answer and the connection stays usable. A body announced larger than
 * the bound gets `Connection: close` instead; past the bound, or after
 * DISCARD_MS, the connection is cut.
 */
export function discardUnreadBody(req: IncomingMessage, res: ServerResponse): void {
  if (req.complete || req.destroyed || discarding.has(req)) return;
  // Refused before `100 Continue`: the client sends no body, so none is awaited; the connection ends with the answer.
  if (awaitsContinue(req)) {
    if (!res.headersSent) res.setHeader('connection', 'close');
    return;
  }
  discarding.add(req);
  const length = Number(req.headers['content-length']);
  const received = req.socket?.bytesRead ?? 0;
  if (Number.isFinite(length) && length - Math.min(received, length) > DISCARD_BYTES) {
    if (!res.headersSent) res.setHeader('connection', 'close');
    return;
  }
  let left = DISCARD_BYTES;
  let timer: NodeJS.Timeout | undefined;
  const cut = () => {
    if (res.writableFinished && !req.complete) req.destroy();
  };
  req.on('data', (chunk: Buffer) => {
    left -= chunk.length;
    if (left < 0) cut();
  });
  res.once('finish', () => {
    if (left < 0) cut();
    timer = setTimeout(cut, DISCARD_MS);
    timer.unref();
  });
  req.once('end', () => clearTimeout(timer));
  req.once('close', () => clearTimeout(timer));
  req.resume();
}

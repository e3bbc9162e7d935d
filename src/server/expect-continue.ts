import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { negotiateVersion } from './versions.js';

/**
 * `Expect: 100-continue`. Node answers `100 Continue` by itself unless the
 * server listens to `checkContinue`; we listen so that image data uploads
 * (PUT .../file, PUT .../stage) are decided first: the token, the image's
 * status, the declared size against the size cap and the quota are all
 * checked before the data path reads its first byte, and only then is the
 * client told to send (see continueNow, called when the body is first read).
 * A refused client never sends its body: its answer goes out with
 * `Connection: close`, since the body it announced will not follow.
 * Every other request gets `100 Continue` at once, so JSON bodies never stall.
 */

/** Requests whose client waits for `100 Continue` that has not been sent yet. */
const awaitingContinue = new WeakSet<IncomingMessage>();

const DATA_UPLOAD = /^\/v2\/images\/[^/?]+\/(file|stage)(\?|$)/;

function isDataUpload(req: IncomingMessage): boolean {
  return req.method === 'PUT' && DATA_UPLOAD.test(negotiateVersion(req));
}

export function installExpectContinue(server: Server): void {
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (isDataUpload(req)) awaitingContinue.add(req);
    else res.writeContinue();
    server.emit('request', req, res);
  });
}

/** The data path is about to read the body: tell a waiting client to send it. */
export function continueNow(req: IncomingMessage, res: ServerResponse): void {
  if (awaitingContinue.delete(req) && !res.headersSent && !res.writableEnded) res.writeContinue();
}

/** True while the client still waits for `100 Continue` (so it has sent no body). */
export function awaitsContinue(req: IncomingMessage): boolean {
  return awaitingContinue.has(req);
}

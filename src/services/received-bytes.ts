import type { ImagesRepo } from '../db/images-repo.js';
import type { ChunkTap } from '../stores/metered-stream.js';

/** How often a writer records how far it has come: often enough for a progress bar, rare enough to cost nothing. */
const EVERY_MS = 1_000;

/**
 * A tap that records, about once a second, how many bytes an upload or a
 * stage has received, in the image row (`imago_received_bytes` while the
 * image is saving or uploading). The row, not process memory, so that every
 * node behind a balancer answers the same. The write is fire-and-forget: a
 * slow database never slows the bytes, and a lost update is corrected by the
 * next one.
 */
export function receivedBytesTap(images: Pick<ImagesRepo, 'setReceived'>, imageId: string, writerId: string): ChunkTap {
  let last = Date.now();
  return (chunk, offset) => {
    const now = Date.now();
    if (now - last < EVERY_MS) return;
    last = now;
    images.setReceived(imageId, writerId, offset + chunk.length).catch(() => {});
  };
}

import { createHash, type Hash } from 'node:crypto';
import { BadRequest } from '../domain/errors.js';
import { digestMismatch, type ExpectedDigest } from '../domain/expected-digests.js';
import type { ChunkTap } from '../stores/metered-stream.js';

/**
 * Checks a write against the digests its client declared. md5 and sha512
 * come from the hash workers as for every write; sha256 is computed only
 * when a client declared one (a tap on the event loop: the uncommon case
 * pays, the others do not).
 */
export class DigestCheck {
  private readonly sha256: Hash | undefined;
  readonly taps: ChunkTap[];

  private constructor(private readonly expected: ExpectedDigest[]) {
    this.sha256 = expected.some((e) => e.algo === 'sha256') ? createHash('sha256') : undefined;
    this.taps = this.sha256 ? [(chunk) => this.sha256!.update(chunk)] : [];
  }

  /** undefined when nothing was declared: no check, no cost. */
  static of(expected: ExpectedDigest[]): DigestCheck | undefined {
    return expected.length ? new DigestCheck(expected) : undefined;
  }

  /** Throws a 400 naming the digest that differs. */
  verify(written: { md5: string; sha512: string }): void {
    const problem = this.problem(written);
    if (problem) throw new BadRequest(problem);
  }

  /** The mismatch as a message (an import task fails with it), undefined when the bytes are the declared ones. */
  problem(written: { md5: string; sha512: string }): string | undefined {
    return digestMismatch(this.expected, { md5: written.md5, sha512: written.sha512, sha256: this.sha256?.digest('hex') });
  }
}

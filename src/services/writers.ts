import { Gone, ServiceUnavailable } from '../domain/errors.js';

interface Writer {
  writerId: string;
  controller: AbortController;
  done: Promise<unknown>;
}

/**
 * The writers (upload, stage, import) running in this process, by image id.
 * Lets a DELETE stop a writer at once (invariant 4) and lets shutdown stop
 * every writer and wait until each has rolled back (invariant 3).
 */
export class WriterRegistry {
  private readonly writers = new Map<string, Writer>();
  private closing: Error | undefined;

  /** Throws once shutdown has begun, so no writer starts that shutdown would not wait for. */
  assertOpen(): void {
    if (this.closing) throw this.closing;
  }

  get isClosing(): boolean {
    return this.closing !== undefined;
  }

  register(imageId: string, writerId: string, controller: AbortController, done: Promise<unknown>): void {
    this.writers.set(imageId, { writerId, controller, done });
    done.finally(() => {
      if (this.writers.get(imageId)?.writerId === writerId) this.writers.delete(imageId);
    }).catch(() => {});
    if (this.closing) controller.abort(this.closing);
  }

  abort(imageId: string, reason: Error = new Gone(`Image ${imageId} was deleted while its data was being written.`)): void {
    this.writers.get(imageId)?.controller.abort(reason);
  }

  get size(): number {
    return this.writers.size;
  }

  /** Refuses new writers, aborts every running one with `reason` and waits until each has rolled back. */
  async abortAll(reason: Error = new ServiceUnavailable('The server is shutting down; retry later.')): Promise<void> {
    this.closing ??= reason;
    // A writer that claimed its image just before shutdown registers late; loop until none is left.
    while (this.writers.size) {
      const all = [...this.writers.values()];
      for (const w of all) w.controller.abort(this.closing);
      await Promise.allSettled(all.map((w) => w.done));
    }
  }

  async waitAll(): Promise<void> {
    await Promise.allSettled([...this.writers.values()].map((w) => w.done));
  }
}

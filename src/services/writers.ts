import { Gone } from '../domain/errors.js';

interface Writer {
  writerId: string;
  controller: AbortController;
  done: Promise<unknown>;
}

/**
 * The writers (upload, stage, import) running in this process, by image id.
 * Lets a DELETE stop a writer at once (invariant 4) and lets shutdown wait
 * for writers to finish or roll back.
 */
export class WriterRegistry {
  private readonly writers = new Map<string, Writer>();

  register(imageId: string, writerId: string, controller: AbortController, done: Promise<unknown>): void {
    this.writers.set(imageId, { writerId, controller, done });
    done.finally(() => {
      if (this.writers.get(imageId)?.writerId === writerId) this.writers.delete(imageId);
    }).catch(() => {});
  }

  abort(imageId: string, reason: Error = new Gone(`Image ${imageId} was deleted while its data was being written.`)): void {
    this.writers.get(imageId)?.controller.abort(reason);
  }

  get size(): number {
    return this.writers.size;
  }

  /** Aborts every writer with `reason` and waits until each has rolled back. */
  async abortAll(reason: Error): Promise<void> {
    const all = [...this.writers.values()];
    for (const w of all) w.controller.abort(reason);
    await Promise.allSettled(all.map((w) => w.done));
  }

  async waitAll(): Promise<void> {
    await Promise.allSettled([...this.writers.values()].map((w) => w.done));
  }
}

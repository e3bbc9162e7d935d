import { statSync } from 'node:fs';
import { FileRangeReader } from './file-range-reader.js';
import { FileSink } from './file-sink.js';
import { access, constants, mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ByteRange, PartialObjects, PutOptions, PutResult, StoreDriver, StoreInfo } from './store.js';
import { ObjectNotFound, StoreUnavailable, fsError, passesThrough } from './errors.js';

const TMP_DIR = '.tmp';
/** partial objects of resumable uploads: a live upload row owns each, so neither list() nor removeTemporary() looks here */
const PARTIAL_DIR = '.partial';
const READ_CHUNK = 1024 * 1024;

/**
 * Objects are plain files under one directory. A write goes to .tmp/, is
 * fsynced, then renamed into place, and the directory is fsynced: a partial
 * file is never visible as image data, and an acknowledged one survives a
 * power loss.
 */
export class FilesystemStore implements StoreDriver {
  readonly info: StoreInfo;
  private readonly dir: string;
  private ready: Promise<void> | undefined;
  private device: number | undefined;

  constructor(opts: { id: string; description: string; readOnly: boolean; path: string }) {
    this.dir = path.resolve(opts.path);
    this.info = {
      id: opts.id,
      type: 'file',
      description: opts.description,
      readOnly: opts.readOnly,
      properties: { data_dir: this.dir, chunk_size: READ_CHUNK, thin_provisioning: false },
    };
  }

  private ensureDirs(): Promise<void> {
    this.ready ??= mkdir(path.join(this.dir, TMP_DIR), { recursive: true }).then(() => undefined);
    return this.ready.catch((err) => {
      this.ready = undefined;
      throw fsError(this.info.id, err);
    });
  }

  async put(key: string, source: Readable, opts: PutOptions = {}): Promise<PutResult> {
    try {
      await this.ensureDirs();
    } catch (err) {
      source.destroy();
      throw err;
    }
    const tmp = path.join(this.dir, TMP_DIR, `${key}.${randomUUID()}`);
    const final = path.join(this.dir, key);
    let handle: FileHandle | undefined;
    let renamed = false;
    try {
      handle = await open(tmp, 'wx', 0o640);
      const sink = new FileSink(handle);
      await pipeline(source, sink, { signal: opts.signal });
      await handle.close();
      handle = undefined;
      await rename(tmp, final);
      renamed = true;
      await syncDir(this.dir);
      return { location: pathToFileURL(final).href, size: sink.bytesWritten };
    } catch (err) {
      if (!source.destroyed) source.destroy();
      await handle?.close().catch(() => {});
      await unlink(renamed ? final : tmp).catch(() => {});
      if (opts.signal?.aborted && passesThrough(opts.signal.reason)) throw opts.signal.reason;
      throw this.writeError(err);
    }
  }

  readonly partial: PartialObjects = {
    appendPartial: (key, offset, source, opts) => this.appendPartial(key, offset, source, opts),
    readPartial: (key, end) => this.readPartial(key, end),
    completePartial: (key, finalKey) => this.completePartial(key, finalKey),
    removePartial: (key) => this.removePartial(key),
  };

  private partialPath(key: string): string {
    return path.join(this.dir, PARTIAL_DIR, key);
  }

  private async appendPartial(key: string, offset: number, source: Readable, opts: PutOptions = {}): Promise<number> {
    const file = this.partialPath(key);
    let handle: FileHandle | undefined;
    try {
      if (offset === 0) {
        await mkdir(path.dirname(file), { recursive: true });
        handle = await open(file, 'w', 0o640);
        // the file's name must survive a power loss with the bytes the upload row will record
        await syncDir(path.dirname(file));
      } else {
        handle = await open(file, 'r+');
        // bytes past the recorded offset were written but never recorded (kill -9 during a PATCH)
        if ((await handle.stat()).size !== offset) await handle.truncate(offset);
      }
    } catch (err) {
      source.destroy();
      await handle?.close().catch(() => {});
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && offset > 0) throw new ObjectNotFound(key);
      throw this.writeError(err);
    }
    const sink = new FileSink(handle, { position: offset });
    try {
      await pipeline(source, sink, { signal: opts.signal });
      return offset + sink.bytesWritten;
    } catch (err) {
      if (!source.destroyed) source.destroy();
      await handle.truncate(offset).catch(() => {});
      if (opts.signal?.aborted && passesThrough(opts.signal.reason)) throw opts.signal.reason;
      throw this.writeError(err);
    } finally {
      await handle.close().catch(() => {});
    }
  }

  private async readPartial(key: string, end: number): Promise<Readable> {
    try {
      const handle = await open(this.partialPath(key), 'r');
      return new FileRangeReader(handle, 0, end - 1, READ_CHUNK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ObjectNotFound(key);
      throw fsError(this.info.id, err);
    }
  }

  private async completePartial(key: string, finalKey: string): Promise<PutResult> {
    await this.ensureDirs();
    const from = this.partialPath(key);
    const final = path.join(this.dir, finalKey);
    try {
      const { size } = await stat(from);
      await rename(from, final);
      await syncDir(this.dir);
      return { location: pathToFileURL(final).href, size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ObjectNotFound(key);
      throw fsError(this.info.id, err);
    }
  }

  private async removePartial(key: string): Promise<void> {
    await rm(this.partialPath(key), { force: true }).catch((err) => {
      throw fsError(this.info.id, err);
    });
  }

  /** A write that finds no directory means the store went away (unmounted, removed): unavailable, not "not found". */
  private writeError(err: unknown): Error {
    const code = (err as NodeJS.ErrnoException)?.code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      this.ready = undefined;
      return new StoreUnavailable(this.info.id, (err as Error).message);
    }
    return fsError(this.info.id, err);
  }

  async get(location: string, range?: ByteRange): Promise<Readable> {
    const file = this.pathOf(location);
    try {
      const handle = await open(file, 'r');
      const end = range ? range.end : (await handle.stat().catch(async (err) => {
        await handle.close();
        throw err;
      })).size - 1;
      return new FileRangeReader(handle, range?.start ?? 0, end, READ_CHUNK);
    } catch (err) {
      throw fsError(this.info.id, err);
    }
  }

  async delete(location: string): Promise<void> {
    try {
      await unlink(this.pathOf(location));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(this.info.id, err);
    }
  }

  owns(location: string): boolean {
    try {
      this.pathOf(location);
      return true;
    } catch {
      return false;
    }
  }

  async size(location: string): Promise<number> {
    const file = this.pathOf(location);
    try {
      const st = await stat(file);
      if (!st.isFile()) throw new ObjectNotFound(location);
      return st.size;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw new ObjectNotFound(location);
      throw fsError(this.info.id, err);
    }
  }

  async exists(location: string): Promise<boolean> {
    let file: string;
    try {
      file = this.pathOf(location);
    } catch {
      return false;
    }
    try {
      return (await stat(file)).isFile();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      throw fsError(this.info.id, err);
    }
  }

  async *list(): AsyncIterable<string> {
    let entries;
    try {
      entries = await readdir(this.dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw fsError(this.info.id, err);
    }
    for (const e of entries) if (e.isFile()) yield pathToFileURL(path.join(this.dir, e.name)).href;
  }

  async removeTemporary(key?: string): Promise<number> {
    const tmpDir = path.join(this.dir, TMP_DIR);
    let names: string[];
    try {
      names = await readdir(tmpDir);
    } catch {
      return 0;
    }
    // a temporary is named <key>.<uuid>
    if (key !== undefined) names = names.filter((n) => n.slice(0, -37) === key);
    await Promise.all(names.map((n) => rm(path.join(tmpDir, n), { force: true })));
    return names.length;
  }

  /**
   * Health: the store's directory answers. A writable store creates its
   * directories on first use; once they exist, their disappearance (an
   * unmounted volume) is a failure, not something to paper over by creating
   * them again on the root filesystem.
   */
  async probe(): Promise<void> {
    if (this.info.readOnly) return access(this.dir, constants.R_OK);
    await this.ensureDirs();
    await access(path.join(this.dir, TMP_DIR), constants.R_OK | constants.W_OK);
  }

  /** The device the store's directory is on: a rename moves an object between two stores on one device. */
  medium(): string | undefined {
    this.device ??= deviceOf(this.dir);
    return this.device === undefined ? undefined : `filesystem:${this.device}`;
  }

  /** A rename within one filesystem: staging to store without copying a byte. */
  async adopt(driver: StoreDriver, location: string, key: string): Promise<PutResult> {
    const other = driver as FilesystemStore;
    await this.ensureDirs();
    const from = other.pathOf(location);
    const final = path.join(this.dir, key);
    try {
      const { size } = await stat(from);
      await rename(from, final);
      await syncDir(this.dir);
      await syncDir(other.dir);
      return { location: pathToFileURL(final).href, size };
    } catch (err) {
      throw fsError(this.info.id, err);
    }
  }

  private pathOf(location: string): string {
    let file: string;
    try {
      file = fileURLToPath(location);
    } catch {
      throw new ObjectNotFound(location);
    }
    if (path.dirname(file) !== this.dir) throw new ObjectNotFound(location);
    return file;
  }
}

// Both stores create their directory on first use, so compare the parents that exist.
function deviceOf(dir: string): number | undefined {
  for (let d = dir; ; d = path.dirname(d)) {
    try {
      return statSync(d).dev;
    } catch {
      if (path.dirname(d) === d) return undefined;
    }
  }
}

/** fsyncs a directory, so that a rename or an unlink in it survives a power loss. */
export async function syncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

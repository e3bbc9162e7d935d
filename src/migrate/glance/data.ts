import { createHash, getHashes, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Store } from '../../stores/store.js';
import type { GlanceImage } from './read.js';

/** An Imago filesystem store as configured: where its files live. */
export interface FileStoreDir {
  storeId: string;
  dir: string;
}

/** What happens to an image's bytes. */
export type DataPlan =
  | { kind: 'none' }
  | { kind: 'adopt'; storeId: string; url: string; file: string }
  | { kind: 'copy'; file: string }
  | { kind: 'unreachable'; reason: string };

/**
 * Images with data have a file:// location in Glance's filesystem store.
 * When that directory is also an Imago filesystem store, Imago names objects
 * the way Glance does (a file named after the image id directly in the
 * directory), so the file is adopted where it is: a location row, no copy.
 * Otherwise the bytes are copied. Other location schemes (rbd, swift, http)
 * are not read by this tool.
 */
export function planData(img: GlanceImage, fileStores: FileStoreDir[]): DataPlan {
  if (img.locations.length === 0) return { kind: 'none' };
  const url = img.locations.find((l) => l.startsWith('file:')) ?? img.locations[0];
  if (!url.startsWith('file:')) return { kind: 'unreachable', reason: `its data is at ${url.replace(/\/\/[^/@]*@/, '//***@')}, which only file:// locations are read from` };
  let file: string;
  try {
    file = path.resolve(fileURLToPath(url));
  } catch {
    return { kind: 'unreachable', reason: `its location ${url} is not a usable file URL` };
  }
  const home = fileStores.find((s) => s.dir === path.dirname(file) && path.basename(file) === img.id);
  if (home) return { kind: 'adopt', storeId: home.storeId, url: pathToFileURL(file).href, file };
  return { kind: 'copy', file };
}

/** Checks that an adopted file is there and as large as Glance recorded. */
export async function checkAdoptable(file: string, size: number | null): Promise<string | undefined> {
  try {
    const st = await stat(file);
    if (!st.isFile()) return `${file} is not a regular file`;
    if (size !== null && st.size !== size) return `${file} holds ${st.size} bytes where Glance recorded ${size}`;
    return undefined;
  } catch (err) {
    return `${file} cannot be read: ${(err as Error).message}`;
  }
}

export interface CopyResult {
  location: string;
  size: number;
  /** true when Glance recorded neither checksum nor multihash to compare with */
  unverified: boolean;
}

/** The copy failed or did not match; nothing was left in the store. */
export class CopyProblem extends Error {}

/**
 * Streams the file into `store` under the image id, hashing on the way, and
 * compares size, md5 checksum and os_hash_value with what Glance recorded.
 * A mismatch removes the copy: only verified bytes become image data.
 */
export async function copyVerified(img: GlanceImage, file: string, store: Store): Promise<CopyResult> {
  if (img.osHashAlgo && img.osHashValue && !getHashes().includes(img.osHashAlgo.toLowerCase())) {
    throw new CopyProblem(`its multihash uses ${img.osHashAlgo}, which this Node.js cannot compute`);
  }
  const tap = new DigestTap(img.checksum ? 'md5' : undefined, img.osHashValue ? img.osHashAlgo?.toLowerCase() : undefined);
  let put;
  try {
    await stat(file);
    const source = createReadStream(file);
    source.on('error', (err) => tap.destroy(err));
    tap.on('close', () => source.destroy());
    put = await store.put(img.id, source.pipe(tap), img.size !== null ? { expectedSize: img.size } : {});
  } catch (err) {
    throw new CopyProblem(`copying ${file} failed: ${(err as Error).message}`);
  }
  const wrong: string[] = [];
  if (img.size !== null && put.size !== img.size) wrong.push(`size ${put.size} (Glance: ${img.size})`);
  const md5 = tap.md5?.digest('hex');
  if (img.checksum && md5 !== img.checksum) wrong.push(`checksum ${md5} (Glance: ${img.checksum})`);
  const multi = tap.multi?.digest('hex');
  if (img.osHashValue && multi !== img.osHashValue) wrong.push(`${img.osHashAlgo} ${multi?.slice(0, 16)}... (Glance: ${img.osHashValue.slice(0, 16)}...)`);
  if (wrong.length) {
    await store.delete(put.location).catch(() => {});
    throw new CopyProblem(`the copied bytes do not match what Glance recorded: ${wrong.join(', ')}`);
  }
  return { location: put.location, size: put.size, unverified: !img.checksum && !img.osHashValue };
}

/** Passes bytes through unchanged, feeding the digests on the way. */
class DigestTap extends Transform {
  readonly md5: Hash | undefined;
  readonly multi: Hash | undefined;

  constructor(md5: 'md5' | undefined, algo: string | undefined) {
    super();
    this.md5 = md5 ? createHash('md5') : undefined;
    this.multi = algo ? createHash(algo) : undefined;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.md5?.update(chunk);
    this.multi?.update(chunk);
    done(null, chunk);
  }
}

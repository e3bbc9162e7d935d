/**
 * QEMU copy-on-write v2/v3 ("qcow2").
 *
 * Big-endian header at offset 0 (docs/interop/qcow2.txt in QEMU):
 *   0 magic "QFI\xfb" | 4 version | 8 backing_file_offset (u64) | 16 backing_file_size (u32)
 *   20 cluster_bits | 24 size (u64) | ... v3 only: 72 incompatible_features (u64)
 *   80 compatible_features | 88 autoclear_features | 96 refcount_order | 100 header_length
 * Header extensions follow the header (v2: at 72, v3: at header_length) inside cluster 0.
 *   36 l1_size (u32) | 40 l1_table_offset (u64) | 48 refcount_table_offset (u64)
 *   56 refcount_table_clusters (u32) | 60 nb_snapshots (u32) | 64 snapshots_offset (u64)
 *
 * Every table the header points to must lie inside the data: a file cut after its header
 * would otherwise pass as an image whose tables a reader finds past the end (issue 14).
 */

import type { FinalView, Probe, ProbeMatch } from './types.js';
import { u64ToNumber } from './util.js';

const MAGIC = Buffer.from([0x51, 0x46, 0x49, 0xfb]);
const V2_HEADER = 72;
const V3_MIN_HEADER = 104;

/** Incompatible feature bits QEMU defines: dirty, corrupt, external data file, compression type, extended L2. */
const KNOWN_INCOMPATIBLE = 0b1_1111n;
const INCOMPAT_EXTERNAL_DATA_FILE = 1n << 2n;

/** Header extension types that point outside the image. */
const EXT_END = 0x00000000;
const EXT_DATA_FILE_NAME = 0x44415441; // "DATA"

/** Upper bound on how much of cluster 0 we walk looking for header extensions. */
const MAX_EXTENSION_AREA = 64 * 1024;
/** The smallest snapshot table entry (fixed part, before its id, name and extra data). */
const MIN_SNAPSHOT_ENTRY = 40;

export class Qcow2Probe implements Probe {
  readonly format = 'qcow2' as const;

  finish(view: FinalView): ProbeMatch | null {
    const magic = view.bytes(0, 4);
    if (magic === null || !magic.equals(MAGIC)) return null;

    const problems: string[] = [];
    const fixed = view.bytes(0, V2_HEADER);
    if (fixed === null) {
      return { format: this.format, virtualSize: null, problems: ['qcow2 header is truncated'] };
    }

    const version = fixed.readUInt32BE(4);
    const backingOffset = fixed.readBigUInt64BE(8);
    const backingSize = fixed.readUInt32BE(16);
    const clusterBits = fixed.readUInt32BE(20);
    const sizeRaw = fixed.readBigUInt64BE(24);
    const virtualSize = u64ToNumber(sizeRaw);
    if (virtualSize === null) problems.push('qcow2 virtual size is out of range');

    if (version !== 2 && version !== 3) {
      problems.push(`Unsupported qcow2 version ${version}`);
      return { format: this.format, virtualSize, problems };
    }
    if (backingOffset !== 0n || backingSize !== 0) {
      problems.push('qcow2 image references a backing file');
    }

    let extensionsAt = V2_HEADER;
    if (version === 3) {
      const v3 = view.bytes(0, V3_MIN_HEADER);
      if (v3 === null) {
        problems.push('qcow2 v3 header is truncated');
        return { format: this.format, virtualSize, problems };
      }
      const incompatible = v3.readBigUInt64BE(72);
      if (incompatible & INCOMPAT_EXTERNAL_DATA_FILE) {
        problems.push('qcow2 image uses an external data file');
      }
      const unknown = incompatible & ~KNOWN_INCOMPATIBLE;
      if (unknown !== 0n) {
        problems.push(`qcow2 image has unknown incompatible feature bits 0x${unknown.toString(16)}`);
      }
      extensionsAt = v3.readUInt32BE(100);
      if (extensionsAt < V3_MIN_HEADER) problems.push('qcow2 header length is invalid');
    }

    problems.push(...this.checkExtensions(view, extensionsAt, clusterBits));
    if (clusterBits >= 9 && clusterBits <= 21) problems.push(...this.checkTables(fixed, view.totalSize, 2 ** clusterBits));
    return { format: this.format, virtualSize, problems };
  }

  /** The L1 table, the refcount table and the snapshot table lie inside the data. */
  private checkTables(header: Buffer, totalSize: number, clusterSize: number): string[] {
    const size = BigInt(totalSize);
    const inside = (offset: bigint, length: bigint) => offset + length <= size;
    const problems: string[] = [];
    const l1Size = BigInt(header.readUInt32BE(36));
    if (l1Size > 0n && !inside(header.readBigUInt64BE(40), l1Size * 8n)) problems.push('qcow2 L1 table lies beyond the end of the data');
    const refcountClusters = BigInt(header.readUInt32BE(56));
    const refcountTable = header.readBigUInt64BE(48);
    if (refcountClusters === 0n || refcountTable === 0n) problems.push('qcow2 header has no refcount table');
    else if (!inside(refcountTable, refcountClusters * BigInt(clusterSize))) problems.push('qcow2 refcount table lies beyond the end of the data');
    const snapshots = BigInt(header.readUInt32BE(60));
    if (snapshots > 0n && !inside(header.readBigUInt64BE(64), snapshots * BigInt(MIN_SNAPSHOT_ENTRY))) {
      problems.push('qcow2 snapshot table lies beyond the end of the data');
    }
    return problems;
  }

  /**
   * Walks the header extensions in cluster 0. An external data file name there is refused
   * even when the feature bit is clear: nothing legitimate needs it and a reader that honours
   * it would open a host file.
   */
  private checkExtensions(view: FinalView, start: number, clusterBits: number): string[] {
    if (clusterBits < 9 || clusterBits > 21) return [`qcow2 cluster_bits ${clusterBits} is invalid`];
    const limit = Math.min(1 << clusterBits, MAX_EXTENSION_AREA, view.prefixLength, view.totalSize);
    let at = start;
    while (at + 8 <= limit) {
      const head = view.bytes(at, 8);
      if (head === null) break;
      const type = head.readUInt32BE(0);
      const len = head.readUInt32BE(4);
      if (type === EXT_END) return [];
      if (type === EXT_DATA_FILE_NAME) return ['qcow2 header names an external data file'];
      at += 8 + Math.ceil(len / 8) * 8;
    }
    // The extensions run past the end of the data: the file was cut inside its header.
    if (at + 8 > view.totalSize) return ['qcow2 header extensions run past the end of the data'];
    // Running off the end of the walkable area is what a malformed header looks like; QEMU
    // rejects such images itself, so this is not treated as a safety problem.
    return [];
  }
}

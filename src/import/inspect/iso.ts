/**
 * ISO 9660 (and UDF). The first 16 sectors of 2048 bytes are a free "system area" (hybrid
 * ISOs put an MBR/GPT there). The volume descriptor set starts at sector 16 (offset 0x8000):
 * each 2048-byte descriptor is 1 type byte, a 5-byte standard identifier ("CD001"; UDF uses
 * "BEA01", "NSR02", "NSR03", "TEA01") and a version byte. We walk descriptors until one
 * carries neither identifier (the ISO set's type-255 terminator may be followed by UDF ones).
 *
 * Primary volume descriptor (type 1): both-endian fields, the little-endian half first:
 *   80 volume space size (u32 LE, u32 BE) | 128 logical block size (u16 LE, u16 BE)
 */

import type { FinalView, Probe, ProbeMatch } from './types.js';

const SECTOR = 2048;
const FIRST_DESCRIPTOR = 16 * SECTOR;
/** How many descriptors we are willing to walk (64 KiB, well within the prefix). */
const MAX_DESCRIPTORS = 32;
const ISO_ID = 'CD001';
const UDF_IDS = new Set(['BEA01', 'NSR02', 'NSR03', 'TEA01']);
const TYPE_PRIMARY = 1;

export class IsoProbe implements Probe {
  readonly format = 'iso' as const;

  finish(view: FinalView): ProbeMatch | null {
    let iso = false;
    let udf = false;
    let primary: Buffer | null = null;
    for (let i = 0; i < MAX_DESCRIPTORS; i++) {
      const desc = view.bytes(FIRST_DESCRIPTOR + i * SECTOR, SECTOR);
      if (desc === null) break;
      const id = desc.toString('latin1', 1, 6);
      if (id === ISO_ID) {
        iso = true;
        if (desc[0] === TYPE_PRIMARY && primary === null) primary = desc;
      } else if (UDF_IDS.has(id)) {
        udf = true;
      } else {
        break;
      }
    }
    if (!iso && !udf) return null;

    const problems: string[] = [];
    if (primary === null) {
      // UDF-only media: the volume is consumed as a plain block device.
      return { format: this.format, virtualSize: iso ? null : view.totalSize, problems };
    }
    const blocks = primary.readUInt32LE(80);
    const blockSize = primary.readUInt16LE(128);
    if (blocks !== primary.readUInt32BE(84) || blockSize !== primary.readUInt16BE(130)) {
      problems.push('ISO primary volume descriptor has inconsistent both-endian fields');
    }
    return { format: this.format, virtualSize: blocks * blockSize, problems };
  }
}

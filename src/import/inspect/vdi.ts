/**
 * VirtualBox VDI. Little-endian header within the first 512 bytes:
 *   0x40 signature 0xbeda107f | 0x44 version (0x00010001 = 1.1) | 0x4c image type
 *   0x154 block map offset | 0x158 data offset | 0x170 disk size (u64) | 0x178 block size
 *   0x180 blocks in image | 0x184 blocks allocated
 * The block map and the allocated blocks must lie inside the data (issue 14: a cut file is refused).
 * Image types: 1 dynamic, 2 static, 3 undo, 4 differencing. Only the first two hold a whole
 * disk; the others depend on a parent image that lives elsewhere.
 */

import type { FinalView, Probe, ProbeMatch } from './types.js';
import { u64ToNumber } from './util.js';

const SIGNATURE = 0xbeda107f;
const VERSION_1_1 = 0x00010001;
const TYPE_DYNAMIC = 1;
const TYPE_STATIC = 2;

export class VdiProbe implements Probe {
  readonly format = 'vdi' as const;

  finish(view: FinalView): ProbeMatch | null {
    const sig = view.bytes(0x40, 4);
    if (sig === null || sig.readUInt32LE(0) !== SIGNATURE) return null;
    const header = view.bytes(0, 0x188);
    if (header === null) return { format: this.format, virtualSize: null, problems: ['VDI header is truncated'] };

    const problems: string[] = [];
    const version = header.readUInt32LE(0x44);
    if (version !== VERSION_1_1) problems.push(`VDI version 0x${version.toString(16)} is not supported`);
    const type = header.readUInt32LE(0x4c);
    if (type !== TYPE_DYNAMIC && type !== TYPE_STATIC) {
      problems.push(`VDI image type ${type} is not allowed (only dynamic and static disks; others need a parent image)`);
    }
    const virtualSize = u64ToNumber(header.readBigUInt64LE(0x170));
    if (virtualSize === null) problems.push('VDI disk size is out of range');
    const end = view.totalSize;
    const blocks = header.readUInt32LE(0x180);
    if (header.readUInt32LE(0x154) + blocks * 4 > end) problems.push('VDI block map lies beyond the end of the data');
    if (header.readUInt32LE(0x158) + header.readUInt32LE(0x184) * header.readUInt32LE(0x178) > end) {
      problems.push('VDI allocated blocks lie beyond the end of the data');
    }
    return { format: this.format, virtualSize, problems };
  }
}

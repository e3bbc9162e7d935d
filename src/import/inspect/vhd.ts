/**
 * Microsoft/Connectix VHD ("vpc" in QEMU).
 *
 * A 512-byte big-endian footer "conectix" sits in the last sector of every VHD. Dynamic and
 * differencing disks also keep a copy at offset 0 (which is what readers look at first); a
 * fixed disk is raw data followed by the footer only, so we also look at the stream's tail.
 *
 * Footer: 0 cookie | 16 data offset | 28 creator app | 40 original size | 48 current size
 *   56 geometry (cylinders u16, heads u8, sectors/track u8) | 60 disk type | 64 checksum
 * A dynamic disk's footer points (data offset) at its 1024-byte dynamic header "cxsparse":
 *   16 table offset (u64, the block allocation table) | 28 max table entries (u32)
 * Both must lie inside the data, before the trailing footer (issue 14).
 */

import type { FinalView, Probe, ProbeMatch } from './types.js';
import { u64ToNumber } from './util.js';

const COOKIE = 'conectix';
const FOOTER = 512;
const DISK_FIXED = 2;
const DISK_DYNAMIC = 3;
const DISK_DIFFERENCING = 4;
/** Creator apps whose images are sized by "current size" rather than CHS geometry (as QEMU does). */
const SIZED_BY_CURRENT_SIZE = new Set(['win ', 'qem2', 'd2v ', 'CTXS', 'tap\0']);
const MAX_CHS_SECTORS = 65535 * 16 * 255;
const DYNAMIC_HEADER = 1024;

function isFooter(buf: Buffer | null): buf is Buffer {
  return buf !== null && buf.length === FOOTER && buf.toString('latin1', 0, 8) === COOKIE;
}

function checksumOk(footer: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < FOOTER; i++) if (i < 64 || i >= 68) sum += footer[i]!;
  return ((~sum) >>> 0) === footer.readUInt32BE(64);
}

/**
 * The size a guest sees. QEMU trusts the CHS geometry for images made by Virtual PC or QEMU's
 * legacy mode and "current size" for Hyper-V, disk2vhd, XenServer and friends, or whenever the
 * geometry is maxed out; we report the same so the number matches what the hypervisor will see.
 */
export function vhdVirtualSize(footer: Buffer): number | null {
  const creator = footer.toString('latin1', 28, 32);
  const chsSectors = footer.readUInt16BE(56) * footer[58]! * footer[59]!;
  if (SIZED_BY_CURRENT_SIZE.has(creator) || chsSectors === MAX_CHS_SECTORS) {
    const current = footer.readBigUInt64BE(48);
    return u64ToNumber((current / 512n) * 512n);
  }
  return chsSectors * 512;
}

export class VhdProbe implements Probe {
  readonly format = 'vhd' as const;

  finish(view: FinalView): ProbeMatch | null {
    const head = view.bytes(0, FOOTER);
    const tail = view.totalSize >= FOOTER ? view.bytes(view.totalSize - FOOTER, FOOTER) : null;
    const headOk = isFooter(head);
    const tailOk = isFooter(tail) && view.totalSize > FOOTER;
    if (!headOk && !tailOk) return null;

    const problems: string[] = [];
    // Readers use the copy at offset 0 when there is one, otherwise the trailing footer.
    const footer = headOk ? head : (tail as Buffer);
    if (!checksumOk(footer)) problems.push('VHD footer checksum is invalid');
    if (headOk && tailOk && view.totalSize > FOOTER && !head.equals(tail as Buffer)) {
      problems.push('VHD footer copies at the start and end of the image differ');
    }

    const diskType = footer.readUInt32BE(60);
    if (diskType === DISK_DIFFERENCING) problems.push('VHD is a differencing disk that references a parent image');
    else if (diskType !== DISK_FIXED && diskType !== DISK_DYNAMIC) problems.push(`VHD disk type ${diskType} is not supported`);

    const virtualSize = vhdVirtualSize(footer);
    if (virtualSize === null) problems.push('VHD size is out of range');
    if (diskType === DISK_DYNAMIC || diskType === DISK_DIFFERENCING) {
      // A dynamic disk ends with its footer; without it the file was cut.
      if (!tailOk) problems.push('VHD footer at the end of the data is missing');
      problems.push(...checkDynamicHeader(view, footer));
    }
    return { format: this.format, virtualSize, problems };
  }
}

/** The dynamic header and its block allocation table lie inside the data. */
function checkDynamicHeader(view: FinalView, footer: Buffer): string[] {
  const end = BigInt(view.totalSize);
  const at = footer.readBigUInt64BE(16);
  if (at + BigInt(DYNAMIC_HEADER) > end) return ['VHD dynamic header lies beyond the end of the data'];
  const header = view.bytes(Number(at), DYNAMIC_HEADER);
  // Beyond the inspection window: where QEMU never puts it, and nothing more can be checked here.
  if (header === null) return [];
  if (header.toString('latin1', 0, 8) !== 'cxsparse') return ['VHD dynamic header signature is missing'];
  const bat = header.readBigUInt64BE(16);
  const entries = BigInt(header.readUInt32BE(28));
  if (bat + entries * 4n > end) return ['VHD block allocation table lies beyond the end of the data'];
  return [];
}

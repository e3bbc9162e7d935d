/**
 * Small binary helpers shared by the format probes. Pure functions only.
 */

/** Converts an unsigned 64-bit value to a JS number, or null when it does not fit exactly. */
export function u64ToNumber(value: bigint): number | null {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : null;
}

/** 2^64 - 1: "all ones", used as a sentinel by VHD and VMDK. */
export const U64_ALL_ONES = 0xffff_ffff_ffff_ffffn;

/**
 * Encodes a Microsoft-style GUID string ("CAA16737-FA36-4D43-B3B6-33F0AA44E76B") into
 * its 16-byte on-disk form: the first three groups little-endian, the rest as written.
 */
export function guidBytes(text: string): Buffer {
  const hex = text.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`bad GUID ${text}`);
  const raw = Buffer.from(hex, 'hex');
  const out = Buffer.alloc(16);
  out.writeUInt32LE(raw.readUInt32BE(0), 0);
  out.writeUInt16LE(raw.readUInt16BE(4), 4);
  out.writeUInt16LE(raw.readUInt16BE(6), 6);
  raw.copy(out, 8, 8, 16);
  return out;
}

/** Formats 16 on-disk GUID bytes back into the usual upper-case text form. */
export function guidText(buf: Buffer): string {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(buf.readUInt32LE(0), 0);
  head.writeUInt16BE(buf.readUInt16LE(4), 4);
  head.writeUInt16BE(buf.readUInt16LE(6), 6);
  const h = head.toString('hex') + buf.subarray(8, 16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`.toUpperCase();
}

let crc32cTable: Uint32Array | null = null;

/** CRC-32C (Castagnoli), as used for VHDX header and region-table checksums. */
export function crc32c(buf: Buffer): number {
  if (crc32cTable === null) {
    crc32cTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      crc32cTable[n] = c >>> 0;
    }
  }
  const table = crc32cTable;
  let crc = 0xffffffff;
  for (let i = 0; i < buf.length; i++) crc = table[(crc ^ buf[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** Renders untrusted bytes for an error message: printable ASCII only, bounded length. */
export function printable(text: string, max = 80): string {
  const cleaned = text.replace(/[^\x20-\x7e]/g, '?');
  return cleaned.length > max ? `${cleaned.slice(0, max)}...` : cleaned;
}

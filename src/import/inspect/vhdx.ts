/**
 * Microsoft VHDX (MS-VHDX). Everything is little-endian and located by GUID.
 *
 *   0        file type identifier "vhdxfile"
 *   64 KiB   header 1  ("head", CRC-32C, sequence number, log GUID, version)
 *   128 KiB  header 2
 *   192 KiB  region table 1 ("regi", CRC-32C, entry count, 32-byte entries: GUID, offset, length, flags)
 *   256 KiB  region table 2
 *
 * The region table points at the metadata region, whose first 64 KiB is a table of 32-byte
 * entries (GUID, offset within the region, length, flags). The "Virtual Disk Size" item holds
 * the virtual size; "File Parameters" says whether the disk has a parent; a "Parent Locator"
 * item names the parent file.
 *
 * The headers and region tables live in the retained prefix. The metadata region can be
 * anywhere after the first MiB (QEMU puts it at 3 MiB), so once the region table has streamed
 * past we ask for a 64 KiB capture of the metadata table, then 8-byte captures of the items.
 */

import type { Capture, FinalView, Probe, ProbeMatch, StreamView } from './types.js';
import { crc32c, guidBytes, guidText, u64ToNumber } from './util.js';

const SIGNATURE = 'vhdxfile';
const HEADER_OFFSETS = [64 * 1024, 128 * 1024];
const HEADER_SIZE = 4096;
const REGION_TABLE_OFFSET = 192 * 1024;
const REGION_TABLE_SIZE = 64 * 1024;
const METADATA_TABLE_SIZE = 64 * 1024;
const MAX_ENTRIES = 2047;
const MIB = 1024 * 1024;

const REGION_BAT = guidBytes('2DC27766-F623-4200-9D64-115E9BFD4A08');
const REGION_METADATA = guidBytes('8B7CA206-4790-4B9A-B8FE-575F050F886E');

const META_FILE_PARAMETERS = guidBytes('CAA16737-FA36-4D43-B3B6-33F0AA44E76B');
const META_VIRTUAL_DISK_SIZE = guidBytes('2FA54224-CD1B-4876-B211-5DBED83BF4B8');
const META_PAGE83 = guidBytes('BECA12AB-B2E6-4523-93EF-C309E000C746');
const META_LOGICAL_SECTOR = guidBytes('8141BF1D-A96F-4709-BA47-F233A8FAAB5F');
const META_PHYSICAL_SECTOR = guidBytes('CDA348C7-445D-4471-9CC9-E9885251C556');
const META_PARENT_LOCATOR = guidBytes('A8D35F2D-B30B-454D-ABF7-D3D84834AB0C');
const KNOWN_META = [
  META_FILE_PARAMETERS,
  META_VIRTUAL_DISK_SIZE,
  META_PAGE83,
  META_LOGICAL_SECTOR,
  META_PHYSICAL_SECTOR,
  META_PARENT_LOCATOR,
];

const META_FLAG_REQUIRED = 1 << 2;
const FILE_PARAM_HAS_PARENT = 1 << 1;

/** Verifies a CRC-32C that covers `buf` with its own checksum field (at `at`) zeroed. */
function checksumValid(buf: Buffer, at: number): boolean {
  const copy = Buffer.from(buf);
  const stored = copy.readUInt32LE(at);
  copy.writeUInt32LE(0, at);
  return crc32c(copy) === stored;
}

export class VhdxProbe implements Probe {
  readonly format = 'vhdx' as const;
  private inactive = false;
  private regionParsed = false;
  private readonly problems: string[] = [];
  private metaOffset = 0;
  private metaLength = 0;
  private metaTable: Capture | null = null;
  private metaParsed = false;
  private sizeItem: Capture | null = null;
  private paramsItem: Capture | null = null;
  /** end offsets of the regions (BAT, metadata) the region table lists; all must lie inside the data */
  private readonly regionEnds: { name: string; end: number }[] = [];

  update(view: StreamView): void {
    if (this.inactive || this.metaParsed) return;
    if (!this.regionParsed) {
      const ident = view.bytes(0, 8);
      if (ident === null) return;
      if (ident.toString('latin1') !== SIGNATURE) {
        this.inactive = true;
        return;
      }
      const table = view.bytes(REGION_TABLE_OFFSET, REGION_TABLE_SIZE);
      if (table === null) return;
      this.regionParsed = true;
      this.parseRegionTable(table, view);
    }
    if (this.metaTable !== null && this.metaTable.complete && !this.metaParsed) {
      this.metaParsed = true;
      this.parseMetadataTable(this.metaTable.data, view);
    }
  }

  private parseRegionTable(table: Buffer, view: StreamView): void {
    if (table.toString('latin1', 0, 4) !== 'regi') {
      this.problems.push('VHDX region table signature is missing');
      return;
    }
    if (!checksumValid(table, 4)) this.problems.push('VHDX region table checksum is invalid');
    const count = table.readUInt32LE(8);
    if (count > MAX_ENTRIES) {
      this.problems.push(`VHDX region table has too many entries (${count})`);
      return;
    }
    let found = false;
    for (let i = 0; i < count; i++) {
      const entry = table.subarray(16 + i * 32, 16 + (i + 1) * 32);
      const guid = entry.subarray(0, 16);
      const offset = u64ToNumber(entry.readBigUInt64LE(16));
      const length = entry.readUInt32LE(24);
      const required = (entry.readUInt32LE(28) & 1) === 1;
      if (offset !== null && (guid.equals(REGION_METADATA) || guid.equals(REGION_BAT))) {
        this.regionEnds.push({ name: guid.equals(REGION_BAT) ? 'block allocation table' : 'metadata region', end: offset + length });
      }
      if (guid.equals(REGION_METADATA)) {
        if (found) {
          this.problems.push('VHDX region table lists the metadata region twice');
          continue;
        }
        found = true;
        if (offset === null || offset < MIB || offset % MIB !== 0 || length < METADATA_TABLE_SIZE) {
          this.problems.push('VHDX metadata region location is invalid');
          continue;
        }
        this.metaOffset = offset;
        this.metaLength = length;
        this.metaTable = view.capture(offset, METADATA_TABLE_SIZE);
      } else if (!guid.equals(REGION_BAT) && required) {
        this.problems.push(`VHDX has an unknown required region ${guidText(guid)}`);
      }
    }
    if (!found) this.problems.push('VHDX has no metadata region');
  }

  private parseMetadataTable(table: Buffer, view: StreamView): void {
    if (table.toString('latin1', 0, 8) !== 'metadata') {
      this.problems.push('VHDX metadata table signature is missing');
      return;
    }
    const count = table.readUInt16LE(10);
    if (count > MAX_ENTRIES) {
      this.problems.push(`VHDX metadata table has too many entries (${count})`);
      return;
    }
    for (let i = 0; i < count; i++) {
      const entry = table.subarray(32 + i * 32, 32 + (i + 1) * 32);
      const guid = entry.subarray(0, 16);
      const offset = entry.readUInt32LE(16);
      const length = entry.readUInt32LE(20);
      const flags = entry.readUInt32LE(24);
      const known = KNOWN_META.some((g) => g.equals(guid));
      if (!known) {
        if (flags & META_FLAG_REQUIRED) this.problems.push(`VHDX has an unknown required metadata item ${guidText(guid)}`);
        continue;
      }
      if (guid.equals(META_PARENT_LOCATOR)) {
        this.problems.push('VHDX has a parent locator (differencing disk referencing another file)');
        continue;
      }
      const wanted = guid.equals(META_VIRTUAL_DISK_SIZE) || guid.equals(META_FILE_PARAMETERS);
      if (!wanted) continue;
      if (length !== 8 || offset < METADATA_TABLE_SIZE || offset + length > this.metaLength) {
        this.problems.push(`VHDX metadata item ${guidText(guid)} has an invalid location`);
        continue;
      }
      const capture = view.capture(this.metaOffset + offset, 8);
      if (guid.equals(META_VIRTUAL_DISK_SIZE)) this.sizeItem = capture;
      else this.paramsItem = capture;
    }
  }

  finish(view: FinalView): ProbeMatch | null {
    const ident = view.bytes(0, 8);
    if (ident === null || ident.toString('latin1') !== SIGNATURE) return null;
    this.update(view);
    const problems = [...this.checkHeaders(view), ...this.problems];

    if (!this.regionParsed) problems.push('VHDX region table is truncated');
    for (const r of this.regionEnds) if (r.end > view.totalSize) problems.push(`VHDX ${r.name} lies beyond the end of the data`);
    else if (this.metaTable !== null && !this.metaTable.complete) {
      problems.push(this.metaTable.missed ? 'VHDX metadata region lies outside the inspection window' : 'VHDX metadata region is truncated');
    }

    let virtualSize: number | null = null;
    if (this.metaParsed) {
      if (this.sizeItem === null) problems.push('VHDX has no virtual disk size');
      else if (!this.sizeItem.complete) problems.push('VHDX virtual disk size could not be read');
      else {
        virtualSize = u64ToNumber(this.sizeItem.data.readBigUInt64LE(0));
        if (virtualSize === null) problems.push('VHDX virtual disk size is out of range');
      }
      if (this.paramsItem === null) problems.push('VHDX has no file parameters');
      else if (!this.paramsItem.complete) problems.push('VHDX file parameters could not be read');
      else if (this.paramsItem.data.readUInt32LE(4) & FILE_PARAM_HAS_PARENT) {
        problems.push('VHDX is a differencing disk that references a parent image');
      }
    }
    return { format: this.format, virtualSize, problems: [...new Set(problems)] };
  }

  /** Picks the current header (valid, highest sequence number) and checks it. */
  private checkHeaders(view: FinalView): string[] {
    let best: Buffer | null = null;
    let bestSeq = -1n;
    for (const at of HEADER_OFFSETS) {
      const header = view.bytes(at, HEADER_SIZE);
      if (header === null || header.toString('latin1', 0, 4) !== 'head' || !checksumValid(header, 4)) continue;
      const seq = header.readBigUInt64LE(8);
      if (seq > bestSeq) {
        best = header;
        bestSeq = seq;
      }
    }
    if (best === null) return ['VHDX has no valid header'];
    const problems: string[] = [];
    if (!best.subarray(48, 64).equals(Buffer.alloc(16))) {
      problems.push('VHDX has a pending log that readers would replay');
    }
    const version = best.readUInt16LE(66);
    if (version !== 1) problems.push(`VHDX version ${version} is not supported`);
    return problems;
  }
}

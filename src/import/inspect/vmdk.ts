/**
 * VMware VMDK.
 *
 * Two shapes reach us:
 *  - a "hosted sparse extent": little-endian header "KDMV" at offset 0 with an embedded text
 *    descriptor (monolithicSparse, streamOptimized). All data lives inside the file.
 *  - a bare text descriptor ("# Disk DescriptorFile ... createType=... RW n FLAT "file"").
 *    Such a file holds no data at all: every extent lives in some other file, so a reader
 *    that opens it will open whatever paths it names. Always refused.
 *
 * Sparse header (after the 4-byte magic): 4 version | 8 flags | 12 capacity (sectors, u64)
 *   20 grain size | 28 descriptor offset (sectors) | 36 descriptor size (sectors)
 *   44 GTEs per GT | 48 redundant GD offset | 56 GD offset (all-ones = "footer at the end")
 *
 * Stream-optimized images written by VMware put the real header in a footer:
 *   [end-1536] footer marker | [end-1024] copy of the header | [end-512] end-of-stream marker.
 */

import type { Capture, FinalView, Probe, ProbeMatch, StreamView } from './types.js';
import { U64_ALL_ONES, printable, u64ToNumber } from './util.js';

const SPARSE_MAGIC = 'KDMV';
const VMDK3_MAGIC = 'COWD';
/** Allowed createType values for images with embedded data (Glance's vmdk_allowed_types). */
const ALLOWED_CREATE_TYPES = new Set(['monolithicsparse', 'streamoptimized']);
/** Readers cap a descriptor at 1 MiB; so do we. */
const MAX_DESCRIPTOR = 1024 * 1024;
/**
 * QEMU looks for a parent ("parentFileNameHint") with a plain substring search over a fixed
 * 10 KiB window at offset 512 of a sparse file, comments included, whatever the header says.
 */
const PARENT_SCAN_OFFSET = 512;
const PARENT_SCAN_LENGTH = 20 * 512;
const PARENT_KEY = 'parentfilenamehint';
const MARKER_FOOTER = 3;
const MARKER_EOS = 0;

interface SparseHeader {
  version: number;
  capacity: bigint;
  grainSize: bigint;
  descOffset: bigint;
  descSize: bigint;
  gtesPerGt: number;
  rgdOffset: bigint;
  gdOffset: bigint;
}

function parseSparseHeader(buf: Buffer): SparseHeader {
  return {
    version: buf.readUInt32LE(4),
    capacity: buf.readBigUInt64LE(12),
    grainSize: buf.readBigUInt64LE(20),
    descOffset: buf.readBigUInt64LE(28),
    descSize: buf.readBigUInt64LE(36),
    gtesPerGt: buf.readUInt32LE(44),
    rgdOffset: buf.readBigUInt64LE(48),
    gdOffset: buf.readBigUInt64LE(56),
  };
}

export interface Extent {
  access: string;
  sectors: bigint;
  type: string;
  file: string | null;
}

export interface Descriptor {
  createType: string | null;
  extents: Extent[];
  /** Lines we do not understand (already made printable). */
  badLines: string[];
}

const EXTENT_LINE = /^(rw|rdonly|noaccess)\s+(\d+)\s+([a-z]+)(?:\s+"([^"]*)"(?:\s+(\d+))?)?$/i;
const FIELD_LINE = /^([a-z][\w.]*)\s*=\s*(.*)$/i;

/** Cautious line-by-line parse of descriptor text: anything unexpected is reported. */
export function parseDescriptor(text: string): Descriptor {
  const out: Descriptor = { createType: null, extents: [], badLines: [] };
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const extent = EXTENT_LINE.exec(line);
    if (extent) {
      out.extents.push({
        access: extent[1]!.toUpperCase(),
        sectors: BigInt(extent[2]!),
        type: extent[3]!.toUpperCase(),
        file: extent[4] ?? null,
      });
      continue;
    }
    const field = FIELD_LINE.exec(line);
    if (field) {
      if (field[1]!.toLowerCase() === 'createtype') out.createType = field[2]!.trim().replace(/^"(.*)"$/, '$1');
      continue;
    }
    out.badLines.push(printable(line));
  }
  return out;
}

/** A file name that can only mean "this very file": no directories, drives or protocols. */
function isBareFileName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !/[/\\:]/.test(name);
}

/** Decodes descriptor bytes up to the first NUL; null when they are not ASCII text. */
function descriptorText(bytes: Buffer): string | null {
  const nul = bytes.indexOf(0);
  const body = nul === -1 ? bytes : bytes.subarray(0, nul);
  for (const b of body) if (b > 0x7e || (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d)) return null;
  return body.toString('latin1');
}

function mentionsParent(bytes: Buffer | null): boolean {
  return bytes !== null && bytes.toString('latin1').toLowerCase().includes(PARENT_KEY);
}

/** qemu-style probe for a text descriptor, but more forgiving: comments, blank lines, spaces. */
function looksLikeTextDescriptor(head: Buffer): boolean {
  const text = descriptorText(head.subarray(0, Math.min(head.length, 4096)));
  if (text === null || text.trim() === '') return false;
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (/^version\s*=\s*\d+$/i.test(line)) return true;
    break;
  }
  return /^\s*createType\s*=/im.test(text);
}

export class VmdkProbe implements Probe {
  readonly format = 'vmdk' as const;
  private descriptor: Capture | null = null;
  private descriptorProblem: string | null = null;
  private headerSeen = false;

  update(view: StreamView): void {
    if (this.headerSeen) return;
    const head = view.bytes(0, 64);
    if (head === null) return;
    this.headerSeen = true;
    if (head.toString('latin1', 0, 4) !== SPARSE_MAGIC) return;
    const h = parseSparseHeader(head);
    if (h.descOffset === 0n || h.descSize === 0n) return;
    const offset = u64ToNumber(h.descOffset * 512n);
    const size = h.descSize * 512n;
    if (offset === null) {
      this.descriptorProblem = 'VMDK descriptor offset is out of range';
      return;
    }
    if (size > BigInt(MAX_DESCRIPTOR)) {
      this.descriptorProblem = 'VMDK embedded descriptor is larger than 1 MiB';
      return;
    }
    this.descriptor = view.capture(offset, Number(size));
  }

  finish(view: FinalView): ProbeMatch | null {
    const magic = view.bytes(0, 4)?.toString('latin1');
    if (magic === SPARSE_MAGIC) return this.finishSparse(view);
    if (magic === VMDK3_MAGIC) {
      return { format: this.format, virtualSize: null, problems: ['VMDK3 (COWD) sparse images are not supported'] };
    }
    const head = view.bytes(0, Math.min(view.prefixLength, view.totalSize));
    if (head !== null && looksLikeTextDescriptor(head)) return this.finishText(view, head);
    return null;
  }

  private finishSparse(view: FinalView): ProbeMatch {
    const problems: string[] = [];
    const headBytes = view.bytes(0, 64);
    if (headBytes === null) return { format: this.format, virtualSize: null, problems: ['VMDK header is truncated'] };
    let h = parseSparseHeader(headBytes);

    if (h.version < 1 || h.version > 3) problems.push(`Unsupported VMDK version ${h.version}`);

    if (h.gdOffset === U64_ALL_ONES) {
      // The footer's header is the authoritative one for readers; check it thoroughly.
      const footer = this.readFooter(view, h, problems);
      if (footer !== null) h = footer;
    }

    if (h.capacity === 0n) {
      problems.push('VMDK sparse header has zero capacity (readers would follow the descriptor extents instead)');
    }
    const virtualSize = u64ToNumber(h.capacity * 512n);
    if (virtualSize === null) problems.push('VMDK capacity is out of range');
    if (h.gdOffset !== U64_ALL_ONES) problems.push(...checkGrainDirectories(h, view.totalSize));

    if (mentionsParent(view.bytes(PARENT_SCAN_OFFSET, Math.min(PARENT_SCAN_LENGTH, Math.max(0, view.totalSize - PARENT_SCAN_OFFSET))))) {
      problems.push('VMDK descriptor names a parent image (parentFileNameHint)');
    }

    problems.push(...this.checkEmbeddedDescriptor());
    return { format: this.format, virtualSize, problems: dedupe(problems) };
  }

  private checkEmbeddedDescriptor(): string[] {
    if (this.descriptorProblem !== null) return [this.descriptorProblem];
    const capture = this.descriptor;
    if (capture === null) return ['VMDK has no embedded descriptor'];
    if (!capture.complete) {
      return [capture.missed ? 'VMDK descriptor lies outside the inspection window' : 'VMDK descriptor is truncated'];
    }
    const problems: string[] = [];
    if (mentionsParent(capture.data)) problems.push('VMDK descriptor names a parent image (parentFileNameHint)');
    const text = descriptorText(capture.data);
    if (text === null) return [...problems, 'VMDK descriptor is not ASCII text'];
    const desc = parseDescriptor(text);
    if (desc.badLines.length > 0) problems.push(`VMDK descriptor has an unrecognised line: "${desc.badLines[0]}"`);

    const createType = desc.createType;
    if (createType === null) problems.push('VMDK descriptor has no createType');
    else if (!ALLOWED_CREATE_TYPES.has(createType.toLowerCase())) {
      problems.push(`VMDK createType "${printable(createType, 40)}" is not allowed (only monolithicSparse and streamOptimized)`);
    }

    if (desc.extents.length === 0) problems.push('VMDK descriptor lists no extents');
    else if (desc.extents.length > 1) problems.push('VMDK descriptor lists more than one extent');
    for (const extent of desc.extents) {
      if (extent.type !== 'SPARSE') {
        problems.push(`VMDK extent type ${printable(extent.type, 20)} is not allowed in a monolithic image`);
      }
      if (extent.file !== null && !isBareFileName(extent.file)) {
        problems.push(`VMDK extent references another file: "${printable(extent.file)}"`);
      }
    }
    return problems;
  }

  /** Validates a stream-optimized footer; returns its header when usable. */
  private readFooter(view: FinalView, header: SparseHeader, problems: string[]): SparseHeader | null {
    const end = Math.floor(view.totalSize / 512) * 512;
    const block = end >= 1536 ? view.bytes(end - 1536, 1536) : null;
    if (block === null || block.toString('latin1', 512, 516) !== SPARSE_MAGIC) {
      problems.push('VMDK header defers to a footer but no valid footer was found');
      return null;
    }
    const marker = block.subarray(0, 512);
    const eos = block.subarray(1024, 1536);
    if (marker.readUInt32LE(8) !== 0 || marker.readUInt32LE(12) !== MARKER_FOOTER || !isZero(marker.subarray(16))) {
      problems.push('VMDK footer marker is invalid');
    }
    if (eos.readBigUInt64LE(0) !== 0n || eos.readUInt32LE(8) !== 0 || eos.readUInt32LE(12) !== MARKER_EOS || !isZero(eos.subarray(16))) {
      problems.push('VMDK end-of-stream marker is invalid');
    }
    const footer = parseSparseHeader(block.subarray(512, 1024));
    if (footer.version !== header.version) problems.push('VMDK header and footer versions differ');
    if (footer.descOffset !== header.descOffset || footer.descSize !== header.descSize) {
      problems.push('VMDK footer points at a different descriptor than the header');
    }
    if (footer.capacity !== header.capacity) problems.push('VMDK header and footer capacities differ');
    if (footer.gdOffset === U64_ALL_ONES) problems.push('VMDK footer defers to yet another footer');
    return footer;
  }

  private finishText(view: FinalView, head: Buffer): ProbeMatch {
    const limit = Math.min(head.length, MAX_DESCRIPTOR);
    const text = descriptorText(head.subarray(0, limit)) ?? '';
    const desc = parseDescriptor(text);
    const problems = [
      `VMDK descriptor file (createType "${printable(desc.createType ?? 'unknown', 40)}") keeps its data in other files`,
    ];
    for (const extent of desc.extents) {
      if (extent.file !== null) problems.push(`VMDK extent references external file "${printable(extent.file)}"`);
    }
    if (mentionsParent(head.subarray(0, limit))) problems.push('VMDK descriptor names a parent image (parentFileNameHint)');
    if (view.totalSize > limit && head.indexOf(0) === -1) problems.push('VMDK descriptor file is larger than the inspection window');

    let sectors = 0n;
    for (const extent of desc.extents) sectors += extent.sectors;
    const virtualSize = desc.extents.length > 0 ? u64ToNumber(sectors * 512n) : null;
    return { format: this.format, virtualSize, problems };
  }
}

function isZero(buf: Buffer): boolean {
  for (const b of buf) if (b !== 0) return false;
  return true;
}

function dedupe(list: string[]): string[] {
  return [...new Set(list)];
}

/**
 * The grain directory (and its redundant copy) lie inside the data. streamOptimized puts its
 * directory at the end of the stream and says so in the footer's header (checked above), so a
 * complete image passes and a cut one has no footer; monolithicSparse puts it near the start.
 */
function checkGrainDirectories(h: SparseHeader, totalSize: number): string[] {
  if (h.grainSize === 0n || h.gtesPerGt === 0) return ['VMDK grain table geometry is invalid'];
  const sectorsPerTable = h.grainSize * BigInt(h.gtesPerGt);
  const bytes = ((h.capacity + sectorsPerTable - 1n) / sectorsPerTable) * 4n;
  const end = BigInt(totalSize);
  const problems: string[] = [];
  if (h.gdOffset * 512n + bytes > end) problems.push('VMDK grain directory lies beyond the end of the data');
  if (h.rgdOffset !== 0n && h.rgdOffset * 512n + bytes > end) problems.push('VMDK redundant grain directory lies beyond the end of the data');
  return problems;
}

/**
 * Streaming disk-image format inspector: the safety core of the "format inspection" import step.
 *
 * Feed it the image chunk by chunk while the upload streams, then call finish(). It works out
 * the real format from the content (never from what the user declared), the virtual size, and
 * reasons to refuse the image: references to other files (backing files, external data files,
 * VMDK extents, parents), unknown must-understand features, and polyglots that parse as more
 * than one format.
 *
 * Memory is bounded: a prefix of the image (maxHeaderBytes, default 1 MiB), a 4 KiB rolling
 * tail, and at most 2 MiB of small captures at offsets discovered while parsing. The image as a
 * whole is never buffered. See docs/format-inspection.md.
 */

import { IsoProbe } from './iso.js';
import { Qcow2Probe } from './qcow2.js';
import { RawProbe } from './raw.js';
import type { DiskFormat, InspectionResult, Probe, ProbeMatch } from './types.js';
import { VdiProbe } from './vdi.js';
import { VhdProbe } from './vhd.js';
import { VhdxProbe } from './vhdx.js';
import { VmdkProbe } from './vmdk.js';
import { ByteWindow } from './window.js';

export type { DiskFormat, InspectionResult } from './types.js';

export const DEFAULT_MAX_HEADER_BYTES = 1024 * 1024;
/** VHDX needs its headers and region tables (first 320 KiB); ISO descriptors end by 96 KiB. */
export const MIN_MAX_HEADER_BYTES = 512 * 1024;
/** Budget for regions captured beyond the prefix (VMDK descriptor ≤ 1 MiB, VHDX metadata 64 KiB). */
export const CAPTURE_BUDGET_BYTES = 2 * 1024 * 1024;

/** Formats we can recognise from content. */
export const INSPECTABLE_FORMATS: readonly DiskFormat[] = ['raw', 'qcow2', 'vmdk', 'vhd', 'vhdx', 'vdi', 'iso'];

export class FormatInspector {
  private readonly window: ByteWindow;
  /** Specific formats in precedence order (header-at-offset-0 formats first); raw is the fallback. */
  private readonly probes: Probe[] = [
    new Qcow2Probe(),
    new VmdkProbe(),
    new VdiProbe(),
    new VhdxProbe(),
    new VhdProbe(),
    new IsoProbe(),
  ];
  private readonly raw = new RawProbe();
  private readonly disabled = new Set<Probe>();
  private readonly streamProblems: string[] = [];
  private broken = false;
  private result: InspectionResult | null = null;

  constructor(opts?: { maxHeaderBytes?: number }) {
    const requested = opts?.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
    if (!Number.isSafeInteger(requested) || requested <= 0) throw new RangeError('maxHeaderBytes must be a positive integer');
    this.window = new ByteWindow(Math.max(requested, MIN_MAX_HEADER_BYTES), CAPTURE_BUDGET_BYTES);
  }

  /** Bytes held in memory for this inspection (constant in the image size). */
  get retainedBytes(): number {
    return this.window.retainedBytes;
  }

  /** Bytes pushed so far. */
  get bytesSeen(): number {
    return this.window.received;
  }

  /**
   * Presents the next chunk. `offset` is the chunk's position in the image; chunks must arrive
   * in order without gaps. A gap or overlap is not thrown back into the upload pipeline: it
   * poisons the inspection, and finish() reports it as a safety problem.
   */
  push(chunk: Buffer, offset: number): void {
    if (this.result !== null) throw new Error('FormatInspector.push() called after finish()');
    if (this.broken) return;
    if (offset !== this.window.received) {
      this.streamProblems.push(
        `Inspection stream is not contiguous (expected offset ${this.window.received}, got ${offset})`,
      );
      this.broken = true;
      return;
    }
    if (chunk.length === 0) return;
    this.window.absorb(chunk);
    for (const probe of this.probes) {
      if (probe.update === undefined || this.disabled.has(probe)) continue;
      try {
        probe.update(this.window);
      } catch (err) {
        this.disabled.add(probe);
        this.streamProblems.push(`Inspecting the image as ${probe.format} failed: ${(err as Error).message}`);
      }
    }
    this.window.settle();
  }

  /** Concludes the inspection. `totalSize` is the image's size in bytes. Idempotent. */
  finish(totalSize: number): InspectionResult {
    if (this.result !== null) return this.result;
    const received = this.window.received;
    const problems = [...this.streamProblems];
    if (!this.broken && totalSize !== received) {
      problems.push(`Image size ${totalSize} does not match the ${received} bytes inspected`);
    }
    this.window.close(received);

    const matches: ProbeMatch[] = [];
    for (const probe of this.probes) {
      if (this.disabled.has(probe)) continue;
      try {
        const match = probe.finish(this.window);
        if (match !== null) matches.push(match);
      } catch (err) {
        problems.push(`Inspecting the image as ${probe.format} failed: ${(err as Error).message}`);
      }
    }

    let primary: ProbeMatch;
    if (matches.length === 0) {
      primary = this.raw.finish(this.window);
    } else {
      primary = matches[0]!;
      if (matches.length > 1) {
        problems.push(
          `Image content matches more than one format (${matches.map((m) => m.format).join(', ')}); ` +
            'refusing a possible polyglot image',
        );
      }
    }
    for (const match of matches.length > 0 ? matches : [primary]) problems.push(...match.problems);

    this.result = {
      format: primary.format,
      virtualSize: primary.virtualSize,
      safetyProblems: [...new Set(problems)],
    };
    return this.result;
  }
}

/**
 * Compares the declared disk_format with what inspection found, following Glance's rules:
 *  - same format: fine (this includes 'iso' declared and detected);
 *  - declared 'raw' but the content is a recognised format (e.g. qcow2): mismatch — a qcow2
 *    labelled raw is exactly how host files get read through a backing-file reference;
 *  - declared a rich format (qcow2, vmdk, vhd, vhdx, vdi, iso) but the content is not: mismatch;
 *  - declared something we cannot inspect (ami, ari, aki, ploop, or any other value): not
 *    checked while the content looks like plain data (raw); but if the content is a recognised
 *    rich format it is a mismatch, otherwise any label would switch the check off.
 * Returns null when acceptable, otherwise a message such as "Image content is qcow2 but
 * disk_format is raw". A null declared format has nothing to compare against and returns null.
 */
export function checkDeclaredFormat(declared: string | null, result: InspectionResult): string | null {
  if (declared === null) return null;
  const wanted = declared.trim().toLowerCase();
  if (wanted === result.format) return null;
  const inspectable = (INSPECTABLE_FORMATS as readonly string[]).includes(wanted);
  if (!inspectable && result.format === 'raw') return null;
  return `Image content is ${result.format} but disk_format is ${declared}`;
}

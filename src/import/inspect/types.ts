/**
 * Shared types for the streaming format inspector.
 */

export type DiskFormat = 'raw' | 'qcow2' | 'vmdk' | 'vhd' | 'vhdx' | 'vdi' | 'iso';

export interface InspectionResult {
  format: DiskFormat;
  /** Size of the disk as a guest would see it, in bytes; null when it could not be determined. */
  virtualSize: number | null;
  /** Human-readable reasons to refuse the image. Empty means safe. */
  safetyProblems: string[];
}

/**
 * A bounded, in-order byte region captured from the stream at an offset that a probe
 * discovered while parsing (e.g. the VHDX metadata table). It is filled as the stream
 * passes over it; if the stream had already passed the region (and it is not inside the
 * retained prefix) it is marked missed.
 */
export interface Capture {
  readonly offset: number;
  readonly length: number;
  readonly complete: boolean;
  /** The stream had already moved past (part of) the region, or the byte budget was exhausted. */
  readonly missed: boolean;
  /** The captured bytes; only meaningful when complete. */
  readonly data: Buffer;
}

/** What a probe may look at while the stream is still flowing. */
export interface StreamView {
  /** Number of bytes received so far. */
  readonly received: number;
  /** Bytes retained from the start of the image (the prefix window). */
  readonly prefixLength: number;
  /**
   * Returns a copy-free view of [offset, offset + length) when those bytes are retained
   * (inside the prefix, or inside the rolling tail), otherwise null.
   */
  bytes(offset: number, length: number): Buffer | null;
  /** Asks for a region to be captured as the stream passes over it. */
  capture(offset: number, length: number): Capture;
}

/** What a probe sees once the whole image has been streamed. */
export interface FinalView extends StreamView {
  readonly totalSize: number;
}

/** A format probe's verdict. */
export interface ProbeMatch {
  format: DiskFormat;
  virtualSize: number | null;
  problems: string[];
}

/**
 * One probe per format and per inspection. Probes never see the whole image: only the
 * bounded prefix, the rolling tail, and the small regions they asked to capture.
 */
export interface Probe {
  readonly format: DiskFormat;
  /** Called after every chunk; may request captures for regions still ahead in the stream. */
  update?(view: StreamView): void;
  /** Returns a match (possibly with problems) or null when the content is not this format. */
  finish(view: FinalView): ProbeMatch | null;
}

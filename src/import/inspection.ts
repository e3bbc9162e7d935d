import { BadRequest, UnsupportedMediaType } from '../domain/errors.js';
import type { Image } from '../domain/image.js';
import type { ChunkTap } from '../stores/metered-stream.js';
import { FormatInspector, checkDeclaredFormat, type InspectionResult } from './inspect/inspector.js';

/**
 * Format inspection hooked into every write of image data (upload, stage,
 * the imports' downloads and rewrites): a fresh inspector per write, whose
 * `tap` sees every chunk as it streams (a MeteredStream tap, bounded memory)
 * and whose `finish(size)` says what the bytes are. What a result means is
 * the operation's: an upload is refused on it (acceptUploaded), staging
 * records it for the import to judge.
 */
export interface InspectionPlugin {
  start(): { tap: ChunkTap; finish(size: number): InspectionResult };
}

export interface Verdict {
  kind: 'unsafe' | 'mismatch';
  message: string;
}

/**
 * Why the bytes cannot become this image, or undefined when they can.
 * Unsafe content is refused whatever the container. The declared
 * disk_format is held to the content only for bare images (as Glance does):
 * an ova, ovf, docker or compressed container wraps the disk, so its bytes
 * are not the disk format.
 */
export function inspectionVerdict(image: Pick<Image, 'diskFormat' | 'containerFormat'>, result: InspectionResult): Verdict | undefined {
  if (result.safetyProblems.length > 0) {
    return { kind: 'unsafe', message: `Image data is not safe to use: ${result.safetyProblems.join('; ')}.` };
  }
  if (image.containerFormat !== null && image.containerFormat !== 'bare') return undefined;
  const mismatch = checkDeclaredFormat(image.diskFormat, result);
  if (mismatch !== null) {
    return { kind: 'mismatch', message: `${mismatch}; set disk_format to the image's real format or upload data of the declared format.` };
  }
  return undefined;
}

/**
 * The virtual size to record: the inspector's, for bare images whose content
 * is what they say it is (a container's bytes are not the disk: Glance
 * records none for those either).
 */
export function inspectedVirtualSize(image: Pick<Image, 'diskFormat' | 'containerFormat'>, result: InspectionResult): number | null {
  if (image.containerFormat !== null && image.containerFormat !== 'bare') return null;
  return checkDeclaredFormat(image.diskFormat, result) === null ? result.virtualSize : null;
}

/**
 * An upload's rule on inspected bytes: refused when they are unsafe (400) or
 * not the declared disk_format (415); otherwise the virtual size to record.
 */
export function acceptUploaded(image: Pick<Image, 'diskFormat' | 'containerFormat'>, result: InspectionResult): number | null {
  const verdict = inspectionVerdict(image, result);
  if (verdict?.kind === 'unsafe') throw new BadRequest(verdict.message);
  if (verdict?.kind === 'mismatch') throw new UnsupportedMediaType(verdict.message);
  return inspectedVirtualSize(image, result);
}

/** The format inspection plugin (import.plugins.formatInspection). */
export class FormatInspection implements InspectionPlugin {
  start(): { tap: ChunkTap; finish(size: number): InspectionResult } {
    const inspector = new FormatInspector();
    return { tap: (chunk, offset) => inspector.push(chunk, offset), finish: (size) => inspector.finish(size) };
  }
}

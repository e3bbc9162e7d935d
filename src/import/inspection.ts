import { BadRequest, UnsupportedMediaType } from '../domain/errors.js';
import type { Image } from '../domain/image.js';
import type { InspectionPlugin } from '../runtime.js';
import { FormatInspector, checkDeclaredFormat, type InspectionResult } from './inspect/inspector.js';

/** Why the bytes cannot become this image, or undefined when they can. */
export function inspectionVerdict(diskFormat: string | null, result: InspectionResult): { kind: 'unsafe' | 'mismatch'; message: string } | undefined {
  if (result.safetyProblems.length > 0) {
    return { kind: 'unsafe', message: `Image data is not safe to use: ${result.safetyProblems.join('; ')}.` };
  }
  const mismatch = checkDeclaredFormat(diskFormat, result);
  if (mismatch !== null) {
    return { kind: 'mismatch', message: `${mismatch}; set disk_format to the image's real format or upload data of the declared format.` };
  }
  return undefined;
}

/**
 * Format inspection on direct uploads: the inspector sees every chunk while
 * it streams (a MeteredStream tap, bounded memory), and at the end the
 * upload is refused when the bytes are unsafe (400) or, for container_format
 * bare, are not the declared disk_format (415); otherwise the inspector's
 * virtual size is recorded (bare only).
 */
export class UploadInspection implements InspectionPlugin {
  start(image: Image): { tap: (chunk: Buffer, offset: number) => void; finish(size: number): number | null } {
    const inspector = new FormatInspector();
    return {
      tap: (chunk, offset) => inspector.push(chunk, offset),
      finish: (size) => {
        const result = inspector.finish(size);
        const verdict = inspectionVerdict(image.diskFormat, result);
        if (verdict?.kind === 'unsafe') throw new BadRequest(verdict.message);
        // Only bare bytes are the disk itself: an ami/ova/docker... container's
        // bytes cannot match its disk_format (Glance inspects bare uploads only).
        if (image.containerFormat !== 'bare') return null;
        if (verdict?.kind === 'mismatch') throw new UnsupportedMediaType(verdict.message);
        return result.virtualSize;
      },
    };
  }
}

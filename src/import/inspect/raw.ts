/**
 * Raw: anything no other probe claims. The virtual size is the byte count.
 *
 * A few formats that QEMU would auto-detect but Imago does not accept are recognised here so
 * they cannot slip through as "raw" and later be probed into something that follows file
 * references (QED supports backing files).
 */

import type { FinalView, Probe, ProbeMatch } from './types.js';

const QED_MAGIC = Buffer.from('QED\0', 'latin1');

export class RawProbe implements Probe {
  readonly format = 'raw' as const;

  finish(view: FinalView): ProbeMatch {
    const problems: string[] = [];
    const head = view.bytes(0, 4);
    if (head !== null && head.equals(QED_MAGIC)) problems.push('Image content is a QED image, which is not supported');
    return { format: this.format, virtualSize: view.totalSize, problems };
  }
}

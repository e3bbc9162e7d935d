import { readFileSync, writeFileSync } from 'node:fs';

function statusKb(pid: number, field: string): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export interface RssPeak {
  /** highest VmRSS seen by sampling every ~50 ms, MB (10^6 bytes) */
  sampledMB: number;
  /** VmHWM at the end, MB; the kernel's own peak since the reset (when the reset worked) */
  hwmMB?: number;
  peakMB: number;
  samples: number;
}

/**
 * Peak resident memory of the server process during one scenario: VmRSS
 * sampled every 50 ms, and VmHWM, which the kernel keeps exactly and which
 * writing 5 to clear_refs resets at the start of the scenario.
 */
export class RssSampler {
  private maxKb = 0;
  private samples = 0;
  private timer: NodeJS.Timeout | undefined;
  private hwmReset = false;

  constructor(private readonly pid: number) {}

  start(): void {
    try {
      writeFileSync(`/proc/${this.pid}/clear_refs`, '5');
      this.hwmReset = true;
    } catch {
      this.hwmReset = false;
    }
    this.sample();
    this.timer = setInterval(() => this.sample(), 50);
  }

  private sample(): void {
    const kb = statusKb(this.pid, 'VmRSS');
    if (kb === undefined) return;
    this.samples++;
    if (kb > this.maxKb) this.maxKb = kb;
  }

  stop(): RssPeak {
    clearInterval(this.timer);
    this.sample();
    const sampledMB = (this.maxKb * 1024) / 1e6;
    const hwmKb = this.hwmReset ? statusKb(this.pid, 'VmHWM') : undefined;
    const hwmMB = hwmKb === undefined ? undefined : (hwmKb * 1024) / 1e6;
    return { sampledMB: Math.round(sampledMB), hwmMB: hwmMB === undefined ? undefined : Math.round(hwmMB), peakMB: Math.round(Math.max(sampledMB, hwmMB ?? 0)), samples: this.samples };
  }
}

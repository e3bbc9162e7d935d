import { execFile, spawn } from 'node:child_process';

/** disk_format names as qemu-img calls them. */
const QEMU_FORMAT: Record<string, string> = { raw: 'raw', qcow2: 'qcow2', vmdk: 'vmdk', vdi: 'vdi', vhdx: 'vhdx', vhd: 'vpc' };

export function qemuFormat(diskFormat: string): string | undefined {
  return QEMU_FORMAT[diskFormat];
}

export interface QemuInfo {
  format?: string;
  'virtual-size'?: number;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'format-specific'?: { type?: string; data?: Record<string, unknown> };
}

function run(args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('qemu-img', args, { timeout: timeoutMs, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`qemu-img ${args[0]} failed: ${String(stderr).trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

/** `qemu-img info --output=json` with the format given explicitly (never probed). */
export async function qemuInfo(file: string, diskFormat: string): Promise<QemuInfo> {
  const fmt = qemuFormat(diskFormat);
  if (!fmt) throw new Error(`qemu-img cannot read disk_format ${diskFormat}`);
  return JSON.parse(await run(['info', '--output=json', '-f', fmt, file], 60_000)) as QemuInfo;
}

/** What makes an image unsafe to hand to qemu-img convert (or a hypervisor). */
export function qemuSafetyProblems(info: QemuInfo, diskFormat: string, file: string): string[] {
  const problems: string[] = [];
  if (info.format !== qemuFormat(diskFormat)) problems.push(`qemu-img reads it as ${info.format ?? 'unknown'}, not ${diskFormat}`);
  if (info['backing-filename'] || info['full-backing-filename']) problems.push(`it has a backing file (${info['backing-filename'] ?? info['full-backing-filename']})`);
  const data = info['format-specific']?.data ?? {};
  if (data['data-file']) problems.push(`it has an external data file (${String(data['data-file'])})`);
  const extents = Array.isArray(data.extents) ? (data.extents as Array<{ filename?: string }>) : [];
  for (const e of extents) if (e.filename && e.filename !== file) problems.push(`it has an extent in another file (${e.filename})`);
  return problems;
}

/** Converts `src` (of `from`) into `dst` as `to`; killed when `signal` aborts. */
export function qemuConvert(src: string, from: string, dst: string, to: string, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('qemu-img', ['convert', '-f', qemuFormat(from)!, '-O', qemuFormat(to)!, src, dst], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { if (stderr.length < 4096) stderr += d.toString(); });
    const onAbort = () => child.kill('SIGKILL');
    signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (err) => reject(new Error(`qemu-img could not run: ${err.message}`)));
    child.on('close', (code) => {
      signal?.removeEventListener('abort', onAbort);
      if (signal?.aborted) reject(signal.reason);
      else if (code === 0) resolve();
      else reject(new Error(`qemu-img convert failed: ${stderr.trim() || `exit code ${code}`}`));
    });
  });
}

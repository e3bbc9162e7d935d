import { execFileSync } from 'node:child_process';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';

function run(cmd: string, args: string[]): string | undefined {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).trim();
  } catch {
    return undefined;
  }
}

/** What the figures were measured on: they mean little without it. */
export function describeMachine(dir: string, repoRoot: string): Record<string, unknown> {
  const df = run('df', ['-PT', dir])?.split('\n')[1]?.split(/\s+/);
  const device = df?.[0];
  const blockDev = device?.startsWith('/dev/') ? device.slice(5).replace(/p?\d+$/, '') : undefined;
  return {
    nproc: availableParallelism(),
    cpuModel: cpus()[0]?.model,
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    kernel: release(),
    node: process.version,
    curl: run('curl', ['--version'])?.split('\n')[0],
    disk: df ? { device, fsType: df[1], sizeKiB: Number(df[2]), availableKiB: Number(df[4]), mount: df[6] } : undefined,
    diskRotational: blockDev ? run('cat', [`/sys/block/${blockDev}/queue/rotational`]) : undefined,
    loadAtStart: loadavg(),
    commit: run('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD']),
    dirtyTree: (run('git', ['-C', repoRoot, 'status', '--porcelain', '--untracked-files=no']) ?? '').length > 0,
  };
}

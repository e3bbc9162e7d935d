
const MiB = 1024 * 1024;

/**
 * Glance's progress message, kept current while bytes move, with the total
 * when it is known: "Copied 120 MiB of 2048 MiB (5 %)". Glance's own text
 * stops at "Copied 120 MiB"; scripts that parse it still find that prefix.
 */
export function copiedMessage(bytes: number, expected?: number | null): string {
  const done = `Copied ${Math.floor(bytes / MiB)} MiB`;
  if (expected === undefined || expected === null || expected <= 0 || bytes > expected) return done;
  return `${done} of ${Math.ceil(expected / MiB)} MiB (${Math.floor((bytes * 100) / expected)} %)`;
}

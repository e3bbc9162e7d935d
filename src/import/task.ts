
const MiB = 1024 * 1024;

/** Glance's progress message, kept current while bytes move. */
export function copiedMessage(bytes: number): string {
  return `Copied ${Math.floor(bytes / MiB)} MiB`;
}

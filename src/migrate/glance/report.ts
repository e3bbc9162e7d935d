/** What one run of import-glance did (or, dry, would do). */
export interface ImportReport {
  dryRun: boolean;
  /** live images in the Glance database */
  seen: number;
  /** soft-deleted Glance rows, skipped */
  deletedSkipped: number;
  created: number;
  /** already in Imago from an earlier run: left as they are */
  alreadyPresent: number;
  adopted: number;
  copied: number;
  bytesCopied: number;
  /** created without data (queued or killed in Glance) */
  metadataOnly: number;
  /** not created: see problems */
  failed: number;
  /** copied without a digest to compare with: Glance recorded none */
  unverified: { id: string; name: string | null }[];
  /** per image: what went wrong or what differs from Glance */
  problems: { id: string; name: string | null; problem: string; created: boolean }[];
}

export function emptyReport(dryRun: boolean): ImportReport {
  return { dryRun, seen: 0, deletedSkipped: 0, created: 0, alreadyPresent: 0, adopted: 0, copied: 0, bytesCopied: 0, metadataOnly: 0, failed: 0, unverified: [], problems: [] };
}

export function formatReport(r: ImportReport): string {
  const would = r.dryRun ? 'would be ' : '';
  const lines = [
    r.dryRun ? 'import-glance report (dry run: nothing was written)' : 'import-glance report',
    `  images in Glance:           ${r.seen} (and ${r.deletedSkipped} deleted rows skipped)`,
    `  ${would}created:${' '.repeat(r.dryRun ? 11 : 20)}${r.created}`,
    `    data adopted in place:    ${r.adopted}`,
    `    data copied and checked:  ${r.copied} (${r.bytesCopied} bytes)`,
    `    without data:             ${r.metadataOnly}`,
    `  already in Imago:           ${r.alreadyPresent}`,
    `  not imported:               ${r.failed}`,
  ];
  if (r.unverified.length) {
    lines.push('', 'copied without a checksum or multihash in Glance to verify against:');
    for (const u of r.unverified) lines.push(`  ${u.id} ${u.name ?? ''}`.trimEnd());
  }
  if (r.problems.length) {
    lines.push('', 'problems:');
    for (const p of r.problems) lines.push(`  ${p.id} ${p.name ? `(${p.name}) ` : ''}${p.created ? '' : '[not imported] '}${p.problem}`);
  }
  return lines.join('\n');
}

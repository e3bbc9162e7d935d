import type { Config } from '../../config.js';
import type { Db } from '../../db/database.js';
import { ImagesRepo } from '../../db/images-repo.js';
import { importGlance } from './import.js';
import { formatReport } from './report.js';
import { openGlanceSource, redact } from './source.js';

/** `imago-manage import-glance`: runs the import, prints one line per image and the report; 1 when an image was left out. */
export async function importGlanceCommand(config: Config, db: Db, glanceUrl: string, opts: { dryRun: boolean; targetStoreId?: string }): Promise<number> {
  let src;
  try {
    src = await openGlanceSource(glanceUrl);
  } catch (err) {
    throw new Error(`cannot open the Glance database ${redact(glanceUrl)}: ${(err as Error).message}`);
  }
  try {
    const report = await importGlance(src, new ImagesRepo(db), config, { ...opts, log: (line) => console.log(line) });
    console.log(`\n${formatReport(report)}`);
    return report.failed > 0 ? 1 : 0;
  } finally {
    await src.close();
  }
}

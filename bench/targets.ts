import type { References } from './references.js';
import type { ScenarioResult } from './scenario.js';
import { round } from './stats.js';
import { chunkedBoundMB } from './scenarios/chunked.js';

export type Verdict = 'PASS' | 'MISS' | 'FAIL' | 'n/a';

export interface TargetRow {
  target: string;
  goal: string;
  measured: string;
  /** measured / goal (for "less than" goals: goal / measured), so > 1 is better */
  ratio?: number;
  verdict: Verdict;
  /** the reference the goal is relative to, or the ceiling measured here */
  context?: string;
}

const RSS_LIMIT_MB = 200;

/** Compares the figures with the targets of issue 6; a scenario that failed its checks is FAIL whatever its speed. */
export function evaluateTargets(results: ScenarioResult[], refs: References | undefined, opts: { metadataImages: number; s3Bound?: { count: number } }): TargetRow[] {
  const byId = new Map(results.map((r) => [r.id, r]));
  const rows: TargetRow[] = [];
  const add = (target: string, id: string, goalText: string, goal: number | undefined, mode: 'atLeast' | 'below', context?: string) => {
    const res = byId.get(id);
    const row = (r: Omit<TargetRow, 'target' | 'goal' | 'context'>) => rows.push({ target, goal: goalText, ...r, ...(context ? { context } : {}) });
    if (!res || res.status === 'skipped') return row({ measured: res?.note ?? 'not run', verdict: 'n/a' });
    if (res.status === 'failed') return row({ measured: res.note ?? 'checks failed', verdict: 'FAIL' });
    const value = res.figure?.value;
    if (value === undefined || goal === undefined || !Number.isFinite(goal)) return row({ measured: value === undefined ? 'no figure' : `${value}`, verdict: 'n/a' });
    const ratio = mode === 'atLeast' ? value / goal : goal / value;
    const pass = mode === 'atLeast' ? value >= goal : value < goal;
    return row({ measured: `${value} ${res.figure?.unit ?? ''}`.trim(), ratio: round(ratio, 2), verdict: pass ? 'PASS' : 'MISS' });
  };

  const hashFloor = refs?.md5 && refs.sha512 ? Math.min(refs.md5, refs.sha512) : undefined;
  const uploads = results.filter((r) => r.id.startsWith('upload-'));
  for (const u of uploads) {
    add(`${u.title} ≥ 0.5 × min(md5, sha512)`, u.id, hashFloor ? `≥ ${round(0.5 * hashFloor)} MiB/s` : 'needs local references', hashFloor && 0.5 * hashFloor, 'atLeast',
      refs ? `md5 ${refs.md5}, sha512 ${refs.sha512}, hash pool ${refs.hashPool ?? 'n/a'}, curl→sink ${refs.httpPut}, dd fsync ${refs.ddFsync} MiB/s` : undefined);
  }
  for (const d of results.filter((r) => r.id.startsWith('download-'))) {
    // The higher of the references run and the ceiling measured right next to this download.
    const paired = typeof d.metrics.ceilingMiBps === 'number' ? d.metrics.ceilingMiBps : undefined;
    const ceiling = Math.max(refs?.httpGet ?? 0, paired ?? 0) || undefined;
    add(`${d.title} ≥ 0.9 × GET ceiling`, d.id, ceiling ? `≥ ${round(0.9 * ceiling)} MiB/s` : 'needs local references', ceiling && 0.9 * ceiling, 'atLeast',
      ceiling ? `GET ceiling ${ceiling} MiB/s (references ${refs?.httpGet ?? 'n/a'}, next to this run ${paired ?? 'n/a'})` : undefined);
  }
  const rangeCeiling = byId.get('ranges')?.metrics.ceilingPerSec;
  add('ranged reads ≥ 600/s', 'ranges', '≥ 600 ranges/s', 600, 'atLeast',
    refs?.httpRanges || rangeCeiling ? `trivial server, same client: ${refs?.httpRanges ?? 'n/a'}/s in references, ${rangeCeiling ?? 'n/a'}/s next to this run` : undefined);
  const firstUpload = uploads[0];
  const firstUploadRate = firstUpload?.status === 'ok' ? firstUpload.figure?.value : undefined;
  const vsUpload = firstUploadRate ? `${firstUpload.title}: ${firstUploadRate} MiB/s` : undefined;
  add('stage + import ≥ 0.8 × upload', 'import', firstUploadRate ? `≥ ${round(0.8 * firstUploadRate)} MiB/s` : 'needs the single upload', firstUploadRate && 0.8 * firstUploadRate, 'atLeast', vsUpload);
  add('8 concurrent uploads ≥ single upload', 'concurrent-upload', firstUploadRate ? `≥ ${firstUploadRate} MiB/s` : 'needs the single upload', firstUploadRate, 'atLeast', vsUpload);
  if (opts.s3Bound) {
    // --store s3 (issue 11): the node against the same SDK alone on the same bytes, and memory while lengths are unknown.
    for (const u of uploads) {
      add(`${u.title} to S3 ≥ 0.8 × the SDK alone`, u.id, refs?.s3SdkPut ? `≥ ${round(0.8 * refs.s3SdkPut)} MiB/s` : 'needs the S3 references', refs?.s3SdkPut && 0.8 * refs.s3SdkPut, 'atLeast',
        refs?.s3SdkPut ? `SDK multipart upload ${refs.s3SdkPut} MiB/s` : undefined);
    }
    for (const d of results.filter((r) => r.id.startsWith('download-'))) {
      add(`${d.title} from S3 ≥ 0.9 × GetObject`, d.id, refs?.s3SdkGet ? `≥ ${round(0.9 * refs.s3SdkGet)} MiB/s` : 'needs the S3 references', refs?.s3SdkGet && 0.9 * refs.s3SdkGet, 'atLeast',
        refs?.s3SdkGet ? `one GetObject stream ${refs.s3SdkGet} MiB/s` : undefined);
    }
    add('ranged reads from S3 ≥ 0.9 × ranged GetObjects', 'ranges', refs?.s3SdkRanges ? `≥ ${round(0.9 * refs.s3SdkRanges)} ranges/s` : 'needs the S3 references', refs?.s3SdkRanges && 0.9 * refs.s3SdkRanges, 'atLeast',
      refs?.s3SdkRanges ? `the SDK alone, one range after the other: ${refs.s3SdkRanges}/s` : undefined);
    const bound = chunkedBoundMB(opts.s3Bound.count);
    add(`RSS rise, ${opts.s3Bound.count} chunked uploads to S3 < ${opts.s3Bound.count} × (queueSize + 1) parts`, 's3-chunked-uploads', `< ${bound} MB`, bound, 'below');
  }
  const cache = byId.get('cache');
  const storeRate = typeof cache?.metrics.storeMiBps === 'number' ? cache.metrics.storeMiBps : undefined;
  add('cache hit ≥ 0.9 × filesystem-store download (same run)', 'cache', storeRate ? `≥ ${round(0.9 * storeRate)} MiB/s` : 'needs the store reads', storeRate && 0.9 * storeRate, 'atLeast',
    storeRate ? `filesystem store ${storeRate} MiB/s; ${cache?.metrics.concurrentDownloads ?? 'n/a'} concurrent downloads of an uncached image: ${cache?.metrics.concurrentStoreGets ?? 'n/a'} store read(s)` : undefined);
  add('metadata create ≥ 2,000/s', 'metadata-create', '≥ 2000/s', 2000, 'atLeast');
  add('metadata show ≥ 5,000/s', 'metadata-show', '≥ 5000/s', 5000, 'atLeast');
  add('metadata patch ≥ 1,500/s', 'metadata-patch', '≥ 1500/s', 1500, 'atLeast');
  add('metadata delete ≥ 1,500/s', 'metadata-delete', '≥ 1500/s', 1500, 'atLeast');
  add(`list page of 1000 p99 < 50 ms (${opts.metadataImages} images)`, 'metadata-list', '< 50 ms', 50, 'below');
  const busy = byId.get('metadata-during-upload');
  add('metadata p99 < 20 ms during an upload', 'metadata-during-upload', '< 20 ms', 20, 'below', busy?.metrics.p99MsIdle !== undefined ? `idle p99 ${busy.metrics.p99MsIdle} ms` : undefined);

  const withRss = results.filter((r) => r.rss);
  if (withRss.length === 0) {
    rows.push({ target: `server RSS < ${RSS_LIMIT_MB} MB everywhere`, goal: `< ${RSS_LIMIT_MB} MB`, measured: 'no local server process', verdict: 'n/a' });
  } else {
    const worst = withRss.reduce((a, b) => (b.rss!.peakMB > a.rss!.peakMB ? b : a));
    const peak = worst.rss!.peakMB;
    rows.push({
      target: `server RSS < ${RSS_LIMIT_MB} MB everywhere`,
      goal: `< ${RSS_LIMIT_MB} MB`,
      measured: `${peak} MB (${worst.title})`,
      ratio: round(RSS_LIMIT_MB / peak, 2),
      verdict: peak < RSS_LIMIT_MB ? 'PASS' : 'MISS',
      context: withRss.map((r) => `${r.rss!.peakMB}`).join(' '),
    });
  }
  return rows;
}

import { ErrorNote, Section, formatBytes, useLoad, type AppContext } from './ui.js';

const LABELS: Record<string, string> = {
  image_size_total: 'Image data',
  image_stage_total: 'Staged data',
  image_count_total: 'Images',
  image_count_uploading: 'Uploads and imports at once',
};

export function StoresPage({ ctx }: { ctx: AppContext }) {
  const stores = useLoad(() => ctx.client.stores(), []);
  const usage = useLoad(() => ctx.client.usage(), []);
  const entries = Object.entries(usage.data ?? {});
  return (
    <>
      <h1>Stores and quotas</h1>
      <Section title="Stores" id="stores-h">
        <ErrorNote error={stores.error} />
        <ul class="stores">
          {(stores.data ?? []).map((s) => (
            <li key={s.id}><strong>{s.id}</strong>{s.default ? ' (default)' : ''}{s.read_only ? ' (read-only)' : ''}{s.description ? ` — ${s.description}` : ''}</li>
          ))}
        </ul>
      </Section>
      <Section title={`Usage of project ${ctx.session.project?.name ?? ''}`} id="usage-h">
        <ErrorNote error={usage.error} />
        {usage.data && entries.length === 0 && <p class="muted">Quotas are not enforced on this Imago.</p>}
        {entries.map(([k, v]) => {
          const sized = k.includes('size') || k.includes('stage');
          const show = (n: number) => (sized ? formatBytes(n * 1024 * 1024) : String(n));
          const unlimited = v.limit < 0;
          const pct = unlimited || v.limit === 0 ? 0 : Math.min(100, (v.usage / v.limit) * 100);
          return (
            <div class="usage" key={k}>
              <label for={`u-${k}`}>{LABELS[k] ?? k}: {show(v.usage)} of {unlimited ? 'unlimited' : show(v.limit)}</label>
              <meter id={`u-${k}`} min={0} max={100} low={75} high={90} optimum={0} value={pct}>{Math.round(pct)}%</meter>
            </div>
          );
        })}
      </Section>
    </>
  );
}

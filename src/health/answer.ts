import type { HealthReport } from './monitor.js';

/** text/plain unless the client prefers application/json (as oslo.middleware's healthcheck decides, ties to text). */
export function prefersJson(accept: string | undefined): boolean {
  if (!accept) return false;
  let plain = 0;
  let json = 0;
  for (const part of accept.split(',')) {
    const [type, ...params] = part.trim().toLowerCase().split(';');
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const q = qParam ? Number(qParam.slice(2)) || 0 : 1;
    const t = type.trim();
    if (t === 'text/plain' || t === 'text/*' || t === '*/*') plain = Math.max(plain, q);
    if (t === 'application/json' || t === 'application/*' || t === '*/*') json = Math.max(json, q);
  }
  return json > plain;
}

/** The answer in Glance's healthcheck shape; `detailed` adds each component and what failed (metrics listener only). */
export function healthAnswer(report: HealthReport, method: string, accept: string | undefined, detailed: boolean): { status: number; type: string; body: string } {
  const healthy = report.healthy;
  if (method === 'HEAD') return { status: healthy ? 204 : 503, type: 'text/plain', body: '' };
  const status = healthy ? 200 : 503;
  if (!prefersJson(accept)) return { status, type: 'text/plain; charset=UTF-8', body: report.reasons.join('\n') };
  const body = detailed
    ? { detailed: true, now: report.checkedAt, reasons: report.components.map((c) => ({ reason: c.ok ? 'OK' : `${c.component} unavailable`, details: c.details ?? '', class: c.component })) }
    : { detailed: false, reasons: report.reasons };
  return { status, type: 'application/json; charset=UTF-8', body: JSON.stringify(body, null, 4) };
}

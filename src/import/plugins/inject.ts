import { RESERVED_PREFIX } from '../../domain/image.js';

/**
 * The metadata injection plugin: the operator's properties, set on every
 * imported image unless the requester has one of the ignored roles.
 * Properties in Glance's reserved namespace are never injected.
 */
export function propertiesToInject(cfg: { enabled: boolean; properties: Record<string, string>; ignoreUserRoles: string[] }, roles: string[]): Record<string, string> {
  if (!cfg.enabled) return {};
  if (roles.some((r) => cfg.ignoreUserRoles.includes(r))) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(cfg.properties)) if (!k.startsWith(RESERVED_PREFIX)) out[k] = String(v);
  return out;
}

import { BlockList, isIP } from 'node:net';
import type { WebDownloadFilter } from '../config.js';

/**
 * Address ranges a download must not reach unless the operator says so:
 * this host, private networks, link-local (cloud metadata at
 * 169.254.169.254 / fd00:ec2::254), carrier-grade NAT (Alibaba's metadata at
 * 100.100.100.200), multicast and reserved space.
 */
const SPECIAL_V4: [string, number][] = [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24],
  ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
];
const SPECIAL_V6: [string, number][] = [
  ['::', 128], ['::1', 128], ['100::', 64], ['2001:db8::', 32], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8],
];

const special = new BlockList();
for (const [net, prefix] of SPECIAL_V4) special.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of SPECIAL_V6) special.addSubnet(net, prefix, 'ipv6');

function expandV6(ip: string): number[] | undefined {
  let s = ip.toLowerCase().replace(/%.*$/, '');
  const dotted = s.match(/^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(2).map(Number);
    s = `${dotted[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const parts = s.split('::');
  if (parts.length > 2) return undefined;
  const head = parts[0] ? parts[0].split(':') : [];
  const tail = parts.length === 2 && parts[1] ? parts[1].split(':') : [];
  const fill = parts.length === 2 ? 8 - head.length - tail.length : 0;
  if (fill < 0) return undefined;
  const words = [...head, ...new Array(fill).fill('0'), ...tail].map((x) => (/^[0-9a-f]{1,4}$/.test(x) ? parseInt(x, 16) : NaN));
  return words.length === 8 && words.every((w) => !Number.isNaN(w)) ? words : undefined;
}

/** The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4), if any. */
function embeddedV4(ip: string): string | undefined {
  const w = expandV6(ip);
  if (!w) return undefined;
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  if (w.slice(0, 5).every((x) => x === 0) && (w[5] === 0xffff || w[5] === 0)) return w[5] === 0 && w[6] === 0 ? undefined : v4(w[6], w[7]);
  if (w[0] === 0x64 && w[1] === 0xff9b && w.slice(2, 6).every((x) => x === 0)) return v4(w[6], w[7]);
  if (w[0] === 0x2002) return v4(w[1], w[2]);
  return undefined;
}

export function isSpecialAddress(ip: string): boolean {
  const family = isIP(ip);
  if (family === 4) return special.check(ip, 'ipv4');
  if (family === 6) {
    const inner = embeddedV4(ip);
    if (inner !== undefined && special.check(inner, 'ipv4')) return true;
    return special.check(ip, 'ipv6');
  }
  return true;
}

interface HostRules {
  names: Set<string>;
  addresses: BlockList;
  hasAddresses: boolean;
}

function hostRules(entries: string[]): HostRules {
  const rules: HostRules = { names: new Set(), addresses: new BlockList(), hasAddresses: false };
  for (const raw of entries) {
    const e = raw.trim().toLowerCase().replace(/^\[|\]$/g, '');
    const [addr, prefix] = e.split('/');
    const family = isIP(addr);
    if (family) {
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (prefix !== undefined) rules.addresses.addSubnet(addr, Number(prefix), type);
      else rules.addresses.addAddress(addr, type);
      rules.hasAddresses = true;
    } else if (e) {
      rules.names.add(e);
    }
  }
  return rules;
}

function addressIn(rules: HostRules, ip: string): boolean {
  if (!rules.hasAddresses) return false;
  const family = isIP(ip);
  if (family === 4) return rules.addresses.check(ip, 'ipv4');
  if (family === 6) {
    const inner = embeddedV4(ip);
    return rules.addresses.check(ip, 'ipv6') || (inner !== undefined && rules.addresses.check(inner, 'ipv4'));
  }
  return false;
}

/**
 * `raw` with whatever sits between "scheme://" and "@" replaced by ***, for
 * messages and logs: a URL's user:password never reaches a response, a task
 * or a log line, even when the URL is otherwise malformed.
 */
export function redactUserinfo(raw: string): string {
  return raw.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1***@');
}

export type UrlCheck = { ok: true; url: URL; host: string; port: number } | { ok: false; reason: string };

/**
 * The web-download filter (config.import.webDownload): which URLs may be
 * fetched, checked before connecting, after every redirect, and against
 * every address a host name resolves to.
 *
 * Host entries are names (exact, case-insensitive), IP addresses or CIDR
 * ranges. Private, loopback, link-local, metadata and reserved addresses are
 * refused unless allowPrivateNetworks is true or the address is listed (as an
 * IP or range) in allowedHosts.
 */
export class UriFilter {
  private readonly allowed: HostRules;
  private readonly disallowed: HostRules;

  constructor(private readonly cfg: WebDownloadFilter) {
    this.allowed = hostRules(cfg.allowedHosts);
    this.disallowed = hostRules(cfg.disallowedHosts);
  }

  checkUrl(raw: string): UrlCheck {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return { ok: false, reason: `"${redactUserinfo(raw)}" is not a valid URL` };
    }
    // Credentials in the URL would be stored in the task's input, which everyone the image is
    // shared with can read: refused outright (also after a redirect). See docs/import.md.
    if (url.username !== '' || url.password !== '') {
      return { ok: false, reason: 'the URL carries credentials (user:password@), which web-download does not accept; serve the image without them or through a pre-signed URL' };
    }
    const scheme = url.protocol.replace(/:$/, '').toLowerCase();
    if (scheme !== 'http' && scheme !== 'https') return { ok: false, reason: `scheme "${scheme}" is not supported (http and https are)` };
    if (this.cfg.allowedSchemes.length && !this.cfg.allowedSchemes.map((s) => s.toLowerCase()).includes(scheme)) return { ok: false, reason: `scheme "${scheme}" is not allowed` };
    if (this.cfg.disallowedSchemes.map((s) => s.toLowerCase()).includes(scheme)) return { ok: false, reason: `scheme "${scheme}" is not allowed` };
    const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
    if (!host) return { ok: false, reason: 'the URL has no host' };
    const port = url.port ? Number(url.port) : scheme === 'https' ? 443 : 80;
    if (this.cfg.allowedPorts.length && !this.cfg.allowedPorts.includes(port)) return { ok: false, reason: `port ${port} is not allowed` };
    if (this.cfg.disallowedPorts.includes(port)) return { ok: false, reason: `port ${port} is not allowed` };
    const literal = isIP(host) !== 0;
    if (this.disallowed.names.has(host) || (literal && addressIn(this.disallowed, host))) return { ok: false, reason: `host ${host} is not allowed` };
    const hasAllowList = this.allowed.names.size > 0 || this.allowed.hasAddresses;
    if (hasAllowList && !this.allowed.names.has(host) && !(literal && addressIn(this.allowed, host))) return { ok: false, reason: `host ${host} is not allowed` };
    if (literal) {
      const why = this.checkAddress(host);
      if (why) return { ok: false, reason: why };
    }
    return { ok: true, url, host, port };
  }

  /** Why a connection to `ip` is refused, or undefined when allowed. */
  checkAddress(ip: string): string | undefined {
    if (addressIn(this.disallowed, ip)) return `address ${ip} is not allowed`;
    if (addressIn(this.allowed, ip) || this.cfg.allowPrivateNetworks) return undefined;
    if (isSpecialAddress(ip)) return `address ${ip} is in a private, loopback, link-local or reserved range`;
    return undefined;
  }
}

import { BadRequest } from './errors.js';

/**
 * Digests a client declares for the bytes it sends, checked against what
 * Imago computes while the bytes stream in (docs/api.md#verified-uploads):
 * openstacksdk's `owner_specified.openstack.md5` / `.sha256` properties (and
 * shade's older `owner_specified.shade.*`), the `X-Image-Meta-Expected-*`
 * headers of PUT /file and PUT /stage, and web-download's `expected_digest`.
 * Pure: where each comes from and whether the received bytes match.
 */
export type DigestAlgo = 'md5' | 'sha256' | 'sha512';

export interface ExpectedDigest {
  algo: DigestAlgo;
  value: string;
  /** where the client said it, for the message: "property owner_specified.openstack.md5" */
  source: string;
}

export type ReceivedDigests = Partial<Record<DigestAlgo, string>>;

const HEX_LENGTH: Record<DigestAlgo, number> = { md5: 32, sha256: 64, sha512: 128 };
export const DIGEST_ALGOS = Object.keys(HEX_LENGTH) as DigestAlgo[];

/** openstacksdk sends these (empty strings when it computed nothing: empty means absent). */
const PROPERTIES: [string, DigestAlgo][] = [
  ['owner_specified.openstack.md5', 'md5'],
  ['owner_specified.openstack.sha256', 'sha256'],
  ['owner_specified.shade.md5', 'md5'],
  ['owner_specified.shade.sha256', 'sha256'],
];

export function expectedFromProperties(properties: Record<string, string>): ExpectedDigest[] {
  const out: ExpectedDigest[] = [];
  for (const [name, algo] of PROPERTIES) {
    const v = Object.hasOwn(properties, name) ? properties[name].trim() : '';
    if (v) out.push({ algo, value: v.toLowerCase(), source: `property ${name}` });
  }
  return out;
}

/** One declared digest given by a request (a header, or expected_digest): malformed is the client's mistake, 400 at once. */
export function expectedDigest(algo: string, value: unknown, source: string): ExpectedDigest {
  const a = algo.toLowerCase() as DigestAlgo;
  if (!DIGEST_ALGOS.includes(a)) throw new BadRequest(`${source}: unknown digest algorithm '${algo}' (md5, sha256 or sha512).`);
  if (typeof value !== 'string' || !new RegExp(`^[0-9a-fA-F]{${HEX_LENGTH[a]}}$`).test(value.trim())) {
    throw new BadRequest(`${source} must be a ${a} digest: ${HEX_LENGTH[a]} hexadecimal digits.`);
  }
  return { algo: a, value: value.trim().toLowerCase(), source };
}

/** The header names of PUT /file and PUT /stage, by algorithm. */
export const EXPECTED_HEADERS: Record<DigestAlgo, string> = {
  md5: 'x-image-meta-expected-md5',
  sha256: 'x-image-meta-expected-sha256',
  sha512: 'x-image-meta-expected-sha512',
};

export function expectedFromHeaders(headers: Record<string, string | string[] | undefined>): ExpectedDigest[] {
  const out: ExpectedDigest[] = [];
  for (const algo of DIGEST_ALGOS) {
    const raw = headers[EXPECTED_HEADERS[algo]];
    if (raw === undefined) continue;
    const name = EXPECTED_HEADERS[algo].replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase());
    if (Array.isArray(raw)) throw new BadRequest(`Header ${name} may be given only once.`);
    out.push(expectedDigest(algo, raw, `Header ${name}`));
  }
  return out;
}

/** The first declared digest the received bytes do not have, as a message; undefined when all match. */
export function digestMismatch(expected: ExpectedDigest[], got: ReceivedDigests): string | undefined {
  for (const e of expected) {
    const have = got[e.algo];
    if (have !== undefined && have !== e.value) {
      return `The data received does not match the ${e.algo} digest the client declared (${e.source}): expected ${e.value}, received ${have}. Nothing was stored.`;
    }
  }
  return undefined;
}

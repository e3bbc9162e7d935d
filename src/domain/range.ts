import { BadRequest, RangeNotSatisfiable } from './errors.js';

export interface ResolvedRange {
  start: number;
  end: number;
}

/**
 * Resolves the requested byte range of an image of `size` bytes. `Range`
 * wins over the legacy `Content-Range` request header that Glance also
 * honours. Returns undefined when the whole image is wanted.
 */
export function resolveRange(size: number, range: string | undefined, contentRange: string | undefined): ResolvedRange | undefined {
  if (range !== undefined) return parseRangeHeader(range, size);
  if (contentRange !== undefined) return parseContentRange(contentRange, size);
  return undefined;
}

function invalid(size: number): never {
  throw new RangeNotSatisfiable('Invalid Range header.', size);
}

function parseRangeHeader(header: string, size: number): ResolvedRange {
  const m = /^\s*([A-Za-z]+)\s*=\s*(.*)$/s.exec(header);
  if (!m || m[1].toLowerCase() !== 'bytes') invalid(size);
  // empty list elements are ignored (RFC 9110, 5.6.1)
  const specs = m![2].split(',').map((s) => s.trim()).filter((s, i, all) => s !== '' || all.length === 1);
  if (specs.length === 0) invalid(size);
  if (specs.length > 1) {
    throw new BadRequest('Requests with multiple ranges are not supported. You may make multiple single-range requests instead.');
  }
  const spec = /^(\d*)-(\d*)$/.exec(specs[0]);
  if (!spec || (spec[1] === '' && spec[2] === '')) invalid(size);
  const [, a, b] = spec!;
  if (a === '') {
    const n = Number(b);
    if (n === 0) invalid(size);
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Number(b);
  if (b !== '' && end < start) invalid(size);
  return clamp(start, end, size);
}

function parseContentRange(header: string, size: number): ResolvedRange {
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(header);
  if (!m) invalid(size);
  const start = Number(m![1]);
  const end = Number(m![2]);
  if (end < start) invalid(size);
  return clamp(start, end, size);
}

function clamp(start: number, end: number, size: number): ResolvedRange {
  if (start >= size) {
    throw new RangeNotSatisfiable(`Invalid start position in Range header. Start position MUST be in the inclusive range [0, ${Math.max(size - 1, 0)}].`, size);
  }
  return { start, end: Math.min(end, size - 1) };
}

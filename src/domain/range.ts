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

/**
 * The legacy `Content-Range: bytes S-E/L` (or `/*`) request header. Unlike
 * `Range`, it is not clamped: a range that ends past the image is refused
 * with 416, as Glance refuses it (Glance lets an explicit length `L` hide
 * such an end and then sends a truncated 206; we refuse that too).
 */
function parseContentRange(header: string, size: number): ResolvedRange {
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(header);
  if (!m) throw new RangeNotSatisfiable('Invalid Content-Range header.', size);
  const start = Number(m[1]);
  const end = Number(m[2]);
  const length = m[3] === '*' ? undefined : Number(m[3]);
  if (end < start || (length !== undefined && end >= length)) throw new RangeNotSatisfiable('Invalid Content-Range header: the range must end after it starts and inside its length.', size);
  if (start >= size) {
    throw new RangeNotSatisfiable(`Invalid start position in Content-Range header. Start position MUST be in the inclusive range [0, ${Math.max(size - 1, 0)}].`, size);
  }
  if (end >= size) throw new RangeNotSatisfiable(`Invalid end position in Content-Range header: the image has ${size} bytes, so the last position is ${Math.max(size - 1, 0)}.`, size);
  return { start, end };
}

function clamp(start: number, end: number, size: number): ResolvedRange {
  if (start >= size) {
    throw new RangeNotSatisfiable(`Invalid start position in Range header. Start position MUST be in the inclusive range [0, ${Math.max(size - 1, 0)}].`, size);
  }
  return { start, end: Math.min(end, size - 1) };
}

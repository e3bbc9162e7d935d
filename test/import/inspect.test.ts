/**
 * Streaming format inspector tests. Images are built with the real qemu-img (Debian
 * qemu-utils) in a temp dir, some are then patched byte-for-byte into malicious variants, and
 * every image is streamed through the inspector in randomly sized chunks (1 byte ... 1 MiB).
 */

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  CAPTURE_BUDGET_BYTES,
  DEFAULT_MAX_HEADER_BYTES,
  FormatInspector,
  checkDeclaredFormat,
  type DiskFormat,
  type InspectionResult,
} from '../../src/import/inspect/inspector.js';
import { crc32c } from '../../src/import/inspect/util.js';
import { TAIL_BYTES } from '../../src/import/inspect/window.js';

const MIB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'imago-inspect-'));
// Set KEEP_INSPECT_DIR=1 to keep the generated images for a look with qemu-img / xxd.
after(() => {
  if (!process.env.KEEP_INSPECT_DIR) rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// helpers

function qemuImg(...args: string[]): string {
  return execFileSync('qemu-img', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function qemuInfo(file: string, format?: string): Record<string, unknown> {
  const args = ['info', '--output=json'];
  if (format) args.push('-f', format);
  return JSON.parse(qemuImg(...args, join(dir, file))) as Record<string, unknown>;
}

function qemuVirtualSize(file: string, format?: string): number {
  return qemuInfo(file, format)['virtual-size'] as number;
}

function path(name: string): string {
  return join(dir, name);
}

/** Deterministic PRNG so a failing chunking can be replayed from its seed. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Chunking = { kind: 'random'; seed: number } | { kind: 'tiny-head' } | { kind: 'max' };
const CHUNKINGS: Chunking[] = [
  { kind: 'random', seed: 1 },
  { kind: 'random', seed: 7 },
  { kind: 'random', seed: 2024 },
  { kind: 'tiny-head' },
  { kind: 'max' },
];

/**
 * Streams a file from disk through a fresh inspector. The read buffer is reused for every
 * chunk, so an inspector that kept a reference to a chunk instead of copying would break.
 */
function inspectFile(file: string, chunking: Chunking, opts?: { maxHeaderBytes?: number }): InspectionResult {
  const fd = openSync(path(file), 'r');
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(MIB);
    const rnd = chunking.kind === 'random' ? mulberry32(chunking.seed) : () => 0;
    const inspector = new FormatInspector(opts);
    let offset = 0;
    while (offset < size) {
      let want: number;
      if (chunking.kind === 'max') want = MIB;
      else if (chunking.kind === 'tiny-head') want = offset < 400 * 1024 ? 1 + (offset % 13) : MIB;
      else want = Math.min(MIB, Math.floor(2 ** (rnd() * 20))); // log-uniform 1 B .. 1 MiB
      const n = readSync(fd, buf, 0, Math.min(want, size - offset), offset);
      inspector.push(buf.subarray(0, n), offset);
      offset += n;
    }
    return inspector.finish(size);
  } finally {
    closeSync(fd);
  }
}

/** Inspects with every chunking and checks they all agree; returns the common result. */
function inspectAllWays(file: string, opts?: { maxHeaderBytes?: number }): InspectionResult {
  const results = CHUNKINGS.map((c) => ({ c, r: inspectFile(file, c, opts) }));
  for (const { c, r } of results.slice(1)) {
    assert.deepEqual(r, results[0]!.r, `chunking ${JSON.stringify(c)} disagrees for ${file}`);
  }
  return results[0]!.r;
}

function assertSafe(result: InspectionResult, format: DiskFormat, virtualSize: number | null): void {
  assert.deepEqual(result, { format, virtualSize, safetyProblems: [] });
}

function assertRefused(result: InspectionResult, format: DiskFormat, problems: RegExp[]): void {
  assert.equal(result.format, format, JSON.stringify(result));
  assert.ok(result.safetyProblems.length > 0, `expected safety problems, got ${JSON.stringify(result)}`);
  for (const re of problems) {
    assert.ok(
      result.safetyProblems.some((p) => re.test(p)),
      `no problem matches ${re}: ${JSON.stringify(result.safetyProblems)}`,
    );
  }
}

function patch(file: string, out: string, edit: (b: Buffer) => void): string {
  const b = readFileSync(path(file));
  edit(b);
  writeFileSync(path(out), b);
  return out;
}

/** A small but well-formed ISO 9660 image written by hand (no genisoimage/xorriso needed). */
function makeIso(blocks: number, opts: { bootRecord?: boolean } = {}): Buffer {
  const S = 2048;
  const img = Buffer.alloc(blocks * S);
  const both32 = (b: Buffer, at: number, v: number) => {
    b.writeUInt32LE(v, at);
    b.writeUInt32BE(v, at + 4);
  };
  const both16 = (b: Buffer, at: number, v: number) => {
    b.writeUInt16LE(v, at);
    b.writeUInt16BE(v, at + 2);
  };
  const dirRecord = (b: Buffer, at: number, extent: number, name: number) => {
    b[at] = 34;
    both32(b, at + 2, extent);
    both32(b, at + 10, S);
    b.set([124, 1, 1, 0, 0, 0, 0], at + 18); // 2024-01-01 00:00:00 GMT
    b[at + 25] = 2; // directory
    both16(b, at + 28, 1);
    b[at + 32] = 1;
    b[at + 33] = name;
  };
  let sector = 16;
  const descriptor = (type: number) => {
    const d = img.subarray(sector * S, (sector + 1) * S);
    d[0] = type;
    d.write('CD001', 1, 'latin1');
    d[6] = 1;
    sector++;
    return d;
  };
  if (opts.bootRecord) descriptor(0).write('EL TORITO SPECIFICATION', 7, 'latin1');
  const pvd = descriptor(1);
  descriptor(255);
  const lPath = sector++;
  const mPath = sector++;
  const root = sector++;
  pvd.fill(0x20, 8, 72);
  pvd.write('IMAGO_TEST', 40, 'latin1');
  both32(pvd, 80, blocks);
  both16(pvd, 120, 1);
  both16(pvd, 124, 1);
  both16(pvd, 128, S);
  both32(pvd, 132, 10);
  pvd.writeUInt32LE(lPath, 140);
  pvd.writeUInt32BE(mPath, 148);
  dirRecord(pvd, 156, root, 0);
  pvd.fill(0x20, 190, 813);
  for (let i = 0; i < 4; i++) pvd.fill(0x30, 813 + i * 17, 813 + i * 17 + 16);
  pvd[881] = 1;
  const l = img.subarray(lPath * S);
  l.set([1, 0]);
  l.writeUInt32LE(root, 2);
  l.writeUInt16LE(1, 6);
  const m = img.subarray(mPath * S);
  m.set([1, 0]);
  m.writeUInt32BE(root, 2);
  m.writeUInt16BE(1, 6);
  const r = img.subarray(root * S);
  dirRecord(r, 0, root, 0);
  dirRecord(r, 34, root, 1);
  return img;
}

/** Recomputes a VHD footer checksum in place. */
function fixVhdChecksum(footer: Buffer): void {
  footer.writeUInt32BE(0, 64);
  let sum = 0;
  for (const b of footer) sum += b;
  footer.writeUInt32BE(~sum >>> 0, 64);
}

/** Base images several tests patch into malicious variants; built once, on first use. */
const BASES: Record<string, () => void> = {
  'plain.qcow2': () => qemuImg('create', '-q', '-f', 'qcow2', 'plain.qcow2', '64M'),
  'mono.vmdk': () => qemuImg('create', '-q', '-f', 'vmdk', 'mono.vmdk', '100M'),
  'dyn.vhd': () => qemuImg('create', '-q', '-f', 'vpc', 'dyn.vhd', '1G'),
  'dyn.vhdx': () => qemuImg('create', '-q', '-f', 'vhdx', 'dyn.vhdx', '1G'),
  'dyn.vdi': () => qemuImg('create', '-q', '-f', 'vdi', 'dyn.vdi', '64M'),
  'evil-datafile.qcow2': () =>
    qemuImg('create', '-q', '-f', 'qcow2', '-o', 'data_file=ext.raw', 'evil-datafile.qcow2', '64M'),
  'plain.iso': () => writeFileSync(path('plain.iso'), makeIso(300)),
};
const built = new Set<string>();
function base(name: keyof typeof BASES & string): string {
  if (!built.has(name)) {
    BASES[name]!();
    built.add(name);
  }
  return name;
}

// Shared source data: incompressible, not sector aligned.
const RAW_DATA_SIZE = 3 * MIB + 1234;
writeFileSync(path('data.raw'), randomBytes(RAW_DATA_SIZE));

// ---------------------------------------------------------------------------------------------
// benign images

describe('format inspector: benign images built by qemu-img', () => {
  it('raw data: virtual size is the byte count', () => {
    assertSafe(inspectAllWays('data.raw'), 'raw', RAW_DATA_SIZE);
  });

  it('raw: empty and tiny images', () => {
    writeFileSync(path('empty.raw'), Buffer.alloc(0));
    writeFileSync(path('tiny.raw'), Buffer.from('hello'));
    assertSafe(inspectFile('empty.raw', { kind: 'max' }), 'raw', 0);
    assertSafe(inspectAllWays('tiny.raw'), 'raw', 5);
  });

  it('raw created by qemu-img (sparse zeros)', () => {
    qemuImg('create', '-q', '-f', 'raw', 'zeros.raw', '5M');
    assertSafe(inspectAllWays('zeros.raw'), 'raw', qemuVirtualSize('zeros.raw', 'raw'));
  });

  for (const [name, args, file] of [
    ['qcow2 v3 (empty, 1 GiB)', ['create', '-q', '-f', 'qcow2', 'empty.qcow2', '1G'], 'empty.qcow2'],
    ['qcow2 v2 (compat=0.10)', ['create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', 'v2.qcow2', '512M'], 'v2.qcow2'],
    ['qcow2 converted from data, 4 KiB clusters', ['convert', '-O', 'qcow2', '-o', 'cluster_size=4096', 'data.raw', 'data.qcow2'], 'data.qcow2'],
    ['qcow2 with extended L2 entries (incompatible bit 4)', ['create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on', 'l2.qcow2', '64M'], 'l2.qcow2'],
    ['qcow2 with zstd compression type (incompatible bit 3)', ['create', '-q', '-f', 'qcow2', '-o', 'compression_type=zstd', 'zstd.qcow2', '64M'], 'zstd.qcow2'],
  ] as const) {
    it(name, () => {
      qemuImg(...args);
      assertSafe(inspectAllWays(file), 'qcow2', qemuVirtualSize(file, 'qcow2'));
    });
  }

  for (const [name, args, file] of [
    ['vmdk monolithicSparse (empty)', ['create', '-q', '-f', 'vmdk', 'mono-empty.vmdk', '100M'], 'mono-empty.vmdk'],
    ['vmdk monolithicSparse (data)', ['convert', '-O', 'vmdk', 'data.raw', 'mono-data.vmdk'], 'mono-data.vmdk'],
    ['vmdk streamOptimized (empty)', ['create', '-q', '-f', 'vmdk', '-o', 'subformat=streamOptimized', 'so.vmdk', '100M'], 'so.vmdk'],
    ['vmdk streamOptimized (data)', ['convert', '-O', 'vmdk', '-o', 'subformat=streamOptimized', 'data.raw', 'so-data.vmdk'], 'so-data.vmdk'],
  ] as const) {
    it(name, () => {
      qemuImg(...args);
      assertSafe(inspectAllWays(file), 'vmdk', qemuVirtualSize(file, 'vmdk'));
    });
  }

  it('vmdk streamOptimized with the header in a footer (VMware style, gdOffset = all ones)', () => {
    qemuImg('convert', '-O', 'vmdk', '-o', 'subformat=streamOptimized', 'data.raw', 'so-src.vmdk');
    const b = readFileSync(path('so-src.vmdk'));
    const header = Buffer.from(b.subarray(0, 512));
    b.writeBigUInt64LE(0xffff_ffff_ffff_ffffn, 56);
    const marker = Buffer.alloc(512);
    marker.writeBigUInt64LE(1n, 0);
    marker.writeUInt32LE(3, 12); // MARKER_FOOTER
    writeFileSync(path('so-footer.vmdk'), Buffer.concat([b, marker, header, Buffer.alloc(512)]));
    // qemu-img itself accepts it and reads the same data back.
    qemuImg('compare', '-f', 'vmdk', '-F', 'raw', 'so-footer.vmdk', 'data.raw');
    assertSafe(inspectAllWays('so-footer.vmdk'), 'vmdk', qemuVirtualSize('so-footer.vmdk', 'vmdk'));

    // A footer that disagrees with the header about the capacity is refused.
    const evil = Buffer.concat([b, marker, header, Buffer.alloc(512)]);
    evil.writeBigUInt64LE(1n << 30n, b.length + 512 + 12);
    writeFileSync(path('so-footer-evil.vmdk'), evil);
    assertRefused(inspectAllWays('so-footer-evil.vmdk'), 'vmdk', [/header and footer capacities differ/]);
  });

  for (const [name, args, file] of [
    ['vhd dynamic (1 GiB, CHS-sized like qemu)', ['create', '-q', '-f', 'vpc', 'dyn-1g.vhd', '1G'], 'dyn-1g.vhd'],
    ['vhd dynamic (data)', ['convert', '-O', 'vpc', 'data.raw', 'dyn-data.vhd'], 'dyn-data.vhd'],
    ['vhd dynamic sized by current_size (force_size)', ['create', '-q', '-f', 'vpc', '-o', 'force_size=on', 'forced.vhd', '1G'], 'forced.vhd'],
    ['vhd fixed (footer only at the end)', ['create', '-q', '-f', 'vpc', '-o', 'subformat=fixed', 'fixed.vhd', '10M'], 'fixed.vhd'],
  ] as const) {
    it(name, () => {
      qemuImg(...args);
      assertSafe(inspectAllWays(file), 'vhd', qemuVirtualSize(file, 'vpc'));
    });
  }

  for (const [name, args, file] of [
    ['vhdx dynamic (1 GiB; metadata at 3 MiB, beyond the prefix)', ['create', '-q', '-f', 'vhdx', 'dyn-1g.vhdx', '1G'], 'dyn-1g.vhdx'],
    ['vhdx fixed', ['create', '-q', '-f', 'vhdx', '-o', 'subformat=fixed', 'fixed.vhdx', '8M'], 'fixed.vhdx'],
    ['vhdx (data)', ['convert', '-O', 'vhdx', 'data.raw', 'data.vhdx'], 'data.vhdx'],
  ] as const) {
    it(name, () => {
      qemuImg(...args);
      assertSafe(inspectAllWays(file), 'vhdx', qemuVirtualSize(file, 'vhdx'));
    });
  }

  it('vhdx with the smallest allowed prefix still finds the metadata by capturing it', () => {
    qemuImg('create', '-q', '-f', 'vhdx', 'small-prefix.vhdx', '256M');
    const r = inspectAllWays('small-prefix.vhdx', { maxHeaderBytes: 1 });
    assertSafe(r, 'vhdx', qemuVirtualSize('small-prefix.vhdx', 'vhdx'));
  });

  for (const [name, args, file] of [
    ['vdi dynamic', ['create', '-q', '-f', 'vdi', 'dyn-64m.vdi', '64M'], 'dyn-64m.vdi'],
    ['vdi static', ['create', '-q', '-f', 'vdi', '-o', 'static=on', 'static.vdi', '8M'], 'static.vdi'],
    ['vdi (data)', ['convert', '-O', 'vdi', 'data.raw', 'data.vdi'], 'data.vdi'],
  ] as const) {
    it(name, () => {
      qemuImg(...args);
      assertSafe(inspectAllWays(file), 'vdi', qemuVirtualSize(file, 'vdi'));
    });
  }

  it('iso 9660 (hand-written; PVD at 0x8000)', () => {
    assertSafe(inspectAllWays(base('plain.iso')), 'iso', 300 * 2048);
  });

  it('iso 9660 with a boot record first (PVD at 0x8800) and trailing padding', () => {
    writeFileSync(path('boot.iso'), Buffer.concat([makeIso(200, { bootRecord: true }), Buffer.alloc(4096)]));
    assertSafe(inspectAllWays('boot.iso'), 'iso', 200 * 2048);
  });

  it('qcow2 converted from an ISO is qcow2, not a polyglot (the ISO lives in guest data)', () => {
    qemuImg('convert', '-O', 'qcow2', base('plain.iso'), 'iso.qcow2');
    assertSafe(inspectAllWays('iso.qcow2'), 'qcow2', 300 * 2048);
  });
});

// ---------------------------------------------------------------------------------------------
// malicious images

describe('format inspector: malicious images are refused', () => {
  it('qcow2 with a backing file', () => {
    qemuImg('create', '-q', '-f', 'qcow2', 'base.qcow2', '64M');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', 'evil-backing.qcow2');
    const r = inspectAllWays('evil-backing.qcow2');
    assertRefused(r, 'qcow2', [/backing file/]);
    assert.equal(r.virtualSize, qemuVirtualSize('evil-backing.qcow2', 'qcow2'));
  });

  it('qcow2 with a backing file pointing at a host path', () => {
    qemuImg('create', '-q', '-f', 'qcow2', '-b', '/etc/passwd', '-F', 'raw', 'evil-passwd.qcow2', '1M');
    assertRefused(inspectAllWays('evil-passwd.qcow2'), 'qcow2', [/backing file/]);
  });

  it('qcow2 with an external data file', () => {
    const r = inspectAllWays(base('evil-datafile.qcow2'));
    assertRefused(r, 'qcow2', [/external data file/]);
    assert.equal(r.virtualSize, 64 * MIB);
  });

  it('qcow2 with an external data file name but the feature bit cleared', () => {
    patch(base('evil-datafile.qcow2'), 'evil-datafile-nobit.qcow2', (b) => {
      b[79] = b[79]! & ~0x04;
    });
    assertRefused(inspectAllWays('evil-datafile-nobit.qcow2'), 'qcow2', [/names an external data file/]);
  });

  it('qcow2 with an unknown incompatible feature bit', () => {
    patch(base('plain.qcow2'), 'evil-feature.qcow2', (b) => {
      b[79] = b[79]! | 0x20; // bit 5: not defined by QEMU
    });
    assertRefused(inspectAllWays('evil-feature.qcow2'), 'qcow2', [/unknown incompatible feature bits 0x20/]);
  });

  it('qcow2 with an unsupported version (qcow v1 style)', () => {
    patch(base('plain.qcow2'), 'evil-version.qcow2', (b) => b.writeUInt32BE(1, 4));
    assertRefused(inspectAllWays('evil-version.qcow2'), 'qcow2', [/Unsupported qcow2 version 1/]);
  });

  it('qcow2 + ISO polyglot (CD001 primary volume descriptor inside the qcow2 header cluster)', () => {
    const iso = makeIso(40);
    patch(base('plain.qcow2'), 'polyglot.qcow2', (b) => iso.copy(b, 0x8000, 0x8000, 0x9000));
    assert.equal(qemuInfo('polyglot.qcow2').format, 'qcow2'); // qemu still sees a qcow2
    assertRefused(inspectAllWays('polyglot.qcow2'), 'qcow2', [/more than one format \(qcow2, iso\)/]);
  });

  it('qcow2 + VHD polyglot (a VHD footer appended to a qcow2)', () => {
    qemuImg('create', '-q', '-f', 'vpc', '-o', 'subformat=fixed', 'tiny-fixed.vhd', '1M');
    const footer = readFileSync(path('tiny-fixed.vhd')).subarray(-512);
    writeFileSync(path('polyglot-vhd.qcow2'), Buffer.concat([readFileSync(path(base('plain.qcow2'))), footer]));
    assertRefused(inspectAllWays('polyglot-vhd.qcow2'), 'qcow2', [/more than one format \(qcow2, vhd\)/]);
  });

  it('vmdk monolithicFlat: descriptor file referencing a -flat.vmdk', () => {
    qemuImg('create', '-q', '-f', 'vmdk', '-o', 'subformat=monolithicFlat', 'flat.vmdk', '16M');
    const r = inspectAllWays('flat.vmdk');
    assertRefused(r, 'vmdk', [/keeps its data in other files/, /references external file "flat-flat\.vmdk"/]);
    assert.equal(r.virtualSize, qemuVirtualSize('flat.vmdk', 'vmdk'));
  });

  it('vmdk hand-written descriptor pointing at /etc/passwd', () => {
    writeFileSync(
      path('passwd.vmdk'),
      '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\n' +
        '# Extent description\nRW 8 FLAT "/etc/passwd" 0\n',
    );
    // qemu-img really would read /etc/passwd through it.
    assert.match(qemuImg('info', '-f', 'vmdk', 'passwd.vmdk'), /\/etc\/passwd/);
    assertRefused(inspectAllWays('passwd.vmdk'), 'vmdk', [/references external file "\/etc\/passwd"/]);
  });

  it('vmdk text descriptor claiming monolithicSparse with a bare extent name is still refused', () => {
    writeFileSync(
      path('sparse-desc.vmdk'),
      '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicSparse"\nRW 2048 SPARSE "mono.vmdk"\n',
    );
    assertRefused(inspectAllWays('sparse-desc.vmdk'), 'vmdk', [/keeps its data in other files/]);
  });

  it('vmdk sparse with zero capacity whose embedded descriptor points at /etc/passwd', () => {
    patch(base('mono.vmdk'), 'cap0.vmdk', (b) => {
      b.writeBigUInt64LE(0n, 12);
      b.fill(0, 512, 512 + 20 * 512);
      b.write('# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 4 FLAT "/etc/passwd" 0\n', 512, 'latin1');
    });
    assert.match(qemuImg('info', 'cap0.vmdk'), /filename: \/etc\/passwd/); // qemu follows it
    assertRefused(inspectAllWays('cap0.vmdk'), 'vmdk', [
      /zero capacity/,
      /createType "monolithicFlat" is not allowed/,
      /references another file: "\/etc\/passwd"/,
    ]);
  });

  it('vmdk with a parent image (qemu-img create -b)', () => {
    qemuImg('create', '-q', '-f', 'vmdk', '-b', base('mono.vmdk'), '-F', 'vmdk', 'child.vmdk');
    assert.match(qemuImg('info', 'child.vmdk'), /backing file: mono\.vmdk/);
    assertRefused(inspectAllWays('child.vmdk'), 'vmdk', [/parent image/]);
  });

  it('vmdk with a parent hint hidden in a descriptor comment (qemu still honours it)', () => {
    patch(base('mono.vmdk'), 'hidden-parent.vmdk', (b) => {
      const text = b.toString('latin1', 512, 512 + 20 * 512);
      const changed = text
        .replace('parentCID=ffffffff', 'parentCID=12345678')
        .replace('ddb.adapterType = "ide"', '# parentFileNameHint="/etc/passwd"');
      b.write(changed, 512, 'latin1');
    });
    assert.match(qemuImg('info', 'hidden-parent.vmdk'), /backing file: \/etc\/passwd/);
    assertRefused(inspectAllWays('hidden-parent.vmdk'), 'vmdk', [/parent image/]);
  });

  it('vmdk sparse whose embedded descriptor lists an extra extent in another file', () => {
    patch(base('mono.vmdk'), 'two-extents.vmdk', (b) => {
      const text = b.toString('latin1', 512, 512 + 20 * 512);
      const changed = text.replace(/(RW \d+ SPARSE "mono\.vmdk"\n)/, '$1RW 2048 FLAT "../../secret.img" 0\n');
      b.write(changed, 512, 'latin1');
    });
    assertRefused(inspectAllWays('two-extents.vmdk'), 'vmdk', [
      /more than one extent/,
      /references another file: "\.\.\/\.\.\/secret\.img"/,
    ]);
  });

  it('vhd differencing disk (references a parent)', () => {
    patch(base('dyn.vhd'), 'diff.vhd', (b) => {
      for (const footer of [b.subarray(0, 512), b.subarray(b.length - 512)]) {
        footer.writeUInt32BE(4, 60);
        fixVhdChecksum(footer);
      }
    });
    assertRefused(inspectAllWays('diff.vhd'), 'vhd', [/differencing disk/]);
  });

  it('vhd whose two footer copies disagree', () => {
    patch(base('dyn.vhd'), 'split.vhd', (b) => {
      const tail = b.subarray(b.length - 512);
      tail.writeBigUInt64BE(1n << 40n, 48);
      fixVhdChecksum(tail);
    });
    assertRefused(inspectAllWays('split.vhd'), 'vhd', [/footer copies .* differ/]);
  });

  it('fixed VHD wrapping an ISO is ambiguous (iso as raw, vhd by footer) and refused', () => {
    qemuImg('convert', '-O', 'vpc', '-o', 'subformat=fixed', base('plain.iso'), 'iso-in.vhd');
    assertRefused(inspectAllWays('iso-in.vhd'), 'vhd', [/more than one format \(vhd, iso\)/]);
  });

  it('vhdx with a pending log', () => {
    patch(base('dyn.vhdx'), 'log.vhdx', (b) => {
      for (const at of [64 * 1024, 128 * 1024]) {
        const h = b.subarray(at, at + 4096);
        randomBytes(16).copy(h, 48);
        h.writeUInt32LE(0, 4);
        h.writeUInt32LE(crc32c(h), 4);
      }
    });
    assertRefused(inspectAllWays('log.vhdx'), 'vhdx', [/pending log/]);
  });

  it('vhdx with a corrupted region table', () => {
    patch(base('dyn.vhdx'), 'badregion.vhdx', (b) => {
      b[192 * 1024 + 100] = b[192 * 1024 + 100]! ^ 0xff;
    });
    assertRefused(inspectAllWays('badregion.vhdx'), 'vhdx', [/region table checksum/]);
  });

  it('vhdx claiming to be a differencing disk (File Parameters HasParent)', () => {
    const b = readFileSync(path(base('dyn.vhdx')));
    const region = b.subarray(192 * 1024, 256 * 1024);
    let meta = -1;
    for (let i = 0; i < region.readUInt32LE(8); i++) {
      const e = region.subarray(16 + i * 32);
      if (e.readUInt32LE(0) === 0x8b7ca206) meta = Number(e.readBigUInt64LE(16));
    }
    assert.ok(meta > 0);
    for (let i = 0; i < b.readUInt16LE(meta + 10); i++) {
      const e = b.subarray(meta + 32 + i * 32);
      if (e.readUInt32LE(0) === 0xcaa16737) {
        const item = meta + e.readUInt32LE(16);
        b.writeUInt32LE(b.readUInt32LE(item + 4) | 2, item + 4);
      }
    }
    writeFileSync(path('parent.vhdx'), b);
    assertRefused(inspectAllWays('parent.vhdx'), 'vhdx', [/differencing disk/]);
  });

  it('vdi differencing image', () => {
    patch(base('dyn.vdi'), 'diff.vdi', (b) => b.writeUInt32LE(4, 0x4c));
    assertRefused(inspectAllWays('diff.vdi'), 'vdi', [/image type 4 is not allowed/]);
  });

  it('QED (qemu would probe it and follow its backing file) is not accepted as raw', () => {
    qemuImg('create', '-q', '-f', 'qed', 'x.qed', '16M');
    assertRefused(inspectAllWays('x.qed'), 'raw', [/QED/]);
  });

  it('truncated qcow2 header', () => {
    writeFileSync(path('trunc.qcow2'), readFileSync(path(base('plain.qcow2'))).subarray(0, 40));
    assertRefused(inspectAllWays('trunc.qcow2'), 'qcow2', [/truncated/]);
  });
});

// ---------------------------------------------------------------------------------------------
// streaming contract

describe('format inspector: streaming contract and memory bound', () => {
  it('memory stays constant however much is pushed', () => {
    const inspector = new FormatInspector();
    const chunk = Buffer.alloc(MIB, 0xab);
    inspector.push(chunk, 0);
    const early = inspector.retainedBytes;
    for (let i = 1; i < 256; i++) inspector.push(chunk, i * MIB); // 256 MiB
    assert.equal(inspector.retainedBytes, early);
    assert.ok(early <= DEFAULT_MAX_HEADER_BYTES + TAIL_BYTES + CAPTURE_BUDGET_BYTES);
    assertSafe(inspector.finish(256 * MIB), 'raw', 256 * MIB);
  });

  it('a gap in the stream poisons the result instead of throwing into the upload', () => {
    const inspector = new FormatInspector();
    inspector.push(Buffer.alloc(100), 0);
    inspector.push(Buffer.alloc(100), 150);
    const r = inspector.finish(250);
    assert.match(r.safetyProblems.join('\n'), /not contiguous \(expected offset 100, got 150\)/);
  });

  it('a total size that does not match the bytes pushed is a problem', () => {
    const inspector = new FormatInspector();
    inspector.push(Buffer.alloc(100), 0);
    assert.match(inspector.finish(4096).safetyProblems.join('\n'), /does not match the 100 bytes inspected/);
  });

  it('finish() is idempotent and push() after finish() throws', () => {
    const inspector = new FormatInspector();
    inspector.push(Buffer.alloc(10), 0);
    const a = inspector.finish(10);
    assert.equal(inspector.finish(10), a);
    assert.throws(() => inspector.push(Buffer.alloc(1), 10), /after finish/);
  });
});

// ---------------------------------------------------------------------------------------------
// declared vs detected

describe('checkDeclaredFormat', () => {
  const res = (format: DiskFormat): InspectionResult => ({ format, virtualSize: 1, safetyProblems: [] });

  it('accepts matching formats', () => {
    for (const f of ['raw', 'qcow2', 'vmdk', 'vhd', 'vhdx', 'vdi', 'iso'] as const) {
      assert.equal(checkDeclaredFormat(f, res(f)), null);
    }
  });

  it('declared raw but content is a rich format is a mismatch', () => {
    assert.equal(checkDeclaredFormat('raw', res('qcow2')), 'Image content is qcow2 but disk_format is raw');
    assert.equal(checkDeclaredFormat('raw', res('iso')), 'Image content is iso but disk_format is raw');
  });

  it('declared rich format but content is raw (or another format) is a mismatch', () => {
    assert.equal(checkDeclaredFormat('vmdk', res('raw')), 'Image content is raw but disk_format is vmdk');
    assert.equal(checkDeclaredFormat('iso', res('raw')), 'Image content is raw but disk_format is iso');
    assert.equal(checkDeclaredFormat('vhd', res('vhdx')), 'Image content is vhdx but disk_format is vhd');
    assert.equal(checkDeclaredFormat('qcow2', res('iso')), 'Image content is iso but disk_format is qcow2');
  });

  it('uninspectable formats (ami, ari, aki, ploop, unknown) are not checked against plain data', () => {
    for (const f of ['ami', 'ari', 'aki', 'ploop', 'something-new']) {
      assert.equal(checkDeclaredFormat(f, res('raw')), null);
    }
  });

  it('...but a recognised rich format cannot hide behind an uninspectable label', () => {
    assert.equal(checkDeclaredFormat('ami', res('qcow2')), 'Image content is qcow2 but disk_format is ami');
    assert.equal(checkDeclaredFormat('ploop', res('vmdk')), 'Image content is vmdk but disk_format is ploop');
  });

  it('null declared format has nothing to compare', () => {
    assert.equal(checkDeclaredFormat(null, res('qcow2')), null);
  });

  it('works end to end on a real image', () => {
    qemuImg('create', '-q', '-f', 'qcow2', 'declared.qcow2', '1M');
    const r = inspectFile('declared.qcow2', { kind: 'max' });
    assert.equal(checkDeclaredFormat('qcow2', r), null);
    assert.equal(checkDeclaredFormat('raw', r), 'Image content is qcow2 but disk_format is raw');
  });
});

// Golden test: src/fuse/abi.ts against the real kernel header. A C program
// generated from the header itself is compiled with gcc at test time and
// prints sizeof/offsetof/sizeof-member of every field of every struct, and the
// value of every enum member and object-like #define. We then require:
// - the layout table names exactly the header's structs and fields, in order,
//   with the same sizes, offsets, widths and C types (signedness included);
// - every generated encoder puts each field at the C offset (bytes built by
//   test/support/bytes.ts), and the decoder gives the value back;
// - every constant in the header is exported with the same value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as abi from '../../src/fuse/abi.ts';
import { LAYOUT, STRUCTS, Opcode, NotifyCode } from '../../src/fuse/abi.ts';
import { u16, u32, i32, u64 } from '../support/bytes.ts';

const HEADER = '/usr/include/linux/fuse.h';

interface CField { name: string; ctype: string; array: string | null }
interface CStruct { name: string; fields: CField[] }
interface CConst { name: string; enumName: string | null }

function parseHeader(text: string): { structs: CStruct[]; consts: CConst[] } {
  const src = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/[^\n]*/g, '');
  const structs: CStruct[] = [];
  for (const m of src.matchAll(/struct\s+(\w+)\s*\{([^}]*)\};/g)) {
    const fields: CField[] = [];
    for (const decl of m[2]!.split(';')) {
      const t = decl.trim().replace(/\s+/g, ' ');
      if (!t) continue;
      const f = /^(.*?)\s*\b(\w+)\s*(\[(\d*)\])?$/.exec(t);
      assert.ok(f, `cannot parse field "${t}" of ${m[1]}`);
      fields.push({ name: f[2]!, ctype: f[1]!.trim(), array: f[3] === undefined ? null : f[4]! });
    }
    structs.push({ name: m[1]!, fields });
  }
  const consts: CConst[] = [];
  for (const m of src.matchAll(/enum\s+(\w+)\s*\{([^}]*)\};/g)) {
    for (const item of m[2]!.split(',')) {
      const n = /^\s*(\w+)/.exec(item);
      if (n) consts.push({ name: n[1]!, enumName: m[1]! });
    }
  }
  for (const m of src.matchAll(/^#define\s+(\w+)(?!\()[ \t]+\S/gm)) {
    consts.push({ name: m[1]!, enumName: null });
  }
  return { structs, consts };
}

// Object-like macros that are not values userspace can evaluate or that
// describe macros rather than numbers.
const SKIP_CONSTS = new Set(['_LINUX_FUSE_H', 'FUSE_REMOVEMAPPING_MAX_ENTRY']);

function compileAndRun(structs: CStruct[], consts: CConst[]): string {
  const gcc = spawnSync('gcc', ['--version']);
  assert.equal(gcc.status, 0, 'gcc is required for the ABI golden test (apt-get install gcc)');
  const lines: string[] = [
    '#include <stdio.h>', '#include <stddef.h>', '#include <linux/ioctl.h>', '#include <linux/fuse.h>',
    '#define MEMBER_SIZE(t, f) sizeof(((t *)0)->f)', 'int main(void) {',
  ];
  for (const s of structs) {
    lines.push(`  printf("S ${s.name} %zu\\n", sizeof(struct ${s.name}));`);
    for (const f of s.fields) {
      const width = f.array === '' ? '(size_t)0' : `MEMBER_SIZE(struct ${s.name}, ${f.name})`;
      lines.push(`  printf("F ${s.name} ${f.name} %zu %zu\\n", offsetof(struct ${s.name}, ${f.name}), ${width});`);
    }
  }
  for (const c of consts) {
    if (SKIP_CONSTS.has(c.name)) continue;
    lines.push(`  printf("C ${c.name} %llu\\n", (unsigned long long)(${c.name}));`);
  }
  lines.push('  return 0;', '}');
  const dir = mkdtempSync(join(tmpdir(), 'abi-layout-'));
  try {
    writeFileSync(join(dir, 'layout.c'), lines.join('\n') + '\n');
    execFileSync('gcc', ['-std=gnu11', '-Wall', '-Werror', '-o', join(dir, 'layout'), join(dir, 'layout.c')], { stdio: 'pipe' });
    return execFileSync(join(dir, 'layout'), { encoding: 'utf8' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

assert.ok(existsSync(HEADER), `${HEADER} is missing: install linux-libc-dev`);
const headerText = readFileSync(HEADER, 'utf8');
const parsed = parseHeader(headerText);
const output = compileAndRun(parsed.structs, parsed.consts);

// What C says: struct -> { size, fields: name -> [offset, width] }, const -> value.
const cSize = new Map<string, number>();
const cField = new Map<string, Map<string, [number, number]>>();
const cConst = new Map<string, bigint>();
for (const line of output.trim().split('\n')) {
  const p = line.split(' ');
  if (p[0] === 'S') { cSize.set(p[1]!, Number(p[2])); cField.set(p[1]!, new Map()); }
  else if (p[0] === 'F') cField.get(p[1]!)!.set(p[2]!, [Number(p[3]), Number(p[4])]);
  else if (p[0] === 'C') cConst.set(p[1]!, BigInt(p[2]!));
}

const keyOfC = new Map(Object.entries(LAYOUT).map(([k, s]) => [s.c, k]));

test('the header really is 7.38 (the version abi.ts describes)', () => {
  assert.equal(cConst.get('FUSE_KERNEL_VERSION'), 7n);
  assert.equal(cConst.get('FUSE_KERNEL_MINOR_VERSION'), 38n);
  assert.equal(abi.FUSE_KERNEL_MINOR_VERSION, 38);
});

test('the layout table names exactly the structs of the header', () => {
  const fromHeader = parsed.structs.map((s) => s.name).sort();
  const fromTable = Object.values(LAYOUT).map((s) => s.c).sort();
  assert.deepEqual(fromTable, fromHeader);
  assert.ok(fromHeader.length >= 60, `only ${fromHeader.length} structs parsed from the header`);
});

test('struct keys follow the naming rule (fuse_ prefix dropped, CamelCase)', () => {
  for (const [key, s] of Object.entries(LAYOUT)) {
    const expected = s.c.replace(/^fuse_/, '').split('_').map((p) => p[0]!.toUpperCase() + p.slice(1)).join('');
    assert.equal(key, expected);
  }
});

test('every struct size, field name, order, offset, width and C type matches the header', () => {
  const mapType = (f: CField): string[] => {
    if (f.array === '') return [`${f.ctype}[]`.replace('char[]', 'char[]')];
    const base = f.ctype.startsWith('struct ')
      ? [keyOfC.get(f.ctype.slice(7)) ?? `?${f.ctype}`]
      : ({ uint16_t: ['u16'], uint32_t: ['u32'], int32_t: ['i32'], uint64_t: ['u64', 'b64'], int64_t: ['i64'], uint8_t: ['u8'] } as Record<string, string[]>)[f.ctype] ?? [`?${f.ctype}`];
    return f.array === null ? base : base.map((b) => `${b}[${f.array}]`);
  };
  let fields = 0;
  for (const s of parsed.structs) {
    const key = keyOfC.get(s.name)!;
    const layout = LAYOUT[key as keyof typeof LAYOUT];
    assert.equal(layout.size, cSize.get(s.name), `sizeof(struct ${s.name})`);
    assert.deepEqual(layout.fields.map((f) => f.name), s.fields.map((f) => f.name), `fields of ${s.name}`);
    const c = cField.get(s.name)!;
    for (const [i, f] of layout.fields.entries()) {
      const [off, width] = c.get(f.name)!;
      assert.equal(f.offset, off, `offsetof(struct ${s.name}, ${f.name})`);
      assert.equal(f.width, width, `sizeof(struct ${s.name}.${f.name})`);
      assert.ok(mapType(s.fields[i]!).includes(f.type), `type of ${s.name}.${f.name}: table says ${f.type}, header says ${s.fields[i]!.ctype}`);
      fields++;
    }
  }
  assert.ok(fields >= 260, `checked only ${fields} fields`);
});

test('every X_SIZE export equals sizeof(struct fuse_x)', () => {
  for (const s of Object.values(LAYOUT)) {
    const name = `${s.c.replace(/^fuse_/, '').toUpperCase()}_SIZE`;
    assert.equal((abi as Record<string, unknown>)[name], cSize.get(s.c), name);
  }
});

// ---- encoders and decoders against the C offsets ---------------------------

type Json = number | bigint | Json[] | { [k: string]: Json };

/** A value with a distinct, byte-asymmetric number in every field. */
function sample(key: string, seed: { n: number }): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const [name, , type] of (STRUCTS as Record<string, { fields: readonly (readonly [string, number, string])[] }>)[key]!.fields) {
    const k = ++seed.n;
    const arr = /^u32\[(\d+)\]$/.exec(type);
    if (type === 'char[]') continue;
    else if (arr) out[name] = Array.from({ length: Number(arr[1]) }, (_, i) => 0x51000000 + k * 0x100 + i);
    else if (type === 'u16') out[name] = 0xa100 + k;
    else if (type === 'u32') out[name] = 0x81020300 + k;
    else if (type === 'i32') out[name] = -0x1000 - k;
    else if (type === 'u64') out[name] = 0x1f_0203_0405_0000 + k; // above 2^32, below 2^53
    else if (type === 'i64') out[name] = -(0x10_0000_0000 + k);
    else if (type === 'b64') out[name] = 0xfedc_ba98_7654_3210n + BigInt(k); // needs all 64 bits
    else out[name] = sample(type, seed);
  }
  return out;
}

/** Expected bytes of each field, placed at the offsets C reported. */
function expectBytes(cname: string, value: Record<string, Json>, buf: Buffer, base: number): void {
  const key = keyOfC.get(cname)!;
  for (const [name, , type] of (STRUCTS as Record<string, { fields: readonly (readonly [string, number, string])[] }>)[key]!.fields) {
    if (type === 'char[]') continue;
    const [off] = cField.get(cname)!.get(name)!;
    const v = value[name]!;
    let b: Buffer;
    if (Array.isArray(v)) b = Buffer.concat((v as number[]).map((x) => u32(x)));
    else if (type === 'u16') b = u16(v as number);
    else if (type === 'u32') b = u32(v as number);
    else if (type === 'i32') b = i32(v as number);
    else if (type === 'u64' || type === 'i64' || type === 'b64') b = u64(v as number | bigint);
    else { expectBytes(LAYOUT[type as keyof typeof LAYOUT].c, v as Record<string, Json>, buf, base + off); continue; }
    assert.deepEqual(buf.subarray(base + off, base + off + b.length), b, `${cname}.${name} at ${off}`);
  }
}

test('every encoder writes each field at its C offset and every decoder reads it back', () => {
  for (const [key, s] of Object.entries(LAYOUT)) {
    const encode = (abi as Record<string, unknown>)[`encode${key}`] as (v: unknown, b: Buffer, o?: number) => number;
    const decode = (abi as Record<string, unknown>)[`decode${key}`] as (b: Buffer, o?: number) => unknown;
    assert.equal(typeof encode, 'function', `encode${key}`);
    assert.equal(typeof decode, 'function', `decode${key}`);
    const value = sample(key, { n: 0 });
    const buf = Buffer.alloc(s.size + 16, 0xee);
    assert.equal(encode(value, buf, 8), 8 + s.size, `encode${key} returns the next offset`);
    expectBytes(s.c, value, buf, 8);
    // Nothing written outside the struct.
    assert.ok(buf.subarray(0, 8).every((x) => x === 0xee) && buf.subarray(8 + s.size).every((x) => x === 0xee), `${key} stays in bounds`);
    assert.deepEqual(decode(buf, 8), value, `decode${key}`);
    // Short buffers are refused with a ProtocolError, not read past.
    assert.throws(() => decode(buf.subarray(0, 8 + s.size - 1), 8), { name: 'ProtocolError' });
    assert.throws(() => encode(value, buf.subarray(0, 8 + s.size - 1), 8), RangeError);
  }
});

test('reserved fields are optional when encoding and written as zero', () => {
  const buf = Buffer.alloc(abi.INIT_OUT_SIZE, 0xee);
  abi.encodeInitOut({ major: 7, minor: 38, max_readahead: 1, flags: 2, max_background: 3, congestion_threshold: 4,
    max_write: 5, time_gran: 6, max_pages: 7, map_alignment: 8, flags2: 9 }, buf);
  assert.ok(buf.subarray(36).every((x) => x === 0), 'unused[7] zeroed');
});

// ---- constants -------------------------------------------------------------

function exported(c: CConst): unknown {
  if (c.enumName === 'fuse_opcode') return (Opcode as unknown as Record<string, number>)[c.name.replace(/^FUSE_/, '')];
  if (c.enumName === 'fuse_notify_code' && c.name !== 'FUSE_NOTIFY_CODE_MAX') {
    return (NotifyCode as unknown as Record<string, number>)[c.name.replace(/^FUSE_NOTIFY_/, '')];
  }
  return (abi as Record<string, unknown>)[c.name];
}

test('every enum member and #define of the header is exported with its value', () => {
  let n = 0;
  for (const c of parsed.consts) {
    if (SKIP_CONSTS.has(c.name)) continue;
    const want = cConst.get(c.name);
    assert.notEqual(want, undefined, `C printed no value for ${c.name}`);
    const got = exported(c);
    assert.ok(typeof got === 'number' || typeof got === 'bigint', `${c.name} is not exported by abi.ts`);
    // `1 << 31` is a negative int in C and sign-extends when printed as
    // unsigned long long; as a flag bit it means bit 31 of a u32.
    const value = want! >= (1n << 64n) - (1n << 31n) ? BigInt.asUintN(32, want!) : want;
    assert.equal(BigInt(got), value, c.name);
    n++;
  }
  assert.ok(n > 150, `checked only ${n} constants`);
});

test('the INIT flags cover the 64-bit space as bigints and split/join as the kernel reads them', () => {
  assert.equal(typeof abi.FUSE_MAP_ALIGNMENT, 'bigint');
  assert.equal(abi.FUSE_MAP_ALIGNMENT, 1n << 26n);
  assert.deepEqual(abi.splitInitFlags(abi.FUSE_INIT_EXT | abi.FUSE_HAS_INODE_DAX | abi.FUSE_ASYNC_READ), { flags: 0x40000001, flags2: 2 });
  assert.equal(abi.joinInitFlags(0x40000001, 2), abi.FUSE_INIT_EXT | abi.FUSE_HAS_INODE_DAX | abi.FUSE_ASYNC_READ);
  // Without FUSE_INIT_EXT the kernel ignores flags2, and so do we.
  assert.equal(abi.joinInitFlags(1, 2), abi.FUSE_ASYNC_READ);
  assert.equal(abi.describeInitFlags(abi.FUSE_ASYNC_READ | abi.FUSE_SECURITY_CTX | (1n << 40n)), 'ASYNC_READ|SECURITY_CTX|bit40');
});

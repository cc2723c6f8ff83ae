// Fuzz: random and mutated request bytes into FuseServer.handle() under a
// time cap. Every opcode, truncated headers, lengths that lie, names without
// NUL, huge counts. Requirements: handle() never throws; a request with a
// broken header gets no reply; every reply is a well-formed fuse_out_header
// echoing the request's unique with error 0 or -errno (1..511); and the server
// still serves ordinary requests afterwards. The seed is printed on failure
// (FUZZ_SEED=<n> reproduces a run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as abi from '../../src/fuse/abi.ts';
import { Opcode, LAYOUT } from '../../src/fuse/abi.ts';
import { FuseServer } from '../../src/fuse/server.ts';
import { ProtocolError } from '../../src/fuse/errors.ts';
import { MemoryFs } from '../../src/fs/memory/memory-fs.ts';
import type { FileSystem } from '../../src/fuse/filesystem.ts';
import { bytes, u32, u64, cstr, str, zeros, request } from '../support/bytes.ts';

const TIME_CAP_MS = Number(process.env.FUZZ_MS ?? 2500);
const SEED = Number(process.env.FUZZ_SEED ?? (Date.now() % 0x7fffffff));

/** mulberry32: a small seeded PRNG (32-bit state), good enough for fuzzing. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALL_OPCODES = Object.values(Opcode).filter((v): v is number => typeof v === 'number');

class Gen {
  constructor(readonly rnd: () => number) {}
  int(n: number): number { return Math.floor(this.rnd() * n); }
  pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)]!; }
  chance(p: number): boolean { return this.rnd() < p; }
  bytes(n: number): Buffer { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = this.int(256); return b; }
  u32(): number {
    return this.pick([0, 1, 2, 7, 255, 256, 4095, 4096, 65536, 0x7fffffff, 0x80000000, 0xffffffff, this.int(0x100000000)]);
  }
  nodeid(): number { return this.pick([0, 1, 1, 2, 3, 4, 5, 100, 2 ** 32, 2 ** 53 - 1]); }
  name(): Buffer {
    switch (this.int(8)) {
      case 0: return str('noNul');
      case 1: return cstr('');
      case 2: return cstr('a/b');
      case 3: return cstr('x'.repeat(256));
      case 4: return cstr(this.pick(['.', '..']));
      case 5: return this.bytes(this.int(20));
      default: return cstr(this.pick(['f0', 'f1', 'd0', 'new', 'user.a', 'ü-ñ']));
    }
  }
  /** Arguments shaped roughly like the opcode's, with random values. */
  args(opcode: number): Buffer {
    const structs: Partial<Record<number, number>> = {
      [Opcode.GETATTR]: 16, [Opcode.SETATTR]: 88, [Opcode.MKNOD]: 16, [Opcode.MKDIR]: 8, [Opcode.RENAME]: 8,
      [Opcode.RENAME2]: 16, [Opcode.LINK]: 8, [Opcode.OPEN]: 8, [Opcode.OPENDIR]: 8, [Opcode.READ]: 40,
      [Opcode.READDIR]: 40, [Opcode.READDIRPLUS]: 40, [Opcode.WRITE]: 40, [Opcode.RELEASE]: 24, [Opcode.RELEASEDIR]: 24,
      [Opcode.FSYNC]: 16, [Opcode.FSYNCDIR]: 16, [Opcode.FLUSH]: 24, [Opcode.SETXATTR]: 8, [Opcode.GETXATTR]: 8,
      [Opcode.LISTXATTR]: 8, [Opcode.ACCESS]: 8, [Opcode.CREATE]: 16, [Opcode.FALLOCATE]: 32, [Opcode.LSEEK]: 24,
      [Opcode.COPY_FILE_RANGE]: 56, [Opcode.SETUPMAPPING]: 40, [Opcode.REMOVEMAPPING]: 4, [Opcode.BATCH_FORGET]: 8,
      [Opcode.FORGET]: 8, [Opcode.INIT]: 64, [Opcode.INTERRUPT]: 8, [Opcode.GETLK]: 48, [Opcode.IOCTL]: 32,
    };
    const size = structs[opcode] ?? this.int(64);
    const parts: Buffer[] = [];
    for (let i = 0; i < size; i += 4) parts.push(u32(this.u32()));
    const fixed = bytes(...parts).subarray(0, size);
    const tail: Buffer[] = [];
    const names = this.int(3);
    for (let i = 0; i < names; i++) tail.push(this.name());
    if (this.chance(0.3)) tail.push(this.bytes(this.int(300)));
    if (opcode === Opcode.REMOVEMAPPING || opcode === Opcode.BATCH_FORGET) {
      const n = this.int(4);
      for (let i = 0; i < n; i++) tail.push(u64(this.int(1 << 30)), u64(this.int(1 << 30)));
    }
    let out = bytes(fixed, ...tail);
    if (this.chance(0.2)) out = out.subarray(0, this.int(out.length + 1));
    return out;
  }
}

/** Mutations of a valid request: flips, truncation, extension, lying len/size/count. */
function mutate(g: Gen, req: Buffer): Buffer {
  const b = Buffer.from(req);
  switch (g.int(7)) {
    case 0: for (let i = g.int(4) + 1; i > 0; i--) b[g.int(b.length)] = g.int(256); return b;
    case 1: return b.subarray(0, g.int(b.length));
    case 2: return bytes(b, g.bytes(g.int(64) + 1));
    case 3: b.writeUInt32LE(g.u32(), 0); return b; // header len lies
    case 4: if (b.length >= 44) b.writeUInt32LE(g.u32(), 40); return b; // first arg word (counts, sizes)
    case 5: if (b.length >= 60) b.writeUInt32LE(g.u32(), 56); return b; // READ/WRITE size
    default: { // fix len after changing the tail, so the header is "valid" but the args lie
      const c = bytes(b.subarray(0, Math.max(40, g.int(b.length))), g.bytes(g.int(16)));
      c.writeUInt32LE(c.length, 0);
      return c;
    }
  }
}

function corpus(): Buffer[] {
  return [
    request(Opcode.LOOKUP, 10, 1, cstr('f0')),
    request(Opcode.MKDIR, 12, 1, bytes(u32(0o755), u32(0o22), cstr('d1'))),
    request(Opcode.CREATE, 14, 1, bytes(u32(0o102), u32(0o100644), u32(0o22), u32(0), cstr('c'))),
    request(Opcode.WRITE, 16, 2, bytes(u64(1), u64(0), u32(5), u32(0), u64(0), u32(0), u32(0), str('hello'))),
    request(Opcode.READ, 18, 2, bytes(u64(1), u64(0), u32(4096), u32(0), u64(0), u32(0), u32(0))),
    request(Opcode.SETXATTR, 20, 1, bytes(u32(3), u32(0), cstr('user.x'), str('val'))),
    request(Opcode.RENAME2, 22, 1, bytes(u64(1), u32(2), u32(0), cstr('f0'), cstr('f1'))),
    request(Opcode.READDIRPLUS, 24, 1, bytes(u64(1), u64(0), u32(4096), u32(0), u64(0), u32(0), u32(0))),
    request(Opcode.BATCH_FORGET, 26, 0, bytes(u32(2), u32(0), u64(2), u64(1), u64(3), u64(1))),
    request(Opcode.REMOVEMAPPING, 28, 0, bytes(u32(1), u64(0), u64(0x200000))),
    request(Opcode.SYMLINK, 30, 1, bytes(cstr('s'), cstr('/etc/passwd'))),
    request(Opcode.INIT, 32, 0, bytes(u32(7), u32(45), u32(0), u32(0x7fffffff), u32(0xffffffff), zeros(44))),
    request(Opcode.SETATTR, 34, 2, bytes(u32(0xfff), u32(0), zeros(80))),
    request(Opcode.GETXATTR, 36, 1, bytes(u32(0), u32(0), cstr('user.x'))),
  ];
}

function check(server: FuseServer, req: Buffer, seed: number, i: number): 'none' | 'ok' | 'err' {
  let out: Buffer | null;
  try {
    out = server.handle(req);
  } catch (err) {
    assert.fail(`seed ${seed} #${i}: handle() threw ${(err as Error).stack} on ${req.toString('hex')}`);
  }
  const headerOk = req.length >= 40 && req.readUInt32LE(0) === req.length;
  if (!headerOk) {
    assert.equal(out, null, `seed ${seed} #${i}: a broken header must get no reply`);
    return 'none';
  }
  if (out === null) return 'none';
  assert.ok(out.length >= 16, `seed ${seed} #${i}: reply shorter than fuse_out_header`);
  assert.equal(out.readUInt32LE(0), out.length, `seed ${seed} #${i}: out len`);
  assert.ok(out.subarray(8, 16).equals(req.subarray(8, 16)), `seed ${seed} #${i}: unique echoed`);
  const error = out.readInt32LE(4);
  assert.ok(error === 0 || (error < 0 && error > -512), `seed ${seed} #${i}: error ${error}`);
  if (error !== 0) assert.equal(out.length, 16, `seed ${seed} #${i}: error replies carry no body`);
  const opcode = req.readUInt32LE(4);
  assert.ok(![Opcode.FORGET, Opcode.BATCH_FORGET, Opcode.INTERRUPT, Opcode.NOTIFY_REPLY].includes(opcode),
    `seed ${seed} #${i}: ${abi.opcodeName(opcode)} must never be answered`);
  return error === 0 ? 'ok' : 'err';
}

function stillServes(server: FuseServer, seed: number): void {
  const init = request(Opcode.INIT, 2, 0, bytes(u32(7), u32(38), u32(0), u32(0x7fffffff), u32(0), zeros(44)));
  if (server.negotiated === null) assert.equal(server.handle(init)?.readInt32LE(4), 0, `seed ${seed}: re-INIT`);
  const name = `after-fuzz-${seed}`;
  const mk = server.handle(request(Opcode.MKDIR, 4, 1, bytes(u32(0o755), u32(0), cstr(name))));
  assert.equal(mk?.readInt32LE(4), 0, `seed ${seed}: MKDIR after fuzz`);
  const look = server.handle(request(Opcode.LOOKUP, 6, 1, cstr(name)));
  assert.equal(look?.readInt32LE(4), 0, `seed ${seed}: LOOKUP after fuzz`);
  const nodeid = Number(look!.readBigUInt64LE(16));
  const ga = server.handle(request(Opcode.GETATTR, 8, nodeid, zeros(16)));
  assert.equal(ga?.readInt32LE(4), 0, `seed ${seed}: GETATTR after fuzz`);
  assert.equal(ga!.readUInt32LE(16 + 16 + 60) & 0o170000, 0o040000, 'a directory');
}

function fuzz(server: FuseServer, seed: number, capMs: number): Record<'n' | 'none' | 'ok' | 'err', number> {
  const stats = { n: 0, none: 0, ok: 0, err: 0 };
  const g = new Gen(prng(seed));
  const base = corpus();
  const deadline = Date.now() + capMs;
  let i = 0;
  while (Date.now() < deadline) {
    for (let k = 0; k < 64; k++, i++) {
      let req: Buffer;
      const kind = g.int(10);
      if (kind < 4) {
        const opcode = g.chance(0.95) ? g.pick(ALL_OPCODES) : g.u32();
        req = request(opcode, BigInt(i) * 2n + 100n, g.nodeid(), g.args(opcode), { uid: g.pick([0, 1000]), gid: 0 });
      } else if (kind < 9) {
        req = mutate(g, g.pick(base));
      } else {
        req = g.bytes(g.int(48)); // truncated or garbage headers
      }
      stats[check(server, req, seed, i)]++;
    }
  }
  stats.n = i;
  return stats;
}

test(`random and mutated requests against MemoryFs never crash the server (seed ${SEED})`, () => {
  const fs = new MemoryFs();
  const logs: string[] = [];
  const server = new FuseServer(fs, { maxWrite: 128 * 1024, log: (_l, m) => logs.push(m) });
  assert.equal(server.handle(request(Opcode.INIT, 2, 0, bytes(u32(7), u32(38), u32(0), u32(0x7fffffff), u32(0), zeros(44))))?.readInt32LE(4), 0);
  for (const name of ['f0', 'f1']) server.handle(request(Opcode.CREATE, 4, 1, bytes(u32(0o102), u32(0o100644), u32(0), u32(0), cstr(name))));
  server.handle(request(Opcode.MKDIR, 6, 1, bytes(u32(0o755), u32(0), cstr('d0'))));
  const stats = fuzz(server, SEED, TIME_CAP_MS);
  assert.ok(stats.n > 1000, `only ${stats.n} requests in ${TIME_CAP_MS} ms`);
  // The mix must reach past the decoders: some requests succeed, some fail, some are dropped.
  console.log(`fuzz: ${JSON.stringify(stats)}`);
  assert.ok(stats.ok > stats.n / 100 && stats.err > stats.n / 10 && stats.none > stats.n / 20, `reply mix ${JSON.stringify(stats)}`);
  stillServes(server, SEED);
});

test(`a hostile backend returning junk gets EIO, never a crash (seed ${SEED})`, () => {
  const g = new Gen(prng(SEED ^ 0x5a5a5a5a));
  const junk = (): unknown => g.pick([undefined, null, -1, 2 ** 60, NaN, 'str', {}, { nodeid: 1 }, Buffer.alloc(70000), [], 1.5]);
  const ops = ['lookup', 'getattr', 'setattr', 'readlink', 'symlink', 'mknod', 'mkdir', 'link', 'open', 'create', 'read',
    'write', 'lseek', 'copyFileRange', 'opendir', 'statfs', 'getxattr', 'listxattr', 'readdir', 'readdirplus'];
  const fs: Record<string, unknown> = { init: () => g.chance(0.5) ? junk() : 0xffffffffn };
  for (const op of ops) {
    fs[op] = (...args: unknown[]) => {
      if (op.startsWith('readdir')) {
        const sink = args[4] as { add: (...a: unknown[]) => boolean };
        for (let k = g.int(5); k > 0; k--) sink.add(junk(), junk());
        if (g.chance(0.3)) throw new Error('mid-readdir failure');
        return undefined;
      }
      if (g.chance(0.2)) throw junk();
      return junk();
    };
  }
  const server = new FuseServer(fs as FileSystem, { maxWrite: 65536 });
  const init = server.handle(request(Opcode.INIT, 2, 0, bytes(u32(7), u32(38), u32(0), u32(0x7fffffff), u32(0), zeros(44))));
  assert.ok(init, 'INIT answered even when the backend init() returns junk');
  fuzz(server, SEED, Math.min(1000, TIME_CAP_MS));
});

test(`random bytes into every struct decoder: only ProtocolError escapes (seed ${SEED})`, () => {
  const g = new Gen(prng(SEED ^ 0x1234567));
  for (const key of Object.keys(LAYOUT)) {
    const decode = (abi as Record<string, unknown>)[`decode${key}`] as (b: Buffer, o?: number) => unknown;
    for (let k = 0; k < 50; k++) {
      const b = g.bytes(g.int(LAYOUT[key as abi.StructName].size * 2 + 1));
      const off = g.int(b.length + 2);
      try {
        decode(b, off);
      } catch (err) {
        assert.ok(err instanceof ProtocolError, `decode${key}: ${(err as Error).stack}`);
      }
    }
  }
  for (let k = 0; k < 200; k++) {
    const b = g.bytes(g.int(400));
    for (const parse of [abi.readDirents, abi.readDirentplus]) {
      try { parse(b); } catch (err) { assert.ok(err instanceof ProtocolError, (err as Error).stack); }
    }
  }
});

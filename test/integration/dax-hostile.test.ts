// A hostile guest against the daemon's DAX window (issue 5): hand-built
// FUSE_SETUPMAPPING / FUSE_REMOVEMAPPING requests into the real FuseServer
// with a real PassthroughFs, and a mapper that really mmaps each fd into a
// reserved window (what a frontend does), recording every call.
// - offsets past the window, wrapping ranges, unaligned offsets/lengths,
//   unknown flags, fh never handed out / of another node, writable mappings of
//   read-only opens, directories: each refused with an errno, nothing mapped;
// - good maps put the file's bytes in the window; Linux's fh = -1 works;
// - overlapping maps unmap exactly what was mapped and keep the rest;
// - a flood of REMOVEMAPPING entries is bounded and leaves nothing behind;
// - no host fd leaks (/proc/self/fd before and after), no mapping leaks;
// - without a window: ENOSYS.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { constants as fsConstants, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { PassthroughFs } from '../../src/fs/passthrough/passthrough-fs.ts';
import { DaxWindow, type ShmemMapper } from '../../src/fuse/dax.ts';
import { Window } from '../../src/sys/window.ts';
import { TestClient, entryOf } from '../unit/fuse/helpers.ts';
import { bytes, cstr, u32, u64, zeros } from '../support/bytes.ts';

const E = constants.errno;
const MiB = 1024 * 1024;
const WINDOW = 16 * MiB;
const LOOKUP = 1, OPEN = 14, RELEASE = 18, OPENDIR = 27, SETUPMAPPING = 48, REMOVEMAPPING = 49;
const W = 1, R = 2;

const share = mkdtempSync(join(tmpdir(), 'dax-hostile-'));
const data = randomBytes(3 * MiB + 100);
writeFileSync(join(share, 'f.bin'), data);
writeFileSync(join(share, 'g.bin'), randomBytes(MiB));
const live: { close(): void }[] = [];
after(() => {
  for (const x of live) x.close();
  rmSync(share, { recursive: true, force: true });
});

/** A frontend stand-in: maps for real into a reserved window, records calls, checks exact unmaps (as QEMU does). */
class RealMapper implements ShmemMapper {
  readonly windowSize = WINDOW;
  readonly ready = true;
  readonly win = Window.reserve(WINDOW);
  readonly calls: string[] = [];
  /** moffset -> len of what is mapped. */
  readonly mapped = new Map<number, number>();
  map(fd: number, fdOffset: number, shmOffset: number, len: number, writable: boolean): void {
    for (const [o, l] of this.mapped) if (o < shmOffset + len && o + l > shmOffset) throw new Error(`overlapping map 0x${shmOffset.toString(16)} over 0x${o.toString(16)}`);
    this.win.map(shmOffset, len, fd, BigInt(fdOffset), writable);
    this.mapped.set(shmOffset, len);
    this.calls.push(`map ${shmOffset} ${len} ${fdOffset} ${writable ? 'rw' : 'ro'}`);
  }
  unmap(shmOffset: number, len: number): void {
    if (this.mapped.get(shmOffset) !== len) throw new Error(`unmap 0x${shmOffset.toString(16)}+0x${len.toString(16)} is not a mapping`);
    this.win.unmap(shmOffset, len);
    this.mapped.delete(shmOffset);
    this.calls.push(`unmap ${shmOffset} ${len}`);
  }
  bytesAt(off: number, len: number): Buffer {
    return Buffer.from(this.win.mapping.view(off, len)).subarray(0, len);
  }
  close(): void {
    this.win.close();
  }
}

function setup(fh: number | bigint, foffset: number, len: number, flags: number, moffset: number | bigint): Buffer {
  return bytes(u64(fh), u64(foffset), u64(len), u64(flags), u64(moffset));
}
function remove(ranges: [number, number][]): Buffer {
  return bytes(u32(ranges.length), ...ranges.map(([m, l]) => bytes(u64(m), u64(l))));
}
const fdCount = () => readdirSync('/proc/self/fd').length;

function start(withWindow = true) {
  const fs = new PassthroughFs(share, { readonly: false, cache: 'auto', xattr: false, writeback: false });
  live.push({ close: () => fs.destroy() });
  const mapper = new RealMapper();
  live.push(mapper);
  const dax = new DaxWindow(mapper, 12);
  const c = new TestClient(fs, withWindow ? { dax, mapAlignmentLog2: 12 } : {});
  c.init();
  const f = entryOf(c.ok(LOOKUP, 1, cstr('f.bin'))).nodeid;
  const g = entryOf(c.ok(LOOKUP, 1, cstr('g.bin'))).nodeid;
  const open = (node: number, flags: number) => Number(c.ok(OPEN, node, bytes(u32(flags), u32(0))).readBigUInt64LE(0));
  return { c, fs, mapper, dax, f, g, open };
}

test('good maps: the file bytes appear in the window; Linux fh -1 (by inode) and a real fh both work; no fd leak', () => {
  const { c, mapper, dax, f, open } = start();
  const fds0 = fdCount();
  const fh = open(f, fsConstants.O_RDONLY);
  c.ok(SETUPMAPPING, f, setup(fh, 0, 2 * MiB, R, 0));
  assert.ok(mapper.bytesAt(0, 4096).equals(data.subarray(0, 4096)));
  // What Linux sends: fh = u64 -1, a 2 MiB range past EOF for the file's tail.
  c.ok(SETUPMAPPING, f, setup(0xffffffffffffffffn, 2 * MiB, 2 * MiB, R | W, 4 * MiB));
  assert.ok(mapper.bytesAt(4 * MiB, MiB + 100).equals(data.subarray(2 * MiB)));
  assert.deepEqual(dax.mappings().map((m) => [m.moffset, m.len, m.writable]), [[0, 2 * MiB, false], [4 * MiB, 2 * MiB, true]]);
  c.ok(REMOVEMAPPING, 0, remove([[0, 2 * MiB], [4 * MiB, 2 * MiB]]));
  assert.equal(mapper.mapped.size, 0, 'everything unmapped');
  c.ok(RELEASE, f, bytes(u64(fh), u32(0), u32(0), u64(0)));
  assert.equal(fdCount(), fds0, 'the by-inode open was closed, the handle released: no fd left');
});

test('hostile SETUPMAPPINGs are each refused with an errno and map nothing', () => {
  const { c, mapper, dax, f, g, open } = start();
  const ro = open(f, fsConstants.O_RDONLY);
  const rw = open(f, fsConstants.O_RDWR);
  const dirFh = Number(c.ok(OPENDIR, 1, bytes(u32(0), u32(0))).readBigUInt64LE(0));
  const fds = fdCount();
  const cases: [string, number, Buffer, number][] = [
    ['moffset past the window', f, setup(rw, 0, 2 * MiB, R, WINDOW), E.EINVAL],
    ['range running past the window end', f, setup(rw, 0, 4 * MiB, R, WINDOW - 2 * MiB), E.EINVAL],
    ['moffset + len wrapping 2^64', f, setup(rw, 0, 2 * MiB, R, 0xffffffffffe00000n), E.EINVAL],
    ['length 0', f, setup(rw, 0, 0, R, 0), E.EINVAL],
    ['unaligned length', f, setup(rw, 0, 2 * MiB + 1, R, 0), E.EINVAL],
    ['unaligned window offset', f, setup(rw, 0, 4096, R, 100), E.EINVAL],
    ['unaligned file offset', f, setup(rw, 512, 4096, R, 0), E.EINVAL],
    ['unknown flag bits', f, setup(rw, 0, 4096, R | 0x100, 0), E.EINVAL],
    ['fh never handed out', f, setup(123456, 0, 4096, R, 0), E.EBADF],
    ['fh of another node', g, setup(rw, 0, 4096, R, 0), E.EBADF],
    ['a directory handle', 1, setup(dirFh, 0, 4096, R, 0), E.EINVAL],
    ['writable mapping of a read-only open', f, setup(ro, 0, 4096, R | W, 0), E.EACCES],
    ['nodeid never handed out', 999999, setup(0xffffffffffffffffn, 0, 4096, R, 0), E.ENOENT],
  ];
  for (const [what, node, args, errno] of cases) {
    const r = c.call(SETUPMAPPING, node, args);
    assert.equal(r?.error, -errno, `${what}: expected -${errno}, got ${r?.error}`);
  }
  assert.equal(mapper.calls.length, 0, `nothing was sent to the frontend: ${mapper.calls.join(', ')}`);
  assert.equal(dax.mappings().length, 0);
  assert.equal(dax.stats.refused, cases.length);
  assert.equal(fdCount(), fds, 'no fd leaked by the refusals');
});

test('overlaps unmap exactly what was mapped and map the rest again; a REMOVEMAPPING flood is bounded and leaks nothing', () => {
  const { c, mapper, dax, f, g, open } = start();
  const fds0 = fdCount();
  const fh = open(f, fsConstants.O_RDWR);
  c.ok(SETUPMAPPING, f, setup(fh, 0, 3 * MiB, R, 0));
  // Overwrite the middle MiB with g.bin: the f mapping is split around it.
  c.ok(SETUPMAPPING, g, setup(0xffffffffffffffffn, 0, MiB, R, MiB));
  assert.deepEqual(dax.mappings().map((m) => [m.moffset, m.len, m.nodeid, m.foffset]), [[0, MiB, f, 0], [MiB, MiB, g, 0], [2 * MiB, MiB, f, 2 * MiB]]);
  assert.ok(mapper.bytesAt(2 * MiB, 4096).equals(data.subarray(2 * MiB, 2 * MiB + 4096)), 'the kept tail still shows f at its own offset');
  // Flood: the largest request the server takes, all entries over nothing mapped but inside the window.
  const flood: [number, number][] = Array.from({ length: 60_000 }, (_, i) => [((i % 3000) + 1000) * 4096, 4096]);
  const calls = mapper.calls.length;
  c.ok(REMOVEMAPPING, 0, remove(flood));
  assert.equal(mapper.calls.length, calls, 'nothing mapped there: nothing sent');
  // Bad entries refuse the whole request before anything is unmapped.
  for (const [what, ranges] of [['past the window', [[0, MiB], [WINDOW, 4096]]], ['unaligned', [[0, MiB], [4096, 100]]], ['empty', [[0, 0]]]] as const) {
    const r = c.call(REMOVEMAPPING, 0, remove(ranges as unknown as [number, number][]));
    assert.equal(r?.error, -E.EINVAL, what);
  }
  // A count that lies about the entries.
  assert.equal(c.call(REMOVEMAPPING, 0, bytes(u32(5), zeros(16)))?.error, -E.EINVAL);
  assert.equal(dax.mappings().length, 3, 'refused removals removed nothing');
  c.ok(REMOVEMAPPING, 0, remove([[0, 4 * MiB]]));
  assert.equal(mapper.mapped.size, 0, 'no mapping left in the frontend');
  assert.equal(dax.mappings().length, 0);
  c.ok(RELEASE, f, bytes(u64(fh), u32(0), u32(0), u64(0)));
  assert.equal(fdCount(), fds0, 'no fd leaked');
});

test('without a window SETUPMAPPING and REMOVEMAPPING answer ENOSYS', () => {
  const { c, f, mapper } = start(false);
  assert.equal(c.call(SETUPMAPPING, f, setup(0xffffffffffffffffn, 0, 2 * MiB, R, 0))?.error, -E.ENOSYS);
  assert.equal(c.call(REMOVEMAPPING, 0, remove([[0, 2 * MiB]]))?.error, -E.ENOSYS);
  assert.equal(mapper.calls.length, 0);
});

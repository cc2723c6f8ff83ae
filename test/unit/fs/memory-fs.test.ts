// Unit tests for the memory backend: every FileSystem op, its success path and
// its errno cases, driven directly through the FileSystem interface.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { constants as fsc, mkdtempSync, mkdirSync, writeFileSync, symlinkSync, rmSync, chmodSync, utimesSync, linkSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { constants as osc, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MemoryFs,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  RENAME_WHITEOUT,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
  XATTR_CREATE,
  XATTR_REPLACE,
} from '../../../src/fs/memory/memory-fs.ts';
import { ChunkStore, CHUNK_SIZE } from '../../../src/fs/memory/chunk-store.ts';
import { FUSE_ATOMIC_O_TRUNC, FUSE_CACHE_SYMLINKS, FUSE_HANDLE_KILLPRIV_V2 } from '../../../src/fuse/abi.ts';
import type { DirEntry, Entry, RequestContext } from '../../../src/fuse/filesystem.ts';

const E = osc.errno;
const ROOT: RequestContext = { uid: 0, gid: 0, pid: 1 };
const ALICE: RequestContext = { uid: 1000, gid: 1000, pid: 2 };
const BOB: RequestContext = { uid: 1001, gid: 1001, pid: 3 };
const B = (s: string) => Buffer.from(s);
const { O_RDONLY, O_WRONLY, O_RDWR, O_APPEND, O_TRUNC, O_EXCL, O_CREAT } = fsc;
const FATTR_MODE = 1 << 0;
const FATTR_UID = 1 << 1;
const FATTR_GID = 1 << 2;
const FATTR_SIZE = 1 << 3;
const FATTR_ATIME = 1 << 4;
const FATTR_MTIME = 1 << 5;
const FATTR_FH = 1 << 6;
const FATTR_ATIME_NOW = 1 << 7;
const FATTR_MTIME_NOW = 1 << 8;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;

function errno(fn: () => unknown, expected: number, what?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.equal((err as { errno?: number }).errno, expected, what);
    return true;
  });
}

/** create + return nodeid and fh. */
function mkfile(fs: MemoryFs, parent: number, name: string, data = '', ctx = ROOT, mode = 0o644) {
  const { entry, open } = fs.create(ctx, parent, B(name), mode, O_RDWR | O_CREAT, 0);
  if (data) fs.write(ctx, entry.nodeid, open.fh, 0, B(data), 0);
  return { ino: entry.nodeid, fh: open.fh };
}

function readAll(fs: MemoryFs, ino: number, ctx = ROOT): Buffer {
  const { fh } = fs.open(ctx, ino, O_RDONLY);
  const size = fs.getattr(ctx, ino, undefined).attr.size;
  const buf = Buffer.alloc(size);
  assert.equal(fs.read(ctx, ino, fh, 0, size, buf), size);
  fs.release(ctx, ino, fh, 0);
  return buf;
}

function list(fs: MemoryFs, dir: number, ctx = ROOT): string[] {
  const { fh } = fs.opendir(ctx, dir, O_RDONLY);
  const names: string[] = [];
  fs.readdir(ctx, dir, fh, 0, { add: (e) => (names.push(e.name.toString()), true) });
  fs.releasedir(ctx, dir, fh);
  return names;
}

function lk(fs: MemoryFs, parent: number, name: string, ctx = ROOT): Entry {
  return fs.lookup(ctx, parent, B(name));
}

describe('MemoryFs basics', () => {
  test('root, lookup, getattr, seed', () => {
    const fs = new MemoryFs({ seed: { a: 'hello', d: { dir: { b: { data: 'x', mode: 0o600 } }, mode: 0o750 }, l: { symlink: 'a' } } });
    const root = fs.getattr(ROOT, 1, undefined).attr;
    assert.equal(root.ino, 1);
    assert.equal(root.mode, fsc.S_IFDIR | 0o755);
    assert.equal(root.nlink, 3); // '.', '..' and d's '..'
    assert.equal(root.blksize, 4096);
    const a = lk(fs, 1, 'a');
    assert.equal(a.attr.size, 5);
    assert.equal(a.generation, 0);
    assert.equal(a.attr.mode, fsc.S_IFREG | 0o644);
    assert.equal(readAll(fs, a.nodeid).toString(), 'hello');
    const d = lk(fs, 1, 'd');
    assert.equal(d.attr.mode, fsc.S_IFDIR | 0o750);
    assert.equal(lk(fs, d.nodeid, 'b').attr.mode, fsc.S_IFREG | 0o600);
    assert.equal(fs.readlink(ROOT, lk(fs, 1, 'l').nodeid).toString(), 'a');
    errno(() => lk(fs, 1, 'nope'), E.ENOENT);
    errno(() => lk(fs, a.nodeid, 'x'), E.ENOTDIR);
    errno(() => fs.getattr(ROOT, 999, undefined), E.ENOENT);
    errno(() => fs.readlink(ROOT, a.nodeid), E.EINVAL);
    // nanosecond times from the wall clock
    const now = Date.now() / 1000;
    assert.ok(Math.abs(a.attr.mtime - now) < 5);
    assert.ok(a.attr.mtimensec >= 0 && a.attr.mtimensec < 1e9);
  });

  test('timeouts and open flags follow the cache mode', () => {
    for (const [cache, t, keep] of [['never', 0, 0], ['auto', 1, 0], ['always', 86400, 2]] as const) {
      const fs = new MemoryFs({ cache, seed: { f: 'x' } });
      const e = lk(fs, 1, 'f');
      assert.equal(e.entry_valid, t);
      assert.equal(e.attr_valid, t);
      assert.equal(fs.getattr(ROOT, 1, undefined).attr_valid, t);
      assert.equal(fs.open(ROOT, e.nodeid, O_RDONLY).open_flags, keep);
    }
    assert.throws(() => new MemoryFs({ cache: 'bogus' as 'never' }), /unknown cache mode/);
  });

  test('names: 255 bytes ok, 256 ENAMETOOLONG, non-UTF-8 bytes round-trip', () => {
    const fs = new MemoryFs();
    const long = 'n'.repeat(255);
    mkfile(fs, 1, long);
    assert.equal(lk(fs, 1, long).attr.size, 0);
    errno(() => fs.create(ROOT, 1, B('n'.repeat(256)), 0o644, O_RDWR, 0), E.ENAMETOOLONG);
    errno(() => fs.mkdir(ROOT, 1, B('m'.repeat(256)), 0o755, 0), E.ENAMETOOLONG);
    errno(() => fs.lookup(ROOT, 1, B('n'.repeat(256))), E.ENAMETOOLONG);
    const raw = Buffer.from([0xff, 0xfe, 0x80, 0x41]);
    const raw2 = Buffer.from([0xff, 0xfe, 0x80, 0x42]);
    fs.mkdir(ROOT, 1, raw, 0o755, 0);
    fs.mkdir(ROOT, 1, raw2, 0o755, 0);
    const { fh } = fs.opendir(ROOT, 1, O_RDONLY);
    const names: Buffer[] = [];
    fs.readdir(ROOT, 1, fh, 0, { add: (e) => (names.push(Buffer.from(e.name)), true) });
    assert.ok(names.some((n) => n.equals(raw)));
    assert.ok(names.some((n) => n.equals(raw2)));
    assert.notEqual(fs.lookup(ROOT, 1, raw).nodeid, fs.lookup(ROOT, 1, raw2).nodeid);
    const utf = B('héllo wörld ✓');
    mkfile(fs, 1, utf.toString());
    assert.ok(fs.lookup(ROOT, 1, utf).nodeid > 1);
  });
});

describe('init, fsyncdir', () => {
  test('init asks for what the backend handles, only among what the client offers', () => {
    const all = (1n << 64n) - 1n;
    const info = (capable: bigint) => ({ major: 7, minor: 38, capable, max_readahead: 131072, want: 1n });
    const auto = new MemoryFs().init(info(all));
    assert.equal(auto & FUSE_HANDLE_KILLPRIV_V2, FUSE_HANDLE_KILLPRIV_V2);
    assert.equal(auto & FUSE_ATOMIC_O_TRUNC, FUSE_ATOMIC_O_TRUNC);
    assert.equal(auto & FUSE_CACHE_SYMLINKS, 0n, 'symlink caching only with cache=always');
    assert.equal(auto & 1n, 1n, "the server's want is kept");
    assert.equal(new MemoryFs({ cache: 'always' }).init(info(all)) & FUSE_CACHE_SYMLINKS, FUSE_CACHE_SYMLINKS);
    assert.equal(new MemoryFs().init(info(1n)), 1n, 'nothing the client did not offer');
  });

  test('fsyncdir needs an open directory handle', () => {
    const fs = new MemoryFs();
    const { fh } = fs.opendir(ROOT, 1, O_RDONLY);
    fs.fsyncdir(ROOT, 1, fh, true);
    errno(() => fs.fsyncdir(ROOT, 1, fh + 100, false), E.EBADF);
    const f = mkfile(fs, 1, 'f');
    errno(() => fs.fsyncdir(ROOT, 1, f.fh, false), E.EBADF);
    errno(() => fs.fsync(ROOT, 1, fh, false), E.EBADF);
  });
});

describe('lookup counts and forget', () => {
  test('an unlinked file lives while looked up or open, then is freed', () => {
    const fs = new MemoryFs();
    const base = fs.nodeCount;
    const f = mkfile(fs, 1, 'f', 'data'); // create: lookup 1, open 1
    assert.equal(fs.lookupCount(f.ino), 1);
    lk(fs, 1, 'f');
    assert.equal(fs.lookupCount(f.ino), 2);
    fs.unlink(ROOT, 1, B('f'));
    assert.equal(fs.getattr(ROOT, f.ino, undefined).attr.nlink, 0);
    // still readable through the handle
    const buf = Buffer.alloc(4);
    assert.equal(fs.read(ROOT, f.ino, f.fh, 0, 4, buf), 4);
    assert.equal(buf.toString(), 'data');
    fs.forget(f.ino, 2);
    assert.equal(fs.nodeCount, base + 1, 'open handle keeps it');
    const used = fs.bytesUsed;
    assert.ok(used > 0);
    fs.release(ROOT, f.ino, f.fh, 0);
    assert.equal(fs.nodeCount, base, 'freed after the last release');
    assert.equal(fs.bytesUsed, 0, 'its chunks are given back');
    errno(() => fs.getattr(ROOT, f.ino, undefined), E.ENOENT);
    fs.forget(f.ino, 1); // forget of an unknown node is harmless
  });

  test('a linked node survives forget; root is never dropped', () => {
    const fs = new MemoryFs({ seed: { a: 'x' } });
    const a = lk(fs, 1, 'a');
    fs.forget(a.nodeid, 5);
    assert.equal(lk(fs, 1, 'a').nodeid, a.nodeid);
    fs.forget(1, 100);
    assert.equal(fs.getattr(ROOT, 1, undefined).attr.ino, 1);
  });

  test('readdirplus counts only the entries the sink took', () => {
    const fs = new MemoryFs({ seed: { a: '1', b: '2', c: '3' } });
    const { fh } = fs.opendir(ROOT, 1, O_RDONLY);
    const seen: Array<[DirEntry, Entry]> = [];
    fs.readdirplus(ROOT, 1, fh, 0, { add: (d, e) => (seen.length < 4 ? (seen.push([d, e]), true) : false) });
    assert.deepEqual(seen.map(([d]) => d.name.toString()), ['.', '..', 'a', 'b']);
    assert.equal(seen[0]![1].nodeid, 0, "'.' carries no node reference");
    assert.equal(seen[2]![1].attr.size, 1);
    const ids = ['a', 'b', 'c'].map((n) => lk(fs, 1, n).nodeid);
    assert.deepEqual(ids.map((i) => fs.lookupCount(i)), [2, 2, 1]);
    // resume after 'b'
    const rest: string[] = [];
    fs.readdirplus(ROOT, 1, fh, seen[3]![0].off, { add: (d) => (rest.push(d.name.toString()), true) });
    assert.deepEqual(rest, ['c']);
  });

  test('destroy drops handles and lookups, freeing unlinked nodes', () => {
    const fs = new MemoryFs();
    const f = mkfile(fs, 1, 'f', 'x');
    fs.unlink(ROOT, 1, B('f'));
    fs.destroy();
    assert.equal(fs.handleCount, 0);
    errno(() => fs.getattr(ROOT, f.ino, undefined), E.ENOENT);
  });
});

describe('directories', () => {
  test('mkdir, nlink = 2 + subdirs, rmdir ENOTEMPTY/ENOTDIR, EEXIST', () => {
    const fs = new MemoryFs();
    const d = fs.mkdir(ROOT, 1, B('d'), 0o777, 0o022);
    assert.equal(d.attr.mode, fsc.S_IFDIR | 0o755);
    assert.equal(d.attr.nlink, 2);
    fs.mkdir(ROOT, d.nodeid, B('s1'), 0o755, 0);
    fs.mkdir(ROOT, d.nodeid, B('s2'), 0o755, 0);
    mkfile(fs, d.nodeid, 'f');
    assert.equal(fs.getattr(ROOT, d.nodeid, undefined).attr.nlink, 4);
    assert.equal(fs.getattr(ROOT, 1, undefined).attr.nlink, 3);
    errno(() => fs.mkdir(ROOT, 1, B('d'), 0o755, 0), E.EEXIST);
    errno(() => fs.rmdir(ROOT, 1, B('d')), E.ENOTEMPTY);
    errno(() => fs.rmdir(ROOT, d.nodeid, B('f')), E.ENOTDIR);
    errno(() => fs.unlink(ROOT, d.nodeid, B('s1')), E.EISDIR);
    errno(() => fs.rmdir(ROOT, d.nodeid, B('zz')), E.ENOENT);
    fs.rmdir(ROOT, d.nodeid, B('s1'));
    assert.equal(fs.getattr(ROOT, d.nodeid, undefined).attr.nlink, 3);
    fs.rmdir(ROOT, d.nodeid, B('s2'));
    fs.unlink(ROOT, d.nodeid, B('f'));
    fs.rmdir(ROOT, 1, B('d'));
    assert.equal(fs.getattr(ROOT, 1, undefined).attr.nlink, 2);
    // the removed directory (still looked up) is dead: no lookups, no creates, no listing
    assert.equal(fs.getattr(ROOT, d.nodeid, undefined).attr.nlink, 0);
    errno(() => fs.lookup(ROOT, d.nodeid, B('x')), E.ENOENT);
    errno(() => fs.mkdir(ROOT, d.nodeid, B('x'), 0o755, 0), E.ENOENT);
    errno(() => fs.create(ROOT, d.nodeid, B('x'), 0o644, O_RDWR, 0), E.ENOENT);
  });

  test("readdir lists '.', '..' and entries with resumable cookies", () => {
    const fs = new MemoryFs();
    const d = fs.mkdir(ROOT, 1, B('d'), 0o755, 0);
    for (const n of ['a', 'b', 'c']) mkfile(fs, d.nodeid, n);
    const { fh } = fs.opendir(ROOT, d.nodeid, O_RDONLY);
    const all: DirEntry[] = [];
    fs.readdir(ROOT, d.nodeid, fh, 0, { add: (e) => (all.push(e), true) });
    assert.deepEqual(all.map((e) => e.name.toString()), ['.', '..', 'a', 'b', 'c']);
    assert.equal(all[0]!.ino, d.nodeid);
    assert.equal(all[1]!.ino, 1);
    assert.equal(all[2]!.type, fsc.S_IFREG >> 12);
    assert.equal(all[0]!.type, fsc.S_IFDIR >> 12);
    // one entry per call, resuming from each cookie
    const one: string[] = [];
    let off = 0;
    for (;;) {
      let got: DirEntry | undefined;
      fs.readdir(ROOT, d.nodeid, fh, off, { add: (e) => (got ? false : ((got = e), true)) });
      if (!got) break;
      one.push(got.name.toString());
      off = got.off;
    }
    assert.deepEqual(one, ['.', '..', 'a', 'b', 'c']);
    errno(() => fs.readdir(ROOT, d.nodeid, 9999, 0, { add: () => true }), E.EBADF);
    fs.releasedir(ROOT, d.nodeid, fh);
    errno(() => fs.releasedir(ROOT, d.nodeid, fh), E.EBADF);
    errno(() => fs.opendir(ROOT, lk(fs, d.nodeid, 'a').nodeid, O_RDONLY), E.ENOTDIR);
  });

  test('entries added or removed mid-listing never make others skip or repeat', () => {
    const fs = new MemoryFs();
    const d = fs.mkdir(ROOT, 1, B('d'), 0o755, 0).nodeid;
    const N = 3000;
    for (let i = 0; i < N; i++) fs.mknod(ROOT, d, B(`f${i}`), fsc.S_IFREG | 0o644, 0, 0);
    const { fh } = fs.opendir(ROOT, d, O_RDONLY);
    const seen = new Map<string, number>();
    let off = 0;
    let round = 0;
    for (;;) {
      let n = 0;
      let last = off;
      fs.readdir(ROOT, d, fh, off, {
        add: (e) => {
          if (n === 100) return false;
          n++;
          last = e.off;
          seen.set(e.name.toString(), (seen.get(e.name.toString()) ?? 0) + 1);
          return true;
        },
      });
      if (n === 0) break;
      off = last;
      // churn: delete entries already listed and not yet listed, add new ones
      // (for a bounded number of rounds, or the listing would never end)
      round++;
      if (round > 20) continue;
      for (let k = 0; k < 20; k++) {
        const victim = `f${(round * 37 + k * 101) % N}`;
        try {
          fs.unlink(ROOT, d, B(victim));
        } catch {}
        fs.mknod(ROOT, d, B(`new${round}_${k}`), fsc.S_IFREG | 0o644, 0, 0);
      }
    }
    for (const [name, count] of seen) assert.equal(count, 1, `${name} listed ${count} times`);
    // every original entry still present at the end was listed
    for (let i = 0; i < N; i++) {
      const name = `f${i}`;
      let present = true;
      try {
        fs.lookup(ROOT, d, B(name));
      } catch {
        present = false;
      }
      if (present) assert.ok(seen.has(name), `${name} was skipped`);
    }
  });

  test('setgid directory passes its group and setgid bit on', () => {
    const fs = new MemoryFs({ rootMode: 0o777 });
    const d = fs.mkdir(ROOT, 1, B('g'), 0o2777, 0);
    fs.setattr(ROOT, d.nodeid, { valid: FATTR_GID, gid: 50 });
    fs.setattr(ROOT, d.nodeid, { valid: FATTR_MODE, mode: 0o2777 });
    const sub = fs.mkdir(ALICE, d.nodeid, B('sub'), 0o755, 0);
    assert.equal(sub.attr.gid, 50);
    assert.equal(sub.attr.uid, 1000);
    assert.equal(sub.attr.mode & 0o2000, 0o2000);
    const f = fs.create(ALICE, d.nodeid, B('f'), 0o2755, O_RDWR, 0).entry;
    assert.equal(f.attr.gid, 50);
    assert.equal(f.attr.mode & 0o2000, 0, 'setgid dropped: alice is not in group 50');
    const plain = fs.mkdir(ALICE, 1, B('plain'), 0o755, 0);
    assert.equal(plain.attr.gid, 1000);
  });
});

describe('files', () => {
  test('create, O_EXCL, O_TRUNC, O_APPEND, write/read, EBADF', () => {
    const fs = new MemoryFs();
    const f = mkfile(fs, 1, 'f', 'hello world');
    errno(() => fs.create(ROOT, 1, B('f'), 0o644, O_RDWR | O_CREAT | O_EXCL, 0), E.EEXIST);
    // O_CREAT without O_EXCL on an existing name opens it
    const again = fs.create(ROOT, 1, B('f'), 0o644, O_RDWR | O_CREAT, 0);
    assert.equal(again.entry.nodeid, f.ino);
    const ap = fs.open(ROOT, f.ino, O_WRONLY | O_APPEND);
    assert.equal(fs.write(ROOT, f.ino, ap.fh, 0, B('!'), 0), 1, 'offset 0 but appended');
    assert.equal(readAll(fs, f.ino).toString(), 'hello world!');
    const ro = fs.open(ROOT, f.ino, O_RDONLY);
    errno(() => fs.write(ROOT, f.ino, ro.fh, 0, B('x'), 0), E.EBADF);
    errno(() => fs.write(ROOT, f.ino, 12345, 0, B('x'), 0), E.EBADF);
    errno(() => fs.read(ROOT, f.ino, 12345, 0, 1, Buffer.alloc(1)), E.EBADF);
    const tr = fs.open(ROOT, f.ino, O_WRONLY | O_TRUNC);
    assert.equal(fs.getattr(ROOT, f.ino, undefined).attr.size, 0);
    fs.release(ROOT, f.ino, tr.fh, 0);
    // short read at EOF, read past EOF gives 0
    fs.write(ROOT, f.ino, f.fh, 0, B('abc'), 0);
    const buf = Buffer.alloc(10, 0x55);
    assert.equal(fs.read(ROOT, f.ino, f.fh, 1, 10, buf), 2);
    assert.equal(buf.subarray(0, 2).toString(), 'bc');
    assert.equal(fs.read(ROOT, f.ino, f.fh, 100, 10, buf), 0);
    // O_RDONLY|O_TRUNC truncates on Linux too
    const rt = fs.open(ROOT, f.ino, O_RDONLY | O_TRUNC);
    assert.equal(fs.getattr(ROOT, f.ino, undefined).attr.size, 0);
    fs.release(ROOT, f.ino, rt.fh, 0);
    errno(() => fs.open(BOB, f.ino, O_RDONLY | O_TRUNC), E.EACCES);
    fs.flush(ROOT, f.ino, f.fh, 0n);
    fs.fsync(ROOT, f.ino, f.fh, false);
    fs.release(ROOT, f.ino, f.fh, 0);
    errno(() => fs.release(ROOT, f.ino, f.fh, 0), E.EBADF);
    // open of a directory for writing, of a symlink
    errno(() => fs.open(ROOT, 1, O_WRONLY), E.EISDIR);
    const l = fs.symlink(ROOT, 1, B('l'), B('f'));
    errno(() => fs.open(ROOT, l.nodeid, O_RDONLY), E.ELOOP);
  });

  test('sparse files: holes read as zeros, blocks count only written pages', () => {
    const fs = new MemoryFs();
    const f = mkfile(fs, 1, 'sparse');
    const GiB = 1 << 30;
    fs.write(ROOT, f.ino, f.fh, GiB - 3, B('tail!!'), 0);
    const a = fs.getattr(ROOT, f.ino, undefined).attr;
    assert.equal(a.size, GiB + 3);
    // the write straddles two 4 KiB pages (in two 64 KiB chunks): 2 pages = 16 blocks
    assert.equal(a.blocks, 2 * 8);
    assert.ok(fs.bytesUsed <= 2 * 65536);
    const buf = Buffer.alloc(200000, 0xaa);
    assert.equal(fs.read(ROOT, f.ino, f.fh, 12345, 200000, buf), 200000);
    assert.ok(buf.every((b) => b === 0));
    const tail = Buffer.alloc(10);
    assert.equal(fs.read(ROOT, f.ino, f.fh, GiB - 4, 10, tail), 7);
    assert.deepEqual(tail.subarray(0, 7), Buffer.concat([Buffer.alloc(1), B('tail!!')]));
    // a write spanning many chunks copies correctly
    const big = Buffer.alloc(300000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    fs.write(ROOT, f.ino, f.fh, 1000, big, 0);
    const back = Buffer.alloc(300000);
    fs.read(ROOT, f.ino, f.fh, 1000, 300000, back);
    assert.ok(back.equals(big));
  });

  test('shrinking then growing exposes zeros, never old data', () => {
    const fs = new MemoryFs();
    const f = mkfile(fs, 1, 'f');
    fs.write(ROOT, f.ino, f.fh, 0, Buffer.alloc(100000, 0x41), 0);
    fs.setattr(ROOT, f.ino, { valid: FATTR_SIZE, size: 10 });
    fs.setattr(ROOT, f.ino, { valid: FATTR_SIZE, size: 100000 });
    const buf = readAll(fs, f.ino);
    assert.ok(buf.subarray(0, 10).every((b) => b === 0x41));
    assert.ok(buf.subarray(10).every((b) => b === 0));
    assert.equal(fs.getattr(ROOT, f.ino, undefined).attr.blocks, 8, 'only the first 4 KiB page remains');
    // write past EOF leaves a zero gap
    fs.setattr(ROOT, f.ino, { valid: FATTR_SIZE, size: 5 });
    fs.write(ROOT, f.ino, f.fh, 20, B('z'), 0);
    assert.deepEqual(readAll(fs, f.ino), Buffer.concat([Buffer.alloc(5, 0x41), Buffer.alloc(15), B('z')]));
  });

  test('fallocate modes and lseek SEEK_DATA/SEEK_HOLE', () => {
    const fs = new MemoryFs();
    const f = mkfile(fs, 1, 'f');
    const C = 65536;
    fs.fallocate(ROOT, f.ino, f.fh, C, C, 0);
    let a = fs.getattr(ROOT, f.ino, undefined).attr;
    assert.equal(a.size, 2 * C);
    assert.equal(a.blocks, 128);
    fs.fallocate(ROOT, f.ino, f.fh, 4 * C, C, FALLOC_FL_KEEP_SIZE);
    a = fs.getattr(ROOT, f.ino, undefined).attr;
    assert.equal(a.size, 2 * C, 'KEEP_SIZE keeps the size');
    assert.equal(a.blocks, 256);
    // allocated but unwritten space is a hole to SEEK_DATA, as on ext4
    errno(() => fs.lseek(ROOT, f.ino, f.fh, 0, SEEK_DATA), E.ENXIO);
    fs.write(ROOT, f.ino, f.fh, C + 4096, B('x'), 0);
    assert.equal(fs.getattr(ROOT, f.ino, undefined).attr.blocks, 256, 'writing into allocated space takes no more');
    assert.equal(fs.lseek(ROOT, f.ino, f.fh, 0, SEEK_DATA), C + 4096);
    assert.equal(fs.lseek(ROOT, f.ino, f.fh, 0, SEEK_HOLE), 0);
    assert.equal(fs.lseek(ROOT, f.ino, f.fh, C + 4096, SEEK_HOLE), C + 8192);
    assert.equal(fs.lseek(ROOT, f.ino, f.fh, C + 4100, SEEK_DATA), C + 4100);
    fs.write(ROOT, f.ino, f.fh, C + 8192, Buffer.alloc(C - 8192, 1), 0);
    assert.equal(fs.lseek(ROOT, f.ino, f.fh, C + 5000, SEEK_HOLE), 2 * C, 'EOF is a hole');
    errno(() => fs.lseek(ROOT, f.ino, f.fh, 2 * C, SEEK_DATA), E.ENXIO);
    errno(() => fs.lseek(ROOT, f.ino, f.fh, 3 * C, SEEK_HOLE), E.ENXIO);
    // punch: data becomes zeros and whole chunks are freed
    fs.write(ROOT, f.ino, f.fh, 0, Buffer.alloc(2 * C, 0x61), 0);
    fs.fallocate(ROOT, f.ino, f.fh, 100, 2 * C, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
    const buf = readAll(fs, f.ino);
    assert.equal(buf.length, 2 * C);
    assert.ok(buf.subarray(0, 100).every((b) => b === 0x61));
    assert.ok(buf.subarray(100).every((b) => b === 0));
    assert.equal(fs.lseek(ROOT, f.ino, f.fh, 0, SEEK_HOLE), 4096, 'page 0 was only partly punched; the rest is hole');
    assert.equal(fs.getattr(ROOT, f.ino, undefined).attr.blocks, 8 + 128, 'page 0 plus the KEEP_SIZE chunk past EOF');
    // zero range extends and allocates
    fs.fallocate(ROOT, f.ino, f.fh, 10, 3 * C, FALLOC_FL_ZERO_RANGE);
    a = fs.getattr(ROOT, f.ino, undefined).attr;
    assert.equal(a.size, 3 * C + 10);
    assert.ok(readAll(fs, f.ino).subarray(10).every((b) => b === 0));
    // zeroed whole pages are unwritten (holes to SEEK_DATA), the partial edge page is data
    assert.equal(fs.lseek(ROOT, f.ino, f.fh, 0, SEEK_HOLE), 4096);
    assert.equal(fs.lseek(ROOT, f.ino, f.fh, 4096, SEEK_DATA), 3 * C);
    errno(() => fs.fallocate(ROOT, f.ino, f.fh, 0, C, FALLOC_FL_PUNCH_HOLE), E.EOPNOTSUPP);
    errno(() => fs.fallocate(ROOT, f.ino, f.fh, 0, C, 0x08), E.EOPNOTSUPP);
    errno(() => fs.fallocate(ROOT, f.ino, f.fh, 0, 0, 0), E.EINVAL);
    errno(() => fs.fallocate(ROOT, f.ino, f.fh, 0, C, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE), E.EINVAL);
    const ro = fs.open(ROOT, f.ino, O_RDONLY);
    errno(() => fs.fallocate(ROOT, f.ino, ro.fh, 0, C, 0), E.EBADF);
    errno(() => fs.lseek(ROOT, f.ino, f.fh, 0, 9), E.EINVAL);
  });

  test('statfs and ENOSPC when the capacity is used up', () => {
    const fs = new MemoryFs({ capacityBytes: 4 * 65536, maxInodes: 10 });
    let st = fs.statfs(ROOT, 1);
    assert.equal(st.bsize, 4096);
    assert.equal(st.namelen, 255);
    assert.equal(st.blocks, 64);
    assert.equal(st.bfree, 64);
    assert.equal(st.files, 10);
    assert.equal(st.ffree, 9);
    const f = mkfile(fs, 1, 'f');
    fs.write(ROOT, f.ino, f.fh, 0, Buffer.alloc(3 * 65536), 0);
    st = fs.statfs(ROOT, 1);
    assert.equal(st.bfree, 16);
    // a write that only partly fits is short; one that cannot start fails
    assert.equal(fs.write(ROOT, f.ino, f.fh, 3 * 65536, Buffer.alloc(2 * 65536), 0), 65536);
    errno(() => fs.write(ROOT, f.ino, f.fh, 10 * 65536, Buffer.alloc(1), 0), E.ENOSPC);
    errno(() => fs.fallocate(ROOT, f.ino, f.fh, 20 * 65536, 65536, 0), E.ENOSPC);
    for (let i = 0; i < 8; i++) fs.mkdir(ROOT, 1, B(`d${i}`), 0o755, 0);
    errno(() => fs.mkdir(ROOT, 1, B('last'), 0o755, 0), E.ENOSPC);
  });

  test('copyFileRange copies data and holes, refuses overlap', () => {
    const fs = new MemoryFs();
    const a = mkfile(fs, 1, 'a');
    const b = mkfile(fs, 1, 'b');
    const src = Buffer.alloc(200000);
    for (let i = 0; i < src.length; i++) src[i] = (i * 13) & 0xff;
    fs.write(ROOT, a.ino, a.fh, 0, src, 0);
    fs.write(ROOT, a.ino, a.fh, 1 << 22, B('far'), 0); // leaves a hole between
    const size = (1 << 22) + 3;
    assert.equal(fs.copyFileRange(ROOT, a.ino, a.fh, 0, b.ino, b.fh, 5, 1 << 30, 0), size);
    const out = readAll(fs, b.ino);
    assert.equal(out.length, size + 5);
    assert.ok(out.subarray(5, 5 + src.length).equals(src));
    assert.equal(out.subarray(5 + (1 << 22)).toString(), 'far');
    assert.ok(fs.getattr(ROOT, b.ino, undefined).attr.blocks < 10 * 128, 'holes stayed holes');
    assert.equal(fs.copyFileRange(ROOT, a.ino, a.fh, size, b.ino, b.fh, 0, 10, 0), 0, 'at EOF copies nothing');
    errno(() => fs.copyFileRange(ROOT, a.ino, a.fh, 0, a.ino, a.fh, 10, 100, 0), E.EINVAL);
    errno(() => fs.copyFileRange(ROOT, a.ino, a.fh, 0, b.ino, b.fh, 0, 10, 1), E.EINVAL);
    const ro = fs.open(ROOT, b.ino, O_RDONLY);
    errno(() => fs.copyFileRange(ROOT, a.ino, a.fh, 0, b.ino, ro.fh, 0, 10, 0), E.EBADF);
  });
});

describe('names: link, unlink, symlink, mknod', () => {
  test('link counts, EPERM on directories, EEXIST', () => {
    const fs = new MemoryFs({ seed: { f: 'x' } });
    const f = lk(fs, 1, 'f');
    const l = fs.link(ROOT, f.nodeid, 1, B('g'));
    assert.equal(l.nodeid, f.nodeid);
    assert.equal(l.attr.nlink, 2);
    errno(() => fs.link(ROOT, f.nodeid, 1, B('g')), E.EEXIST);
    errno(() => fs.link(ROOT, 1, 1, B('h')), E.EPERM);
    fs.unlink(ROOT, 1, B('f'));
    assert.equal(fs.getattr(ROOT, f.nodeid, undefined).attr.nlink, 1);
    assert.equal(readAll(fs, lk(fs, 1, 'g').nodeid).toString(), 'x');
    errno(() => fs.unlink(ROOT, 1, B('f')), E.ENOENT);
    fs.unlink(ROOT, 1, B('g'));
    errno(() => fs.link(ROOT, f.nodeid, 1, B('back')), E.ENOENT);
  });

  test('symlink and mknod types', () => {
    const fs = new MemoryFs();
    const s = fs.symlink(ROOT, 1, B('s'), B('some/where'));
    assert.equal(s.attr.mode, fsc.S_IFLNK | 0o777);
    assert.equal(s.attr.size, 10);
    errno(() => fs.symlink(ROOT, 1, B('s'), B('x')), E.EEXIST);
    errno(() => fs.symlink(ROOT, 1, B('e'), B('')), E.ENOENT);
    errno(() => fs.symlink(ROOT, 1, B('e'), Buffer.alloc(4096, 0x61)), E.ENAMETOOLONG);
    const fifo = fs.mknod(ROOT, 1, B('p'), fsc.S_IFIFO | 0o644, 0, 0o022);
    assert.equal(fifo.attr.mode, fsc.S_IFIFO | 0o644);
    errno(() => fs.open(ROOT, fifo.nodeid, O_RDONLY), E.ENXIO);
    const sock = fs.mknod(ROOT, 1, B('sock'), fsc.S_IFSOCK | 0o600, 0, 0);
    assert.equal(sock.attr.mode & fsc.S_IFMT, fsc.S_IFSOCK);
    const chr = fs.mknod(ROOT, 1, B('null'), fsc.S_IFCHR | 0o666, 0x0103, 0);
    assert.equal(chr.attr.rdev, 0x0103);
    errno(() => fs.open(ROOT, chr.nodeid, O_RDWR), E.ENXIO);
    const reg = fs.mknod(ROOT, 1, B('reg'), 0o600, 0, 0);
    assert.equal(reg.attr.mode, fsc.S_IFREG | 0o600);
    errno(() => fs.mknod(ALICE, 1, B('blk'), fsc.S_IFBLK | 0o600, 1, 0), E.EPERM);
    errno(() => fs.mknod(ROOT, 1, B('dir'), fsc.S_IFDIR | 0o755, 0, 0), E.EPERM);
    errno(() => fs.mknod(ROOT, 1, B('bad'), 0o170000 | 0o644, 0, 0), E.EINVAL);
    errno(() => fs.mknod(ROOT, 1, B('p'), fsc.S_IFIFO | 0o644, 0, 0), E.EEXIST);
  });
});

describe('rename', () => {
  function setup() {
    const fs = new MemoryFs({
      seed: { f: 'F', g: 'G', d: { dir: { x: 'X' } }, e: { dir: {} }, n: { dir: { deep: { dir: {} } } } },
    });
    return fs;
  }

  test('plain rename replaces a file; the replaced node loses its link', () => {
    const fs = setup();
    const f = lk(fs, 1, 'f').nodeid;
    const g = lk(fs, 1, 'g').nodeid;
    fs.rename(ROOT, 1, B('f'), 1, B('g'), 0);
    assert.equal(lk(fs, 1, 'g').nodeid, f);
    errno(() => lk(fs, 1, 'f'), E.ENOENT);
    assert.equal(fs.getattr(ROOT, g, undefined).attr.nlink, 0);
  });

  test('NOREPLACE and EXCHANGE', () => {
    const fs = setup();
    errno(() => fs.rename(ROOT, 1, B('f'), 1, B('g'), RENAME_NOREPLACE), E.EEXIST);
    fs.rename(ROOT, 1, B('f'), 1, B('h'), RENAME_NOREPLACE);
    errno(() => fs.rename(ROOT, 1, B('h'), 1, B('nothere'), RENAME_EXCHANGE), E.ENOENT);
    const d = lk(fs, 1, 'd').nodeid;
    const h = lk(fs, 1, 'h').nodeid;
    // exchange a directory with a file across parents: nlinks and '..' follow
    const e = lk(fs, 1, 'e').nodeid;
    fs.rename(ROOT, 1, B('h'), e, B('dummy'), 0);
    fs.rename(ROOT, 1, B('d'), e, B('dummy'), RENAME_EXCHANGE);
    assert.equal(lk(fs, 1, 'd').nodeid, h);
    assert.equal(lk(fs, e, 'dummy').nodeid, d);
    assert.equal(fs.getattr(ROOT, e, undefined).attr.nlink, 3);
    assert.equal(fs.getattr(ROOT, 1, undefined).attr.nlink, 4); // e, n plus . and ..
    const { fh } = fs.opendir(ROOT, d, O_RDONLY);
    const ents: DirEntry[] = [];
    fs.readdir(ROOT, d, fh, 0, { add: (x) => (ents.push(x), true) });
    assert.equal(ents[1]!.ino, e, "'..' is the new parent");
    errno(() => fs.rename(ROOT, 1, B('d'), 1, B('g'), RENAME_EXCHANGE | RENAME_NOREPLACE), E.EINVAL);
    errno(() => fs.rename(ROOT, 1, B('d'), 1, B('g'), RENAME_WHITEOUT | RENAME_EXCHANGE), E.EINVAL);
    errno(() => fs.rename(ROOT, 1, B('d'), 1, B('g'), 0x100), E.EINVAL);
  });

  test('POSIX type rules, non-empty target, own subtree, same inode', () => {
    const fs = setup();
    const n = lk(fs, 1, 'n').nodeid;
    const deep = lk(fs, n, 'deep').nodeid;
    errno(() => fs.rename(ROOT, 1, B('e'), 1, B('f'), 0), E.ENOTDIR);
    errno(() => fs.rename(ROOT, 1, B('f'), 1, B('e'), 0), E.EISDIR);
    errno(() => fs.rename(ROOT, 1, B('e'), 1, B('d'), 0), E.ENOTEMPTY);
    errno(() => fs.rename(ROOT, 1, B('n'), deep, B('x'), 0), E.EINVAL);
    errno(() => fs.rename(ROOT, 1, B('n'), n, B('x'), 0), E.EINVAL);
    errno(() => fs.rename(ROOT, n, B('deep'), 1, B('n'), 0), E.ENOTEMPTY, 'target is an ancestor of the source');
    errno(() => fs.rename(ROOT, 1, B('zz'), 1, B('f'), 0), E.ENOENT);
    // an empty directory may be replaced by a directory
    fs.rename(ROOT, 1, B('d'), 1, B('e'), 0);
    assert.deepEqual(list(fs, lk(fs, 1, 'e').nodeid), ['.', '..', 'x']);
    assert.equal(fs.getattr(ROOT, 1, undefined).attr.nlink, 4);
    // two names of one inode: nothing happens
    const f = lk(fs, 1, 'f').nodeid;
    fs.link(ROOT, f, 1, B('f2'));
    fs.rename(ROOT, 1, B('f'), 1, B('f2'), 0);
    assert.equal(lk(fs, 1, 'f').nodeid, f);
    assert.equal(lk(fs, 1, 'f2').nodeid, f);
    fs.rename(ROOT, 1, B('f'), 1, B('f'), 0);
    assert.equal(fs.getattr(ROOT, f, undefined).attr.nlink, 2);
    // moving a directory down a level adjusts both parents' nlink
    fs.rename(ROOT, 1, B('e'), n, B('e2'), 0);
    assert.equal(fs.getattr(ROOT, n, undefined).attr.nlink, 4);
    assert.equal(fs.getattr(ROOT, 1, undefined).attr.nlink, 3);
  });

  test('sticky directory: only owners may remove or rename others\' files', () => {
    const fs = new MemoryFs({ rootMode: 0o1777 });
    mkfile(fs, 1, 'alices', '', ALICE);
    errno(() => fs.unlink(BOB, 1, B('alices')), E.EPERM);
    errno(() => fs.rename(BOB, 1, B('alices'), 1, B('mine'), 0), E.EPERM);
    fs.rename(ALICE, 1, B('alices'), 1, B('moved'), 0);
    fs.unlink(ROOT, 1, B('moved'));
  });
});

describe('setattr and permissions', () => {
  test('chmod/chown/truncate/utimens, ctime moves', () => {
    const fs = new MemoryFs({ seed: { f: 'abcdef' } });
    const f = lk(fs, 1, 'f');
    const before = f.attr;
    let a = fs.setattr(ROOT, f.nodeid, { valid: FATTR_MODE, mode: 0o4755 }).attr;
    assert.equal(a.mode, fsc.S_IFREG | 0o4755);
    assert.ok(a.ctime > before.ctime || (a.ctime === before.ctime && a.ctimensec >= before.ctimensec));
    a = fs.setattr(ROOT, f.nodeid, { valid: FATTR_UID | FATTR_GID, uid: 1000, gid: 1000 }).attr;
    assert.equal(a.uid, 1000);
    assert.equal(a.gid, 1000);
    assert.equal(a.mode & 0o4000, 0, 'chown clears setuid');
    a = fs.setattr(ROOT, f.nodeid, { valid: FATTR_SIZE, size: 3 }).attr;
    assert.equal(a.size, 3);
    a = fs.setattr(ROOT, f.nodeid, { valid: FATTR_ATIME | FATTR_MTIME, atime: 1000, atimensec: 5, mtime: 2000, mtimensec: 7 }).attr;
    assert.deepEqual([a.atime, a.atimensec, a.mtime, a.mtimensec], [1000, 5, 2000, 7]);
    a = fs.setattr(ROOT, f.nodeid, { valid: FATTR_ATIME | FATTR_MTIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW }).attr;
    assert.ok(Math.abs(a.mtime - Date.now() / 1000) < 5);
    errno(() => fs.setattr(ROOT, 1, { valid: FATTR_SIZE, size: 0 }), E.EISDIR);
    const p = fs.mknod(ROOT, 1, B('p'), fsc.S_IFIFO | 0o666, 0, 0);
    errno(() => fs.setattr(ROOT, p.nodeid, { valid: FATTR_SIZE, size: 0 }), E.EINVAL);
  });

  test('non-owners: EPERM for chmod/chown/explicit times, EACCES for truncate; write clears setuid', () => {
    const fs = new MemoryFs({ rootMode: 0o777 });
    const f = mkfile(fs, 1, 'f', 'x', ALICE, 0o6775);
    errno(() => fs.setattr(BOB, f.ino, { valid: FATTR_MODE, mode: 0o777 }), E.EPERM);
    errno(() => fs.setattr(BOB, f.ino, { valid: FATTR_UID, uid: 1001 }), E.EPERM);
    errno(() => fs.setattr(ALICE, f.ino, { valid: FATTR_UID, uid: 1001 }), E.EPERM);
    errno(() => fs.setattr(ALICE, f.ino, { valid: FATTR_GID, gid: 5 }), E.EPERM);
    errno(() => fs.setattr(BOB, f.ino, { valid: FATTR_MTIME, mtime: 1 }), E.EPERM);
    errno(() => fs.setattr(BOB, f.ino, { valid: FATTR_SIZE, size: 0 }), E.EACCES);
    errno(() => fs.setattr(BOB, f.ino, { valid: FATTR_MTIME | FATTR_MTIME_NOW }), E.EACCES);
    // group-writable: bob joins alice's group via gid
    const carol = { uid: 1002, gid: 1000, pid: 4 };
    fs.setattr(carol, f.ino, { valid: FATTR_MTIME | FATTR_MTIME_NOW }); // "now" by a writer is fine
    const h = fs.open(carol, f.ino, O_WRONLY);
    fs.write(carol, f.ino, h.fh, 0, B('y'), 0);
    assert.equal(fs.getattr(ROOT, f.ino, undefined).attr.mode & 0o7777, 0o775, 'setuid and setgid(+g+x) cleared');
    // the owner can chgrp to its own group and chmod
    fs.setattr(ALICE, f.ino, { valid: FATTR_GID, gid: 1000 });
    fs.setattr(ALICE, f.ino, { valid: FATTR_MODE, mode: 0o600 });
    errno(() => fs.open(BOB, f.ino, O_RDONLY), E.EACCES);
    // ftruncate through a writable handle skips the permission check
    fs.setattr(carol, f.ino, { valid: FATTR_SIZE | FATTR_FH, size: 0, fh: h.fh });
  });

  test('access: generic_permission with the root x-bit rule', () => {
    const fs = new MemoryFs({ rootMode: 0o755, seed: { f: { data: 'x', mode: 0o640, uid: 1000, gid: 1000 }, x: { data: '', mode: 0o744 } } });
    const f = lk(fs, 1, 'f').nodeid;
    const x = lk(fs, 1, 'x').nodeid;
    fs.access(ALICE, f, 6);
    fs.access({ uid: 5, gid: 1000, pid: 1 }, f, 4);
    errno(() => fs.access({ uid: 5, gid: 1000, pid: 1 }, f, 2), E.EACCES);
    errno(() => fs.access(BOB, f, 4), E.EACCES);
    fs.access(BOB, f, 0);
    fs.access(ROOT, f, 6);
    errno(() => fs.access(ROOT, f, 1), E.EACCES, 'root needs some x bit');
    fs.access(ROOT, x, 1);
    fs.access(ROOT, 1, 1);
    errno(() => fs.access(ALICE, 1, 2), E.EACCES);
    // search permission gates lookup and create for non-root callers
    const d = fs.mkdir(ROOT, 1, B('closed'), 0o700, 0).nodeid;
    mkfile(fs, d, 'inner');
    errno(() => fs.lookup(ALICE, d, B('inner')), E.EACCES);
    errno(() => fs.create(ALICE, 1, B('new'), 0o644, O_RDWR, 0), E.EACCES);
    errno(() => fs.mkdir(ALICE, 1, B('new'), 0o755, 0), E.EACCES);
    errno(() => fs.unlink(ALICE, 1, B('f')), E.EACCES);
    errno(() => fs.opendir(ALICE, d, O_RDONLY), E.EACCES);
  });

  test('new nodes belong to the caller', () => {
    const fs = new MemoryFs({ rootMode: 0o777 });
    const f = fs.create(ALICE, 1, B('f'), 0o666, O_RDWR, 0o022).entry;
    assert.deepEqual([f.attr.uid, f.attr.gid, f.attr.mode & 0o777], [1000, 1000, 0o644]);
    const d = fs.mkdir(BOB, 1, B('d'), 0o777, 0o027);
    assert.deepEqual([d.attr.uid, d.attr.gid, d.attr.mode & 0o777], [1001, 1001, 0o750]);
  });
});

describe('xattrs', () => {
  test('set/get/list/remove with CREATE/REPLACE and namespace rules', () => {
    const fs = new MemoryFs({ seed: { f: 'x' } });
    const f = lk(fs, 1, 'f').nodeid;
    assert.equal(fs.listxattr(ROOT, f).length, 0);
    fs.setxattr(ROOT, f, B('user.a'), B('1'), 0);
    errno(() => fs.setxattr(ROOT, f, B('user.a'), B('2'), XATTR_CREATE), E.EEXIST);
    errno(() => fs.setxattr(ROOT, f, B('user.b'), B('2'), XATTR_REPLACE), E.ENODATA);
    fs.setxattr(ROOT, f, B('user.a'), B('3'), XATTR_REPLACE);
    fs.setxattr(ROOT, f, B('trusted.t'), Buffer.alloc(65536, 1), 0);
    assert.equal(fs.getxattr(ROOT, f, B('user.a')).toString(), '3');
    assert.equal(fs.getxattr(ROOT, f, B('trusted.t')).length, 65536);
    assert.equal(fs.listxattr(ROOT, f).toString(), 'user.a\0trusted.t\0');
    assert.equal(fs.listxattr(ALICE, f).toString(), 'user.a\0', 'trusted.* hidden from non-root');
    errno(() => fs.getxattr(ROOT, f, B('user.none')), E.ENODATA);
    errno(() => fs.setxattr(ROOT, f, B('user.big'), Buffer.alloc(65537), 0), E.E2BIG);
    errno(() => fs.setxattr(ROOT, f, B('noprefix'), B('v'), 0), E.EOPNOTSUPP);
    errno(() => fs.setxattr(ROOT, f, B('system.posix_acl_access'), B('v'), 0), E.EOPNOTSUPP);
    errno(() => fs.setxattr(ROOT, f, B('user.' + 'x'.repeat(251)), B('v'), 0), E.ERANGE);
    errno(() => fs.setxattr(ROOT, f, B('user.'), B('v'), 0), E.EINVAL);
    errno(() => fs.setxattr(ALICE, f, B('user.c'), B('v'), 0), E.EACCES);
    errno(() => fs.setxattr(ALICE, f, B('trusted.c'), B('v'), 0), E.EPERM);
    const l = fs.symlink(ROOT, 1, B('l'), B('f')).nodeid;
    errno(() => fs.setxattr(ROOT, l, B('user.a'), B('v'), 0), E.EPERM);
    fs.removexattr(ROOT, f, B('user.a'));
    errno(() => fs.removexattr(ROOT, f, B('user.a')), E.ENODATA);
    assert.equal(fs.listxattr(ROOT, f).toString(), 'trusted.t\0');
  });
});

describe('readonly', () => {
  test('every mutation answers EROFS; reads work', () => {
    const fs = new MemoryFs({ readonly: true, seed: { f: 'data', d: { dir: {} } } });
    const f = lk(fs, 1, 'f').nodeid;
    const ctx = ROOT;
    const { fh } = fs.open(ctx, f, O_RDONLY);
    assert.equal(readAll(fs, f).toString(), 'data');
    const checks: Array<[string, () => unknown]> = [
      ['create', () => fs.create(ctx, 1, B('n'), 0o644, O_RDWR, 0)],
      ['mkdir', () => fs.mkdir(ctx, 1, B('n'), 0o755, 0)],
      ['mknod', () => fs.mknod(ctx, 1, B('n'), fsc.S_IFIFO | 0o644, 0, 0)],
      ['symlink', () => fs.symlink(ctx, 1, B('n'), B('f'))],
      ['link', () => fs.link(ctx, f, 1, B('n'))],
      ['unlink', () => fs.unlink(ctx, 1, B('f'))],
      ['rmdir', () => fs.rmdir(ctx, 1, B('d'))],
      ['rename', () => fs.rename(ctx, 1, B('f'), 1, B('g'), 0)],
      ['setattr', () => fs.setattr(ctx, f, { valid: FATTR_MODE, mode: 0o600 })],
      ['open-w', () => fs.open(ctx, f, O_WRONLY)],
      ['open-trunc', () => fs.open(ctx, f, O_RDONLY | O_TRUNC)],
      ['write', () => fs.write(ctx, f, fh, 0, B('x'), 0)],
      ['fallocate', () => fs.fallocate(ctx, f, fh, 0, 10, 0)],
      ['setxattr', () => fs.setxattr(ctx, f, B('user.a'), B('1'), 0)],
      ['removexattr', () => fs.removexattr(ctx, f, B('user.a'))],
      ['access-w', () => fs.access(ctx, f, 2)],
    ];
    for (const [what, fn] of checks) errno(fn, E.EROFS, what);
    fs.access(ctx, f, 4);
  });
});

describe('fromHostDirectory', () => {
  test('copies files, modes, times, xattrs, hard links, specials and raw names; refuses oversized trees', () => {
    const dir = mkdtempSync(join(tmpdir(), 'memfs-seed-'));
    try {
      chmodSync(dir, 0o750);
      mkdirSync(join(dir, 'sub'));
      writeFileSync(join(dir, 'sub', 'a.txt'), 'alpha');
      chmodSync(join(dir, 'sub', 'a.txt'), 0o640);
      utimesSync(join(dir, 'sub', 'a.txt'), new Date(1_000_000_000_123), new Date(1_500_000_000_456));
      writeFileSync(join(dir, 'top'), Buffer.alloc(70000, 7));
      linkSync(join(dir, 'top'), join(dir, 'top-link'));
      symlinkSync('sub/a.txt', join(dir, 'link'));
      const raw = Buffer.concat([Buffer.from(dir + '/'), Buffer.from([0xff, 0x41])]);
      writeFileSync(raw, 'raw');
      const fifo = spawnSync('mkfifo', [join(dir, 'fifo')]);
      assert.equal(fifo.status, 0, 'mkfifo');
      const attr = spawnSync('setfattr', ['-n', 'user.note', '-v', 'hello', join(dir, 'top')]);
      assert.equal(attr.status, 0, `setfattr (package attr): ${attr.stderr}`);

      const fs = MemoryFs.fromHostDirectory(dir);
      assert.deepEqual(list(fs, 1).sort(), ['.', '..', 'fifo', 'link', 'sub', 'top', 'top-link', Buffer.from([0xff, 0x41]).toString()].sort());
      assert.equal(fs.getattr(ROOT, 1, undefined).attr.mode, fsc.S_IFDIR | 0o750, "the root takes the host directory's mode");
      const sub = lk(fs, 1, 'sub').nodeid;
      const a = lk(fs, sub, 'a.txt');
      assert.equal(a.attr.mode, fsc.S_IFREG | 0o640);
      assert.deepEqual([a.attr.mtime, a.attr.mtimensec], [1_500_000_000, 456_000_000]);
      assert.deepEqual([a.attr.atime, a.attr.atimensec], [1_000_000_000, 123_000_000]);
      assert.equal(readAll(fs, a.nodeid).toString(), 'alpha');
      const top = lk(fs, 1, 'top');
      assert.equal(top.attr.nlink, 2);
      assert.equal(lk(fs, 1, 'top-link').nodeid, top.nodeid, 'a hard link stays one inode');
      assert.ok(readAll(fs, top.nodeid).equals(Buffer.alloc(70000, 7)));
      assert.equal(fs.getxattr(ROOT, top.nodeid, B('user.note')).toString(), 'hello');
      assert.equal(fs.readlink(ROOT, lk(fs, 1, 'link').nodeid).toString(), 'sub/a.txt');
      assert.equal(fs.lookup(ROOT, 1, Buffer.from([0xff, 0x41])).attr.size, 3, 'non-UTF-8 name kept as bytes');
      assert.equal(lk(fs, 1, 'fifo').attr.mode & fsc.S_IFMT, fsc.S_IFIFO);
      assert.throws(() => MemoryFs.fromHostDirectory(dir, {}, { maxBytes: 1000 }), /more than 1000 bytes/);
      assert.throws(() => MemoryFs.fromHostDirectory(dir, {}, { maxEntries: 3 }), /more than 3 entries/);
      assert.throws(() => MemoryFs.fromHostDirectory(join(dir, 'missing')), /ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ChunkStore', () => {
  test('reserve/take/give: capacity, zeroed reuse, wholly free slabs released', () => {
    const store = new ChunkStore(40 * CHUNK_SIZE);
    store.reserve(33);
    const got = Array.from({ length: 33 }, () => store.take());
    assert.equal(store.usedBytes, 33 * CHUNK_SIZE);
    assert.equal(new Set(got.map((b) => b.buffer)).size, 2, '33 chunks come from two 2 MiB slabs');
    assert.ok(got.every((b) => b.length === CHUNK_SIZE && b.every((x) => x === 0)));
    errno(() => store.reserve(8), E.ENOSPC);
    assert.throws(() => store.take(), /without reserve/);
    // the second slab held only chunk #32: giving it back drops the slab
    const lonely = got[32]!;
    store.give(lonely);
    assert.throws(() => store.give(lonely), /foreign/);
    assert.equal(store.usedBytes, 32 * CHUNK_SIZE);
    got[0]!.fill(9);
    store.give(got[0]!);
    store.reserve(1);
    const again = store.take();
    assert.ok(again.buffer === got[0]!.buffer, 'the free chunk of the partly used slab is reused');
    assert.ok(again.every((x) => x === 0), 'reused chunks are wiped');
    assert.equal(store.usedBytes, 32 * CHUNK_SIZE);
  });
});

describe('performance', () => {
  test('first writes of 64 MiB in 4 KiB blocks (chunk allocation) stay fast', () => {
    const fs = new MemoryFs();
    const f = mkfile(fs, 1, 'fresh');
    const blk = Buffer.alloc(4096, 0x33);
    const t0 = process.hrtime.bigint();
    for (let off = 0; off < 64 << 20; off += blk.length) fs.write(ROOT, f.ino, f.fh, off, blk, 0);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    // one Buffer per 64 KiB chunk took ~250 ms here (V8 external-memory GCs); slabs take ~30
    assert.ok(ms < 1500, `took ${ms.toFixed(0)} ms`);
  });

  test('64 MiB through 128 KiB writes and reads stays fast', () => {
    const fs = new MemoryFs();
    const f = mkfile(fs, 1, 'big');
    const blk = Buffer.alloc(128 * 1024, 0x5a);
    const out = Buffer.alloc(128 * 1024);
    const t0 = process.hrtime.bigint();
    for (let off = 0; off < 64 << 20; off += blk.length) fs.write(ROOT, f.ino, f.fh, off, blk, 0);
    for (let off = 0; off < 64 << 20; off += out.length) fs.read(ROOT, f.ino, f.fh, off, out.length, out);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    assert.ok(out.equals(blk));
    // 128 MiB moved; a per-byte loop would take seconds. Generous bound for a shared 2-core box.
    assert.ok(ms < 3000, `took ${ms.toFixed(0)} ms`);
  });
});

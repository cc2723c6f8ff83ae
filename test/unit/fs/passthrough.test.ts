// PassthroughFs called directly (no FUSE): every op against a real host
// directory, checked against what node:fs sees on the host, errno cases, hard
// link identity, lookup counts through readdirplus and forget, cache modes,
// INIT flags, readonly and writeback behaviour.
import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as nfs from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassthroughFs, type PassthroughOptions } from '../../../src/fs/passthrough/passthrough-fs.ts';
import { openFileLimits, setOpenFileSoftLimit } from '../../../src/sys/rlimit.ts';
import type { DirEntry, Entry, RequestContext } from '../../../src/fuse/filesystem.ts';
import {
  FATTR_ATIME, FATTR_ATIME_NOW, FATTR_FH, FATTR_GID, FATTR_MODE, FATTR_MTIME, FATTR_MTIME_NOW, FATTR_SIZE, FATTR_UID,
  FOPEN_CACHE_DIR, FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE, FOPEN_NOFLUSH,
  FUSE_DO_READDIRPLUS, FUSE_FLOCK_LOCKS, FUSE_POSIX_LOCKS, FUSE_WRITEBACK_CACHE, FUSE_MAX_PAGES, FUSE_HANDLE_KILLPRIV_V2,
  FUSE_PARALLEL_DIROPS, FUSE_AUTO_INVAL_DATA,
} from '../../../src/fuse/abi.ts';

const E = constants.errno;
const { O_RDONLY, O_WRONLY, O_RDWR, O_TRUNC, O_APPEND, O_CREAT, O_EXCL } = nfs.constants;
const ROOT: RequestContext = { uid: 0, gid: 0, pid: 1 };
const USER: RequestContext = { uid: 1000, gid: 1000, pid: 2 };
const B = (s: string) => Buffer.from(s);

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function setup(opts: Partial<PassthroughOptions> = {}): { dir: string; fs: PassthroughFs } {
  const dir = nfs.mkdtempSync(join(tmpdir(), 'vfs-pt-'));
  nfs.chmodSync(dir, 0o777);
  const fs = new PassthroughFs(dir, { readonly: false, cache: 'auto', xattr: true, writeback: false, ...opts });
  cleanups.push(() => {
    fs.destroy();
    nfs.rmSync(dir, { recursive: true, force: true });
  });
  return { dir, fs };
}

function errnoIs(fn: () => unknown, errno: number, what = ''): void {
  assert.throws(fn, (err: unknown) => {
    const got = (err as { errno?: number }).errno;
    assert.equal(got, errno, `${what}: errno ${got} (${String(err)}), wanted ${errno}`);
    return true;
  });
}

function listAll(fs: PassthroughFs, nodeid: number, perCall: number): DirEntry[] {
  const { fh } = fs.opendir(ROOT, nodeid, O_RDONLY);
  const out: DirEntry[] = [];
  let off = 0;
  for (;;) {
    let n = 0;
    fs.readdir(ROOT, nodeid, fh, off, { add: (e) => (n < perCall ? (out.push(e), n++, true) : false) });
    if (n === 0) break;
    off = out[out.length - 1].off;
  }
  fs.releasedir(ROOT, nodeid, fh);
  return out;
}

describe('lookup, getattr, identity, forget', () => {
  test('lookup/getattr agree with the host; errno for missing names and non-directories', () => {
    const { dir, fs } = setup();
    nfs.writeFileSync(join(dir, 'a'), 'hello');
    const e = fs.lookup(ROOT, 1, B('a'));
    const st = nfs.lstatSync(join(dir, 'a'));
    assert.ok(e.nodeid > 1);
    assert.equal(e.attr.ino, st.ino);
    assert.equal(e.attr.size, 5);
    assert.equal(e.attr.mode, st.mode);
    assert.equal(e.attr.nlink, 1);
    assert.equal(e.attr.mtime, Math.floor(st.mtimeMs / 1000));
    assert.deepEqual(fs.getattr(ROOT, e.nodeid, undefined).attr, e.attr);
    assert.equal(fs.getattr(ROOT, 1, undefined).attr.ino, nfs.statSync(dir).ino);
    errnoIs(() => fs.lookup(ROOT, 1, B('missing')), E.ENOENT, 'missing');
    errnoIs(() => fs.lookup(ROOT, e.nodeid, B('x')), E.ENOTDIR, 'parent is a file');
    errnoIs(() => fs.getattr(ROOT, 987654, undefined), E.ENOENT, 'unknown node id');
    errnoIs(() => fs.lookup(ROOT, 1, Buffer.alloc(256, 0x61)), E.ENAMETOOLONG, 'long name');
  });

  test('hard links share one node id; lookup counts add up; forget drops; ids are never reused', () => {
    const { dir, fs } = setup();
    nfs.mkdirSync(join(dir, 'sub'));
    nfs.writeFileSync(join(dir, 'a'), 'x');
    nfs.linkSync(join(dir, 'a'), join(dir, 'sub', 'b'));
    const a = fs.lookup(ROOT, 1, B('a'));
    const sub = fs.lookup(ROOT, 1, B('sub'));
    const b = fs.lookup(ROOT, sub.nodeid, B('b'));
    assert.equal(b.nodeid, a.nodeid);
    assert.equal(b.attr.nlink, 2);
    assert.equal(fs.lookupCount(a.nodeid), 2);
    fs.lookup(ROOT, 1, B('a'));
    assert.equal(fs.lookupCount(a.nodeid), 3);
    fs.forget(a.nodeid, 2);
    assert.equal(fs.getattr(ROOT, a.nodeid, undefined).attr.size, 1, 'still known with one lookup left');
    fs.forget(a.nodeid, 1);
    errnoIs(() => fs.getattr(ROOT, a.nodeid, undefined), E.ENOENT, 'forgotten');
    const again = fs.lookup(ROOT, 1, B('a'));
    assert.ok(again.nodeid > b.nodeid, 'a new id, never a reused one');
    // link() through the backend also lands on the same node id.
    const l = fs.link(ROOT, again.nodeid, sub.nodeid, B('c'));
    assert.equal(l.nodeid, again.nodeid);
    assert.equal(l.attr.nlink, 3);
    assert.equal(nfs.statSync(join(dir, 'sub', 'c')).ino, nfs.statSync(join(dir, 'a')).ino);
    fs.forget(1, 100); // the root is never dropped
    assert.ok(fs.getattr(ROOT, 1, undefined).attr.ino > 0);
  });
});

describe('files', () => {
  test('create/write/read/flush/fsync/release; open with O_TRUNC; short read at EOF; EBADF for unknown fh', () => {
    const { dir, fs } = setup();
    const { entry, open } = fs.create(ROOT, 1, B('f'), 0o100640, O_RDWR | O_CREAT | O_EXCL, 0o022);
    assert.equal(entry.attr.mode, 0o100640);
    assert.equal(fs.lookupCount(entry.nodeid), 1);
    assert.equal(fs.write(ROOT, entry.nodeid, open.fh, 0, B('hello world'), 0), 11);
    const dest = Buffer.alloc(64);
    assert.equal(fs.read(ROOT, entry.nodeid, open.fh, 6, 64, dest), 5);
    assert.equal(dest.subarray(0, 5).toString(), 'world');
    fs.flush(ROOT, entry.nodeid, open.fh, 0n);
    fs.fsync(ROOT, entry.nodeid, open.fh, false);
    fs.fsync(ROOT, entry.nodeid, open.fh, true);
    assert.equal(fs.getattr(ROOT, entry.nodeid, open.fh).attr.size, 11);
    fs.release(ROOT, entry.nodeid, open.fh, 0);
    errnoIs(() => fs.read(ROOT, entry.nodeid, open.fh, 0, 1, dest), E.EBADF, 'released fh');
    assert.equal(nfs.readFileSync(join(dir, 'f'), 'utf8'), 'hello world');
    errnoIs(() => fs.create(ROOT, 1, B('f'), 0o100600, O_RDWR | O_CREAT | O_EXCL, 0), E.EEXIST, 'O_EXCL');
    const o2 = fs.open(ROOT, entry.nodeid, O_WRONLY | O_TRUNC);
    assert.equal(nfs.statSync(join(dir, 'f')).size, 0);
    errnoIs(() => fs.read(ROOT, entry.nodeid, o2.fh, 0, 1, dest), E.EBADF, 'read on a write-only fd');
    fs.release(ROOT, entry.nodeid, o2.fh, 0);
    // O_NOFOLLOW was applied by the client's lookup; our /proc reopen must not trip on it (tar does this).
    const nf = fs.open(ROOT, entry.nodeid, O_RDONLY | nfs.constants.O_NOFOLLOW);
    fs.release(ROOT, entry.nodeid, nf.fh, 0);
    const dirE = fs.mkdir(ROOT, 1, B('d'), 0o755, 0);
    errnoIs(() => fs.open(ROOT, dirE.nodeid, O_RDONLY), E.EISDIR, 'open a directory');
    errnoIs(() => fs.opendir(ROOT, entry.nodeid, O_RDONLY), E.ENOTDIR, 'opendir a file');
    assert.equal(fs.stats.handles, 0);
  });

  test('setattr: chmod, chown, truncate with and without fh, utimens explicit/now/omit', () => {
    const { dir, fs } = setup();
    nfs.writeFileSync(join(dir, 'f'), '0123456789');
    const p = join(dir, 'f');
    const e = fs.lookup(ROOT, 1, B('f'));
    let r = fs.setattr(ROOT, e.nodeid, { valid: FATTR_MODE, mode: 0o100604 });
    assert.equal(r.attr.mode, 0o100604);
    assert.equal(nfs.statSync(p).mode & 0o7777, 0o604);
    r = fs.setattr(ROOT, e.nodeid, { valid: FATTR_UID | FATTR_GID, uid: 1234, gid: 4321 });
    assert.equal(r.attr.uid, 1234);
    assert.equal(nfs.statSync(p).gid, 4321);
    r = fs.setattr(ROOT, e.nodeid, { valid: FATTR_GID, gid: 55, uid: 999 });
    assert.equal(nfs.statSync(p).uid, 1234, 'uid without FATTR_UID is not applied');
    assert.equal(r.attr.gid, 55);
    r = fs.setattr(ROOT, e.nodeid, { valid: FATTR_SIZE, size: 4 });
    assert.equal(nfs.readFileSync(p, 'utf8'), '0123');
    const o = fs.open(ROOT, e.nodeid, O_RDWR);
    r = fs.setattr(ROOT, e.nodeid, { valid: FATTR_SIZE | FATTR_FH, size: 2, fh: o.fh });
    assert.equal(r.attr.size, 2);
    fs.setattr(ROOT, e.nodeid, { valid: FATTR_ATIME | FATTR_MTIME, atime: 1000, atimensec: 1, mtime: 2000, mtimensec: 2 });
    let s = nfs.statSync(p, { bigint: true });
    assert.equal(s.atimeNs, 1000_000_000_001n);
    assert.equal(s.mtimeNs, 2000_000_000_002n);
    fs.setattr(ROOT, e.nodeid, { valid: FATTR_MTIME | FATTR_MTIME_NOW, mtimeNow: true });
    s = nfs.statSync(p, { bigint: true });
    assert.equal(s.atimeNs, 1000_000_000_001n, 'atime omitted');
    assert.ok(s.mtimeNs > BigInt(Date.now() - 60_000) * 1_000_000n, 'mtime now');
    r = fs.setattr(ROOT, e.nodeid, { valid: FATTR_ATIME | FATTR_ATIME_NOW | FATTR_FH, atimeNow: true, fh: o.fh });
    assert.ok(r.attr.atime > 1000);
    fs.release(ROOT, e.nodeid, o.fh, 0);
    const d = fs.mkdir(ROOT, 1, B('d'), 0o755, 0);
    errnoIs(() => fs.setattr(ROOT, d.nodeid, { valid: FATTR_SIZE, size: 0 }), E.EISDIR, 'truncate a directory');
  });

  test('fallocate, lseek SEEK_DATA/SEEK_HOLE, copy_file_range through handles', () => {
    const { dir, fs } = setup();
    const { entry, open } = fs.create(ROOT, 1, B('sparse'), 0o100600, O_RDWR | O_CREAT, 0);
    fs.setattr(ROOT, entry.nodeid, { valid: FATTR_SIZE | FATTR_FH, size: 1 << 20, fh: open.fh });
    fs.write(ROOT, entry.nodeid, open.fh, 256 * 1024, Buffer.alloc(4096, 1), 0);
    assert.equal(fs.lseek(ROOT, entry.nodeid, open.fh, 0, 3 /* SEEK_DATA */), 256 * 1024);
    // With writeback caching the client may hold data we have not seen: lseek is left to it.
    const wb = setup({ writeback: true });
    nfs.writeFileSync(join(wb.dir, 'f'), 'x');
    const wf = wb.fs.lookup(ROOT, 1, B('f'));
    const wo = wb.fs.open(ROOT, wf.nodeid, O_RDWR);
    errnoIs(() => wb.fs.lseek(ROOT, wf.nodeid, wo.fh, 0, 3), E.ENOSYS, 'lseek under writeback');
    assert.equal(fs.lseek(ROOT, entry.nodeid, open.fh, 256 * 1024, 4 /* SEEK_HOLE */), 256 * 1024 + 4096);
    errnoIs(() => fs.lseek(ROOT, entry.nodeid, open.fh, 2 << 20, 3), E.ENXIO, 'SEEK_DATA past EOF');
    fs.fallocate(ROOT, entry.nodeid, open.fh, 0, 2 << 20, 0);
    assert.equal(nfs.statSync(join(dir, 'sparse')).size, 2 << 20, 'fallocate grew the file');
    fs.fallocate(ROOT, entry.nodeid, open.fh, 256 * 1024, 4096, 0x02 | 0x01 /* PUNCH_HOLE|KEEP_SIZE */);
    const c = fs.create(ROOT, 1, B('copy'), 0o100600, O_RDWR | O_CREAT, 0);
    fs.write(ROOT, entry.nodeid, open.fh, 10, B('payload'), 0);
    assert.equal(fs.copyFileRange(ROOT, entry.nodeid, open.fh, 10, c.entry.nodeid, c.open.fh, 5, 7, 0), 7);
    assert.equal(nfs.readFileSync(join(dir, 'copy')).subarray(5).toString(), 'payload');
    fs.release(ROOT, entry.nodeid, open.fh, 0);
    fs.release(ROOT, c.entry.nodeid, c.open.fh, 0);
  });

  test('an open, unlinked file stays usable even after its O_PATH fd was evicted', () => {
    const { dir, fs } = setup({ maxOpenPathFds: 16 });
    assert.equal(fs.usesFileHandles, true, 'ext4/tmpfs under tmpdir give file handles');
    const { entry, open } = fs.create(ROOT, 1, B('doomed'), 0o100600, O_RDWR | O_CREAT, 0);
    fs.write(ROOT, entry.nodeid, open.fh, 0, B('still here'), 0);
    fs.unlink(ROOT, 1, B('doomed'));
    for (let i = 0; i < 40; i++) {
      nfs.writeFileSync(join(dir, `filler${i}`), '');
      fs.lookup(ROOT, 1, B(`filler${i}`));
    }
    assert.ok(fs.stats.liveFds <= 16);
    const a = fs.getattr(ROOT, entry.nodeid, undefined).attr;
    assert.equal(a.size, 10);
    assert.equal(a.nlink, 0);
    const dest = Buffer.alloc(10);
    assert.equal(fs.read(ROOT, entry.nodeid, open.fh, 0, 10, dest), 10);
    fs.release(ROOT, entry.nodeid, open.fh, 0);
    fs.forget(entry.nodeid, 1);
    errnoIs(() => fs.getattr(ROOT, entry.nodeid, undefined), E.ENOENT, 'forgotten');
  });
});

describe('names', () => {
  test('mkdir, rmdir (ENOTEMPTY), unlink (EISDIR), symlink + readlink verbatim, mknod FIFO, errno cases', () => {
    const { dir, fs } = setup();
    const d = fs.mkdir(ROOT, 1, B('d'), 0o750, 0o022);
    assert.equal(d.attr.mode, 0o040750, 'mode as given: the kernel applied the umask already');
    errnoIs(() => fs.mkdir(ROOT, 1, B('d'), 0o755, 0), E.EEXIST, 'mkdir existing');
    fs.create(ROOT, d.nodeid, B('x'), 0o100644, O_WRONLY | O_CREAT, 0);
    errnoIs(() => fs.rmdir(ROOT, 1, B('d')), E.ENOTEMPTY, 'rmdir non-empty');
    errnoIs(() => fs.unlink(ROOT, 1, B('d')), E.EISDIR, 'unlink a directory');
    errnoIs(() => fs.rmdir(ROOT, d.nodeid, B('x')), E.ENOTDIR, 'rmdir a file');
    fs.unlink(ROOT, d.nodeid, B('x'));
    fs.rmdir(ROOT, 1, B('d'));
    assert.equal(nfs.existsSync(join(dir, 'd')), false);
    errnoIs(() => fs.unlink(ROOT, 1, B('d')), E.ENOENT, 'unlink missing');

    const target = Buffer.from([0x2e, 0x2e, 0x2f, 0xc3, 0x28, 0x2f, 0x6e]); // ../<invalid UTF-8>/n
    const s = fs.symlink(ROOT, 1, B('ln'), target);
    assert.equal(s.attr.mode & 0o170000, 0o120000);
    assert.deepEqual(fs.readlink(ROOT, s.nodeid), target);
    assert.deepEqual(nfs.readlinkSync(join(dir, 'ln'), { encoding: 'buffer' }), target);
    errnoIs(() => fs.symlink(ROOT, 1, B('ln'), B('x')), E.EEXIST, 'symlink existing');
    const f = fs.mknod(ROOT, 1, B('fifo'), 0o010640, 0, 0);
    assert.equal(f.attr.mode, 0o010640);
    assert.ok(nfs.lstatSync(join(dir, 'fifo')).isFIFO());
    errnoIs(() => fs.readlink(ROOT, f.nodeid), E.EINVAL, 'readlink a FIFO');
    const reg = fs.mknod(ROOT, 1, B('plain'), 0o100600, 0, 0);
    assert.ok(nfs.lstatSync(join(dir, 'plain')).isFile());
    errnoIs(() => fs.link(ROOT, fs.lookup(ROOT, 1, B('.x') /* missing */).nodeid, 1, B('y')), E.ENOENT);
    errnoIs(() => fs.link(ROOT, reg.nodeid, 1, B('fifo')), E.EEXIST, 'link onto an existing name');
    errnoIs(() => fs.link(ROOT, 1, 1, B('rootlink')), E.EPERM, 'hard link to a directory');
  });

  test('create/mkdir/mknod/symlink as a non-root caller own the new inode; EACCES where the caller may not write', () => {
    const { dir, fs } = setup();
    const f = fs.create(USER, 1, B('f'), 0o100644, O_RDWR | O_CREAT, 0);
    const d = fs.mkdir(USER, 1, B('d'), 0o755, 0);
    const n = fs.mknod(USER, 1, B('n'), 0o010600, 0, 0);
    const s = fs.symlink(USER, 1, B('s'), B('f'));
    for (const [name, e] of [['f', f.entry], ['d', d], ['n', n], ['s', s]] as const) {
      const st = nfs.lstatSync(join(dir, name));
      assert.equal(st.uid, 1000, `${name} uid`);
      assert.equal(st.gid, 1000, `${name} gid`);
      assert.equal(e.attr.uid, 1000);
    }
    fs.release(USER, f.entry.nodeid, f.open.fh, 0);
    nfs.mkdirSync(join(dir, 'private'), { mode: 0o755 });
    const p = fs.lookup(ROOT, 1, B('private'));
    errnoIs(() => fs.create(USER, p.nodeid, B('x'), 0o100644, O_RDWR | O_CREAT, 0), E.EACCES, 'create');
    errnoIs(() => fs.mkdir(USER, p.nodeid, B('x'), 0o755, 0), E.EACCES, 'mkdir');
    errnoIs(() => fs.symlink(USER, p.nodeid, B('x'), B('y')), E.EACCES, 'symlink');
    errnoIs(() => fs.link(USER, f.entry.nodeid, p.nodeid, B('x')), E.EACCES, 'link');
    assert.deepEqual(nfs.readdirSync(join(dir, 'private')), []);
    // access() checks with the caller's ids.
    nfs.writeFileSync(join(dir, 'secret'), '', { mode: 0o600 });
    const sec = fs.lookup(ROOT, 1, B('secret'));
    fs.access(ROOT, sec.nodeid, 4 | 2);
    errnoIs(() => fs.access(USER, sec.nodeid, 4), E.EACCES, 'access as a stranger');
    fs.access(USER, f.entry.nodeid, 4 | 2);
  });

  test('rename: across directories, NOREPLACE, EXCHANGE; node ids follow the inode', () => {
    const { dir, fs } = setup();
    const a = fs.mkdir(ROOT, 1, B('a'), 0o755, 0);
    const b = fs.mkdir(ROOT, 1, B('b'), 0o755, 0);
    const one = fs.create(ROOT, a.nodeid, B('one'), 0o100644, O_RDWR | O_CREAT, 0);
    fs.write(ROOT, one.entry.nodeid, one.open.fh, 0, B('1'), 0);
    const two = fs.create(ROOT, b.nodeid, B('two'), 0o100644, O_RDWR | O_CREAT, 0);
    fs.write(ROOT, two.entry.nodeid, two.open.fh, 0, B('2'), 0);
    fs.rename(ROOT, a.nodeid, B('one'), b.nodeid, B('moved'), 0);
    assert.equal(nfs.readFileSync(join(dir, 'b', 'moved'), 'utf8'), '1');
    assert.equal(fs.lookup(ROOT, b.nodeid, B('moved')).nodeid, one.entry.nodeid);
    errnoIs(() => fs.rename(ROOT, b.nodeid, B('moved'), b.nodeid, B('two'), 1), E.EEXIST, 'RENAME_NOREPLACE');
    fs.rename(ROOT, b.nodeid, B('moved'), b.nodeid, B('two'), 2);
    assert.equal(nfs.readFileSync(join(dir, 'b', 'two'), 'utf8'), '1');
    assert.equal(nfs.readFileSync(join(dir, 'b', 'moved'), 'utf8'), '2');
    errnoIs(() => fs.rename(ROOT, a.nodeid, B('nope'), b.nodeid, B('x'), 2), E.ENOENT, 'EXCHANGE with a missing name');
    errnoIs(() => fs.rename(ROOT, 1, B('a'), a.nodeid, B('inside'), 0), E.EINVAL, 'a directory into itself');
    fs.rename(ROOT, b.nodeid, B('two'), b.nodeid, B('moved'), 0);
    assert.deepEqual(nfs.readdirSync(join(dir, 'b')), ['moved']);
    // RENAME_WHITEOUT leaves a 0:0 character device owned by the caller.
    nfs.chmodSync(join(dir, 'a'), 0o777);
    nfs.chmodSync(join(dir, 'b'), 0o777);
    fs.rename(USER, b.nodeid, B('moved'), a.nodeid, B('w'), 4);
    const wo = nfs.lstatSync(join(dir, 'b', 'moved'));
    assert.ok(wo.isCharacterDevice());
    assert.equal(wo.rdev, 0);
    assert.deepEqual([wo.uid, wo.gid], [1000, 1000]);
  });
});

describe('directories', () => {
  // 1500 entries: more than one 32 KiB getdents64 batch (so every path of the
  // cursor runs), on tmpdir's file system (ext4 here: 63-bit hash cookies).
  test('readdir of 1500 entries in small batches: every name exactly once, cookies resume; re-reads are stable', () => {
    const { dir, fs } = setup();
    const names = new Set<string>();
    for (let i = 0; i < 1500; i++) {
      const n = `f${i}-${'n'.repeat(i % 40)}`;
      nfs.writeFileSync(join(dir, n), '');
      names.add(n);
    }
    for (const per of [1, 7, 100]) {
      const got = listAll(fs, 1, per).map((e) => e.name.toString());
      assert.equal(got.length, 1502, `batch ${per}: count`);
      const set = new Set(got);
      assert.equal(set.size, 1502, `batch ${per}: duplicates`);
      for (const n of names) assert.ok(set.has(n), `batch ${per}: lost ${n}`);
    }
    // Re-reading from any earlier cookie (inside and before the held batch) gives the same sequence.
    const full = listAll(fs, 1, 5000);
    const { fh } = fs.opendir(ROOT, 1, O_RDONLY);
    const from = (off: number, count: number) => {
      const out: string[] = [];
      fs.readdir(ROOT, 1, fh, off, { add: (e) => (out.length < count ? (out.push(e.name.toString()), true) : false) });
      return out;
    };
    const expect = (off: number, count: number) => full.slice(off, off + count).map((e) => e.name.toString());
    assert.deepEqual(from(0, 10), expect(0, 10));
    assert.deepEqual(from(1400, 10), expect(1400, 10));
    assert.deepEqual(from(1395, 10), expect(1395, 10), 'back inside the held batch');
    assert.deepEqual(from(5, 3), expect(5, 3), 'back before the batch: host cookie');
    assert.deepEqual(from(1502, 10), [], 'at the end');
    const types = new Map(full.map((e) => [e.name.toString(), e.type]));
    assert.equal(types.get('.'), 4);
    assert.equal(types.get('f0-'), 8);
    fs.releasedir(ROOT, 1, fh);
  });

  test('resuming at an old cookie after entries before it were removed loses nothing (host cookies, not index skips)', () => {
    const { dir, fs } = setup();
    for (let i = 0; i < 1500; i++) nfs.writeFileSync(join(dir, `e${i}`), '');
    const { fh } = fs.opendir(ROOT, 1, O_RDONLY);
    const first: DirEntry[] = [];
    fs.readdir(ROOT, 1, fh, 0, { add: (e) => (first.push(e), true) });
    assert.equal(first.length, 1502);
    // Remove 40 entries that come before cookie 100, then go back to cookie 100
    // (long out of the held batch: the whole directory was read since).
    const before100 = first.slice(0, 100).map((e) => e.name.toString()).filter((n) => n.startsWith('e'));
    for (const n of before100.slice(0, 40)) nfs.unlinkSync(join(dir, n));
    const again: string[] = [];
    fs.readdir(ROOT, 1, fh, first[99].off, { add: (e) => (again.push(e.name.toString()), true) });
    assert.deepEqual(again, first.slice(100).map((e) => e.name.toString()));
    fs.releasedir(ROOT, 1, fh);
  });

  test('unlink, rmdir and rename over a known inode keep it usable while the kernel knows it (fd pinned)', () => {
    const { dir, fs } = setup({ maxOpenPathFds: 16 });
    nfs.writeFileSync(join(dir, 'victim'), 'abc');
    nfs.writeFileSync(join(dir, 'over'), 'xyz');
    nfs.writeFileSync(join(dir, 'src'), 'new');
    nfs.mkdirSync(join(dir, 'vdir'));
    const v = fs.lookup(ROOT, 1, B('victim'));
    const o = fs.lookup(ROOT, 1, B('over'));
    const d = fs.lookup(ROOT, 1, B('vdir'));
    // Push them out of the LRU so only their file handles remain.
    for (let i = 0; i < 40; i++) {
      nfs.writeFileSync(join(dir, `filler${i}`), '');
      fs.lookup(ROOT, 1, B(`filler${i}`));
    }
    fs.unlink(ROOT, 1, B('victim'));
    fs.rmdir(ROOT, 1, B('vdir'));
    fs.rename(ROOT, 1, B('src'), 1, B('over'), 0);
    for (let i = 0; i < 40; i++) fs.lookup(ROOT, 1, B(`filler${i}`));
    // Natively an fstat of these would still work: so must getattr and setattr.
    assert.equal(fs.getattr(ROOT, v.nodeid, undefined).attr.nlink, 0);
    assert.equal(fs.getattr(ROOT, o.nodeid, undefined).attr.size, 3);
    assert.equal(fs.getattr(ROOT, d.nodeid, undefined).attr.mode & 0o170000, 0o040000);
    fs.setattr(ROOT, v.nodeid, { valid: FATTR_MTIME, mtime: 7, mtimensec: 0 });
    assert.equal(fs.getattr(ROOT, v.nodeid, undefined).attr.mtime, 7);
    const fdsBefore = nfs.readdirSync('/proc/self/fd').length;
    fs.forget(v.nodeid, 1);
    fs.forget(o.nodeid, 1);
    fs.forget(d.nodeid, 1);
    assert.equal(nfs.readdirSync('/proc/self/fd').length, fdsBefore - 3, 'forget releases the pinned fds');
    // A removal that fails gives its hold back: the fd returns to the bounded LRU.
    nfs.mkdirSync(join(dir, 'full'));
    nfs.writeFileSync(join(dir, 'full', 'x'), '');
    const full = fs.lookup(ROOT, 1, B('full'));
    const live0 = fs.stats.liveFds;
    errnoIs(() => fs.rmdir(ROOT, 1, B('full')), E.ENOTEMPTY, 'rmdir non-empty');
    assert.equal(fs.stats.liveFds, live0, 'back in the LRU');
    assert.equal(fs.getattr(ROOT, full.nodeid, undefined).attr.mode & 0o170000, 0o040000);
  });

  test('a name removed while its inode is live (no statx first) keeps the inode usable once the LRU evicts it', () => {
    const { dir, fs } = setup({ maxOpenPathFds: 16 });
    nfs.writeFileSync(join(dir, 'victim'), 'abc');
    nfs.writeFileSync(join(dir, 'over'), 'xyz');
    nfs.writeFileSync(join(dir, 'src'), 'new');
    nfs.writeFileSync(join(dir, 'linked'), 'two names');
    nfs.linkSync(join(dir, 'linked'), join(dir, 'linked2'));
    nfs.mkdirSync(join(dir, 'vdir'));
    const v = fs.lookup(ROOT, 1, B('victim'));
    const o = fs.lookup(ROOT, 1, B('over'));
    const d = fs.lookup(ROOT, 1, B('vdir'));
    const l = fs.lookup(ROOT, 1, B('linked'));
    // Nothing evicted yet: the removals take the fast path.
    fs.unlink(ROOT, 1, B('victim'));
    fs.rmdir(ROOT, 1, B('vdir'));
    fs.rename(ROOT, 1, B('src'), 1, B('over'), 0);
    fs.unlink(ROOT, 1, B('linked'));
    // Now push everything out of the LRU, twice round.
    for (let i = 0; i < 40; i++) {
      nfs.writeFileSync(join(dir, `filler${i}`), '');
      fs.lookup(ROOT, 1, B(`filler${i}`));
    }
    for (let i = 0; i < 40; i++) fs.lookup(ROOT, 1, B(`filler${i}`));
    assert.ok(fs.stats.liveFds <= 16, `live ${fs.stats.liveFds}`);
    assert.equal(fs.getattr(ROOT, v.nodeid, undefined).attr.nlink, 0);
    assert.equal(fs.getattr(ROOT, o.nodeid, undefined).attr.size, 3);
    assert.equal(fs.getattr(ROOT, d.nodeid, undefined).attr.mode & 0o170000, 0o040000);
    fs.setattr(ROOT, v.nodeid, { valid: FATTR_MTIME, mtime: 7, mtimensec: 0 });
    assert.equal(fs.getattr(ROOT, v.nodeid, undefined).attr.mtime, 7);
    // Still linked elsewhere: evicted normally, reopened from its handle.
    const reopens = fs.stats.reopens;
    assert.equal(fs.getattr(ROOT, l.nodeid, undefined).attr.nlink, 1);
    assert.equal(fs.stats.reopens, reopens + 1, 'the hard-linked inode came back through its handle');
    const fdsBefore = nfs.readdirSync('/proc/self/fd').length;
    fs.forget(v.nodeid, 1);
    fs.forget(o.nodeid, 1);
    fs.forget(d.nodeid, 1);
    assert.equal(nfs.readdirSync('/proc/self/fd').length, fdsBefore - 3, 'forget releases the pinned fds');
  });

  test('the default O_PATH budget holds a directory of 6,000 files: a second walk in order reopens nothing', () => {
    const { dir, fs } = setup();
    const n = 6000;
    for (let i = 0; i < n; i++) nfs.writeFileSync(join(dir, `f${i}`), '');
    const limit = openFileLimits().soft;
    assert.ok(fs.stats.maxLiveFds >= Math.min(n + 1, limit - Math.max(256, Math.floor(limit / 8))), `budget ${fs.stats.maxLiveFds} for limit ${limit}`);
    if (fs.stats.maxLiveFds <= n) assert.fail(`RLIMIT_NOFILE ${limit} too low for this test (budget ${fs.stats.maxLiveFds}); run with ulimit -n 16384 or more`);
    for (let pass = 0; pass < 2; pass++) for (let i = 0; i < n; i++) fs.lookup(ROOT, 1, B(`f${i}`));
    assert.equal(fs.stats.reopens, 0, 'no LRU miss');
    assert.equal(fs.stats.liveFds, n);
  });

  test('out of fds (EMFILE): the O_PATH LRU gives fds back and opens, lookups and opendirs still succeed', () => {
    const { dir, fs } = setup({ maxOpenPathFds: 100000 });
    for (let i = 0; i < 300; i++) nfs.writeFileSync(join(dir, `f${i}`), `${i}`);
    nfs.mkdirSync(join(dir, 'd'));
    const inUse = nfs.readdirSync('/proc/self/fd').length;
    const old = setOpenFileSoftLimit(inUse + 120);
    try {
      const ids: number[] = [];
      for (let i = 0; i < 300; i++) ids.push(fs.lookup(ROOT, 1, B(`f${i}`)).nodeid);
      assert.ok(fs.stats.shedFds > 0, 'the LRU shed fds');
      // Open files need real fds too: the LRU makes room for them.
      const fhs: number[] = [];
      for (let i = 0; i < 60; i++) fhs.push(fs.open(ROOT, ids[i], O_RDONLY).fh);
      const buf = Buffer.alloc(8);
      assert.equal(buf.subarray(0, fs.read(ROOT, ids[59], fhs[59], 0, 8, buf)).toString(), '59');
      const dfh = fs.opendir(ROOT, fs.lookup(ROOT, 1, B('d')).nodeid, 0).fh;
      // Every inode is still reachable (reopened from its handle where shed).
      for (let i = 0; i < 300; i += 7) assert.equal(fs.getattr(ROOT, ids[i], undefined).attr.size, String(i).length);
      fs.releasedir(ROOT, 0, dfh);
      for (let i = 0; i < 60; i++) fs.release(ROOT, ids[i], fhs[i], 0);
    } finally {
      setOpenFileSoftLimit(old);
    }
  });

  test('readdirplus counts a lookup for each accepted entry only; . and .. carry node id 0; forget returns to empty', () => {
    const { dir, fs } = setup();
    nfs.mkdirSync(join(dir, 'sub'));
    for (let i = 0; i < 50; i++) nfs.writeFileSync(join(dir, `f${i}`), `${i}`);
    nfs.linkSync(join(dir, 'f0'), join(dir, 'sub', 'hard'));
    const base = fs.stats.inodes;
    const { fh } = fs.opendir(ROOT, 1, O_RDONLY);
    const seen: [DirEntry, Entry][] = [];
    let off = 0;
    for (;;) {
      let n = 0;
      fs.readdirplus(ROOT, 1, fh, off, { add: (e, p) => (n < 6 ? (seen.push([e, p]), n++, true) : false) });
      if (n === 0) break;
      off = seen[seen.length - 1][0].off;
    }
    fs.releasedir(ROOT, 1, fh);
    assert.equal(seen.length, 53);
    for (const [e, p] of seen) {
      const name = e.name.toString();
      if (name === '.' || name === '..') {
        assert.equal(p.nodeid, 0, name);
        continue;
      }
      assert.ok(p.nodeid > 1);
      assert.equal(fs.lookupCount(p.nodeid), 1, `${name}: exactly one lookup (rejected entries were not counted)`);
      assert.equal(p.attr.ino, e.ino);
      if (name.startsWith('f')) assert.equal(p.attr.size, String(Number(name.slice(1))).length);
    }
    assert.equal(fs.stats.inodes, base + 51);
    const f0 = seen.find(([e]) => e.name.toString() === 'f0')![1];
    const sub = seen.find(([e]) => e.name.toString() === 'sub')![1];
    assert.equal(fs.lookup(ROOT, sub.nodeid, B('hard')).nodeid, f0.nodeid, 'hard link found through readdirplus identity');
    assert.equal(fs.lookupCount(f0.nodeid), 2);
    fs.forget(f0.nodeid, 1);
    for (const [e, p] of seen) if (p.nodeid !== 0) fs.forget(p.nodeid, 1);
    assert.equal(fs.stats.inodes, base, 'every node dropped');
  });
});

describe('statfs, xattrs', () => {
  test('statfs agrees with the host', () => {
    const { dir, fs } = setup();
    const s = fs.statfs(ROOT, 1);
    const n = nfs.statfsSync(dir);
    assert.equal(s.bsize, n.bsize);
    assert.equal(s.blocks, n.blocks);
    assert.equal(s.namelen, 255);
  });

  test('xattrs on files (open and not), directories, symlinks and special files; ENOSYS when disabled', () => {
    const { dir, fs } = setup();
    const { entry, open } = fs.create(ROOT, 1, B('f'), 0o100644, O_RDWR | O_CREAT, 0);
    fs.setxattr(ROOT, entry.nodeid, B('user.open'), B('via fd'), 0);
    fs.release(ROOT, entry.nodeid, open.fh, 0);
    fs.setxattr(ROOT, entry.nodeid, B('user.closed'), B('via proc'), 0);
    assert.deepEqual(fs.getxattr(ROOT, entry.nodeid, B('user.open')), B('via fd'));
    const names = fs.listxattr(ROOT, entry.nodeid).toString().split('\0').filter(Boolean).sort();
    assert.deepEqual(names, ['user.closed', 'user.open']);
    errnoIs(() => fs.setxattr(ROOT, entry.nodeid, B('user.open'), B('x'), 1 /* XATTR_CREATE */), E.EEXIST, 'XATTR_CREATE');
    fs.removexattr(ROOT, entry.nodeid, B('user.open'));
    errnoIs(() => fs.getxattr(ROOT, entry.nodeid, B('user.open')), E.ENODATA, 'removed');
    const d = fs.mkdir(ROOT, 1, B('d'), 0o755, 0);
    fs.setxattr(ROOT, d.nodeid, B('user.dir'), B('1'), 0);
    assert.deepEqual(fs.getxattr(ROOT, d.nodeid, B('user.dir')), B('1'));
    // trusted.* on a symlink lands on the symlink itself, never on its target.
    nfs.writeFileSync(join(dir, 'target'), '');
    const s = fs.symlink(ROOT, 1, B('s'), B('target'));
    fs.setxattr(ROOT, s.nodeid, B('trusted.t'), B('on-link'), 0);
    assert.deepEqual(fs.getxattr(ROOT, s.nodeid, B('trusted.t')), B('on-link'));
    const t = fs.lookup(ROOT, 1, B('target'));
    errnoIs(() => fs.getxattr(ROOT, t.nodeid, B('trusted.t')), E.ENODATA, 'the target is untouched');
    const fifo = fs.mknod(ROOT, 1, B('p'), 0o010600, 0, 0);
    fs.setxattr(ROOT, fifo.nodeid, B('trusted.f'), B('fifo'), 0);
    assert.deepEqual(fs.getxattr(ROOT, fifo.nodeid, B('trusted.f')), B('fifo'));

    const off = setup({ xattr: false }).fs;
    for (const fn of [
      () => off.getxattr(ROOT, 1, B('user.a')),
      () => off.setxattr(ROOT, 1, B('user.a'), B('1'), 0),
      () => off.listxattr(ROOT, 1),
      () => off.removexattr(ROOT, 1, B('user.a')),
    ]) errnoIs(fn, E.ENOSYS, 'xattr disabled');
  });
});

describe('options', () => {
  test('cache modes set timeouts and open flags', () => {
    for (const [cache, t, fileFlags, dirFlags] of [
      ['never', 0, FOPEN_DIRECT_IO, 0],
      ['auto', 1, 0, 0],
      ['always', 86400, FOPEN_KEEP_CACHE, FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE],
    ] as const) {
      const { dir, fs } = setup({ cache });
      nfs.writeFileSync(join(dir, 'f'), '');
      const e = fs.lookup(ROOT, 1, B('f'));
      assert.equal(e.entry_valid, t, cache);
      assert.equal(e.attr_valid, t, cache);
      assert.equal(fs.getattr(ROOT, e.nodeid, undefined).attr_valid, t);
      const o = fs.open(ROOT, e.nodeid, O_RDONLY);
      // tmpdir is a local file system (ext4 or tmpfs): no FLUSH round trips.
      assert.equal(o.open_flags, fileFlags | FOPEN_NOFLUSH, cache);
      assert.equal(fs.opendir(ROOT, 1, O_RDONLY).open_flags, dirFlags, cache);
    }
  });

  test('init: readdirplus and parallel dirops wanted, writeback only when asked, never lock or killpriv flags', () => {
    const all = (1n << 64n) - 1n;
    const info = { major: 7, minor: 38, capable: all, max_readahead: 131072, want: FUSE_MAX_PAGES | FUSE_POSIX_LOCKS | FUSE_WRITEBACK_CACHE };
    const plain = setup({ cache: 'auto' }).fs.init(info);
    assert.ok((plain & FUSE_DO_READDIRPLUS) !== 0n);
    assert.ok((plain & FUSE_PARALLEL_DIROPS) !== 0n);
    assert.ok((plain & FUSE_AUTO_INVAL_DATA) !== 0n);
    assert.ok((plain & FUSE_MAX_PAGES) !== 0n, 'keeps what the server wants');
    assert.equal(plain & (FUSE_POSIX_LOCKS | FUSE_FLOCK_LOCKS | FUSE_HANDLE_KILLPRIV_V2), 0n);
    assert.equal(plain & FUSE_WRITEBACK_CACHE, 0n);
    const wb = setup({ writeback: true }).fs.init(info);
    assert.ok((wb & FUSE_WRITEBACK_CACHE) !== 0n);
    const never = setup({ cache: 'never' }).fs.init({ ...info, want: info.want | FUSE_DO_READDIRPLUS });
    assert.equal(never & FUSE_DO_READDIRPLUS, 0n, 'no readdirplus when nothing may be cached');
    const narrow = setup({ writeback: true }).fs.init({ ...info, capable: FUSE_DO_READDIRPLUS });
    assert.equal(narrow, FUSE_DO_READDIRPLUS, 'never more than the client offers');
  });

  test('readonly: every mutating op answers EROFS and changes nothing; reads work', () => {
    const { dir, fs } = setup({ readonly: true });
    nfs.writeFileSync(join(dir, 'f'), 'data');
    nfs.mkdirSync(join(dir, 'd'));
    const before = JSON.stringify(nfs.readdirSync(dir).sort());
    const modeBefore = nfs.statSync(join(dir, 'f')).mode;
    const f = fs.lookup(ROOT, 1, B('f'));
    const d = fs.lookup(ROOT, 1, B('d'));
    const ro = fs.open(ROOT, f.nodeid, O_RDONLY);
    const buf = Buffer.alloc(4);
    assert.equal(fs.read(ROOT, f.nodeid, ro.fh, 0, 4, buf), 4);
    const ops: [string, () => unknown][] = [
      ['setattr', () => fs.setattr(ROOT, f.nodeid, { valid: FATTR_MODE, mode: 0o100600 })],
      ['symlink', () => fs.symlink(ROOT, 1, B('s'), B('f'))],
      ['mknod', () => fs.mknod(ROOT, 1, B('n'), 0o010600, 0, 0)],
      ['mkdir', () => fs.mkdir(ROOT, 1, B('m'), 0o755, 0)],
      ['unlink', () => fs.unlink(ROOT, 1, B('f'))],
      ['rmdir', () => fs.rmdir(ROOT, 1, B('d'))],
      ['rename', () => fs.rename(ROOT, 1, B('f'), d.nodeid, B('f'), 0)],
      ['link', () => fs.link(ROOT, f.nodeid, 1, B('l'))],
      ['open rw', () => fs.open(ROOT, f.nodeid, O_RDWR)],
      ['open wronly', () => fs.open(ROOT, f.nodeid, O_WRONLY)],
      ['open trunc', () => fs.open(ROOT, f.nodeid, O_RDONLY | O_TRUNC)],
      ['create', () => fs.create(ROOT, 1, B('c'), 0o100644, O_RDWR | O_CREAT, 0)],
      ['write', () => fs.write(ROOT, f.nodeid, ro.fh, 0, B('x'), 0)],
      ['fallocate', () => fs.fallocate(ROOT, f.nodeid, ro.fh, 0, 10, 0)],
      ['copyFileRange', () => fs.copyFileRange(ROOT, f.nodeid, ro.fh, 0, f.nodeid, ro.fh, 10, 1, 0)],
      ['setxattr', () => fs.setxattr(ROOT, f.nodeid, B('user.x'), B('1'), 0)],
      ['removexattr', () => fs.removexattr(ROOT, f.nodeid, B('user.x'))],
      ['access W_OK', () => fs.access(ROOT, f.nodeid, 2)],
    ];
    for (const [name, op] of ops) errnoIs(op, E.EROFS, name);
    fs.access(ROOT, f.nodeid, 4);
    assert.equal(JSON.stringify(nfs.readdirSync(dir).sort()), before);
    assert.equal(nfs.readFileSync(join(dir, 'f'), 'utf8'), 'data');
    assert.equal(nfs.statSync(join(dir, 'f')).mode, modeBefore);
  });

  test('writeback: write-only opens become read-write and O_APPEND is dropped (the kernel sends offsets)', () => {
    const { dir, fs } = setup({ writeback: true });
    nfs.writeFileSync(join(dir, 'f'), 'abcdef');
    const e = fs.lookup(ROOT, 1, B('f'));
    const o = fs.open(ROOT, e.nodeid, O_WRONLY | O_APPEND);
    const buf = Buffer.alloc(6);
    assert.equal(fs.read(ROOT, e.nodeid, o.fh, 0, 6, buf), 6, 'the page cache may read a write-only file');
    fs.write(ROOT, e.nodeid, o.fh, 0, B('XY'), 0);
    assert.equal(nfs.readFileSync(join(dir, 'f'), 'utf8'), 'XYcdef', 'written at the given offset, not appended');
    const plain = setup({ writeback: false });
    nfs.writeFileSync(join(plain.dir, 'f'), 'abcdef');
    const pe = plain.fs.lookup(ROOT, 1, B('f'));
    const po = plain.fs.open(ROOT, pe.nodeid, O_WRONLY);
    errnoIs(() => plain.fs.read(ROOT, pe.nodeid, po.fh, 0, 6, buf), E.EBADF, 'without writeback O_WRONLY stays write-only');
  });

  test('without file handles (option off, or sysfs which has none) every known inode keeps its fd until forgotten', () => {
    const { dir, fs } = setup({ fileHandles: false, maxOpenPathFds: 16 });
    assert.equal(fs.usesFileHandles, false);
    for (let i = 0; i < 40; i++) nfs.writeFileSync(join(dir, `f${i}`), `${i}`);
    const fdsBefore = nfs.readdirSync('/proc/self/fd').length;
    const ids = Array.from({ length: 40 }, (_, i) => fs.lookup(ROOT, 1, B(`f${i}`)).nodeid);
    assert.equal(nfs.readdirSync('/proc/self/fd').length, fdsBefore + 40, 'one fd per known inode, no budget');
    assert.equal(fs.getattr(ROOT, ids[0], undefined).attr.size, 1);
    for (const id of ids) fs.forget(id, 1);
    assert.equal(nfs.readdirSync('/proc/self/fd').length, fdsBefore);
    // sysfs has no file handles: detected, and the backend still works (read-only here).
    const sysfs = new PassthroughFs('/sys/kernel', { readonly: true, cache: 'auto', xattr: false, writeback: false });
    cleanups.push(() => sysfs.destroy());
    assert.equal(sysfs.usesFileHandles, false);
    const mm = sysfs.lookup(ROOT, 1, B('mm'));
    assert.equal(mm.attr.mode & 0o170000, 0o040000);
    const names: string[] = [];
    const { fh } = sysfs.opendir(ROOT, mm.nodeid, O_RDONLY);
    sysfs.readdir(ROOT, mm.nodeid, fh, 0, { add: (e) => (names.push(e.name.toString()), true) });
    assert.deepEqual(names.filter((n) => n !== '.' && n !== '..').sort(), nfs.readdirSync('/sys/kernel/mm').sort());
    // Not a local disk file system: FLUSH is kept.
    const ksz = sysfs.lookup(ROOT, 1, B('uevent_seqnum'));
    const ko = sysfs.open(ROOT, ksz.nodeid, O_RDONLY);
    assert.equal(ko.open_flags & FOPEN_NOFLUSH, 0);
  });

  test('destroy closes every fd the backend opened', () => {
    const before = nfs.readdirSync('/proc/self/fd').length;
    const dir = nfs.mkdtempSync(join(tmpdir(), 'vfs-pt-'));
    cleanups.push(() => nfs.rmSync(dir, { recursive: true, force: true }));
    const fs = new PassthroughFs(dir, { readonly: false, cache: 'auto', xattr: true, writeback: false });
    for (let i = 0; i < 20; i++) {
      const c = fs.create(ROOT, 1, B(`f${i}`), 0o100644, O_RDWR | O_CREAT, 0);
      if (i % 2) fs.release(ROOT, c.entry.nodeid, c.open.fh, 0);
    }
    fs.opendir(ROOT, 1, O_RDONLY);
    assert.ok(nfs.readdirSync('/proc/self/fd').length > before + 20);
    fs.destroy();
    assert.equal(nfs.readdirSync('/proc/self/fd').length, before);
  });
});

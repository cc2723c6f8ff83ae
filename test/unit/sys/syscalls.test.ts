// Each sys/ wrapper against the real kernel on a temp dir: results compared with
// what node:fs sees, errno on failures, and the constants checked against the
// real C headers (compiled with gcc at test time).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as nfs from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as sys from '../../../src/sys/syscalls.ts';
import { SysError } from '../../../src/sys/errors.ts';
import { direntName, parseDirent } from '../../../src/sys/dirent.ts';
import { encodeDev, STATX_SIZE } from '../../../src/sys/stat.ts';
import { currentFsIds, prepareThread, withFsCreds } from '../../../src/sys/creds.ts';
import { koffi } from '../../../src/sys/ffi.ts';

const E = constants.errno;
let dir = '';
let dfd = -1;

before(() => {
  dir = nfs.mkdtempSync(join(tmpdir(), 'vfs-sys-'));
  dfd = sys.open(dir, sys.O_PATH | sys.O_DIRECTORY);
});
after(() => {
  if (dfd >= 0) sys.close(dfd);
  nfs.rmSync(dir, { recursive: true, force: true });
});

function throwsErrno(fn: () => unknown, errno: number, syscall?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SysError, `expected SysError, got ${String(err)}`);
    assert.equal(err.errno, errno, `errno ${err.errno} (${err.message}), wanted ${errno}`);
    if (syscall) assert.equal(err.syscall, syscall);
    return true;
  });
}

function ownFdCount(): number {
  return nfs.readdirSync('/proc/self/fd').length;
}

describe('constants match the C headers', () => {
  test('open/at/statx/seek/rename/utime/xattr/falloc constants', () => {
    const cDir = nfs.mkdtempSync(join(tmpdir(), 'vfs-sys-c-'));
    try {
      const src = join(cDir, 'c.c');
      nfs.writeFileSync(src, `#define _GNU_SOURCE
#include <stdio.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <unistd.h>
#define P(x) printf(#x " %lld\\n", (long long)(x));
int main(void) {
P(O_PATH) P(O_NOFOLLOW) P(O_DIRECTORY) P(O_CLOEXEC) P(O_CREAT) P(O_EXCL) P(O_TRUNC) P(O_APPEND) P(O_DIRECT) P(O_NOATIME) P(O_TMPFILE) P(O_NOCTTY)
P(AT_FDCWD) P(AT_SYMLINK_NOFOLLOW) P(AT_REMOVEDIR) P(AT_EACCESS) P(AT_SYMLINK_FOLLOW) P(AT_EMPTY_PATH) P(AT_NO_AUTOMOUNT)
P(STATX_BASIC_STATS) P(STATX_MNT_ID) P(sizeof(struct statx))
P(RENAME_NOREPLACE) P(RENAME_EXCHANGE) P(RENAME_WHITEOUT) P(SEEK_DATA) P(SEEK_HOLE)
P(UTIME_NOW) P(UTIME_OMIT) P(XATTR_CREATE) P(XATTR_REPLACE)
P(FALLOC_FL_KEEP_SIZE) P(FALLOC_FL_PUNCH_HOLE) P(FALLOC_FL_ZERO_RANGE) P(MAX_HANDLE_SZ)
return 0; }
`);
      const cc = spawnSync('gcc', ['-o', join(cDir, 'c'), src], { encoding: 'utf8' });
      assert.equal(cc.status, 0, `gcc is needed for this test and failed: ${cc.error ?? cc.stderr}`);
      const out = execFileSync(join(cDir, 'c'), { encoding: 'utf8' });
      const real = new Map(out.trim().split('\n').map((l) => { const i = l.lastIndexOf(' '); return [l.slice(0, i), Number(l.slice(i + 1))] as const; }));
      const ours: Record<string, number> = {
        O_PATH: sys.O_PATH, O_NOFOLLOW: sys.O_NOFOLLOW, O_DIRECTORY: sys.O_DIRECTORY, O_CLOEXEC: sys.O_CLOEXEC,
        O_CREAT: sys.O_CREAT, O_EXCL: sys.O_EXCL, O_TRUNC: sys.O_TRUNC, O_APPEND: sys.O_APPEND, O_DIRECT: sys.O_DIRECT,
        O_NOATIME: sys.O_NOATIME, O_TMPFILE: sys.O_TMPFILE, O_NOCTTY: sys.O_NOCTTY,
        AT_FDCWD: sys.AT_FDCWD, AT_SYMLINK_NOFOLLOW: sys.AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR: sys.AT_REMOVEDIR,
        AT_EACCESS: sys.AT_EACCESS, AT_SYMLINK_FOLLOW: sys.AT_SYMLINK_FOLLOW, AT_EMPTY_PATH: sys.AT_EMPTY_PATH,
        AT_NO_AUTOMOUNT: sys.AT_NO_AUTOMOUNT, STATX_BASIC_STATS: sys.STATX_BASIC_STATS, STATX_MNT_ID: sys.STATX_MNT_ID,
        'sizeof(struct statx)': STATX_SIZE, RENAME_NOREPLACE: sys.RENAME_NOREPLACE, RENAME_EXCHANGE: sys.RENAME_EXCHANGE,
        RENAME_WHITEOUT: sys.RENAME_WHITEOUT, SEEK_DATA: sys.SEEK_DATA, SEEK_HOLE: sys.SEEK_HOLE,
        UTIME_NOW: sys.UTIME_NOW, UTIME_OMIT: sys.UTIME_OMIT, XATTR_CREATE: sys.XATTR_CREATE, XATTR_REPLACE: sys.XATTR_REPLACE,
        FALLOC_FL_KEEP_SIZE: sys.FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE: sys.FALLOC_FL_PUNCH_HOLE,
        FALLOC_FL_ZERO_RANGE: sys.FALLOC_FL_ZERO_RANGE, MAX_HANDLE_SZ: sys.MAX_HANDLE_SZ,
      };
      for (const [k, v] of Object.entries(ours)) assert.equal(v, real.get(k), `${k}: ours ${v}, header ${real.get(k)}`);
    } finally {
      nfs.rmSync(cDir, { recursive: true, force: true });
    }
  });
});

describe('fds and stat', () => {
  test('openat creates, statx matches node:fs, errors carry errno and the call', () => {
    const fd = sys.openat(dfd, 'f1', sys.O_CREAT | sys.O_RDWR | sys.O_EXCL, 0o640);
    try {
      const st = sys.fstat(fd);
      const ns = nfs.lstatSync(join(dir, 'f1'), { bigint: true });
      assert.equal(BigInt(st.ino), ns.ino);
      assert.equal(st.mode, Number(ns.mode));
      assert.equal(st.nlink, 1);
      assert.equal(st.uid, Number(ns.uid));
      assert.equal(st.size, 0);
      assert.equal(BigInt(st.mtime) * 1_000_000_000n + BigInt(st.mtimeNsec), ns.mtimeNs);
      assert.equal(BigInt(st.ctime) * 1_000_000_000n + BigInt(st.ctimeNsec), ns.ctimeNs);
    } finally {
      sys.close(fd);
    }
    throwsErrno(() => sys.openat(dfd, 'f1', sys.O_CREAT | sys.O_EXCL | sys.O_RDWR, 0o600), E.EEXIST, 'openat');
    throwsErrno(() => sys.openat(dfd, 'missing', sys.O_RDONLY), E.ENOENT, 'openat');
    throwsErrno(() => sys.statx(dfd, 'missing', sys.AT_SYMLINK_NOFOLLOW), E.ENOENT, 'statx');
    throwsErrno(() => sys.close(1_000_000), E.EBADF, 'close');
  });

  test('O_CLOEXEC is always set; dup keeps it', () => {
    const fd = sys.openat(dfd, 'f1', sys.O_RDONLY);
    const d = sys.dup(fd);
    try {
      for (const f of [fd, d]) {
        const flags = nfs.readFileSync(`/proc/self/fdinfo/${f}`, 'utf8').match(/flags:\s+(\d+)/)![1];
        assert.ok((parseInt(flags, 8) & sys.O_CLOEXEC) !== 0, `fd ${f} lacks O_CLOEXEC`);
      }
    } finally {
      sys.close(fd);
      sys.close(d);
    }
  });

  test('statx of a device node decodes rdev the FUSE way; O_PATH + AT_EMPTY_PATH', () => {
    const ns = nfs.statSync('/dev/null');
    const fd = sys.open('/dev/null', sys.O_PATH);
    try {
      const st = sys.fstat(fd);
      assert.equal(st.mode & sys.S_IFMT, sys.S_IFCHR);
      assert.equal(st.rdev, ns.rdev);
      assert.equal(st.rdev, encodeDev(1, 3));
    } finally {
      sys.close(fd);
    }
  });

  test('statxInto fills a caller buffer', () => {
    const b = Buffer.alloc(STATX_SIZE);
    sys.statxInto(dfd, 'f1', sys.AT_SYMLINK_NOFOLLOW, sys.STATX_BASIC_STATS, b);
    assert.equal(b.readUInt32LE(0) & sys.STATX_BASIC_STATS, sys.STATX_BASIC_STATS);
  });
});

describe('names', () => {
  test('mkdirat, mknodat (FIFO), symlinkat + readlinkat (raw bytes), unlinkat', () => {
    sys.mkdirat(dfd, 'd1', 0o750);
    assert.equal(nfs.statSync(join(dir, 'd1')).mode & 0o777, 0o750 & ~process.umask());
    throwsErrno(() => sys.mkdirat(dfd, 'd1', 0o755), E.EEXIST, 'mkdirat');
    sys.mknodat(dfd, 'fifo', sys.S_IFIFO | 0o600, 0);
    assert.ok(nfs.lstatSync(join(dir, 'fifo')).isFIFO());
    const target = Buffer.from([0x2e, 0x2e, 0x2f, 0xff, 0xfe, 0x41]); // '../' + non-UTF-8 bytes
    const t0 = Buffer.concat([target, Buffer.from([0])]);
    sys.symlinkat(t0, dfd, 'ln');
    assert.deepEqual(sys.readlinkat(dfd, 'ln'), target);
    const lfd = sys.openat(dfd, 'ln', sys.O_PATH | sys.O_NOFOLLOW);
    try {
      assert.deepEqual(sys.readlinkat(lfd, ''), target, 'readlinkat on an O_PATH symlink fd');
    } finally {
      sys.close(lfd);
    }
    throwsErrno(() => sys.readlinkat(dfd, 'd1'), E.EINVAL, 'readlinkat');
    throwsErrno(() => sys.unlinkat(dfd, 'd1', 0), E.EISDIR, 'unlinkat');
    sys.unlinkat(dfd, 'd1', sys.AT_REMOVEDIR);
    sys.unlinkat(dfd, 'ln', 0);
    sys.unlinkat(dfd, 'fifo', 0);
    assert.equal(nfs.existsSync(join(dir, 'd1')), false);
  });

  test('cName copies raw bytes with a NUL and refuses embedded NULs', () => {
    const scratch = Buffer.alloc(8);
    const c = sys.cName(Buffer.from('abc'), scratch);
    assert.equal(c, scratch, 'no view: the scratch itself');
    assert.deepEqual([...c.subarray(0, 4)], [0x61, 0x62, 0x63, 0]);
    // It works as a path: the NUL ends it whatever follows.
    scratch.fill(0x7a);
    assert.equal(sys.statx(dfd, sys.cName(Buffer.from('.'), scratch), 0).ino, nfs.statSync(dir).ino);
    throwsErrno(() => sys.cName(Buffer.from([0x61, 0, 0x62]), scratch), E.EINVAL);
    throwsErrno(() => sys.cName(Buffer.alloc(8, 0x61), scratch), E.ENAMETOOLONG);
  });

  test('linkat with AT_EMPTY_PATH on an O_PATH fd, and through /proc/self/fd', () => {
    nfs.writeFileSync(join(dir, 'src'), 'x');
    const fd = sys.openat(dfd, 'src', sys.O_PATH | sys.O_NOFOLLOW);
    try {
      sys.linkat(fd, '', dfd, 'hl1', sys.AT_EMPTY_PATH);
      sys.linkat(sys.AT_FDCWD, sys.procFdPath(fd), dfd, 'hl2', sys.AT_SYMLINK_FOLLOW);
    } finally {
      sys.close(fd);
    }
    assert.equal(nfs.statSync(join(dir, 'src')).nlink, 3);
    throwsErrno(() => sys.linkat(dfd, 'src', dfd, 'hl1', 0), E.EEXIST, 'linkat');
  });

  test('renameat2: plain, NOREPLACE, EXCHANGE', () => {
    nfs.writeFileSync(join(dir, 'r1'), 'one');
    nfs.writeFileSync(join(dir, 'r2'), 'two');
    throwsErrno(() => sys.renameat2(dfd, 'r1', dfd, 'r2', sys.RENAME_NOREPLACE), E.EEXIST, 'renameat2');
    sys.renameat2(dfd, 'r1', dfd, 'r2', sys.RENAME_EXCHANGE);
    assert.equal(nfs.readFileSync(join(dir, 'r1'), 'utf8'), 'two');
    assert.equal(nfs.readFileSync(join(dir, 'r2'), 'utf8'), 'one');
    sys.renameat2(dfd, 'r1', dfd, 'r3', 0);
    assert.equal(nfs.existsSync(join(dir, 'r1')), false);
    throwsErrno(() => sys.renameat2(dfd, 'r1', dfd, 'r4', sys.RENAME_EXCHANGE), E.ENOENT, 'renameat2');
  });
});

describe('attributes', () => {
  test('fchmodat via /proc/self/fd on an O_PATH fd, fchmod, fchownat AT_EMPTY_PATH, utimensat now/omit/explicit', () => {
    nfs.writeFileSync(join(dir, 'attr'), 'x');
    const pfd = sys.openat(dfd, 'attr', sys.O_PATH | sys.O_NOFOLLOW);
    const rfd = sys.openat(dfd, 'attr', sys.O_RDWR);
    try {
      sys.fchmodat(sys.AT_FDCWD, sys.procFdPath(pfd), 0o604, 0);
      assert.equal(nfs.statSync(join(dir, 'attr')).mode & 0o7777, 0o604);
      sys.fchmod(rfd, 0o640);
      assert.equal(nfs.statSync(join(dir, 'attr')).mode & 0o7777, 0o640);
      sys.fchownat(pfd, '', 1234, -1, sys.AT_EMPTY_PATH | sys.AT_SYMLINK_NOFOLLOW);
      const st = nfs.statSync(join(dir, 'attr'));
      assert.equal(st.uid, 1234);
      assert.equal(st.gid, 0);
      sys.fchownat(pfd, '', -1, 4321, sys.AT_EMPTY_PATH);
      assert.equal(nfs.statSync(join(dir, 'attr')).gid, 4321);
      sys.futimens(rfd, { sec: 1000, nsec: 5 }, { sec: 2000, nsec: 7 });
      const bst = nfs.statSync(join(dir, 'attr'), { bigint: true });
      assert.equal(bst.atimeNs, 1000_000_000_005n);
      assert.equal(bst.mtimeNs, 2000_000_000_007n);
      sys.utimensat(sys.AT_FDCWD, sys.procFdPath(pfd), 'omit', 'now', 0);
      const b2 = nfs.statSync(join(dir, 'attr'), { bigint: true });
      assert.equal(b2.atimeNs, 1000_000_000_005n, 'omit keeps atime');
      assert.ok(b2.mtimeNs > 2000_000_000_007n * 100n, 'now sets mtime to the present');
    } finally {
      sys.close(pfd);
      sys.close(rfd);
    }
    throwsErrno(() => sys.fchmodat(dfd, 'nope', 0o600, 0), E.ENOENT, 'fchmodat');
  });
});

describe('file data', () => {
  test('pread/pwrite at buffer offsets (no copies), preadPtr/pwritePtr, short read at EOF', () => {
    const fd = sys.openat(dfd, 'data', sys.O_CREAT | sys.O_RDWR | sys.O_TRUNC, 0o600);
    try {
      const src = Buffer.from('..hello world..');
      assert.equal(sys.pwrite(fd, src, 2, 11, 100), 11);
      const dst = Buffer.alloc(20, 0x2a);
      assert.equal(sys.pread(fd, dst, 4, 11, 100), 11);
      assert.equal(dst.toString('latin1'), '****hello world*****');
      assert.equal(sys.pread(fd, dst, 0, 20, 105), 6, 'short at EOF');
      assert.equal(sys.pread(fd, dst, 0, 20, 1000), 0);
      assert.throws(() => sys.pread(fd, dst, 15, 10, 0), RangeError);
      // A subarray of a bigger Buffer: the pointer must honour byteOffset.
      const big = Buffer.alloc(64, 0);
      const view = big.subarray(30, 40);
      assert.equal(sys.pread(fd, view, 1, 5, 100), 5);
      assert.equal(big.subarray(31, 36).toString(), 'hello');
      assert.equal(big[30], 0);
      // Raw addresses.
      const raw = Buffer.alloc(16);
      const addr = Number(koffi.address(raw));
      assert.equal(sys.preadPtr(fd, addr + 3, 5, 106), 5);
      assert.equal(raw.subarray(3, 8).toString(), 'world');
      assert.equal(sys.pwritePtr(fd, addr + 3, 5, 0), 5);
      assert.equal(nfs.readFileSync(join(dir, 'data')).subarray(0, 5).toString(), 'world');
      sys.fsync(fd);
      sys.fdatasync(fd);
      const ro = sys.openat(dfd, 'data', sys.O_RDONLY);
      try {
        throwsErrno(() => sys.pwrite(ro, src, 0, 1, 0), E.EBADF, 'pwrite');
      } finally {
        sys.close(ro);
      }
    } finally {
      sys.close(fd);
    }
  });

  test('ftruncate, fallocate (punch hole), lseek SEEK_DATA/SEEK_HOLE, copy_file_range', () => {
    const fd = sys.openat(dfd, 'sparse', sys.O_CREAT | sys.O_RDWR | sys.O_TRUNC, 0o600);
    try {
      sys.ftruncate(fd, 1 << 20);
      assert.equal(sys.fstat(fd).size, 1 << 20);
      const block = Buffer.alloc(4096, 0x55);
      sys.pwrite(fd, block, 0, 4096, 512 * 1024);
      assert.equal(sys.lseek(fd, 0, sys.SEEK_DATA), 512 * 1024);
      assert.equal(sys.lseek(fd, 512 * 1024, sys.SEEK_HOLE), 512 * 1024 + 4096);
      throwsErrno(() => sys.lseek(fd, (1 << 20) + 10, sys.SEEK_DATA), E.ENXIO, 'lseek');
      const blocks0 = sys.fstat(fd).blocks;
      sys.fallocate(fd, 0, 0, 8192);
      assert.equal(sys.fstat(fd).blocks, blocks0 + 16, 'fallocate reserved 8 KiB');
      sys.fallocate(fd, sys.FALLOC_FL_PUNCH_HOLE | sys.FALLOC_FL_KEEP_SIZE, 512 * 1024, 4096);
      assert.throws(() => sys.lseek(fd, 8192, sys.SEEK_DATA));
      throwsErrno(() => sys.fallocate(fd, sys.FALLOC_FL_PUNCH_HOLE, 0, 4096), E.EOPNOTSUPP, 'fallocate');
      // copy_file_range into another file at explicit offsets.
      sys.pwrite(fd, Buffer.from('copy me'), 0, 7, 100);
      sys.lseek(fd, 0, sys.SEEK_SET);
      const out = sys.openat(dfd, 'copy', sys.O_CREAT | sys.O_RDWR | sys.O_TRUNC, 0o600);
      try {
        assert.equal(sys.copyFileRange(fd, 100, out, 3, 7), 7);
        assert.equal(nfs.readFileSync(join(dir, 'copy')).subarray(3).toString(), 'copy me');
        assert.equal(sys.lseek(fd, 0, sys.SEEK_CUR), 0, 'fd positions untouched');
      } finally {
        sys.close(out);
      }
    } finally {
      sys.close(fd);
    }
  });
});

describe('directories', () => {
  test('getdents64 + parseDirent list exactly what readdir sees, names as raw bytes', () => {
    const sub = join(dir, 'list');
    nfs.mkdirSync(sub);
    const names = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const n = `entry-${i}-${'x'.repeat(i % 50)}`;
      nfs.writeFileSync(join(sub, n), '');
      names.add(n);
    }
    nfs.mkdirSync(join(sub, 'adir'));
    names.add('adir');
    const fd = sys.openat(dfd, 'list', sys.O_RDONLY | sys.O_DIRECTORY);
    const seen = new Map<string, number>();
    try {
      const buf = Buffer.alloc(2048); // small: several calls
      for (;;) {
        const n = sys.getdents64(fd, buf);
        if (n === 0) break;
        for (let pos = 0; ;) {
          const r = parseDirent(buf, pos, n);
          if (r === null) break;
          seen.set(direntName(buf, r).toString(), r.type);
          pos = r.next;
        }
      }
    } finally {
      sys.close(fd);
    }
    assert.equal(seen.get('.'), 4);
    assert.equal(seen.get('..'), 4);
    assert.equal(seen.get('adir'), 4);
    assert.equal(seen.get('entry-0-'), 8);
    seen.delete('.');
    seen.delete('..');
    assert.deepEqual(new Set(seen.keys()), names);
    assert.deepEqual(new Set(nfs.readdirSync(sub)), names);
  });

  test('parseDirent never reads past the end of a short or corrupt buffer', () => {
    const b = Buffer.alloc(64);
    b.writeUInt16LE(200, 16); // reclen beyond the buffer
    assert.equal(parseDirent(b, 0, 64), null);
    b.writeUInt16LE(3, 16); // reclen smaller than the header
    assert.equal(parseDirent(b, 0, 64), null);
    assert.equal(parseDirent(b, 60, 64), null);
  });
});

describe('xattrs, statfs, handles', () => {
  test('f*xattr on a real fd and path variants through /proc/self/fd on an O_PATH fd', () => {
    nfs.writeFileSync(join(dir, 'xa'), '');
    const fd = sys.openat(dfd, 'xa', sys.O_RDWR);
    const pfd = sys.openat(dfd, 'xa', sys.O_PATH);
    try {
      sys.fsetxattr(fd, 'user.one', Buffer.from('1'), 0);
      throwsErrno(() => sys.fsetxattr(fd, 'user.one', Buffer.from('x'), sys.XATTR_CREATE), E.EEXIST, 'fsetxattr');
      throwsErrno(() => sys.fsetxattr(fd, 'user.two', Buffer.from('x'), sys.XATTR_REPLACE), E.ENODATA, 'fsetxattr');
      sys.setxattr(sys.procFdPath(pfd), 'user.two', Buffer.alloc(3000, 7), 0);
      assert.deepEqual(sys.fgetxattr(fd, 'user.two'), Buffer.alloc(3000, 7));
      assert.deepEqual(sys.getxattr(sys.procFdPath(pfd), 'user.one'), Buffer.from('1'));
      const list = (b: Buffer) => b.toString('latin1').split('\0').filter(Boolean).sort();
      assert.deepEqual(list(sys.flistxattr(fd)), ['user.one', 'user.two']);
      assert.deepEqual(list(sys.listxattr(sys.procFdPath(pfd))), ['user.one', 'user.two']);
      sys.fremovexattr(fd, 'user.one');
      sys.removexattr(sys.procFdPath(pfd), 'user.two');
      throwsErrno(() => sys.fgetxattr(fd, 'user.one'), E.ENODATA, 'fgetxattr');
      throwsErrno(() => sys.getxattr(sys.procFdPath(pfd), 'user.two'), E.ENODATA, 'getxattr');
      // The f* calls refuse O_PATH fds: that is why the path variants exist.
      throwsErrno(() => sys.fgetxattr(pfd, 'user.one'), E.EBADF, 'fgetxattr');
    } finally {
      sys.close(fd);
      sys.close(pfd);
    }
  });

  test('fstatfs on an O_PATH fd agrees with node statfs', () => {
    const s = sys.fstatfs(dfd);
    const n = nfs.statfsSync(dir);
    assert.equal(s.bsize, n.bsize);
    assert.equal(s.blocks, n.blocks);
    assert.equal(s.type, n.type);
    assert.equal(s.namelen, 255);
    assert.equal(sys.statfs(dir).blocks, n.blocks);
  });

  test('name_to_handle_at / open_by_handle_at round trip reaches the same inode', () => {
    nfs.writeFileSync(join(dir, 'h'), 'handle');
    const h = sys.nameToHandleAt(dfd, 'h', 0);
    assert.ok(h.bytes.length > 8);
    const mountFd = sys.openat(dfd, '.', sys.O_RDONLY | sys.O_DIRECTORY);
    try {
      const fd = sys.openByHandleAt(mountFd, h.bytes, sys.O_RDONLY);
      try {
        const b = Buffer.alloc(6);
        assert.equal(sys.pread(fd, b, 0, 6, 0), 6);
        assert.equal(b.toString(), 'handle');
        assert.equal(sys.fstat(fd).ino, nfs.statSync(join(dir, 'h')).ino);
      } finally {
        sys.close(fd);
      }
      // The kernel refuses O_PATH mount fds; the store opens a real one.
      throwsErrno(() => sys.openByHandleAt(dfd, h.bytes, sys.O_PATH), E.EBADF, 'open_by_handle_at');
      const stale = Buffer.from(h.bytes);
      nfs.unlinkSync(join(dir, 'h'));
      throwsErrno(() => sys.openByHandleAt(mountFd, stale, sys.O_PATH), E.ESTALE, 'open_by_handle_at');
    } finally {
      sys.close(mountFd);
    }
  });

  test('faccessat with AT_EMPTY_PATH on an O_PATH fd', () => {
    nfs.writeFileSync(join(dir, 'acc'), '', { mode: 0o600 });
    const fd = sys.openat(dfd, 'acc', sys.O_PATH);
    try {
      sys.faccessat(fd, '', 4 | 2, sys.AT_EMPTY_PATH | sys.AT_EACCESS);
      throwsErrno(() => sys.faccessat(fd, '', 1, sys.AT_EMPTY_PATH | sys.AT_EACCESS), E.EACCES, 'faccessat');
    } finally {
      sys.close(fd);
    }
  });

  test('no fd leaks from a failing call', () => {
    const before = ownFdCount();
    for (let i = 0; i < 50; i++) {
      assert.throws(() => sys.openat(dfd, 'nope', sys.O_RDONLY));
      assert.throws(() => sys.statfs(join(dir, 'nope')));
    }
    assert.equal(ownFdCount(), before);
  });
});

describe('per-thread credentials', () => {
  test('withFsCreds creates as the caller, restores the daemon ids even on a throw; umask is 0 on this thread', () => {
    assert.equal(process.getuid?.(), 0, 'this test needs root (the daemon runs as root)');
    const st = prepareThread();
    assert.equal(st.canSwitch, true);
    const sub = join(dir, 'creds');
    nfs.mkdirSync(sub, { mode: 0o777 });
    nfs.chmodSync(sub, 0o777);
    const sfd = sys.open(sub, sys.O_PATH | sys.O_DIRECTORY);
    try {
      withFsCreds(1001, 1002, () => sys.mkdirat(sfd, 'mine', 0o777));
      const ns = nfs.statSync(join(sub, 'mine'));
      assert.equal(ns.uid, 1001);
      assert.equal(ns.gid, 1002);
      assert.equal(ns.mode & 0o777, 0o777, 'umask 0 on the data-plane thread');
      assert.deepEqual(currentFsIds(), { fsuid: 0, fsgid: 0 });
      // As uid 1001 a root-only directory is off limits (file-system capabilities drop with fsuid).
      nfs.mkdirSync(join(sub, 'rootonly'), { mode: 0o700 });
      assert.throws(
        () => withFsCreds(1001, 1002, () => sys.mkdirat(sfd, 'rootonly/x', 0o700)),
        (e: unknown) => e instanceof SysError && e.errno === E.EACCES,
      );
      assert.deepEqual(currentFsIds(), { fsuid: 0, fsgid: 0 }, 'restored after a throw');
      // Supplementary groups of this thread are gone.
      const groups = nfs.readFileSync('/proc/thread-self/status', 'utf8').match(/^Groups:[ \t]*(.*)$/m)![1].trim();
      assert.equal(groups, '');
    } finally {
      sys.close(sfd);
    }
  });
});

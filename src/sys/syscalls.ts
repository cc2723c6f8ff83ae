// Layer: sys (the only layer that touches libc). Thin, throwing wrappers over the
// file syscalls the backends need. Imports only ./ffi.ts, ./errors.ts and node
// built-ins. Every failure throws SysError(errno, '<call>').
//
// Conventions:
// - Paths are `string` (koffi encodes UTF-8 + NUL) or a Buffer that already ends
//   in NUL (raw name bytes, see `cName`). A Buffer without the NUL is a bug.
// - Offsets and lengths are plain numbers (int64 in C; exact below 2^53).
// - Every function is declared with koffi once, at module load: no per-call parsing.
// - Buffers are passed as pointers to their own memory (no copies); when a call
//   takes (buf, bufOffset, len) the kernel reads or writes buf[bufOffset..+len).
import { constants as fsConstants } from 'node:fs';
import { constants as osConstants, endianness } from 'node:os';
import { SysError } from './errors.ts';
import { lastErrno, libc } from './ffi.ts';
import { decodeStatx, STATX_SIZE, type Stat } from './stat.ts';

export type { Stat } from './stat.ts';
export type PathArg = string | Buffer;

const constantsErrno = osConstants.errno;

if (endianness() !== 'LE') throw new Error('sys/: only little-endian hosts are supported (struct decoding)');

// ---------------------------------------------------------------- constants
// open(2) flags that differ between architectures come from Node's own table
// (built from the real headers); the rest are the same on every Linux arch.
export const O_RDONLY = fsConstants.O_RDONLY;
export const O_WRONLY = fsConstants.O_WRONLY;
export const O_RDWR = fsConstants.O_RDWR;
export const O_ACCMODE = 3;
export const O_CREAT = fsConstants.O_CREAT;
export const O_EXCL = fsConstants.O_EXCL;
export const O_NOCTTY = fsConstants.O_NOCTTY;
export const O_TRUNC = fsConstants.O_TRUNC;
export const O_APPEND = fsConstants.O_APPEND;
export const O_NONBLOCK = fsConstants.O_NONBLOCK;
export const O_DIRECTORY = fsConstants.O_DIRECTORY;
export const O_NOFOLLOW = fsConstants.O_NOFOLLOW;
export const O_DIRECT = fsConstants.O_DIRECT ?? 0o40000;
export const O_NOATIME = fsConstants.O_NOATIME ?? 0o1000000;
export const O_SYNC = fsConstants.O_SYNC;
export const O_DSYNC = fsConstants.O_DSYNC;
export const O_CLOEXEC = 0o2000000;
export const O_PATH = 0o10000000;
export const O_TMPFILE = 0o20000000 | O_DIRECTORY;

export const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_REMOVEDIR = 0x200;
export const AT_EACCESS = 0x200;
export const AT_SYMLINK_FOLLOW = 0x400;
export const AT_NO_AUTOMOUNT = 0x800;
export const AT_EMPTY_PATH = 0x1000;
export const AT_STATX_SYNC_AS_STAT = 0;

export const STATX_BASIC_STATS = 0x7ff;
export const STATX_MNT_ID = 0x1000;

export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;
export const RENAME_WHITEOUT = 4;

export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;

export const UTIME_NOW = (1 << 30) - 1;
export const UTIME_OMIT = (1 << 30) - 2;

export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;
/** Largest xattr value / name list the kernel handles (XATTR_SIZE_MAX, XATTR_LIST_MAX). */
export const XATTR_SIZE_MAX = 65536;

export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;
export const S_ISUID = 0o4000;
export const S_ISGID = 0o2000;

/** MAX_HANDLE_SZ from <fcntl.h>: the largest f_handle a file system returns. */
export const MAX_HANDLE_SZ = 128;
const F_DUPFD_CLOEXEC = 1030;

// ---------------------------------------------------------------- declarations
// Pointer arguments are `void *`/`const char *`: koffi passes a Buffer's (or
// typed array's) own memory, honouring its byteOffset. Numeric-address variants
// take `intptr_t` so a transport holding raw memory (mmapped guest RAM) can pass
// an address without building a view.
const c = {
  open: libc.func('int open(const char *path, int flags, uint32_t mode)'),
  openat: libc.func('int openat(int dirfd, const char *path, int flags, uint32_t mode)'),
  close: libc.func('int close(int fd)'),
  fcntl: libc.func('int fcntl(int fd, int cmd, int arg)'),
  statx: libc.func('int statx(int dirfd, const char *path, int flags, uint32_t mask, void *buf)'),
  readlinkat: libc.func('intptr_t readlinkat(int dirfd, const char *path, void *buf, size_t size)'),
  mkdirat: libc.func('int mkdirat(int dirfd, const char *path, uint32_t mode)'),
  mknodat: libc.func('int mknodat(int dirfd, const char *path, uint32_t mode, uint64_t dev)'),
  symlinkat: libc.func('int symlinkat(const char *target, int newdirfd, const char *linkpath)'),
  linkat: libc.func('int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)'),
  unlinkat: libc.func('int unlinkat(int dirfd, const char *path, int flags)'),
  renameat2: libc.func('int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, uint32_t flags)'),
  fchmodat: libc.func('int fchmodat(int dirfd, const char *path, uint32_t mode, int flags)'),
  fchmod: libc.func('int fchmod(int fd, uint32_t mode)'),
  fchownat: libc.func('int fchownat(int dirfd, const char *path, uint32_t owner, uint32_t group, int flags)'),
  utimensat: libc.func('int utimensat(int dirfd, const char *path, const void *times, int flags)'),
  futimens: libc.func('int futimens(int fd, const void *times)'),
  ftruncate: libc.func('int ftruncate(int fd, int64_t length)'),
  fallocate: libc.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)'),
  lseek: libc.func('int64_t lseek(int fd, int64_t offset, int whence)'),
  pread: libc.func('intptr_t pread(int fd, void *buf, size_t count, int64_t offset)'),
  pwrite: libc.func('intptr_t pwrite(int fd, const void *buf, size_t count, int64_t offset)'),
  preadPtr: libc.func('pread', 'intptr_t', ['int', 'intptr_t', 'size_t', 'int64_t']),
  pwritePtr: libc.func('pwrite', 'intptr_t', ['int', 'intptr_t', 'size_t', 'int64_t']),
  fsync: libc.func('int fsync(int fd)'),
  fdatasync: libc.func('int fdatasync(int fd)'),
  getdents64: libc.func('intptr_t getdents64(int fd, void *buf, size_t count)'),
  fgetxattr: libc.func('intptr_t fgetxattr(int fd, const char *name, void *value, size_t size)'),
  fsetxattr: libc.func('int fsetxattr(int fd, const char *name, const void *value, size_t size, int flags)'),
  flistxattr: libc.func('intptr_t flistxattr(int fd, void *list, size_t size)'),
  fremovexattr: libc.func('int fremovexattr(int fd, const char *name)'),
  getxattr: libc.func('intptr_t getxattr(const char *path, const char *name, void *value, size_t size)'),
  setxattr: libc.func('int setxattr(const char *path, const char *name, const void *value, size_t size, int flags)'),
  listxattr: libc.func('intptr_t listxattr(const char *path, void *list, size_t size)'),
  removexattr: libc.func('int removexattr(const char *path, const char *name)'),
  lgetxattr: libc.func('intptr_t lgetxattr(const char *path, const char *name, void *value, size_t size)'),
  fstatfs: libc.func('int fstatfs(int fd, void *buf)'),
  copyFileRange: libc.func('intptr_t copy_file_range(int fdIn, void *offIn, int fdOut, void *offOut, size_t len, uint32_t flags)'),
  nameToHandleAt: libc.func('int name_to_handle_at(int dirfd, const char *path, void *handle, void *mountId, int flags)'),
  openByHandleAt: libc.func('int open_by_handle_at(int mountFd, void *handle, int flags)'),
  faccessat: libc.func('int faccessat(int dirfd, const char *path, int mode, int flags)'),
  umask: libc.func('uint32_t umask(uint32_t mask)'),
  getrlimit: libc.func('int getrlimit(int resource, void *rlim)'),
};

function fail(syscall: string): never {
  throw SysError.quick(lastErrno(), syscall);
}

// Scratch memory for out-parameters. The data plane is one thread per isolate
// and every call here is synchronous, so one set per module instance is safe.
const statxScratch = Buffer.alloc(STATX_SIZE);
const timesScratch = Buffer.alloc(32);
const off64A = Buffer.alloc(8);
const off64B = Buffer.alloc(8);
const linkScratch = Buffer.alloc(4097);
const mountIdScratch = Buffer.alloc(4);

// ---------------------------------------------------------------- names

/**
 * Copies raw name bytes into `scratch` followed by a NUL and returns `scratch`
 * itself to pass as a path (the NUL ends the string; no view is built, views
 * cost more than the copy). The caller owns `scratch` (>= name.length + 1
 * bytes) and must not reuse it until the call that takes the name returned.
 * Throws EINVAL for a name holding a NUL byte (it would be cut short).
 */
export function cName(name: Uint8Array, scratch: Buffer): Buffer {
  const n = name.length;
  if (n + 1 > scratch.length) throw new SysError(constantsErrno.ENAMETOOLONG, 'name');
  for (let i = 0; i < n; i++) {
    const c = name[i];
    if (c === 0) throw new SysError(constantsErrno.EINVAL, 'name');
    scratch[i] = c;
  }
  scratch[n] = 0;
  return scratch;
}

// ---------------------------------------------------------------- fds

export function open(path: PathArg, flags: number, mode = 0): number {
  const fd: number = c.open(path, flags | O_CLOEXEC, mode);
  if (fd < 0) fail('open');
  return fd;
}

/** openat(2); O_CLOEXEC is always added (the daemon never leaks fds to children). */
export function openat(dirfd: number, path: PathArg, flags: number, mode = 0): number {
  const fd: number = c.openat(dirfd, path, flags | O_CLOEXEC, mode);
  if (fd < 0) fail('openat');
  return fd;
}

export function close(fd: number): void {
  // Linux releases the fd even when close reports EINTR/EIO: never retry.
  if (c.close(fd) < 0) {
    const e = lastErrno();
    if (e !== constantsErrno.EINTR) throw new SysError(e, 'close');
  }
}

/** dup with O_CLOEXEC (fcntl F_DUPFD_CLOEXEC). */
export function dup(fd: number): number {
  const r: number = c.fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (r < 0) fail('dup');
  return r;
}

export function umask(mask: number): number {
  return c.umask(mask);
}

const RLIMIT_NOFILE = 7; // the same on every Linux architecture we run on

/** The soft RLIMIT_NOFILE of this process (Node raises it to the hard limit at start). */
export function openFileLimit(): number {
  const b = Buffer.alloc(16);
  // SAFETY: struct rlimit is two 64-bit words (16 bytes).
  if (c.getrlimit(RLIMIT_NOFILE, b) < 0) fail('getrlimit');
  const cur = b.readBigUInt64LE(0);
  return cur > 0x7fffffffn ? 0x7fffffff : Number(cur);
}

// ---------------------------------------------------------------- stat

/**
 * statx(2) into a fresh plain object. `flags`: AT_EMPTY_PATH (with path '' on
 * any fd, O_PATH included), AT_SYMLINK_NOFOLLOW...
 */
export function statx(dirfd: number, path: PathArg, flags: number, mask = STATX_BASIC_STATS): Stat {
  // SAFETY: statxScratch is STATX_SIZE (256) bytes, the size of struct statx.
  if (c.statx(dirfd, path, flags, mask, statxScratch) < 0) fail('statx');
  return decodeStatx(statxScratch);
}

/**
 * statx(2) into a caller buffer (>= STATX_SIZE bytes) without decoding: for
 * hot paths that read a few fields with the accessors in ./stat.ts.
 */
export function statxInto(dirfd: number, path: PathArg, flags: number, mask: number, out: Buffer): void {
  // SAFETY: callers pass out.length >= STATX_SIZE; checked in debug by tests.
  if (c.statx(dirfd, path, flags, mask, out) < 0) fail('statx');
}

/** fstat of any fd, O_PATH included. */
export function fstat(fd: number): Stat {
  return statx(fd, '', AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
}

/** fstatat(dirfd, path, flags) with statx underneath (arch-independent layout). */
export function fstatat(dirfd: number, path: PathArg, flags: number): Stat {
  return statx(dirfd, path, flags);
}

// ---------------------------------------------------------------- names in directories

/** readlinkat(2): the target bytes verbatim (a fresh Buffer). path '' reads an O_PATH symlink fd. */
export function readlinkat(dirfd: number, path: PathArg): Buffer {
  // SAFETY: linkScratch.length bytes are writable; the kernel writes at most that many.
  const n: number = c.readlinkat(dirfd, path, linkScratch, linkScratch.length);
  if (n < 0) fail('readlinkat');
  return Buffer.from(linkScratch.subarray(0, n));
}

export function mkdirat(dirfd: number, path: PathArg, mode: number): void {
  if (c.mkdirat(dirfd, path, mode) < 0) fail('mkdirat');
}

/** dev in the glibc makedev() encoding (the same as the kernel's new_encode_dev for 32-bit values). */
export function mknodat(dirfd: number, path: PathArg, mode: number, dev: number): void {
  if (c.mknodat(dirfd, path, mode, dev) < 0) fail('mknodat');
}

export function symlinkat(target: PathArg, newdirfd: number, linkpath: PathArg): void {
  if (c.symlinkat(target, newdirfd, linkpath) < 0) fail('symlinkat');
}

/** flags: AT_EMPTY_PATH (oldpath '' on an fd; needs CAP_DAC_READ_SEARCH) or AT_SYMLINK_FOLLOW. */
export function linkat(olddirfd: number, oldpath: PathArg, newdirfd: number, newpath: PathArg, flags: number): void {
  if (c.linkat(olddirfd, oldpath, newdirfd, newpath, flags) < 0) fail('linkat');
}

/** flags: 0 or AT_REMOVEDIR. */
export function unlinkat(dirfd: number, path: PathArg, flags: number): void {
  if (c.unlinkat(dirfd, path, flags) < 0) fail('unlinkat');
}

/** flags: RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT. */
export function renameat2(olddirfd: number, oldpath: PathArg, newdirfd: number, newpath: PathArg, flags: number): void {
  if (c.renameat2(olddirfd, oldpath, newdirfd, newpath, flags) < 0) fail('renameat2');
}

// ---------------------------------------------------------------- attributes

export function fchmodat(dirfd: number, path: PathArg, mode: number, flags: number): void {
  if (c.fchmodat(dirfd, path, mode, flags) < 0) fail('fchmodat');
}

export function fchmod(fd: number, mode: number): void {
  if (c.fchmod(fd, mode) < 0) fail('fchmod');
}

/** uid/gid -1 leaves that id unchanged. AT_EMPTY_PATH works on O_PATH fds. */
export function fchownat(dirfd: number, path: PathArg, uid: number, gid: number, flags: number): void {
  // (uint32_t)-1 is the "unchanged" marker.
  if (c.fchownat(dirfd, path, uid >>> 0, gid >>> 0, flags) < 0) fail('fchownat');
}

/** A time for utimensat: seconds + nanoseconds, or 'now', or 'omit'. */
export type TimeSpec = { sec: number; nsec: number } | 'now' | 'omit';

function putTime(off: number, t: TimeSpec): void {
  if (t === 'now' || t === 'omit') {
    timesScratch.writeBigInt64LE(0n, off);
    timesScratch.writeBigInt64LE(BigInt(t === 'now' ? UTIME_NOW : UTIME_OMIT), off + 8);
  } else {
    timesScratch.writeBigInt64LE(BigInt(Math.trunc(t.sec)), off);
    timesScratch.writeBigInt64LE(BigInt(t.nsec), off + 8);
  }
}

/**
 * utimensat(2). For an O_PATH fd use its /proc/self/fd path (portable) or
 * AT_EMPTY_PATH with path '' (Linux 5.8+).
 */
export function utimensat(dirfd: number, path: PathArg, atime: TimeSpec, mtime: TimeSpec, flags: number): void {
  putTime(0, atime);
  putTime(16, mtime);
  // SAFETY: timesScratch holds struct timespec[2] (32 bytes).
  if (c.utimensat(dirfd, path, timesScratch, flags) < 0) fail('utimensat');
}

/** futimens(3): times of an open (non-O_PATH) fd. */
export function futimens(fd: number, atime: TimeSpec, mtime: TimeSpec): void {
  putTime(0, atime);
  putTime(16, mtime);
  // SAFETY: timesScratch holds struct timespec[2] (32 bytes).
  if (c.futimens(fd, timesScratch) < 0) fail('futimens');
}

// ---------------------------------------------------------------- file data

export function ftruncate(fd: number, length: number): void {
  if (c.ftruncate(fd, length) < 0) fail('ftruncate');
}

export function fallocate(fd: number, mode: number, offset: number, length: number): void {
  if (c.fallocate(fd, mode, offset, length) < 0) fail('fallocate');
}

export function lseek(fd: number, offset: number, whence: number): number {
  const r: number = c.lseek(fd, offset, whence);
  if (r < 0) fail('lseek');
  return r;
}

/**
 * Positions a directory fd at a getdents64 cookie (a d_off value, kept as the
 * bigint it is: ext4 hands out 63-bit hashes a JS number cannot carry).
 */
export function seekDir(fd: number, cookie: bigint): void {
  const r: number | bigint = c.lseek(fd, cookie, SEEK_SET);
  if (r < 0) fail('lseek');
}

/**
 * pread(2) of `len` bytes at file offset `pos` into buf[bufOffset..]. Returns
 * the count read (short at EOF). No copies: the kernel writes into buf.
 */
export function pread(fd: number, buf: Uint8Array, bufOffset: number, len: number, pos: number): number {
  if (bufOffset < 0 || len < 0 || bufOffset + len > buf.length) throw new RangeError('pread: range outside the buffer');
  // SAFETY: [bufOffset, bufOffset+len) lies inside buf (checked above); the view
  // shares buf's memory, which stays alive for the synchronous call.
  const dest = bufOffset === 0 ? buf : new Uint8Array(buf.buffer, buf.byteOffset + bufOffset, len);
  const n: number = c.pread(fd, dest, len, pos);
  if (n < 0) fail('pread');
  return n;
}

/** pwrite(2) of buf[bufOffset..bufOffset+len) at file offset `pos`. Returns the count written. */
export function pwrite(fd: number, buf: Uint8Array, bufOffset: number, len: number, pos: number): number {
  if (bufOffset < 0 || len < 0 || bufOffset + len > buf.length) throw new RangeError('pwrite: range outside the buffer');
  // SAFETY: as in pread.
  const src = bufOffset === 0 ? buf : new Uint8Array(buf.buffer, buf.byteOffset + bufOffset, len);
  const n: number = c.pwrite(fd, src, len, pos);
  if (n < 0) fail('pwrite');
  return n;
}

/**
 * pread into raw memory at `address` (e.g. mmapped guest RAM).
 * SAFETY: the caller guarantees [address, address+len) is mapped and writable
 * for the duration of the call.
 */
export function preadPtr(fd: number, address: number, len: number, pos: number): number {
  const n: number = c.preadPtr(fd, address, len, pos);
  if (n < 0) fail('pread');
  return n;
}

/** pwrite from raw memory. SAFETY: [address, address+len) must be mapped and readable. */
export function pwritePtr(fd: number, address: number, len: number, pos: number): number {
  const n: number = c.pwritePtr(fd, address, len, pos);
  if (n < 0) fail('pwrite');
  return n;
}

export function fsync(fd: number): void {
  if (c.fsync(fd) < 0) fail('fsync');
}

export function fdatasync(fd: number): void {
  if (c.fdatasync(fd) < 0) fail('fdatasync');
}

/**
 * copy_file_range(2) with explicit offsets (the fds' own positions are left
 * alone). Returns the count copied.
 */
export function copyFileRange(fdIn: number, offIn: number, fdOut: number, offOut: number, len: number, flags = 0): number {
  off64A.writeBigInt64LE(BigInt(offIn));
  off64B.writeBigInt64LE(BigInt(offOut));
  // SAFETY: off64A/off64B are 8-byte loff_t cells the kernel updates in place.
  const n: number = c.copyFileRange(fdIn, off64A, fdOut, off64B, len, flags);
  if (n < 0) fail('copy_file_range');
  return n;
}

// ---------------------------------------------------------------- directories

/** getdents64(2) into buf; returns the bytes filled (0 at the end). Parse with ./dirent.ts. */
export function getdents64(fd: number, buf: Buffer): number {
  // SAFETY: the kernel writes at most buf.length bytes.
  const n: number = c.getdents64(fd, buf, buf.length);
  if (n < 0) fail('getdents64');
  return n;
}

// ---------------------------------------------------------------- xattrs
// The f* variants need a real fd (not O_PATH). For O_PATH fds use the path
// variants on `/proc/self/fd/N` (see procFdPath), which reach the exact inode.

const xattrScratch = Buffer.alloc(XATTR_SIZE_MAX);

function xattrResult(n: number, call: string): Buffer {
  if (n < 0) fail(call);
  return Buffer.from(xattrScratch.subarray(0, n));
}

/** The whole value (a fresh Buffer). */
export function fgetxattr(fd: number, name: PathArg): Buffer {
  // SAFETY: xattrScratch is XATTR_SIZE_MAX bytes, the kernel's own cap on a value.
  return xattrResult(c.fgetxattr(fd, name, xattrScratch, xattrScratch.length), 'fgetxattr');
}

export function fsetxattr(fd: number, name: PathArg, value: Uint8Array, flags: number): void {
  if (c.fsetxattr(fd, name, value, value.length, flags) < 0) fail('fsetxattr');
}

/** The NUL-separated name list (a fresh Buffer). */
export function flistxattr(fd: number): Buffer {
  return xattrResult(c.flistxattr(fd, xattrScratch, xattrScratch.length), 'flistxattr');
}

export function fremovexattr(fd: number, name: PathArg): void {
  if (c.fremovexattr(fd, name) < 0) fail('fremovexattr');
}

/** getxattr(2) (follows a final symlink or /proc magic link). */
export function getxattr(path: PathArg, name: PathArg): Buffer {
  return xattrResult(c.getxattr(path, name, xattrScratch, xattrScratch.length), 'getxattr');
}

/** lgetxattr(2): does not follow a final symlink. */
export function lgetxattr(path: PathArg, name: PathArg): Buffer {
  return xattrResult(c.lgetxattr(path, name, xattrScratch, xattrScratch.length), 'lgetxattr');
}

export function setxattr(path: PathArg, name: PathArg, value: Uint8Array, flags: number): void {
  if (c.setxattr(path, name, value, value.length, flags) < 0) fail('setxattr');
}

export function listxattr(path: PathArg): Buffer {
  return xattrResult(c.listxattr(path, xattrScratch, xattrScratch.length), 'listxattr');
}

export function removexattr(path: PathArg, name: PathArg): void {
  if (c.removexattr(path, name) < 0) fail('removexattr');
}

/** The /proc path that reaches exactly the inode behind `fd` (magic link), e.g. for O_PATH fds. */
export function procFdPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

// ---------------------------------------------------------------- file systems

/** struct statfs, decoded (x86_64/aarch64 layout: every field a 64-bit word). */
export interface StatFsResult {
  type: number;
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  namelen: number;
  frsize: number;
  flags: number;
}

const statfsScratch = Buffer.alloc(120);

function u64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off) + buf.readUInt32LE(off + 4) * 0x100000000;
}

/** fstatfs(2); works on O_PATH fds. */
export function fstatfs(fd: number): StatFsResult {
  // SAFETY: statfsScratch is sizeof(struct statfs) = 120 bytes on 64-bit Linux.
  if (c.fstatfs(fd, statfsScratch) < 0) fail('fstatfs');
  const b = statfsScratch;
  return {
    type: u64(b, 0), bsize: u64(b, 8), blocks: u64(b, 16), bfree: u64(b, 24), bavail: u64(b, 32),
    files: u64(b, 40), ffree: u64(b, 48), namelen: u64(b, 64), frsize: u64(b, 72), flags: u64(b, 80),
  };
}

/** statfs(2) of a path. */
export function statfs(path: string): StatFsResult {
  const fd = open(path, O_PATH);
  try {
    return fstatfs(fd);
  } finally {
    close(fd);
  }
}

// ---------------------------------------------------------------- file handles

/** A file handle from name_to_handle_at: `bytes` is the whole struct file_handle. */
export interface FileHandle {
  mountId: number;
  bytes: Buffer;
}

const handleScratch = Buffer.alloc(8 + MAX_HANDLE_SZ);

/**
 * name_to_handle_at(2). With path '' and AT_EMPTY_PATH, the handle of the fd's
 * own inode (O_PATH fds included). Throws EOPNOTSUPP where the file system has
 * no handles.
 */
export function nameToHandleAt(dirfd: number, path: PathArg, flags: number): FileHandle {
  handleScratch.writeUInt32LE(MAX_HANDLE_SZ, 0);
  // SAFETY: handleScratch has room for MAX_HANDLE_SZ handle bytes after the
  // 8-byte header, as announced in handle_bytes; mountIdScratch is an int.
  if (c.nameToHandleAt(dirfd, path, handleScratch, mountIdScratch, flags) < 0) fail('name_to_handle_at');
  const len = 8 + handleScratch.readUInt32LE(0);
  return { mountId: mountIdScratch.readInt32LE(0), bytes: Buffer.from(handleScratch.subarray(0, len)) };
}

/** open_by_handle_at(2) (needs CAP_DAC_READ_SEARCH). O_CLOEXEC is added. */
export function openByHandleAt(mountFd: number, handle: Buffer, flags: number): number {
  // SAFETY: handle is a whole struct file_handle as returned by nameToHandleAt.
  const fd: number = c.openByHandleAt(mountFd, handle, flags | O_CLOEXEC);
  if (fd < 0) fail('open_by_handle_at');
  return fd;
}

// ---------------------------------------------------------------- permissions

/** faccessat(2); with AT_EACCESS the check uses the thread's fs ids (see creds.ts). */
export function faccessat(dirfd: number, path: PathArg, mode: number, flags: number): void {
  if (c.faccessat(dirfd, path, mode, flags) < 0) fail('faccessat');
}

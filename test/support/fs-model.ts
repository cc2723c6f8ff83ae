// Test support: a differential model for file systems. A seeded generator
// makes random path-level operation sequences; `runDifferential` applies each
// one to several adapters (a host directory through node:fs, any FileSystem
// backend driven the way the kernel drives it, later a FUSE mount) and requires
// identical results (errno or value) and identical final trees.
//
// Adapter semantics (the same for every adapter, so results can be compared):
// - Paths are relative to the adapter's root, '/'-separated, no '.'/'..'.
// - Intermediate symlinks are followed (targets are relative); the final
//   component is never followed, except by readdir. Ops that open the final
//   component (write/read/truncate/fallocate) answer ELOOP on a symlink and
//   ENXIO on a FIFO/socket/device (the model never does I/O on special files).
// - write opens O_WRONLY|O_CREAT (+O_APPEND/O_TRUNC/O_EXCL), mode 0644 under the
//   process umask (0022 is what the tests set), writes once, closes.
// - Errors are thrown as anything carrying `code` ('ENOENT') or a positive `errno`.
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants as fsc,
  fstatSync,
  ftruncateSync,
  linkSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  readSync,
  readdirSync,
  readlinkSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { constants as osc } from 'node:os';
import { join } from 'node:path';
import { ROOT_ID, type DirEntry, type FileSystem, type RequestContext } from '../../src/fuse/filesystem.ts';
import { libc, lastErrno } from '../../src/sys/ffi.ts';

// ---- errors --------------------------------------------------------------------

const errnoNames = new Map<number, string>(Object.entries(osc.errno).map(([k, v]) => [v as number, k]));

/** 'ENOENT' for any error carrying a code or positive errno; rethrows anything else. */
export function errnoCode(err: unknown): string {
  const e = err as { code?: unknown; errno?: unknown };
  if (typeof e?.code === 'string' && /^E[A-Z0-9]+$/.test(e.code)) return e.code;
  if (typeof e?.errno === 'number' && e.errno > 0) return errnoNames.get(e.errno) ?? `errno ${e.errno}`;
  throw err;
}

function fail(name: keyof typeof osc.errno): never {
  throw Object.assign(new Error(name), { code: name });
}

// ---- the adapter interface -----------------------------------------------------

export type FileKind = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'chr' | 'blk';

export interface ModelStat {
  kind: FileKind;
  /** Permission bits incl. setuid/setgid/sticky (mode & 07777). */
  perm: number;
  /** Regular files and symlinks only (directory sizes are fs-specific); 0 otherwise. */
  size: number;
  nlink: number;
  uid: number;
  gid: number;
  /** Compared only as "which paths share an inode", never by value. */
  ino: number;
}

export interface WriteOpts {
  append?: boolean;
  truncate?: boolean;
  exclusive?: boolean;
}

export interface FsAdapter {
  readonly name: string;
  mkdir(path: string, mode: number): void;
  rmdir(path: string): void;
  unlink(path: string): void;
  mkfifo(path: string, mode: number): void;
  /** Returns the count written. With `append` the offset is ignored. */
  write(path: string, offset: number, data: Buffer, opts: WriteOpts): number;
  read(path: string, offset: number, length: number): Buffer;
  truncate(path: string, size: number): void;
  fallocate(path: string, offset: number, length: number, mode: number): void;
  rename(from: string, to: string, flags: number): void;
  link(existing: string, newPath: string): void;
  symlink(target: string, path: string): void;
  readlink(path: string): string;
  chmod(path: string, mode: number): void;
  chown(path: string, uid: number, gid: number): void;
  lstat(path: string): ModelStat;
  /** Names without '.' and '..', sorted. Follows a final symlink. */
  readdir(path: string): string[];
  /** lseek(SEEK_DATA=3 / SEEK_HOLE=4) on a fresh read-only open; EISDIR for directories. */
  seek(path: string, offset: number, whence: number): number;
  setxattr(path: string, name: string, value: Buffer, flags: number): void;
  getxattr(path: string, name: string): Buffer;
  /** Names, sorted. */
  listxattr(path: string): string[];
  removexattr(path: string, name: string): void;
}

function kindOf(mode: number): FileKind {
  switch (mode & fsc.S_IFMT) {
    case fsc.S_IFREG:
      return 'file';
    case fsc.S_IFDIR:
      return 'dir';
    case fsc.S_IFLNK:
      return 'symlink';
    case fsc.S_IFIFO:
      return 'fifo';
    case fsc.S_IFSOCK:
      return 'socket';
    case fsc.S_IFCHR:
      return 'chr';
    default:
      return 'blk';
  }
}

// ---- host directory adapter (node:fs, plus libc for what node lacks) -------------

const AT_FDCWD = -100;
const renameat2 = libc.func('int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)');
const mkfifoC = libc.func('int mkfifo(const char *path, uint32_t mode)');
const fallocateC = libc.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)');
const lsetxattrC = libc.func('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)');
const lgetxattrC = libc.func('intptr_t lgetxattr(const char *path, const char *name, void *value, size_t size)');
const llistxattrC = libc.func('intptr_t llistxattr(const char *path, void *list, size_t size)');
const lremovexattrC = libc.func('int lremovexattr(const char *path, const char *name)');
const lseekC = libc.func('int64_t lseek(int fd, int64_t offset, int whence)');

const setfsuidC = libc.func('int setfsuid(uint32_t fsuid)');
const setfsgidC = libc.func('int setfsgid(uint32_t fsgid)');

/**
 * Runs `fn` with this thread's file-system ids set to uid/gid and no
 * supplementary groups, so the host kernel checks permissions as that user
 * (node:fs sync calls run on the calling thread). Needs root; restores
 * everything afterwards. setfsuid drops the fs capabilities (DAC override,
 * CHOWN, FOWNER, FSETID) but not CAP_SYS_ADMIN: avoid trusted.* xattrs here.
 */
export function asHostUser<T>(uid: number, gid: number, fn: () => T): T {
  if (process.getuid?.() !== 0) throw new Error('asHostUser needs root (setfsuid/setgroups)');
  const groups = process.getgroups?.() ?? [];
  process.setgroups?.([]);
  setfsgidC(gid);
  setfsuidC(uid);
  try {
    return fn();
  } finally {
    setfsuidC(0);
    setfsgidC(0);
    process.setgroups?.(groups);
  }
}

function check(rc: number | bigint): number {
  const n = Number(rc);
  if (n < 0) {
    const errno = lastErrno();
    throw Object.assign(new Error(errnoNames.get(errno) ?? String(errno)), { errno });
  }
  return n;
}

/** Opens for I/O the way every adapter must: no following, no blocking on FIFOs, ENXIO on specials. */
function hostOpen(path: string, flags: number, mode = 0o644): number {
  const fd = openSync(path, flags | fsc.O_NOFOLLOW | fsc.O_NONBLOCK, mode);
  const st = fstatSync(fd);
  if (!st.isFile() && !st.isDirectory()) {
    closeSync(fd);
    fail('ENXIO');
  }
  return fd;
}

export interface HostAdapterOptions {
  /**
   * The umask creations run under (default 0o022), set around each creating
   * call: a backend in the same thread may have changed the thread's own
   * (passthrough sets 0 on its data-plane thread).
   */
  umask?: number;
}

export function hostAdapter(root: string, options: HostAdapterOptions = {}): FsAdapter {
  const p = (path: string) => join(root, path);
  const mask = options.umask ?? 0o022;
  const masked = <T>(fn: () => T): T => {
    const old = process.umask(mask);
    try {
      return fn();
    } finally {
      process.umask(old);
    }
  };
  return {
    name: `host:${root}`,
    mkdir: (path, mode) => masked(() => mkdirSync(p(path), { mode })),
    rmdir: (path) => rmdirSync(p(path)),
    unlink: (path) => unlinkSync(p(path)),
    mkfifo: (path, mode) => masked(() => void check(mkfifoC(p(path), mode))),
    write(path, offset, data, opts) {
      let flags = fsc.O_WRONLY | fsc.O_CREAT;
      if (opts.append) flags |= fsc.O_APPEND;
      if (opts.truncate) flags |= fsc.O_TRUNC;
      if (opts.exclusive) flags |= fsc.O_EXCL;
      const fd = masked(() => hostOpen(p(path), flags));
      try {
        return writeSync(fd, data, 0, data.length, opts.append ? null : offset);
      } finally {
        closeSync(fd);
      }
    },
    read(path, offset, length) {
      const fd = hostOpen(p(path), fsc.O_RDONLY);
      try {
        const buf = Buffer.alloc(length);
        const n = readSync(fd, buf, 0, length, offset);
        return buf.subarray(0, n);
      } finally {
        closeSync(fd);
      }
    },
    truncate(path, size) {
      const fd = hostOpen(p(path), fsc.O_WRONLY);
      try {
        ftruncateSync(fd, size);
      } finally {
        closeSync(fd);
      }
    },
    fallocate(path, offset, length, mode) {
      const fd = hostOpen(p(path), fsc.O_WRONLY);
      try {
        check(fallocateC(fd, mode, offset, length));
      } finally {
        closeSync(fd);
      }
    },
    rename: (from, to, flags) => void check(renameat2(AT_FDCWD, p(from), AT_FDCWD, p(to), flags)),
    link: (existing, newPath) => linkSync(p(existing), p(newPath)),
    symlink: (target, path) => symlinkSync(target, p(path)),
    readlink: (path) => readlinkSync(p(path), 'utf8'),
    chmod(path, mode) {
      if (lstatSync(p(path)).isSymbolicLink()) fail('ELOOP');
      chmodSync(p(path), mode);
    },
    chown: (path, uid, gid) => lchownSync(p(path), uid, gid),
    lstat(path) {
      const st = lstatSync(p(path));
      const kind = kindOf(st.mode);
      return {
        kind,
        perm: st.mode & 0o7777,
        size: kind === 'file' || kind === 'symlink' ? st.size : 0,
        nlink: st.nlink,
        uid: st.uid,
        gid: st.gid,
        ino: st.ino,
      };
    },
    readdir: (path) => readdirSync(p(path)).sort(),
    seek(path, offset, whence) {
      const fd = hostOpen(p(path), fsc.O_RDONLY);
      try {
        if (fstatSync(fd).isDirectory()) fail('EISDIR');
        return check(lseekC(fd, offset, whence));
      } finally {
        closeSync(fd);
      }
    },
    setxattr: (path, name, value, flags) => void check(lsetxattrC(p(path), name, value, value.length, flags)),
    getxattr(path, name) {
      const buf = Buffer.alloc(65536);
      const n = check(lgetxattrC(p(path), name, buf, buf.length));
      return buf.subarray(0, n);
    },
    listxattr(path) {
      const buf = Buffer.alloc(65536);
      const n = check(llistxattrC(p(path), buf, buf.length));
      return splitNames(buf.subarray(0, n));
    },
    removexattr: (path, name) => void check(lremovexattrC(p(path), name)),
  };
}

function splitNames(list: Buffer): string[] {
  return list
    .toString('latin1')
    .split('\0')
    .filter((s) => s.length > 0)
    .sort();
}

// ---- FileSystem adapter: drives a backend as the kernel would ---------------------

export interface FileSystemAdapterOptions {
  name?: string;
  ctx?: RequestContext;
  /**
   * The caller's umask, applied as the kernel does without FUSE_DONT_MASK: the
   * mode sent is already masked, and the umask travels along. Default 0o022.
   */
  umask?: number;
  /** Entries per readdir call: small, to exercise cookies. Default 5. */
  readdirBatch?: number;
}

/**
 * Path-level ops on an inode-level FileSystem. Every lookup the adapter makes
 * is forgotten again when the op ends, so a backend's lookup counts return to
 * where they were: a leak there shows up as nodes that are never freed.
 */
export function fileSystemAdapter(fs: FileSystem, options: FileSystemAdapterOptions = {}): FsAdapter {
  const ctx = options.ctx ?? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, pid: process.pid };
  const umask = options.umask ?? 0o022;
  const batch = options.readdirBatch ?? 5;
  const need = <T>(fn: T | undefined, what: string): T => {
    if (!fn) fail('ENOSYS');
    void what;
    return fn;
  };
  let held: number[] = [];
  const release = () => {
    for (const id of held) fs.forget?.(id, 1);
    held = [];
  };
  const lookup = (parent: number, name: string) => {
    const e = need(fs.lookup, 'lookup').call(fs, ctx, parent, Buffer.from(name));
    held.push(e.nodeid);
    return e;
  };
  const S_IFMT = fsc.S_IFMT;

  /** Walks `path` from the root; follows symlinks in the middle (and at the end with `follow`). */
  function resolve(path: string, follow: boolean, depth = 0, start = ROOT_ID): { nodeid: number; mode: number } {
    const parts = path.split('/').filter((s) => s.length > 0);
    let cur = { nodeid: start, mode: fsc.S_IFDIR };
    let dir = start;
    for (let i = 0; i < parts.length; i++) {
      if ((cur.mode & S_IFMT) !== fsc.S_IFDIR) fail('ENOTDIR');
      dir = cur.nodeid;
      const e = lookup(dir, parts[i]!);
      cur = { nodeid: e.nodeid, mode: e.attr.mode };
      const last = i === parts.length - 1;
      if ((cur.mode & S_IFMT) === fsc.S_IFLNK && (!last || follow)) {
        if (depth >= 40) fail('ELOOP');
        const target = need(fs.readlink, 'readlink').call(fs, ctx, cur.nodeid).toString();
        cur = resolve(target, true, depth + 1, target.startsWith('/') ? ROOT_ID : dir);
      }
    }
    return cur;
  }
  /** filename_create(): the kernel looks the new name up and answers EEXIST itself before asking the backend. */
  function mustNotExist(parent: number, name: Buffer): void {
    try {
      lookup(parent, name.toString());
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw err;
    }
    fail('EEXIST');
  }
  function resolveParent(path: string): { parent: number; name: Buffer } {
    const i = path.lastIndexOf('/');
    const dir = i < 0 ? { nodeid: ROOT_ID, mode: fsc.S_IFDIR } : resolve(path.slice(0, i), true);
    if ((dir.mode & S_IFMT) !== fsc.S_IFDIR) fail('ENOTDIR');
    // link_path_walk() checks search permission on the parent before it hands
    // back the last component, so rename(a/x, b/y) fails on a/ before b/ is walked.
    fs.access?.(ctx, dir.nodeid, 1);
    return { parent: dir.nodeid, name: Buffer.from(path.slice(i + 1)) };
  }
  /**
   * FIFOs, sockets and devices are opened by the kernel itself, never by the
   * backend: the permission check (may_open) and then the adapter's ENXIO.
   */
  function special(nodeid: number, mode: number, mask: number): void {
    const type = mode & S_IFMT;
    if (type === fsc.S_IFREG || type === fsc.S_IFDIR || type === fsc.S_IFLNK) return;
    fs.access?.(ctx, nodeid, mask);
    fail('ENXIO');
  }
  /** The final node for I/O: ELOOP on symlinks, as O_NOFOLLOW. `mask`: R_OK/W_OK the open needs. */
  function ioNode(path: string, mask: number): number {
    const n = resolve(path, false);
    if ((n.mode & S_IFMT) === fsc.S_IFLNK) fail('ELOOP');
    special(n.nodeid, n.mode, mask);
    return n.nodeid;
  }
  function withOpen<T>(nodeid: number, flags: number, fn: (fh: number) => T): T {
    const { fh } = need(fs.open, 'open').call(fs, ctx, nodeid, flags);
    try {
      return fn(fh);
    } finally {
      fs.flush?.(ctx, nodeid, fh, 0n);
      fs.release?.(ctx, nodeid, fh, flags);
    }
  }
  const op =
    <A extends unknown[], R>(fn: (...args: A) => R) =>
    (...args: A): R => {
      try {
        return fn(...args);
      } finally {
        release();
      }
    };

  return {
    name: options.name ?? 'filesystem',
    mkdir: op((path: string, mode: number) => {
      const { parent, name } = resolveParent(path);
      mustNotExist(parent, name);
      held.push(need(fs.mkdir, 'mkdir').call(fs, ctx, parent, name, mode & ~umask, umask).nodeid);
    }),
    rmdir: op((path: string) => {
      const { parent, name } = resolveParent(path);
      need(fs.rmdir, 'rmdir').call(fs, ctx, parent, name);
    }),
    unlink: op((path: string) => {
      const { parent, name } = resolveParent(path);
      need(fs.unlink, 'unlink').call(fs, ctx, parent, name);
    }),
    mkfifo: op((path: string, mode: number) => {
      const { parent, name } = resolveParent(path);
      mustNotExist(parent, name);
      held.push(need(fs.mknod, 'mknod').call(fs, ctx, parent, name, fsc.S_IFIFO | (mode & ~umask), 0, umask).nodeid);
    }),
    write: op((path: string, offset: number, data: Buffer, opts: WriteOpts) => {
      const { parent, name } = resolveParent(path);
      let flags = fsc.O_WRONLY;
      if (opts.append) flags |= fsc.O_APPEND;
      if (opts.truncate) flags |= fsc.O_TRUNC;
      // The kernel's open path: look up first; CREATE only for a missing name.
      let existing: { nodeid: number; mode: number } | undefined;
      try {
        const e = lookup(parent, name.toString());
        existing = { nodeid: e.nodeid, mode: e.attr.mode };
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err;
      }
      let nodeid: number;
      let fh: number;
      if (existing) {
        if (opts.exclusive) fail('EEXIST');
        const type = existing.mode & S_IFMT;
        if (type === fsc.S_IFLNK) fail('ELOOP');
        if (type === fsc.S_IFDIR) fail('EISDIR');
        special(existing.nodeid, existing.mode, 2);
        nodeid = existing.nodeid;
        fh = need(fs.open, 'open').call(fs, ctx, nodeid, flags).fh;
      } else {
        const r = need(fs.create, 'create').call(fs, ctx, parent, name, 0o644 & ~umask, flags | fsc.O_CREAT | (opts.exclusive ? fsc.O_EXCL : 0), umask);
        held.push(r.entry.nodeid);
        nodeid = r.entry.nodeid;
        fh = r.open.fh;
      }
      try {
        // O_APPEND: the kernel passes the current size as the offset.
        const at = opts.append ? need(fs.getattr, 'getattr').call(fs, ctx, nodeid, fh).attr.size : offset;
        return data.length === 0 ? 0 : need(fs.write, 'write').call(fs, ctx, nodeid, fh, at, data, 0);
      } finally {
        fs.flush?.(ctx, nodeid, fh, 0n);
        fs.release?.(ctx, nodeid, fh, flags);
      }
    }),
    read: op((path: string, offset: number, length: number) => {
      const nodeid = ioNode(path, 4);
      return withOpen(nodeid, fsc.O_RDONLY, (fh) => {
        const buf = Buffer.alloc(length);
        const n = need(fs.read, 'read').call(fs, ctx, nodeid, fh, offset, length, buf);
        return buf.subarray(0, n);
      });
    }),
    truncate: op((path: string, size: number) => {
      const nodeid = ioNode(path, 2);
      withOpen(nodeid, fsc.O_WRONLY, (fh) => {
        need(fs.setattr, 'setattr').call(fs, ctx, nodeid, { valid: (1 << 3) | (1 << 6), size, fh });
      });
    }),
    fallocate: op((path: string, offset: number, length: number, mode: number) => {
      const nodeid = ioNode(path, 2);
      withOpen(nodeid, fsc.O_WRONLY, (fh) => need(fs.fallocate, 'fallocate').call(fs, ctx, nodeid, fh, offset, length, mode));
    }),
    rename: op((from: string, to: string, flags: number) => {
      const a = resolveParent(from);
      const b = resolveParent(to);
      need(fs.rename, 'rename').call(fs, ctx, a.parent, a.name, b.parent, b.name, flags);
    }),
    link: op((existing: string, newPath: string) => {
      const src = resolve(existing, false);
      const { parent, name } = resolveParent(newPath);
      mustNotExist(parent, name);
      held.push(need(fs.link, 'link').call(fs, ctx, src.nodeid, parent, name).nodeid);
    }),
    symlink: op((target: string, path: string) => {
      const { parent, name } = resolveParent(path);
      mustNotExist(parent, name);
      held.push(need(fs.symlink, 'symlink').call(fs, ctx, parent, name, Buffer.from(target)).nodeid);
    }),
    readlink: op((path: string) => need(fs.readlink, 'readlink').call(fs, ctx, resolve(path, false).nodeid).toString()),
    chmod: op((path: string, mode: number) => {
      const n = resolve(path, false);
      if ((n.mode & S_IFMT) === fsc.S_IFLNK) fail('ELOOP');
      need(fs.setattr, 'setattr').call(fs, ctx, n.nodeid, { valid: 1 << 0, mode });
    }),
    chown: op((path: string, uid: number, gid: number) => {
      const n = resolve(path, false);
      need(fs.setattr, 'setattr').call(fs, ctx, n.nodeid, { valid: (1 << 1) | (1 << 2), uid, gid });
    }),
    lstat: op((path: string): ModelStat => {
      const n = resolve(path, false);
      const a = need(fs.getattr, 'getattr').call(fs, ctx, n.nodeid, undefined).attr;
      const kind = kindOf(a.mode);
      return {
        kind,
        perm: a.mode & 0o7777,
        size: kind === 'file' || kind === 'symlink' ? a.size : 0,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        ino: a.ino,
      };
    }),
    readdir: op((path: string) => {
      const n = resolve(path, true);
      const { fh } = need(fs.opendir, 'opendir').call(fs, ctx, n.nodeid, fsc.O_RDONLY);
      const names: string[] = [];
      try {
        let off = 0;
        for (;;) {
          let got = 0;
          need(fs.readdir, 'readdir').call(fs, ctx, n.nodeid, fh, off, {
            add: (e: DirEntry) => {
              if (got === batch) return false;
              got++;
              off = e.off;
              const s = e.name.toString();
              if (s !== '.' && s !== '..') names.push(s);
              return true;
            },
          });
          if (got < batch) break;
        }
      } finally {
        fs.releasedir?.(ctx, n.nodeid, fh);
      }
      return names.sort();
    }),
    seek: op((path: string, offset: number, whence: number) => {
      const n = resolve(path, false);
      if ((n.mode & S_IFMT) === fsc.S_IFLNK) fail('ELOOP');
      // Directory offsets are the kernel's business (FUSE never forwards them):
      // open it (for the permission check) and answer EISDIR, as the host adapter does.
      if ((n.mode & S_IFMT) === fsc.S_IFDIR) {
        const d = need(fs.opendir, 'opendir').call(fs, ctx, n.nodeid, fsc.O_RDONLY);
        fs.releasedir?.(ctx, n.nodeid, d.fh);
        fail('EISDIR');
      }
      special(n.nodeid, n.mode, 4);
      return withOpen(n.nodeid, fsc.O_RDONLY, (fh) => need(fs.lseek, 'lseek').call(fs, ctx, n.nodeid, fh, offset, whence));
    }),
    setxattr: op((path: string, name: string, value: Buffer, flags: number) => {
      need(fs.setxattr, 'setxattr').call(fs, ctx, resolve(path, false).nodeid, Buffer.from(name), value, flags);
    }),
    getxattr: op((path: string, name: string) =>
      need(fs.getxattr, 'getxattr').call(fs, ctx, resolve(path, false).nodeid, Buffer.from(name)),
    ),
    listxattr: op((path: string) => splitNames(need(fs.listxattr, 'listxattr').call(fs, ctx, resolve(path, false).nodeid))),
    removexattr: op((path: string, name: string) => {
      need(fs.removexattr, 'removexattr').call(fs, ctx, resolve(path, false).nodeid, Buffer.from(name));
    }),
  };
}

// ---- the generator -------------------------------------------------------------

/** mulberry32: small, fast, good enough to pick ops; the same seed gives the same run everywhere. */
export class Prng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

export type Op =
  | { op: 'mkdir'; path: string; mode: number }
  | { op: 'rmdir'; path: string }
  | { op: 'unlink'; path: string }
  | { op: 'mkfifo'; path: string; mode: number }
  | { op: 'write'; path: string; offset: number; length: number; fill: number; opts: WriteOpts }
  | { op: 'read'; path: string; offset: number; length: number }
  | { op: 'truncate'; path: string; size: number }
  | { op: 'fallocate'; path: string; offset: number; length: number; mode: number }
  | { op: 'rename'; from: string; to: string; flags: number }
  | { op: 'link'; existing: string; path: string }
  | { op: 'symlink'; target: string; path: string }
  | { op: 'readlink'; path: string }
  | { op: 'chmod'; path: string; mode: number }
  | { op: 'chown'; path: string; uid: number; gid: number }
  | { op: 'lstat'; path: string }
  | { op: 'readdir'; path: string }
  | { op: 'seek'; path: string; offset: number; whence: number }
  | { op: 'setxattr'; path: string; name: string; length: number; fill: number; flags: number }
  | { op: 'getxattr'; path: string; name: string }
  | { op: 'listxattr'; path: string }
  | { op: 'removexattr'; path: string; name: string };

export interface GenerateOptions {
  /** Include chown (needs root on the host). Default: true when running as root. */
  chown?: boolean;
  /** Include xattr ops (the host fs must support user.* xattrs). Default true. */
  xattrs?: boolean;
  /** Include fallocate (mode 0, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE). Default true. */
  fallocate?: boolean;
  /** Include FIFOs. Default true. */
  fifos?: boolean;
  /**
   * Include lseek SEEK_DATA/SEEK_HOLE (4 KiB-block hole granularity). Default:
   * on for even seeds. Where seeks are on, fallocate only punches holes: ext4
   * reports fallocated (unwritten) space as hole or data depending on what the
   * page cache holds, which no backend can mirror, so odd seeds cover the
   * allocating modes (0, KEEP_SIZE) without seeks.
   */
  seek?: boolean;
  /** Names to build paths from; a small pool makes collisions (and errno cases) common. */
  names?: readonly string[];
  /** Maximum path depth. Default 3. */
  depth?: number;
  /** xattr names to use. Default user.a, user.b, user.long.name.x, trusted.t. */
  xattrNames?: readonly string[];
}

const WEIGHTS: Array<[Op['op'], number]> = [
  ['write', 20],
  ['mkdir', 12],
  ['rename', 10],
  ['read', 8],
  ['lstat', 8],
  ['unlink', 7],
  ['readdir', 6],
  ['rmdir', 5],
  ['truncate', 5],
  ['link', 4],
  ['symlink', 4],
  ['chmod', 4],
  ['setxattr', 4],
  ['fallocate', 3],
  ['readlink', 2],
  ['seek', 3],
  ['chown', 2],
  ['getxattr', 2],
  ['listxattr', 2],
  ['removexattr', 2],
  ['mkfifo', 1],
];

const LENGTHS = [0, 1, 7, 100, 4096, 65535, 65536, 65537, 70000, 150000];

/** A deterministic op sequence for `seed`. */
export function generateOps(seed: number, count: number, options: GenerateOptions = {}): Op[] {
  const rng = new Prng(seed);
  const names = options.names ?? ['a', 'b', 'c', 'd'];
  const depth = options.depth ?? 3;
  const chown = options.chown ?? process.getuid?.() === 0;
  const seeks = options.seek ?? seed % 2 === 0;
  const enabled = WEIGHTS.filter(([op]) => {
    if (op === 'chown') return chown;
    if (op.endsWith('xattr')) return options.xattrs ?? true;
    if (op === 'fallocate') return options.fallocate ?? true;
    if (op === 'mkfifo') return options.fifos ?? true;
    if (op === 'seek') return seeks;
    return true;
  });
  const total = enabled.reduce((s, [, w]) => s + w, 0);
  const path = () => {
    const n = 1 + rng.int(depth);
    const parts: string[] = [];
    for (let i = 0; i < n; i++) parts.push(rng.pick(names));
    return parts.join('/');
  };
  const offset = () => {
    const r = rng.int(10);
    if (r < 4) return 0;
    if (r < 9) return rng.int(200000);
    return 4_000_000 + rng.int(1_000_000); // far out: a sparse hole in front
  };
  const mode = () => rng.pick([0o644, 0o755, 0o600, 0o700, 0o777, 0o1777, 0o2755, 0o4755, 0o4711, 0o000, 0o444]);
  const xnames = options.xattrNames ?? ['user.a', 'user.b', 'user.long.name.x', 'trusted.t'];
  const xname = () => rng.pick(xnames);
  const ops: Op[] = [];
  for (let i = 0; i < count; i++) {
    let r = rng.int(total);
    let kind: Op['op'] = enabled[0]![0];
    for (const [op, w] of enabled) {
      if (r < w) {
        kind = op;
        break;
      }
      r -= w;
    }
    switch (kind) {
      case 'mkdir':
        ops.push({ op: kind, path: path(), mode: rng.pick([0o755, 0o700, 0o777, 0o2775, 0o1777]) });
        break;
      case 'rmdir':
      case 'unlink':
      case 'readlink':
      case 'lstat':
      case 'readdir':
      case 'listxattr':
        ops.push({ op: kind, path: path() });
        break;
      case 'mkfifo':
        ops.push({ op: kind, path: path(), mode: 0o644 });
        break;
      case 'write': {
        const r2 = rng.int(10);
        const opts: WriteOpts = { append: r2 === 0, truncate: r2 === 1, exclusive: r2 === 2 };
        ops.push({ op: kind, path: path(), offset: offset(), length: rng.pick(LENGTHS), fill: rng.int(256), opts });
        break;
      }
      case 'read':
        ops.push({ op: kind, path: path(), offset: offset(), length: rng.pick([1, 100, 4096, 65536, 200000]) });
        break;
      case 'seek':
        ops.push({ op: kind, path: path(), offset: rng.pick([0, 0, 4095, 4096, 65536, rng.int(300000)]), whence: rng.pick([3, 4]) });
        break;
      case 'truncate':
        ops.push({ op: kind, path: path(), size: rng.pick([0, 1, 5000, 65536, 100000, rng.int(300000)]) });
        break;
      case 'fallocate':
        ops.push({
          op: kind,
          path: path(),
          offset: rng.pick([0, 4096, 65536, rng.int(200000)]),
          length: rng.pick([1, 4096, 65536, 131072, 1 + rng.int(200000)]),
          // 0, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE: what ext4, tmpfs and our backends all do
          mode: seeks ? 3 : rng.pick([0, 1, 3]),
        });
        break;
      case 'rename':
        ops.push({ op: kind, from: path(), to: path(), flags: rng.pick([0, 0, 0, 1, 2]) });
        break;
      case 'link':
        ops.push({ op: kind, existing: path(), path: path() });
        break;
      case 'symlink':
        ops.push({ op: kind, target: path(), path: path() });
        break;
      case 'chmod':
        ops.push({ op: kind, path: path(), mode: mode() });
        break;
      case 'chown':
        ops.push({ op: kind, path: path(), uid: rng.pick([0, 1000, 1001]), gid: rng.pick([0, 1000, 1001]) });
        break;
      case 'setxattr':
        ops.push({ op: kind, path: path(), name: xname(), length: rng.pick([0, 1, 50, 200]), fill: rng.int(256), flags: rng.pick([0, 0, 1, 2]) });
        break;
      case 'getxattr':
      case 'removexattr':
        ops.push({ op: kind, path: path(), name: xname() });
        break;
    }
  }
  return ops;
}

/** Data for a write/setxattr: a fill byte with a position stamp every 4 KiB, so misplaced copies differ. */
function payload(length: number, fill: number): Buffer {
  const buf = Buffer.alloc(length, fill);
  for (let i = 0; i + 4 <= length; i += 4096) buf.writeUInt32LE((i ^ (fill * 0x01010101)) >>> 0, i);
  return buf;
}

/** What an op gave: a value (canonicalised for comparison) or an errno name. */
export type Outcome = { ok: unknown } | { err: string };

function digest(buf: Buffer): string {
  return `${buf.length}:${createHash('sha1').update(buf).digest('hex').slice(0, 16)}`;
}

export function applyOp(a: FsAdapter, op: Op): Outcome {
  try {
    switch (op.op) {
      case 'mkdir':
        return { ok: a.mkdir(op.path, op.mode) ?? null };
      case 'rmdir':
        return { ok: a.rmdir(op.path) ?? null };
      case 'unlink':
        return { ok: a.unlink(op.path) ?? null };
      case 'mkfifo':
        return { ok: a.mkfifo(op.path, op.mode) ?? null };
      case 'write':
        return { ok: a.write(op.path, op.offset, payload(op.length, op.fill), op.opts) };
      case 'read':
        return { ok: digest(a.read(op.path, op.offset, op.length)) };
      case 'truncate':
        return { ok: a.truncate(op.path, op.size) ?? null };
      case 'fallocate':
        return { ok: a.fallocate(op.path, op.offset, op.length, op.mode) ?? null };
      case 'rename':
        return { ok: a.rename(op.from, op.to, op.flags) ?? null };
      case 'link':
        return { ok: a.link(op.existing, op.path) ?? null };
      case 'symlink':
        return { ok: a.symlink(op.target, op.path) ?? null };
      case 'readlink':
        return { ok: a.readlink(op.path) };
      case 'chmod':
        return { ok: a.chmod(op.path, op.mode) ?? null };
      case 'chown':
        return { ok: a.chown(op.path, op.uid, op.gid) ?? null };
      case 'lstat': {
        const { ino: _ino, ...rest } = a.lstat(op.path);
        return { ok: rest };
      }
      case 'readdir':
        return { ok: a.readdir(op.path) };
      case 'seek':
        return { ok: a.seek(op.path, op.offset, op.whence) };
      case 'setxattr':
        return { ok: a.setxattr(op.path, op.name, payload(op.length, op.fill), op.flags) ?? null };
      case 'getxattr':
        return { ok: digest(a.getxattr(op.path, op.name)) };
      case 'listxattr':
        return { ok: a.listxattr(op.path) };
      case 'removexattr':
        return { ok: a.removexattr(op.path, op.name) ?? null };
    }
  } catch (err) {
    return { err: errnoCode(err) };
  }
}

// ---- snapshots -------------------------------------------------------------------

export interface SnapshotEntry {
  stat: Omit<ModelStat, 'ino'>;
  /** Other paths with the same inode (hard links), sorted. */
  links: string[];
  content?: string;
  target?: string;
  xattrs?: Record<string, string>;
}

/** The whole tree under the adapter's root, keyed by path ('' is the root). */
export function snapshot(a: FsAdapter, options: { xattrs?: boolean } = {}): Map<string, SnapshotEntry> {
  const out = new Map<string, SnapshotEntry>();
  const inos = new Map<number, string[]>();
  const visit = (path: string) => {
    const st = a.lstat(path);
    const { ino, ...stat } = st;
    const entry: SnapshotEntry = { stat, links: [] };
    (inos.get(ino) ?? inos.set(ino, []).get(ino)!).push(path);
    if (st.kind === 'file') entry.content = digest(a.read(path, 0, st.size));
    if (st.kind === 'symlink') entry.target = a.readlink(path);
    if ((options.xattrs ?? true) && (st.kind === 'file' || st.kind === 'dir')) {
      const x: Record<string, string> = {};
      for (const name of a.listxattr(path)) x[name] = digest(a.getxattr(path, name));
      entry.xattrs = x;
    }
    out.set(path, entry);
    if (st.kind === 'dir') for (const name of a.readdir(path)) visit(path ? `${path}/${name}` : name);
  };
  visit('');
  for (const paths of inos.values()) {
    if (paths.length < 2) continue;
    for (const p of paths) out.get(p)!.links = paths.filter((q) => q !== p).sort();
  }
  return out;
}

/** Distinct inodes in a snapshot-able tree (for leak checks on backends). */
export function countInodes(a: FsAdapter): number {
  const inos = new Set<number>();
  const visit = (path: string) => {
    const st = a.lstat(path);
    inos.add(st.ino);
    if (st.kind === 'dir') for (const name of a.readdir(path)) visit(path ? `${path}/${name}` : name);
  };
  visit('');
  return inos.size;
}

export interface DifferentialResult {
  /** Ops applied before stopping. */
  applied: number;
  /** Human-readable differences; empty means the adapters agreed on everything. */
  mismatches: string[];
  /** errno name -> count over the run (the first adapter's view): shows the run reached error paths. */
  errnos: Map<string, number>;
}

/**
 * Applies `ops` to every adapter in turn, stopping at the first op whose
 * outcomes differ, then (if all agreed, and unless `compareFinal` is false)
 * compares the final trees.
 */
export function runDifferential(
  adapters: FsAdapter[],
  ops: Op[],
  options: { xattrs?: boolean; deadline?: number; compareFinal?: boolean } = {},
): DifferentialResult {
  const mismatches: string[] = [];
  const errnos = new Map<string, number>();
  let applied = 0;
  for (const op of ops) {
    if (options.deadline !== undefined && Date.now() > options.deadline) break;
    const outcomes = adapters.map((a) => applyOp(a, op));
    applied++;
    const first = JSON.stringify(outcomes[0]);
    const o0 = outcomes[0]!;
    if ('err' in o0) errnos.set(o0.err, (errnos.get(o0.err) ?? 0) + 1);
    for (let i = 1; i < adapters.length; i++) {
      const other = JSON.stringify(outcomes[i]);
      if (other !== first) {
        mismatches.push(`op #${applied - 1} ${JSON.stringify(op)}: ${adapters[0]!.name} -> ${first}, ${adapters[i]!.name} -> ${other}`);
      }
    }
    if (mismatches.length) return { applied, mismatches, errnos };
  }
  if (options.compareFinal ?? true) mismatches.push(...compareTrees(adapters, options));
  return { applied, mismatches, errnos };
}

/** Differences between the adapters' whole trees (empty when equal). */
export function compareTrees(adapters: FsAdapter[], options: { xattrs?: boolean } = {}): string[] {
  const mismatches: string[] = [];
  const snaps = adapters.map((a) => snapshot(a, options));
  const s0 = snaps[0]!;
  for (let i = 1; i < snaps.length; i++) {
    const si = snaps[i]!;
    for (const path of new Set([...s0.keys(), ...si.keys()])) {
      const x = JSON.stringify(s0.get(path));
      const y = JSON.stringify(si.get(path));
      if (x !== y) mismatches.push(`final tree at '${path}': ${adapters[0]!.name} ${x} vs ${adapters[i]!.name} ${y}`);
    }
  }
  return mismatches;
}

// Layer: fs (passthrough backend). Shares a host directory through the
// FileSystem contract. Imports sys/ (syscalls, creds, stat, dirent), fuse/
// (contract, errors, abi constants) and its own helpers; never the server.
//
// Security model (each point is tested in test/unit/fs/passthrough-escape.test.ts):
// - Inodes are held by O_PATH fd or file handle (inode-store.ts), never by a
//   host path. Every name is resolved with one *at() call relative to a held
//   directory fd, O_NOFOLLOW/AT_SYMLINK_NOFOLLOW, and names '.', '..', '' or
//   holding '/' or NUL are refused: nothing can climb above the shared
//   directory, whatever renames race with us.
// - Symlinks are never followed here: readlink returns the target verbatim and
//   the client's kernel resolves it against its own mount.
// - Only regular files and directories are ever opened for I/O: a device node,
//   FIFO or socket gets EBADF (as virtiofsd answers; CVE-2020-35517). Files are
//   reopened through /proc/self/fd/N, which reaches exactly the held inode.
// - New inodes (create, mknod, mkdir, symlink, a rename's whiteout; link too,
//   for its permission check) are made under the caller's fsuid/fsgid (sys/creds.ts), on a thread
//   that dropped its supplementary groups, so the host kernel strips S_ISGID
//   from a file whose group the caller is not in (CVE-2022-0358) and applies
//   the caller's permissions on the parent directory.
// - readonly: every mutating op answers EROFS.
//
// Extended attributes: with options.xattr false, every *xattr op answers
// ENOSYS, which the Linux client remembers (it then answers EOPNOTSUPP itself
// without asking again), as virtiofsd does without --xattr.
import { constants } from 'node:os';
import {
  FATTR_ATIME,
  FATTR_ATIME_NOW,
  FATTR_FH,
  FATTR_GID,
  FATTR_MODE,
  FATTR_MTIME,
  FATTR_MTIME_NOW,
  FATTR_SIZE,
  FATTR_UID,
  FOPEN_CACHE_DIR,
  FOPEN_DIRECT_IO,
  FOPEN_KEEP_CACHE,
  FOPEN_NOFLUSH,
  FUSE_ASYNC_READ,
  FUSE_ATOMIC_O_TRUNC,
  FUSE_AUTO_INVAL_DATA,
  FUSE_BIG_WRITES,
  FUSE_CACHE_SYMLINKS,
  FUSE_DONT_MASK,
  FUSE_DO_READDIRPLUS,
  FUSE_EXPORT_SUPPORT,
  FUSE_FLOCK_LOCKS,
  FUSE_HANDLE_KILLPRIV,
  FUSE_HANDLE_KILLPRIV_V2,
  FUSE_HAS_INODE_DAX,
  FUSE_NO_OPENDIR_SUPPORT,
  FUSE_NO_OPEN_SUPPORT,
  FUSE_PARALLEL_DIROPS,
  FUSE_POSIX_ACL,
  FUSE_POSIX_LOCKS,
  FUSE_READDIRPLUS_AUTO,
  FUSE_SECURITY_CTX,
  FUSE_SETXATTR_EXT,
  FUSE_SUBMOUNTS,
  FUSE_WRITEBACK_CACHE,
} from '../../fuse/abi.ts';
import { errnoOf, FsError } from '../../fuse/errors.ts';
import {
  ROOT_ID,
  type Attr,
  type AttrReply,
  type DirEntry,
  type DirPlusSink,
  type DirSink,
  type Entry,
  type FileSystem,
  type InitInfo,
  type OpenReply,
  type RequestContext,
  type SetAttrRequest,
  type StatFs,
} from '../../fuse/filesystem.ts';
import { prepareThread, withFsCreds } from '../../sys/creds.ts';
import { raiseOpenFileLimit } from '../../sys/rlimit.ts';
import { direntName, parseDirentInto } from '../../sys/dirent.ts';
import { encodeDev, STATX_SIZE, statxDev, statxIno } from '../../sys/stat.ts';
import * as sys from '../../sys/syscalls.ts';
import { lendMappableFd } from './dax-mapping.ts';
import { DirStream, HandleTable, OpenHandle } from './handle-table.ts';
import { Inode, InodeStore } from './inode-store.ts';

const E = constants.errno;

export interface PassthroughOptions {
  readonly: boolean;
  /** never: no kernel caching (timeouts 0, FOPEN_DIRECT_IO); auto: 1 s; always: 1 day + KEEP_CACHE. */
  cache: 'never' | 'auto' | 'always';
  xattr: boolean;
  /** Ask for FUSE_WRITEBACK_CACHE (the kernel then batches writes and may read write-only files). */
  writeback: boolean;
  /**
   * Evictable O_PATH fds kept open at most (default: the open-file limit,
   * which the default raises towards 2^20 first, less an eighth, between 256
   * and 65536; at least 16). See inode-store.ts and defaultMaxPathFds().
   */
  maxOpenPathFds?: number;
  /**
   * Hold inodes by file handle where the file system allows it (default true).
   * false holds every known inode by its O_PATH fd (no LRU, no bound), which
   * is also what happens on file systems without handles (sysfs, some FUSE).
   */
  fileHandles?: boolean;
}

// FUSE 7.39 (Linux 6.6+): MAP_SHARED mmap of FOPEN_DIRECT_IO files. Not in
// the 7.38 header src/fuse/abi.ts follows; the bit only changes the client's
// mmap policy, not any wire format, so it is safe at any negotiated minor.
const FUSE_DIRECT_IO_ALLOW_MMAP = 1n << 36n;

/**
 * Default O_PATH fd budget: RLIMIT_NOFILE (raised first, as far as we may,
 * towards WANT_FD_LIMIT) less an eighth (at least 256) kept for open files,
 * sockets and the like, within [256, 65536]. Open files may still take more:
 * on EMFILE the LRU gives fds back (see openat below). 65536 held inodes pin
 * some 100 MiB of host inode and dentry cache at worst; a client that knows
 * more than that costs a reopen by handle per miss, not an error. A budget
 * smaller than a directory walked in order misses on every entry (LRU), which
 * is why it is not a small fraction of the limit.
 */
function defaultMaxPathFds(): number {
  const limit = raiseOpenFileLimit(WANT_FD_LIMIT);
  return Math.max(256, Math.min(65536, limit - Math.max(256, Math.floor(limit / 8))));
}
/** The open-file limit asked for (C virtiofsd asks about as much: ~1M). */
const WANT_FD_LIMIT = 1 << 20;
const MIN_MAX_PATH_FDS = 16;
// getdents64 batch: 64 KiB holds some 1,600 entries of short names, so a
// pass over a large directory makes few syscalls; the kernel's READDIR asks
// for at most 32 KiB (Node's scandir), or a page (virtio-fs guests).
const DIRENT_BUF_SIZE = 64 * 1024;
const MAX_SPARE_DIR_BUFS = 4;
const NAME_MAX = 255;
const PATH_MAX = 4096;

// Flags we never pass on from the client: creation is only done by create(),
// O_DIRECT would need aligned buffers we do not have (the client's cache
// bypass is the kernel's business), and no controlling ttys. O_NOFOLLOW was
// already applied by the client's own lookup; on our /proc/self/fd/N reopen it
// would refuse the magic link itself (ELOOP for every open(O_NOFOLLOW)).
const OPEN_STRIP = sys.O_CREAT | sys.O_EXCL | sys.O_NOCTTY | sys.O_DIRECT | sys.O_PATH | sys.O_NOFOLLOW;

// INIT flags this backend never wants whatever the server offers: no lock ops
// (the client kernel then does flock/POSIX locks locally), no ACL/killpriv
// semantics (the client kernel clears suid bits with an explicit SETATTR),
// no export ops (no LOOKUP of '..'), no DAX inode flags, no submount marks.
const NEVER_WANT =
  FUSE_POSIX_LOCKS | FUSE_FLOCK_LOCKS | FUSE_HANDLE_KILLPRIV | FUSE_HANDLE_KILLPRIV_V2 | FUSE_POSIX_ACL |
  FUSE_EXPORT_SUPPORT | FUSE_DONT_MASK | FUSE_NO_OPEN_SUPPORT | FUSE_NO_OPENDIR_SUPPORT | FUSE_SETXATTR_EXT |
  FUSE_SECURITY_CTX | FUSE_HAS_INODE_DAX | FUSE_SUBMOUNTS;

// statfs f_type of local file systems, where close(2) reports nothing and
// flushes nothing: FLUSH would be a round trip for nothing (FOPEN_NOFLUSH).
// Network and FUSE file systems are not listed, so they keep their FLUSH.
const LOCAL_FS_TYPES = new Set([
  0xef53, // ext2/3/4
  0x58465342, // xfs
  0x9123683e, // btrfs
  0x01021994, // tmpfs
  0x858458f6, // ramfs
  0xf2f52010, // f2fs
  0xca451a4e, // bcachefs
  0x2fc12fc1, // zfs
  0x794c7630, // overlayfs
]);

const DOT = 0x2e;
const SLASH = 0x2f;

function isDotOrDotDot(name: Buffer): boolean {
  return name[0] === DOT && (name.length === 1 || (name.length === 2 && name[1] === DOT));
}

function erofs(): FsError {
  return new FsError(E.EROFS);
}

export class PassthroughFs implements FileSystem {
  private readonly store: InodeStore;
  private readonly handles = new HandleTable();
  private readonly procFd: number;
  private readonly timeout: number;
  private readonly openFlags: number;
  private readonly dirOpenFlags: number;
  // Scratch: two names (rename/link take two), a symlink target, a statx result.
  private readonly nameA = Buffer.alloc(NAME_MAX + 1);
  private readonly nameB = Buffer.alloc(NAME_MAX + 1);
  private readonly targetBuf = Buffer.alloc(PATH_MAX);
  private readonly sb = Buffer.alloc(STATX_SIZE);
  // Word views of sb (Buffer.alloc gives it its own, aligned ArrayBuffer).
  private readonly sb32 = new Uint32Array(this.sb.buffer, this.sb.byteOffset, STATX_SIZE / 4);
  private readonly sbS32 = new Int32Array(this.sb.buffer, this.sb.byteOffset, STATX_SIZE / 4);
  private destroyed = false;
  /** getdents64 calls made so far (tests hold readdir to one pass over the host directory). */
  private getdentsCalls = 0;
  /** st_dev -> whether files there skip FLUSH (see LOCAL_FS_TYPES). */
  private readonly noFlushByDev = new Map<number, boolean>();
  /** getdents64 buffers of released directory handles, reused by the next opendir. */
  private readonly spareDirBufs: Buffer[] = [];

  constructor(sharedDir: string, readonly options: PassthroughOptions) {
    const maxLive = Math.max(MIN_MAX_PATH_FDS, options.maxOpenPathFds ?? defaultMaxPathFds());
    // The shared directory's own path is resolved once, here, by the operator's
    // choice; from then on everything is relative to this fd.
    const rootFd = sys.open(sharedDir, sys.O_PATH | sys.O_DIRECTORY);
    try {
      this.procFd = sys.open('/proc/self/fd', sys.O_PATH | sys.O_DIRECTORY);
    } catch (err) {
      sys.close(rootFd);
      throw err;
    }
    this.store = new InodeStore(rootFd, maxLive, options.fileHandles ?? true);
    this.timeout = options.cache === 'never' ? 0 : options.cache === 'auto' ? 1 : 86400;
    this.openFlags = options.cache === 'never' ? FOPEN_DIRECT_IO : options.cache === 'always' ? FOPEN_KEEP_CACHE : 0;
    this.dirOpenFlags = options.cache === 'always' ? FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE : 0;
  }

  /** True when inodes are held by file handles with a bounded fd LRU (false: one fd per inode). */
  get usesFileHandles(): boolean {
    return this.store.useHandles;
  }

  /** Diagnostics for tests: known node ids, O_PATH fds (live, budget, reopened from handles, shed on EMFILE), open handles. */
  get stats(): {
    inodes: number; liveFds: number; maxLiveFds: number; reopens: number; shedFds: number; handles: number; getdentsCalls: number;
  } {
    const st = this.store;
    return {
      inodes: st.size, liveFds: st.liveFds, maxLiveFds: st.maxLive, reopens: st.reopens, shedFds: st.shedFds,
      handles: this.handles.size, getdentsCalls: this.getdentsCalls,
    };
  }

  /** The lookup count the backend holds for a node (tests check the contract with it). */
  lookupCount(nodeid: number): number {
    try {
      return this.store.get(nodeid).lookups;
    } catch {
      return 0;
    }
  }

  init(info: InitInfo): bigint {
    let want = info.want | FUSE_ASYNC_READ | FUSE_PARALLEL_DIROPS | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO |
      FUSE_BIG_WRITES | FUSE_ATOMIC_O_TRUNC;
    // cache=never opens with FOPEN_DIRECT_IO, which otherwise makes the client
    // refuse shared mmap (ENODEV); the host file is coherent, so allow it.
    if (this.options.cache === 'never') want |= FUSE_DIRECT_IO_ALLOW_MMAP;
    if (this.options.cache === 'auto') want |= FUSE_AUTO_INVAL_DATA;
    if (this.options.cache === 'always') want |= FUSE_CACHE_SYMLINKS;
    if (this.options.writeback && !this.options.readonly) want |= FUSE_WRITEBACK_CACHE;
    else want &= ~FUSE_WRITEBACK_CACHE;
    // With zero timeouts the client could not keep what readdirplus gives it,
    // and each entry would cost us a lookup (and it a FORGET): plain readdir
    // (as virtiofsd does for cache=none).
    if (this.options.cache === 'never') want &= ~(FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO);
    return want & ~NEVER_WANT & info.capable;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const h of this.handles.values()) {
      try {
        sys.close(h.fd);
      } catch {
        /* nothing left to release */
      }
    }
    this.handles.clear();
    this.store.closeAll();
    try {
      sys.close(this.procFd);
    } catch {
      /* ignore */
    }
  }

  // ------------------------------------------------------------ helpers

  /**
   * The fuse_attr of the statx in this.sb, read through 32-bit views of it
   * (struct statx is little-endian words at fixed offsets, see sys/stat.ts):
   * a tenth of the cost of decodeStatx + a copy, on every LOOKUP, GETATTR and
   * READDIRPLUS entry.
   */
  private attrOfSb(): Attr {
    const u = this.sb32;
    const s = this.sbS32;
    return {
      ino: u[8] + u[9] * 0x100000000,
      size: u[10] + u[11] * 0x100000000,
      blocks: u[12] + u[13] * 0x100000000,
      atime: u[16] + s[17] * 0x100000000,
      mtime: u[28] + s[29] * 0x100000000,
      ctime: u[24] + s[25] * 0x100000000,
      atimensec: u[18],
      mtimensec: u[30],
      ctimensec: u[26],
      mode: u[7] & 0xffff,
      nlink: u[4],
      uid: u[5],
      gid: u[6],
      rdev: encodeDev(u[32], u[33]),
      blksize: u[1],
      flags: 0,
    };
  }

  private entryOf(inode: Inode): Entry {
    // this.sb holds the statx of `inode` (filled by lookupAt).
    return {
      nodeid: inode.nodeid,
      generation: inode.generation,
      entry_valid: this.timeout,
      entry_valid_nsec: 0,
      attr_valid: this.timeout,
      attr_valid_nsec: 0,
      attr: this.attrOfSb(),
    };
  }

  private attrReply(fd: number): AttrReply {
    sys.statxInto(fd, '', sys.AT_EMPTY_PATH | sys.AT_SYMLINK_NOFOLLOW, sys.STATX_BASIC_STATS, this.sb);
    return { attr_valid: this.timeout, attr_valid_nsec: 0, attr: this.attrOfSb() };
  }

  /**
   * Validates a name from the client (not empty, not '.' or '..', no '/' or
   * NUL, at most NAME_MAX bytes) and copies it NUL-terminated into `scratch`,
   * which is returned to pass as the path. One pass, no allocation.
   */
  private cname(name: Buffer, scratch: Buffer): Buffer {
    const n = name.length;
    if (n === 0 || isDotOrDotDot(name)) throw new FsError(E.EINVAL, 'bad name');
    if (n > NAME_MAX) throw new FsError(E.ENAMETOOLONG);
    for (let i = 0; i < n; i++) {
      const c = name[i];
      if (c === SLASH || c === 0) throw new FsError(E.EINVAL, 'bad name');
      scratch[i] = c;
    }
    scratch[n] = 0;
    return scratch;
  }

  private dirFd(nodeid: number): number {
    const inode = this.store.get(nodeid);
    if (inode.type !== sys.S_IFDIR) throw new FsError(E.ENOTDIR);
    return this.store.fdOf(inode);
  }

  /**
   * Resolves one name under `dirfd` without following symlinks and counts a
   * lookup. Leaves the inode's statx in this.sb.
   */
  private lookupAt(dirfd: number, cname: Buffer): Inode {
    const sb = this.sb;
    sys.statxInto(dirfd, cname, sys.AT_SYMLINK_NOFOLLOW, sys.STATX_BASIC_STATS, sb);
    // Fast path: a known inode with a live fd. Its fd pins the host inode, so
    // a matching (dev, ino) is that very inode: no open needed.
    const known = this.store.find(statxDev(sb), statxIno(sb));
    if (known !== undefined && known.fd >= 0) {
      known.lookups++;
      return known;
    }
    const fd = this.openat(dirfd, cname, sys.O_PATH | sys.O_NOFOLLOW);
    return this.adopt(fd);
  }

  /** Takes a fresh O_PATH fd, binds it to its Inode, counts a lookup; this.sb = its statx. */
  private adopt(fd: number): Inode {
    const sb = this.sb;
    try {
      sys.statxInto(fd, '', sys.AT_EMPTY_PATH | sys.AT_SYMLINK_NOFOLLOW, sys.STATX_BASIC_STATS, sb);
    } catch (err) {
      sys.close(fd);
      throw err;
    }
    const inode = this.store.attach(fd, statxDev(sb), statxIno(sb), sb.readUInt16LE(28) & sys.S_IFMT);
    inode.lookups++;
    return inode;
  }

  /**
   * openat(2) that, when the process is out of fds (EMFILE), gives some of
   * the O_PATH LRU back and tries once more: open files and the O_PATH
   * budget share the open-file limit (InodeStore.shed never closes the most
   * recently used fd, so a dirfd just taken from the store stays valid).
   */
  private openat(dirfd: number, path: sys.PathArg, flags: number, mode = 0): number {
    try {
      return sys.openat(dirfd, path, flags, mode);
    } catch (err) {
      if (!this.store.shedFor(err)) throw err;
      return sys.openat(dirfd, path, flags, mode);
    }
  }

  /** Undoes one lookup that could not be handed to the kernel. */
  private unlookup(inode: Inode): void {
    this.store.forget(inode.nodeid, 1);
  }

  /** Reopens an inode for I/O through /proc/self/fd (only regular files and directories). */
  private reopen(inode: Inode, flags: number): number {
    if (inode.type !== sys.S_IFREG && inode.type !== sys.S_IFDIR) {
      // Never open device nodes, FIFOs or sockets (CVE-2020-35517); a symlink
      // cannot be opened without following it.
      throw new FsError(inode.type === sys.S_IFLNK ? E.ELOOP : E.EBADF, 'not a regular file or directory');
    }
    const pfd = this.store.fdOf(inode);
    return this.openat(this.procFd, String(pfd), flags & ~OPEN_STRIP);
  }

  /** open_flags for a file opened as `fd` on inode's file system. */
  private fileOpenFlags(inode: Inode, fd: number): number {
    let local = this.noFlushByDev.get(inode.dev);
    if (local === undefined) {
      local = LOCAL_FS_TYPES.has(sys.fstatfs(fd).type);
      this.noFlushByDev.set(inode.dev, local);
    }
    return local ? this.openFlags | FOPEN_NOFLUSH : this.openFlags;
  }

  private handleFd(fh: number): number {
    return this.handles.get(fh).fd;
  }

  // ------------------------------------------------------------ names

  lookup(_ctx: RequestContext, parent: number, name: Buffer): Entry {
    // '..' (even at the root) and '.' are never resolved on the host: ENOENT.
    if (name.length === 0 || isDotOrDotDot(name)) throw new FsError(E.ENOENT);
    const pfd = this.dirFd(parent);
    const inode = this.lookupAt(pfd, this.cname(name, this.nameA));
    return this.entryOf(inode);
  }

  forget(nodeid: number, nlookup: number): void {
    if (nodeid === ROOT_ID) return;
    this.store.forget(nodeid, nlookup);
  }

  getattr(_ctx: RequestContext, nodeid: number, fh: number | undefined): AttrReply {
    const h = this.handles.peek(fh);
    if (h !== undefined && h.inode.nodeid === nodeid) return this.attrReply(h.fd);
    return this.attrReply(this.store.fdOf(this.store.get(nodeid)));
  }

  setattr(_ctx: RequestContext, nodeid: number, set: SetAttrRequest): AttrReply {
    if (this.options.readonly) throw erofs();
    const inode = this.store.get(nodeid);
    const v = set.valid;
    const h = (v & FATTR_FH) !== 0 ? this.handles.peek(set.fh) : undefined;
    const hfd = h !== undefined && h.inode === inode ? h.fd : -1;

    if ((v & (FATTR_UID | FATTR_GID)) !== 0) {
      const uid = (v & FATTR_UID) !== 0 && set.uid !== undefined ? set.uid : -1;
      const gid = (v & FATTR_GID) !== 0 && set.gid !== undefined ? set.gid : -1;
      const fd = hfd >= 0 ? hfd : this.store.fdOf(inode);
      sys.fchownat(fd, '', uid, gid, sys.AT_EMPTY_PATH | sys.AT_SYMLINK_NOFOLLOW);
    }
    let mode = (v & FATTR_MODE) !== 0 && set.mode !== undefined ? set.mode & 0o7777 : -1;
    if (mode < 0 && set.killSuidGid === true && inode.type === sys.S_IFREG) {
      // Clear setuid, and setgid when group-executable, as a write by an
      // unprivileged user would.
      const cur = sys.fstat(hfd >= 0 ? hfd : this.store.fdOf(inode)).mode;
      let next = cur & ~sys.S_ISUID;
      if ((cur & 0o010) !== 0) next &= ~sys.S_ISGID;
      if (next !== cur) mode = next & 0o7777;
    }
    if (mode >= 0) {
      if (hfd >= 0) sys.fchmod(hfd, mode);
      // Through the magic link: lands on the inode itself, symlinks included
      // (where Linux answers EOPNOTSUPP, as it does natively).
      else sys.fchmodat(sys.AT_FDCWD, sys.procFdPath(this.store.fdOf(inode)), mode, 0);
    }
    if ((v & FATTR_SIZE) !== 0 && set.size !== undefined) {
      if (hfd >= 0) sys.ftruncate(hfd, set.size);
      else {
        if (inode.type === sys.S_IFDIR) throw new FsError(E.EISDIR);
        if (inode.type !== sys.S_IFREG) throw new FsError(E.EINVAL);
        const fd = this.reopen(inode, sys.O_WRONLY);
        try {
          sys.ftruncate(fd, set.size);
        } finally {
          sys.close(fd);
        }
      }
    }
    const atimeNow = set.atimeNow === true || (v & FATTR_ATIME_NOW) !== 0;
    const mtimeNow = set.mtimeNow === true || (v & FATTR_MTIME_NOW) !== 0;
    const setA = (v & FATTR_ATIME) !== 0 || atimeNow;
    const setM = (v & FATTR_MTIME) !== 0 || mtimeNow;
    if (setA || setM) {
      const at: sys.TimeSpec = !setA ? 'omit' : atimeNow ? 'now' : { sec: set.atime ?? 0, nsec: set.atimensec ?? 0 };
      const mt: sys.TimeSpec = !setM ? 'omit' : mtimeNow ? 'now' : { sec: set.mtime ?? 0, nsec: set.mtimensec ?? 0 };
      if (hfd >= 0) sys.futimens(hfd, at, mt);
      else sys.utimensat(sys.AT_FDCWD, sys.procFdPath(this.store.fdOf(inode)), at, mt, 0);
    }
    return hfd >= 0 ? this.attrReply(hfd) : this.attrReply(this.store.fdOf(inode));
  }

  readlink(_ctx: RequestContext, nodeid: number): Buffer {
    const inode = this.store.get(nodeid);
    if (inode.type !== sys.S_IFLNK) throw new FsError(E.EINVAL);
    return sys.readlinkat(this.store.fdOf(inode), '');
  }

  symlink(ctx: RequestContext, parent: number, name: Buffer, target: Buffer): Entry {
    if (this.options.readonly) throw erofs();
    const pfd = this.dirFd(parent);
    const cn = this.cname(name, this.nameA);
    if (target.length === 0) throw new FsError(E.ENOENT);
    if (target.length >= PATH_MAX) throw new FsError(E.ENAMETOOLONG);
    const ct = sys.cName(target, this.targetBuf);
    withFsCreds(ctx.uid, ctx.gid, () => sys.symlinkat(ct, pfd, cn));
    return this.entryOf(this.lookupAt(pfd, cn));
  }

  mknod(ctx: RequestContext, parent: number, name: Buffer, mode: number, rdev: number, _umask: number): Entry {
    if (this.options.readonly) throw erofs();
    const pfd = this.dirFd(parent);
    const cn = this.cname(name, this.nameA);
    // The client kernel applied its umask already (we never ask FUSE_DONT_MASK).
    withFsCreds(ctx.uid, ctx.gid, () => sys.mknodat(pfd, cn, mode, rdev));
    return this.entryOf(this.lookupAt(pfd, cn));
  }

  mkdir(ctx: RequestContext, parent: number, name: Buffer, mode: number, _umask: number): Entry {
    if (this.options.readonly) throw erofs();
    const pfd = this.dirFd(parent);
    const cn = this.cname(name, this.nameA);
    withFsCreds(ctx.uid, ctx.gid, () => sys.mkdirat(pfd, cn, mode & 0o7777));
    return this.entryOf(this.lookupAt(pfd, cn));
  }

  /**
   * Before a name goes away: if the kernel knows the inode behind it, pin its
   * fd (InodeStore.hold) so the inode stays reachable once its last link is
   * gone. Errors are left to the real op that follows.
   */
  private holdVictim(dirfd: number, cname: Buffer): Inode | null {
    // Without file handles every known inode keeps its fd anyway; while no
    // known inode is evicted, each one has a live fd that its eviction keeps
    // once the last name is gone (InodeStore.evictedCount): no statx needed.
    if (!this.store.useHandles || this.store.evictedCount === 0) return null;
    try {
      sys.statxInto(dirfd, cname, sys.AT_SYMLINK_NOFOLLOW, sys.STATX_BASIC_STATS, this.sb);
    } catch {
      return null;
    }
    const inode = this.store.find(statxDev(this.sb), statxIno(this.sb));
    if (inode === undefined) return null;
    try {
      return this.store.hold(inode) ? inode : null;
    } catch {
      return null; // stale already: nothing to keep
    }
  }

  /** Runs `op` that removes a name; a hold taken for it is given back if the op fails. */
  private removingName(dirfd: number, cname: Buffer, op: () => void): void {
    const held = this.holdVictim(dirfd, cname);
    try {
      op();
    } catch (err) {
      if (held !== null) this.store.unhold(held);
      throw err;
    }
  }

  unlink(_ctx: RequestContext, parent: number, name: Buffer): void {
    if (this.options.readonly) throw erofs();
    const pfd = this.dirFd(parent);
    const cn = this.cname(name, this.nameA);
    this.removingName(pfd, cn, () => sys.unlinkat(pfd, cn, 0));
  }

  rmdir(_ctx: RequestContext, parent: number, name: Buffer): void {
    if (this.options.readonly) throw erofs();
    const pfd = this.dirFd(parent);
    const cn = this.cname(name, this.nameA);
    this.removingName(pfd, cn, () => sys.unlinkat(pfd, cn, sys.AT_REMOVEDIR));
  }

  rename(ctx: RequestContext, parent: number, name: Buffer, newparent: number, newname: Buffer, flags: number): void {
    if (this.options.readonly) throw erofs();
    const a = this.cname(name, this.nameA);
    const b = this.cname(newname, this.nameB);
    const pfd = this.dirFd(parent);
    const npfd = this.dirFd(newparent);
    // Both fds are live: the LRU evicts only its tail, and both were just touched.
    // RENAME_WHITEOUT creates an inode (the whiteout): it belongs to the caller.
    const op = (flags & sys.RENAME_WHITEOUT) !== 0
      ? () => withFsCreds(ctx.uid, ctx.gid, () => sys.renameat2(pfd, a, npfd, b, flags))
      : () => sys.renameat2(pfd, a, npfd, b, flags);
    // An exchange removes no name; any other rename may replace the target.
    if ((flags & sys.RENAME_EXCHANGE) !== 0) op();
    else this.removingName(npfd, b, op);
  }

  link(ctx: RequestContext, nodeid: number, newparent: number, newname: Buffer): Entry {
    if (this.options.readonly) throw erofs();
    const inode = this.store.get(nodeid);
    if (inode.type === sys.S_IFDIR) throw new FsError(E.EPERM);
    const cn = this.cname(newname, this.nameA);
    const npfd = this.dirFd(newparent);
    const src = sys.procFdPath(this.store.fdOf(inode));
    // AT_SYMLINK_FOLLOW follows the magic link only: it lands on the held inode
    // itself (a symlink stays a symlink), and needs no CAP_DAC_READ_SEARCH.
    withFsCreds(ctx.uid, ctx.gid, () => sys.linkat(sys.AT_FDCWD, src, npfd, cn, sys.AT_SYMLINK_FOLLOW));
    return this.entryOf(this.lookupAt(npfd, cn));
  }

  // ------------------------------------------------------------ files

  private hostOpenFlags(flags: number): number {
    let f = flags & ~OPEN_STRIP;
    if (this.options.writeback) {
      // The kernel's writeback cache may read pages of a write-only file and
      // handles O_APPEND itself (it sends explicit offsets).
      if ((f & sys.O_ACCMODE) === sys.O_WRONLY) f = (f & ~sys.O_ACCMODE) | sys.O_RDWR;
      f &= ~sys.O_APPEND;
    }
    return f;
  }

  open(_ctx: RequestContext, nodeid: number, flags: number): OpenReply {
    if (this.options.readonly && ((flags & sys.O_ACCMODE) !== sys.O_RDONLY || (flags & sys.O_TRUNC) !== 0)) throw erofs();
    const inode = this.store.get(nodeid);
    if (inode.type === sys.S_IFDIR) throw new FsError(E.EISDIR);
    const fd = this.reopen(inode, this.hostOpenFlags(flags));
    this.store.addOpenFd(inode, fd);
    return { fh: this.handles.add(new OpenHandle(fd, inode, null)), open_flags: this.fileOpenFlags(inode, fd) };
  }

  create(ctx: RequestContext, parent: number, name: Buffer, mode: number, flags: number, _umask: number): { entry: Entry; open: OpenReply } {
    if (this.options.readonly) throw erofs();
    const pfd = this.dirFd(parent);
    const cn = this.cname(name, this.nameA);
    // Always O_EXCL on the host: an existing name (a FIFO, a device node, a
    // symlink) must never be opened by O_CREAT. If it exists and the client did
    // not ask for O_EXCL, open the existing inode the safe way instead.
    const hostFlags = this.hostOpenFlags(flags) | sys.O_CREAT | sys.O_EXCL | sys.O_NOFOLLOW;
    let fd: number;
    try {
      fd = withFsCreds(ctx.uid, ctx.gid, () => this.openat(pfd, cn, hostFlags, mode & 0o7777));
    } catch (err) {
      if (errnoOf(err) !== E.EEXIST || (flags & sys.O_EXCL) !== 0) throw err;
      const inode = this.lookupAt(pfd, cn);
      try {
        if (inode.type === sys.S_IFDIR) throw new FsError(E.EISDIR);
        const opened = this.open(ctx, inode.nodeid, flags);
        return { entry: this.entryOf(inode), open: opened };
      } catch (e) {
        this.unlookup(inode);
        throw e;
      }
    }
    let inode: Inode;
    try {
      // The O_PATH hold comes from the open file itself, not from the name again.
      inode = this.adopt(this.openat(this.procFd, String(fd), sys.O_PATH));
    } catch (err) {
      sys.close(fd);
      throw err;
    }
    const entry = this.entryOf(inode);
    this.store.addOpenFd(inode, fd);
    return { entry, open: { fh: this.handles.add(new OpenHandle(fd, inode, null)), open_flags: this.fileOpenFlags(inode, fd) } };
  }

  read(_ctx: RequestContext, _nodeid: number, fh: number, offset: number, size: number, dest: Buffer): number {
    return sys.pread(this.handleFd(fh), dest, 0, size, offset);
  }

  write(_ctx: RequestContext, _nodeid: number, fh: number, offset: number, data: Buffer, _writeFlags: number): number {
    if (this.options.readonly) throw erofs();
    return sys.pwrite(this.handleFd(fh), data, 0, data.length, offset);
  }

  flush(_ctx: RequestContext, _nodeid: number, fh: number, _lockOwner: bigint): void {
    // close(dup(fd)) gives the host file system the close(2) it would see
    // natively (NFS flushes on close) without giving up our fd.
    sys.close(sys.dup(this.handleFd(fh)));
  }

  release(_ctx: RequestContext, _nodeid: number, fh: number, _flags: number): void {
    this.closeHandle(fh);
  }

  private closeHandle(fh: number): void {
    const h = this.handles.remove(fh);
    this.store.removeOpenFd(h.inode, h.fd);
    sys.close(h.fd);
  }

  fsync(_ctx: RequestContext, _nodeid: number, fh: number, datasync: boolean): void {
    const fd = this.handleFd(fh);
    if (datasync) sys.fdatasync(fd);
    else sys.fsync(fd);
  }

  fallocate(_ctx: RequestContext, _nodeid: number, fh: number, offset: number, length: number, mode: number): void {
    if (this.options.readonly) throw erofs();
    sys.fallocate(this.handleFd(fh), mode, offset, length);
  }

  lseek(_ctx: RequestContext, _nodeid: number, fh: number, offset: number, whence: number): number {
    // Under writeback caching the client holds written data (and the size)
    // we have not seen yet, and the kernel does not flush before FUSE_LSEEK:
    // our SEEK_DATA/SEEK_HOLE would answer ENXIO inside the client's file.
    // ENOSYS makes it answer from its own view ("all data up to i_size").
    if (this.options.writeback) throw new FsError(E.ENOSYS);
    return sys.lseek(this.handleFd(fh), offset, whence);
  }

  copyFileRange(
    _ctx: RequestContext,
    _nodeidIn: number, fhIn: number, offIn: number,
    _nodeidOut: number, fhOut: number, offOut: number,
    len: number, flags: number,
  ): number {
    if (this.options.readonly) throw erofs();
    return sys.copyFileRange(this.handleFd(fhIn), offIn, this.handleFd(fhOut), offOut, len, flags);
  }

  // ------------------------------------------------------------ directories

  opendir(_ctx: RequestContext, nodeid: number, _flags: number): OpenReply {
    const inode = this.store.get(nodeid);
    if (inode.type !== sys.S_IFDIR) throw new FsError(E.ENOTDIR);
    // "." under the held directory fd: the directory itself, no name lookup.
    const fd = this.openat(this.store.fdOf(inode), '.', sys.O_RDONLY | sys.O_DIRECTORY);
    this.store.addOpenFd(inode, fd);
    return { fh: this.handles.add(new OpenHandle(fd, inode, new DirStream())), open_flags: this.dirOpenFlags };
  }

  /** Positions the stream at entry index `offset` (see DirStream). */
  private seekDir(h: OpenHandle, ds: DirStream, offset: number): void {
    if (offset === ds.index) return;
    const rec = ds.rec;
    if (ds.buf !== null && offset >= ds.bufIndex && offset < ds.index) {
      // Inside the batch we hold: walk it from its start.
      let pos = 0;
      for (let i = ds.bufIndex; i < offset; i++) {
        if (!parseDirentInto(ds.buf, ds.words, pos, ds.len, rec)) break;
        pos = rec.next;
      }
      ds.pos = pos;
      ds.index = offset;
      return;
    }
    if (offset > 0 && offset <= ds.known) {
      // An entry we handed out: resume at the host's cookie for it.
      sys.seekDir(h.fd, ds.cookie(offset - 1));
      ds.len = ds.pos = 0;
      ds.index = ds.bufIndex = offset;
      return;
    }
    // Never handed out (or 0): rewind and skip.
    sys.lseek(h.fd, 0, sys.SEEK_SET);
    ds.len = ds.pos = ds.index = ds.bufIndex = 0;
    while (ds.index < offset) {
      if (!this.fillDir(h, ds)) return;
      if (!parseDirentInto(ds.buf!, ds.words, ds.pos, ds.len, rec)) {
        ds.pos = ds.len;
        continue;
      }
      ds.recordCookie(ds.pos);
      ds.pos = rec.next;
      ds.index++;
    }
  }

  /**
   * Makes sure a record is available at ds.pos and parsed into ds.rec; false
   * at the end of the directory. A record that does not parse ends its batch.
   */
  private nextDirent(h: OpenHandle, ds: DirStream): boolean {
    for (;;) {
      if (!this.fillDir(h, ds)) return false;
      if (parseDirentInto(ds.buf!, ds.words, ds.pos, ds.len, ds.rec)) return true;
      ds.pos = ds.len;
    }
  }

  /** Makes sure a batch with unread bytes is there; false at the end of the directory. */
  private fillDir(h: OpenHandle, ds: DirStream): boolean {
    if (ds.pos < ds.len) return true;
    if (ds.buf === null) ds.setBuffer(this.spareDirBufs.pop() ?? Buffer.alloc(DIRENT_BUF_SIZE));
    const n = sys.getdents64(h.fd, ds.buf!);
    this.getdentsCalls++;
    ds.bufIndex = ds.index;
    ds.len = n;
    ds.pos = 0;
    return n > 0;
  }

  private dirHandle(fh: number): { h: OpenHandle; ds: DirStream } {
    const h = this.handles.get(fh);
    if (h.dir === null) throw new FsError(E.EBADF);
    return { h, ds: h.dir };
  }

  readdir(_ctx: RequestContext, _nodeid: number, fh: number, offset: number, sink: DirSink): void {
    const { h, ds } = this.dirHandle(fh);
    this.seekDir(h, ds, offset);
    const rec = ds.rec;
    while (this.nextDirent(h, ds)) {
      // The server's sink copies the name straight from the getdents64 buffer.
      const taken = sink.addRaw !== undefined
        ? sink.addRaw(rec.ino, ds.index + 1, rec.type, ds.buf!, rec.nameStart, rec.nameEnd)
        : sink.add({ ino: rec.ino, off: ds.index + 1, type: rec.type, name: direntName(ds.buf!, rec) });
      if (!taken) return;
      ds.recordCookie(ds.pos);
      ds.pos = rec.next;
      ds.index++;
    }
  }

  readdirplus(_ctx: RequestContext, _nodeid: number, fh: number, offset: number, sink: DirPlusSink): void {
    const { h, ds } = this.dirHandle(fh);
    this.seekDir(h, ds, offset);
    const rec = ds.rec;
    while (this.nextDirent(h, ds)) {
      const name = direntName(ds.buf!, rec);
      const entry: DirEntry = { ino: rec.ino, off: ds.index + 1, type: rec.type, name };
      let plus: Entry;
      let inode: Inode | null = null;
      if (isDotOrDotDot(name)) {
        // The kernel takes no reference for these: nodeid 0, no lookup counted.
        plus = dotEntry(rec.ino, rec.type);
      } else {
        try {
          // h.fd is a real fd on this very directory: a valid dirfd for *at().
          // d_ino says whether the inode is likely known already; if not,
          // skip the statx probe and open it straight away.
          const cn = sys.cName(name, this.nameA);
          const hint = this.store.find(h.inode.dev, rec.ino);
          inode = hint !== undefined && hint.fd >= 0 ? this.lookupAt(h.fd, cn) : this.adopt(this.openat(h.fd, cn, sys.O_PATH | sys.O_NOFOLLOW));
          plus = this.entryOf(inode);
        } catch (err) {
          // Gone between getdents and the lookup (or unreadable): skip it.
          if (errnoOf(err) === undefined) throw err;
          ds.recordCookie(ds.pos);
          ds.pos = rec.next;
          ds.index++;
          continue;
        }
      }
      if (!sink.add(entry, plus)) {
        if (inode !== null) this.unlookup(inode);
        return;
      }
      ds.recordCookie(ds.pos);
      ds.pos = rec.next;
      ds.index++;
    }
  }

  releasedir(_ctx: RequestContext, _nodeid: number, fh: number): void {
    const ds = this.handles.get(fh).dir;
    this.closeHandle(fh);
    // A directory pass is opendir + a few readdirs + releasedir: keep its
    // buffer for the next one instead of zero-filling a new one.
    if (ds !== null && ds.buf !== null && this.spareDirBufs.length < MAX_SPARE_DIR_BUFS) this.spareDirBufs.push(ds.buf);
  }

  fsyncdir(_ctx: RequestContext, _nodeid: number, fh: number, datasync: boolean): void {
    const fd = this.handleFd(fh);
    if (datasync) sys.fdatasync(fd);
    else sys.fsync(fd);
  }

  // ------------------------------------------------------------ misc

  statfs(_ctx: RequestContext, nodeid: number): StatFs {
    const s = sys.fstatfs(this.store.fdOf(this.store.get(nodeid)));
    return {
      blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree,
      bsize: s.bsize, namelen: s.namelen, frsize: s.frsize,
    };
  }

  access(ctx: RequestContext, nodeid: number, mask: number): void {
    const inode = this.store.get(nodeid);
    const W_OK = 2;
    if (this.options.readonly && (mask & W_OK) !== 0 && (inode.type === sys.S_IFREG || inode.type === sys.S_IFDIR || inode.type === sys.S_IFLNK)) {
      throw erofs();
    }
    const fd = this.store.fdOf(inode);
    // AT_EACCESS: check with the thread's fs ids, i.e. the caller's.
    withFsCreds(ctx.uid, ctx.gid, () => sys.faccessat(fd, '', mask, sys.AT_EMPTY_PATH | sys.AT_EACCESS));
  }

  // ------------------------------------------------------------ DAX

  withMappableFd(_ctx: RequestContext, nodeid: number, fh: number | undefined, writable: boolean, use: (fd: number) => void): void {
    lendMappableFd(this.store.get(nodeid), fh, this.handles.peek(fh), writable, !!this.options.readonly, (inode, flags) => this.reopen(inode, flags), use);
  }

  // ------------------------------------------------------------ xattrs
  // An open handle's fd serves f*xattr directly (the kernel asks for
  // security.capability on every write); otherwise the path variants on
  // /proc/self/fd/N reach the held inode without opening it (special files
  // included) and without following a symlink (the magic link lands on it).

  private xattrTarget(nodeid: number): { fd: number; path: string | null } {
    if (!this.options.xattr) throw new FsError(E.ENOSYS);
    const inode = this.store.get(nodeid);
    if (inode.openFds !== null && inode.openFds.length > 0) return { fd: inode.openFds[0], path: null };
    return { fd: -1, path: sys.procFdPath(this.store.fdOf(inode)) };
  }

  private xattrName(name: Buffer): Buffer {
    if (name.length === 0) throw new FsError(E.EINVAL);
    if (name.length > NAME_MAX) throw new FsError(E.ERANGE);
    return sys.cName(name, this.nameB);
  }

  setxattr(_ctx: RequestContext, nodeid: number, name: Buffer, value: Buffer, flags: number): void {
    if (!this.options.xattr) throw new FsError(E.ENOSYS);
    if (this.options.readonly) throw erofs();
    const t = this.xattrTarget(nodeid);
    const n = this.xattrName(name);
    if (t.path === null) sys.fsetxattr(t.fd, n, value, flags);
    else sys.setxattr(t.path, n, value, flags);
  }

  getxattr(_ctx: RequestContext, nodeid: number, name: Buffer): Buffer {
    const t = this.xattrTarget(nodeid);
    const n = this.xattrName(name);
    return t.path === null ? sys.fgetxattr(t.fd, n) : sys.getxattr(t.path, n);
  }

  listxattr(_ctx: RequestContext, nodeid: number): Buffer {
    const t = this.xattrTarget(nodeid);
    return t.path === null ? sys.flistxattr(t.fd) : sys.listxattr(t.path);
  }

  removexattr(_ctx: RequestContext, nodeid: number, name: Buffer): void {
    if (!this.options.xattr) throw new FsError(E.ENOSYS);
    if (this.options.readonly) throw erofs();
    const t = this.xattrTarget(nodeid);
    const n = this.xattrName(name);
    if (t.path === null) sys.fremovexattr(t.fd, n);
    else sys.removexattr(t.path, n);
  }
}

function dotEntry(ino: number, type: number): Entry {
  return {
    nodeid: 0,
    generation: 0,
    entry_valid: 0,
    entry_valid_nsec: 0,
    attr_valid: 0,
    attr_valid_nsec: 0,
    attr: {
      ino, size: 0, blocks: 0, atime: 0, mtime: 0, ctime: 0, atimensec: 0, mtimensec: 0, ctimensec: 0,
      mode: (type << 12) >>> 0, nlink: 0, uid: 0, gid: 0, rdev: 0, blksize: 0, flags: 0,
    },
  };
}

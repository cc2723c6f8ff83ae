// Layer: fuse (pure: types only). The contract between the FUSE server and a
// file-system backend, in the spirit of libfuse's lowlevel ops and virtiofsd's
// FileSystem trait. The server imports only this file from the backend side;
// backends (src/fs/*) implement it and never import the server.
//
// Conventions for every op:
// - Ops are synchronous: they run on the data-plane thread that owns the
//   backend's state, so the inode and handle tables need no locks.
// - An op returns its result or throws. A thrown error carrying a positive
//   numeric `errno` (FsError, sys/ SysError) becomes `-errno` in the reply;
//   anything else becomes -EIO and is logged. A missing op answers -ENOSYS.
// - Names are raw bytes (Buffer, no NUL); the server has already refused names
//   that are empty or contain '/' or NUL, and '.'/'..' where they make no sense.
// - Node ids, file handles and offsets are plain numbers (we hand out ids below
//   2^53; an id we never handed out is simply unknown: ENOENT/EBADF).
//
// Lookup counts (the contract the kernel relies on): every Entry returned by
// lookup, mknod, mkdir, symlink, link, create and every readdirplus entry the
// sink accepted (except '.' and '..') adds one to the node's lookup count;
// forget(nodeid, n) takes n away; at zero the backend may drop the node. The
// root (nodeid 1) is never dropped.

/** FUSE_ROOT_ID: the root directory's node id. */
export const ROOT_ID = 1;

/** Who is asking: from fuse_in_header. */
export interface RequestContext {
  uid: number;
  gid: number;
  pid: number;
}

/** struct fuse_attr, field names verbatim. Times are seconds + nanoseconds. */
export interface Attr {
  ino: number;
  size: number;
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
  atimensec: number;
  mtimensec: number;
  ctimensec: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  blksize: number;
  flags: number;
}

/** struct fuse_entry_out. nodeid 0 is a negative entry (cacheable ENOENT). */
export interface Entry {
  nodeid: number;
  generation: number;
  /** Seconds the kernel may cache the name -> node binding. */
  entry_valid: number;
  entry_valid_nsec: number;
  /** Seconds the kernel may cache the attributes. */
  attr_valid: number;
  attr_valid_nsec: number;
  attr: Attr;
}

/** struct fuse_attr_out. */
export interface AttrReply {
  attr_valid: number;
  attr_valid_nsec: number;
  attr: Attr;
}

/** struct fuse_open_out. open_flags are FOPEN_* (DIRECT_IO, KEEP_CACHE, ...). */
export interface OpenReply {
  fh: number;
  open_flags: number;
}

/** What SETATTR asks to change: `valid` holds FATTR_* bits; absent fields are unchanged. */
export interface SetAttrRequest {
  valid: number;
  fh?: number;
  size?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds + nanoseconds; `atimeNow`/`mtimeNow` mean "set to the current time". */
  atime?: number;
  atimensec?: number;
  atimeNow?: boolean;
  mtime?: number;
  mtimensec?: number;
  mtimeNow?: boolean;
  ctime?: number;
  ctimensec?: number;
  /** FATTR_KILL_SUIDGID was set: clear setuid/setgid as a write would. */
  killSuidGid?: boolean;
}

/** struct fuse_kstatfs. */
export interface StatFs {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
  frsize: number;
}

/** One directory entry for READDIR. `off` is the cookie that resumes after it. */
export interface DirEntry {
  ino: number;
  off: number;
  /** DT_* file type (mode >> 12). */
  type: number;
  name: Buffer;
}

/**
 * Where readdir/readdirplus put entries. `add` returns false when the reply
 * buffer is full: the entry was NOT taken, so the backend must not count a
 * lookup for it and must stop there.
 */
export interface DirSink {
  add(entry: DirEntry): boolean;
  /**
   * Optional fast path, same meaning as add(): the name is src[start, end),
   * copied before it returns (the backend may reuse src). Saves a DirEntry and
   * a name Buffer per entry; the server's sink has it, test sinks need not.
   */
  addRaw?(ino: number, off: number, type: number, src: Uint8Array, start: number, end: number): boolean;
}
export interface DirPlusSink {
  add(entry: DirEntry, plus: Entry): boolean;
}

/** Negotiated at INIT; passed to the backend so it can choose what to want. */
export interface InitInfo {
  major: number;
  minor: number;
  /** FUSE_* INIT flags the client offers (flags | flags2 << 32). */
  capable: bigint;
  max_readahead: number;
  /** INIT flags the server itself is willing to enable (the backend narrows or widens). */
  want: bigint;
}

export interface FileSystem {
  /** Called once at FUSE_INIT. Returns the INIT flags to enable (a subset of capable). */
  init?(info: InitInfo): bigint;
  /** Called at FUSE_DESTROY or when the transport goes away. */
  destroy?(): void;

  lookup?(ctx: RequestContext, parent: number, name: Buffer): Entry;
  /** No reply is sent for forget. Takes `nlookup` from the node's lookup count. */
  forget?(nodeid: number, nlookup: number): void;
  getattr?(ctx: RequestContext, nodeid: number, fh: number | undefined): AttrReply;
  setattr?(ctx: RequestContext, nodeid: number, set: SetAttrRequest): AttrReply;
  readlink?(ctx: RequestContext, nodeid: number): Buffer;
  symlink?(ctx: RequestContext, parent: number, name: Buffer, target: Buffer): Entry;
  mknod?(ctx: RequestContext, parent: number, name: Buffer, mode: number, rdev: number, umask: number): Entry;
  mkdir?(ctx: RequestContext, parent: number, name: Buffer, mode: number, umask: number): Entry;
  unlink?(ctx: RequestContext, parent: number, name: Buffer): void;
  rmdir?(ctx: RequestContext, parent: number, name: Buffer): void;
  /** flags: RENAME_NOREPLACE (1), RENAME_EXCHANGE (2), RENAME_WHITEOUT (4). */
  rename?(ctx: RequestContext, parent: number, name: Buffer, newparent: number, newname: Buffer, flags: number): void;
  link?(ctx: RequestContext, nodeid: number, newparent: number, newname: Buffer): Entry;

  /** flags: the open(2) flags the client used (O_ACCMODE, O_APPEND, O_TRUNC...). */
  open?(ctx: RequestContext, nodeid: number, flags: number): OpenReply;
  create?(ctx: RequestContext, parent: number, name: Buffer, mode: number, flags: number, umask: number): { entry: Entry; open: OpenReply };
  /**
   * Reads up to `size` bytes at `offset` into `dest` (dest.length >= size) and
   * returns how many were read (short at EOF). `dest` is the reply buffer itself
   * on /dev/fuse: read straight into it.
   */
  read?(ctx: RequestContext, nodeid: number, fh: number, offset: number, size: number, dest: Buffer): number;
  /** Returns the number of bytes written. writeFlags: FUSE_WRITE_* bits. */
  write?(ctx: RequestContext, nodeid: number, fh: number, offset: number, data: Buffer, writeFlags: number): number;
  flush?(ctx: RequestContext, nodeid: number, fh: number, lockOwner: bigint): void;
  release?(ctx: RequestContext, nodeid: number, fh: number, flags: number): void;
  fsync?(ctx: RequestContext, nodeid: number, fh: number, datasync: boolean): void;
  /** mode: fallocate(2) mode bits (FALLOC_FL_KEEP_SIZE, PUNCH_HOLE, ...). */
  fallocate?(ctx: RequestContext, nodeid: number, fh: number, offset: number, length: number, mode: number): void;
  /** whence: SEEK_SET/CUR/END/DATA/HOLE. Returns the new offset. */
  lseek?(ctx: RequestContext, nodeid: number, fh: number, offset: number, whence: number): number;
  copyFileRange?(
    ctx: RequestContext,
    nodeidIn: number, fhIn: number, offIn: number,
    nodeidOut: number, fhOut: number, offOut: number,
    len: number, flags: number,
  ): number;

  opendir?(ctx: RequestContext, nodeid: number, flags: number): OpenReply;
  /** Adds entries after cookie `offset` until the sink is full or the directory ends. */
  readdir?(ctx: RequestContext, nodeid: number, fh: number, offset: number, sink: DirSink): void;
  readdirplus?(ctx: RequestContext, nodeid: number, fh: number, offset: number, sink: DirPlusSink): void;
  releasedir?(ctx: RequestContext, nodeid: number, fh: number): void;
  fsyncdir?(ctx: RequestContext, nodeid: number, fh: number, datasync: boolean): void;

  statfs?(ctx: RequestContext, nodeid: number): StatFs;
  /** mask: R_OK/W_OK/X_OK/F_OK. */
  access?(ctx: RequestContext, nodeid: number, mask: number): void;

  setxattr?(ctx: RequestContext, nodeid: number, name: Buffer, value: Buffer, flags: number): void;
  /** Returns the whole value; the server handles size 0 (length query) and ERANGE. */
  getxattr?(ctx: RequestContext, nodeid: number, name: Buffer): Buffer;
  /** Returns the NUL-separated name list; the server handles size 0 and ERANGE. */
  listxattr?(ctx: RequestContext, nodeid: number): Buffer;
  removexattr?(ctx: RequestContext, nodeid: number, name: Buffer): void;

  /** virtio-fs DAX: map [foffset, foffset+len) of the open file at window offset moffset. flags: FUSE_SETUPMAPPING_FLAG_*. */
  setupmapping?(ctx: RequestContext, nodeid: number, fh: number, foffset: number, len: number, flags: number, moffset: number): void;
  removemapping?(ctx: RequestContext, ranges: ReadonlyArray<{ moffset: number; len: number }>): void;
  /**
   * virtio-fs DAX through the server's window (fuse/dax.ts): lend `use` an fd of
   * nodeid's regular file for mapping, then take it back (close it if it was
   * opened for the call). fh undefined: by inode (the Linux client sends no
   * handle), opened read-write when `writable`; else a handle given out for
   * that nodeid (EBADF otherwise), EACCES when `writable` and it was opened
   * read-only. Used only when the backend has no setupmapping of its own.
   */
  withMappableFd?(ctx: RequestContext, nodeid: number, fh: number | undefined, writable: boolean, use: (fd: number) => void): void;
}

// Layer: fs (memory backend). A complete in-memory file system implementing the
// FileSystem contract (src/fuse/filesystem.ts); imports only fuse/ (types,
// errors, abi constants) plus its own helpers (seed.ts alone uses node:fs and
// sys/, to copy a host tree in at start-up). Used as the embedded default and as the reference model in
// tests, so it follows Linux (tmpfs/ext4 as seen through the VFS) on errno
// order, permission checks and link counts rather than inventing its own.
//
// Node ids are inode numbers, handed out once and never reused; generation is 0.
// A node lives while it is linked (nlink > 0), known to the kernel (lookup
// count > 0) or open; when all three reach zero it is freed.
import { constants as fsc } from 'node:fs';
import { constants as osc, totalmem } from 'node:os';
import {
  ROOT_ID,
  type AttrReply,
  type Attr,
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
import {
  FsError,
  ebadf,
  eexist,
  einval,
  eisdir,
  enametoolong,
  enoent,
  enodata,
  enotdir,
  enotempty,
  eperm,
  erofs,
} from '../../fuse/errors.ts';
import * as abi from '../../fuse/abi.ts';
import { ChunkStore } from './chunk-store.ts';
import { CHUNK_SIZE, FileData, MAX_FILE_SIZE, PAGE_SIZE } from './file-data.ts';
import { copyHostTree, type HostMeta, type HostSeedLimits } from './seed.ts';

const E = osc.errno;

// Module-local copies of the abi constants: a plain const is cheaper on the hot
// path than an imported binding (see commit 39ca0fe).
const FOPEN_KEEP_CACHE = abi.FOPEN_KEEP_CACHE;
const FATTR_MODE = abi.FATTR_MODE;
const FATTR_UID = abi.FATTR_UID;
const FATTR_GID = abi.FATTR_GID;
const FATTR_SIZE = abi.FATTR_SIZE;
const FATTR_ATIME = abi.FATTR_ATIME;
const FATTR_MTIME = abi.FATTR_MTIME;
const FATTR_FH = abi.FATTR_FH;
const FATTR_ATIME_NOW = abi.FATTR_ATIME_NOW;
const FATTR_MTIME_NOW = abi.FATTR_MTIME_NOW;
const FATTR_CTIME = abi.FATTR_CTIME;
const FATTR_KILL_SUIDGID = abi.FATTR_KILL_SUIDGID;
const FUSE_WRITE_KILL_SUIDGID = abi.FUSE_WRITE_KILL_SUIDGID;
const FUSE_ATOMIC_O_TRUNC = abi.FUSE_ATOMIC_O_TRUNC;
const FUSE_HANDLE_KILLPRIV_V2 = abi.FUSE_HANDLE_KILLPRIV_V2;
const FUSE_CACHE_SYMLINKS = abi.FUSE_CACHE_SYMLINKS;

// <linux/fs.h>, <linux/falloc.h>, <linux/xattr.h>, <unistd.h>, <linux/fs.h> SEEK_*.
export const RENAME_NOREPLACE = 1 << 0;
export const RENAME_EXCHANGE = 1 << 1;
export const RENAME_WHITEOUT = 1 << 2;
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;
export const XATTR_CREATE = 0x1;
export const XATTR_REPLACE = 0x2;
const SEEK_SET = 0;
const SEEK_CUR = 1;
const SEEK_END = 2;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const R_OK = 4;
const W_OK = 2;
const X_OK = 1;

const S_IFMT = fsc.S_IFMT;
const S_IFREG = fsc.S_IFREG;
const S_IFDIR = fsc.S_IFDIR;
const S_IFLNK = fsc.S_IFLNK;
const S_IFIFO = fsc.S_IFIFO;
const S_IFSOCK = fsc.S_IFSOCK;
const S_IFCHR = fsc.S_IFCHR;
const S_IFBLK = fsc.S_IFBLK;
const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_ISVTX = 0o1000;
const S_IXGRP = 0o010;
const O_ACCMODE = 3;
const O_WRONLY = fsc.O_WRONLY;
const O_RDONLY = fsc.O_RDONLY;
const O_TRUNC = fsc.O_TRUNC;
const O_APPEND = fsc.O_APPEND;
const O_EXCL = fsc.O_EXCL;

const NAME_MAX = 255;
const PATH_MAX = 4096;
const XATTR_NAME_MAX = 255;
const XATTR_SIZE_MAX = 65536;
const BLKSIZE = 4096;
const DIR_SIZE = 4096;
const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');

/** Entry/attr timeouts in seconds for each cache mode (virtiofsd's meaning). */
const CACHE_TIMEOUT = { never: 0, auto: 1, always: 86400 } as const;

export type CacheMode = keyof typeof CACHE_TIMEOUT;

/** A tree to seed the file system with: name -> file contents, or a node description. */
export interface SeedTree {
  [name: string]: SeedNode;
}
export type SeedNode =
  | string
  | Buffer
  | { data: string | Buffer; mode?: number; uid?: number; gid?: number }
  | { dir: SeedTree; mode?: number; uid?: number; gid?: number }
  | { symlink: string; uid?: number; gid?: number };

export interface MemoryFsOptions {
  /** Every mutation answers EROFS. */
  readonly?: boolean;
  /** Entry/attr timeouts: never 0 s, auto 1 s (default), always 86400 s plus FOPEN_KEEP_CACHE. */
  cache?: CacheMode;
  /** Bytes of file data the fs may hold (statfs totals, ENOSPC). Default: half of RAM. */
  capacityBytes?: number;
  /** Inodes the fs may hold (statfs files, ENOSPC). Default 4 Mi. */
  maxInodes?: number;
  /** Owner and mode of the root directory. Defaults: uid 0, gid 0, 0755. */
  rootUid?: number;
  rootGid?: number;
  rootMode?: number;
  /** Contents to start with (created as root's files unless the seed says otherwise). */
  seed?: SeedTree;
}

/** One name in a directory. `serial` is the readdir cookie: per directory, only ever increasing. */
interface DirEnt {
  readonly name: Buffer;
  readonly key: string;
  node: MemNode;
  readonly serial: number;
  dead: boolean;
}

class DirState {
  readonly entries = new Map<string, DirEnt>();
  /** Entries in serial order; removed ones stay (dead) until compacted, so a cookie always finds its place. */
  list: DirEnt[] = [];
  deadCount = 0;
  /** 1 and 2 are the cookies of '.' and '..'. */
  nextSerial = 3;
  /** Set by rmdir (or rename over it): lookups and listings answer ENOENT. */
  removed = false;
  constructor(public parent: MemNode) {}
}

class MemNode {
  lookups = 0;
  opens = 0;
  nlink = 1;
  atime = 0;
  atimensec = 0;
  mtime = 0;
  mtimensec = 0;
  ctime = 0;
  ctimensec = 0;
  rdev = 0;
  xattrs: Map<string, Buffer> | undefined;
  data: FileData | undefined;
  target: Buffer | undefined;
  dir: DirState | undefined;
  constructor(
    readonly ino: number,
    public mode: number,
    public uid: number,
    public gid: number,
  ) {}
  get type(): number {
    return this.mode & S_IFMT;
  }
}

interface Handle {
  node: MemNode;
  flags: number;
  isDir: boolean;
}

// Wall-clock time with nanosecond resolution: hrtime is monotonic and cheap;
// the offset to the epoch is taken once from Date.now().
const [hrSec0, hrNsec0] = process.hrtime();
const wall0 = Date.now();
const clockOffSec = Math.floor(wall0 / 1000) - hrSec0;
const clockOffNsec = (wall0 % 1000) * 1e6 - hrNsec0;

const TOUCH_A = 1;
const TOUCH_M = 2;
const TOUCH_C = 4;

function touch(node: MemNode, which: number): void {
  const t = process.hrtime();
  let sec = t[0] + clockOffSec;
  let nsec = t[1] + clockOffNsec;
  if (nsec < 0) {
    nsec += 1e9;
    sec -= 1;
  } else if (nsec >= 1e9) {
    nsec -= 1e9;
    sec += 1;
  }
  if (which & TOUCH_A) {
    node.atime = sec;
    node.atimensec = nsec;
  }
  if (which & TOUCH_M) {
    node.mtime = sec;
    node.mtimensec = nsec;
  }
  if (which & TOUCH_C) {
    node.ctime = sec;
    node.ctimensec = nsec;
  }
}

function nameKey(name: Buffer): string {
  if (name.length > NAME_MAX) throw enametoolong();
  if (name.length === 0) throw enoent();
  return name.toString('latin1');
}

/** Clears setuid, and setgid when group-exec is set (setgid without it is mandatory locking), as Linux does. */
function killSuidSgid(node: MemNode): boolean {
  let mode = node.mode & ~S_ISUID;
  if ((mode & (S_ISGID | S_IXGRP)) === (S_ISGID | S_IXGRP)) mode &= ~S_ISGID;
  if (mode === node.mode) return false;
  node.mode = mode;
  return true;
}

const XATTR_PREFIXES = ['user.', 'trusted.', 'security.'];

export class MemoryFs implements FileSystem {
  private readonly nodes = new Map<number, MemNode>();
  private readonly handles = new Map<number, Handle>();
  private nextIno = ROOT_ID;
  private nextFh = 1;
  private readonly readonly: boolean;
  private readonly timeout: number;
  private readonly cache: CacheMode;
  private readonly openFlags: number;
  private readonly capacity: number;
  private readonly maxInodes: number;
  private readonly store: ChunkStore;
  private readonly root: MemNode;

  constructor(options: MemoryFsOptions = {}) {
    const cache = options.cache ?? 'auto';
    if (!(cache in CACHE_TIMEOUT)) throw new Error(`MemoryFs: unknown cache mode '${cache}' (never|auto|always)`);
    this.readonly = options.readonly ?? false;
    this.timeout = CACHE_TIMEOUT[cache];
    this.cache = cache;
    this.openFlags = cache === 'always' ? FOPEN_KEEP_CACHE : 0;
    this.capacity = Math.floor((options.capacityBytes ?? totalmem() / 2) / BLKSIZE) * BLKSIZE;
    this.maxInodes = options.maxInodes ?? 4 * 1024 * 1024;
    this.store = new ChunkStore(this.capacity);
    const root = new MemNode(this.nextIno++, S_IFDIR | ((options.rootMode ?? 0o755) & 0o7777), options.rootUid ?? 0, options.rootGid ?? 0);
    root.dir = new DirState(root);
    root.nlink = 2;
    touch(root, TOUCH_A | TOUCH_M | TOUCH_C);
    this.nodes.set(root.ino, root);
    this.root = root;
    if (options.seed) this.populate(options.seed);
  }

  // ---- seeding and introspection (not part of FileSystem) -------------------

  /**
   * A MemoryFs holding a copy of a small host directory: directories, files,
   * symlinks, FIFOs/sockets/devices (metadata), hard links as links, raw-byte
   * names, and each node's mode, owner, atime/mtime and user/trusted/security
   * xattrs (the root directory's too). Throws a plain Error when the tree is
   * over the limits (default 64 MiB, 100,000 entries) or unreadable.
   */
  static fromHostDirectory(path: string, options: MemoryFsOptions = {}, limits: HostSeedLimits = {}): MemoryFs {
    const fs = new MemoryFs({ ...options, seed: undefined });
    fs.copyHost(path, limits);
    if (options.seed) fs.populate(options.seed);
    return fs;
  }

  private copyHost(path: string, limits: HostSeedLimits): void {
    const setTime = (ns: bigint): [number, number] => {
      const sec = ns / 1_000_000_000n;
      let nsec = ns % 1_000_000_000n;
      if (nsec < 0n) nsec += 1_000_000_000n;
      return [Number(ns < 0n && nsec > 0n ? sec - 1n : sec), Number(nsec)];
    };
    const apply = (node: MemNode, meta: HostMeta) => {
      node.mode = node.type | (meta.mode & 0o7777);
      node.uid = meta.uid;
      node.gid = meta.gid;
      [node.atime, node.atimensec] = setTime(meta.atimeNs);
      [node.mtime, node.mtimensec] = setTime(meta.mtimeNs);
      for (const [name, value] of meta.xattrs) (node.xattrs ??= new Map()).set(name.toString('latin1'), value);
    };
    const owner: RequestContext = { uid: 0, gid: 0, pid: 0 };
    const make = (parent: number, name: Buffer, type: number, meta: HostMeta): MemNode => {
      const dir = this.dirNode(parent);
      const node = this.newNode(owner, dir, type, meta.mode);
      if (type === S_IFDIR) this.linkNewDir(dir, nameKey(name), name, node);
      else this.addEntry(dir, nameKey(name), name, node);
      return node;
    };
    copyHostTree(
      path,
      {
        root: (meta) => {
          apply(this.root, meta);
          return ROOT_ID;
        },
        dir: (parent, name, meta) => {
          const node = make(parent, name, S_IFDIR, meta);
          apply(node, meta);
          return node.ino;
        },
        file: (parent, name, meta, data) => {
          const node = make(parent, name, S_IFREG, meta);
          node.data = new FileData(this.store);
          node.data.write(0, data);
          apply(node, meta);
          return node.ino;
        },
        symlink: (parent, name, meta, target) => {
          const node = make(parent, name, S_IFLNK, meta);
          node.target = Buffer.from(target);
          apply(node, meta);
          node.mode = S_IFLNK | 0o777;
          return node.ino;
        },
        special: (parent, name, meta) => {
          const type = meta.mode & S_IFMT;
          const node = make(parent, name, type, meta);
          if (type === S_IFCHR || type === S_IFBLK) node.rdev = meta.rdev;
          apply(node, meta);
          return node.ino;
        },
        hardlink: (parent, name, existing) => {
          const node = this.node(existing);
          this.addEntry(this.dirNode(parent), nameKey(name), name, node);
          node.nlink++;
        },
      },
      limits,
    );
  }

  /**
   * Adds a tree under the root (or under `at`, a directory node id) without
   * permission checks and regardless of `readonly`. Existing names are replaced
   * for files and merged for directories.
   */
  populate(tree: SeedTree, at: number = ROOT_ID): void {
    const dir = this.nodes.get(at);
    if (!dir?.dir) throw new Error(`MemoryFs.populate: node ${at} is not a directory`);
    for (const [name, spec] of Object.entries(tree)) {
      const nameBuf = Buffer.from(name);
      const key = nameKey(nameBuf);
      const existing = dir.dir.entries.get(key);
      const owner = { uid: 0, gid: 0, pid: 0 };
      if (typeof spec === 'string' || Buffer.isBuffer(spec) || 'data' in spec) {
        const data = typeof spec === 'string' || Buffer.isBuffer(spec) ? spec : spec.data;
        const meta: { mode?: number; uid?: number; gid?: number } =
          typeof spec === 'object' && !Buffer.isBuffer(spec) ? spec : {};
        if (existing) this.dropEntry(dir, existing);
        const node = this.newNode({ ...owner, uid: meta.uid ?? 0, gid: meta.gid ?? 0 }, dir, S_IFREG, meta.mode ?? 0o644);
        node.data = new FileData(this.store);
        const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
        node.data.write(0, buf);
        this.addEntry(dir, key, nameBuf, node);
      } else if ('dir' in spec) {
        let node = existing?.node;
        if (!node?.dir) {
          if (existing) this.dropEntry(dir, existing);
          node = this.newNode({ ...owner, uid: spec.uid ?? 0, gid: spec.gid ?? 0 }, dir, S_IFDIR, spec.mode ?? 0o755);
          this.linkNewDir(dir, key, nameBuf, node);
        }
        this.populate(spec.dir, node.ino);
      } else {
        if (existing) this.dropEntry(dir, existing);
        const node = this.newNode({ ...owner, uid: spec.uid ?? 0, gid: spec.gid ?? 0 }, dir, S_IFLNK, 0o777);
        node.target = Buffer.from(spec.symlink);
        this.addEntry(dir, key, nameBuf, node);
      }
    }
  }

  /** Nodes alive (linked, looked up or open), root included. Tests use it to see forget free things. */
  get nodeCount(): number {
    return this.nodes.size;
  }
  /** Open file and directory handles. */
  get handleCount(): number {
    return this.handles.size;
  }
  /** Bytes of chunk memory in use. */
  get bytesUsed(): number {
    return this.store.usedBytes;
  }
  /** The lookup count the kernel holds on a node (0 if unknown). */
  lookupCount(nodeid: number): number {
    return this.nodes.get(nodeid)?.lookups ?? 0;
  }

  // ---- internals -------------------------------------------------------------

  private node(nodeid: number): MemNode {
    const node = this.nodes.get(nodeid);
    if (!node) throw enoent(`unknown node ${nodeid}`);
    return node;
  }

  private dirNode(nodeid: number): MemNode & { dir: DirState } {
    const node = this.node(nodeid);
    if (!node.dir) throw enotdir();
    return node as MemNode & { dir: DirState };
  }

  private handle(fh: number, node: MemNode, isDir: boolean): Handle {
    const h = this.handles.get(fh);
    if (!h || h.node !== node || h.isDir !== isDir) throw ebadf(`unknown handle ${fh}`);
    return h;
  }

  private mutable(): void {
    if (this.readonly) throw erofs();
  }

  /** generic_permission(): owner/group/other bits; root bypasses all but needs some x bit to execute a non-directory. */
  private permitted(ctx: RequestContext, node: MemNode, mask: number): boolean {
    mask &= 7;
    if (mask === 0) return true;
    if (ctx.uid === 0) {
      if (mask & X_OK && !node.dir && (node.mode & 0o111) === 0) return false;
      return true;
    }
    let bits: number;
    if (ctx.uid === node.uid) bits = (node.mode >> 6) & 7;
    else if (ctx.gid === node.gid) bits = (node.mode >> 3) & 7;
    else bits = node.mode & 7;
    return (mask & ~bits) === 0;
  }

  private checkPerm(ctx: RequestContext, node: MemNode, mask: number): void {
    if (!this.permitted(ctx, node, mask)) throw new FsError(E.EACCES);
  }

  private isOwner(ctx: RequestContext, node: MemNode): boolean {
    return ctx.uid === 0 || ctx.uid === node.uid;
  }

  /** may_create(): the directory is alive and writable+searchable. */
  private mayCreate(ctx: RequestContext, dir: MemNode & { dir: DirState }): void {
    if (dir.dir.removed) throw enoent();
    this.checkPerm(ctx, dir, W_OK | X_OK);
  }

  /** may_delete(): writable+searchable directory, and the sticky-bit rule. */
  private mayDelete(ctx: RequestContext, dir: MemNode & { dir: DirState }, victim: MemNode): void {
    this.checkPerm(ctx, dir, W_OK | X_OK);
    if (dir.mode & S_ISVTX && ctx.uid !== 0 && ctx.uid !== victim.uid && ctx.uid !== dir.uid) throw eperm();
  }

  private newNode(ctx: RequestContext, parent: MemNode, type: number, perm: number): MemNode {
    if (this.nodes.size >= this.maxInodes) throw new FsError(E.ENOSPC);
    let mode = type | (perm & 0o7777);
    let gid = ctx.gid;
    // inode_init_owner(): a setgid directory passes its group on, and its setgid bit to subdirectories.
    if (parent.mode & S_ISGID) {
      gid = parent.gid;
      if (type === S_IFDIR) mode |= S_ISGID;
      else if ((mode & (S_ISGID | S_IXGRP)) === (S_ISGID | S_IXGRP) && ctx.uid !== 0 && ctx.gid !== gid) mode &= ~S_ISGID;
    }
    const node = new MemNode(this.nextIno++, mode, ctx.uid, gid);
    touch(node, TOUCH_A | TOUCH_M | TOUCH_C);
    this.nodes.set(node.ino, node);
    return node;
  }

  private addEntry(dir: MemNode, key: string, name: Buffer, node: MemNode): void {
    const d = dir.dir!;
    const ent: DirEnt = { name: Buffer.from(name), key, node, serial: d.nextSerial++, dead: false };
    d.entries.set(key, ent);
    d.list.push(ent);
  }

  private removeEntry(dir: MemNode, ent: DirEnt): void {
    const d = dir.dir!;
    d.entries.delete(ent.key);
    ent.dead = true;
    d.deadCount++;
    // Compact lazily: cookies are serials, found by binary search, so dropping
    // dead entries never moves a listing's place.
    if (d.deadCount > 64 && d.deadCount * 2 > d.list.length) {
      d.list = d.list.filter((e) => !e.dead);
      d.deadCount = 0;
    }
  }

  /** Links a fresh directory node under `dir` (nlink bookkeeping included). */
  private linkNewDir(dir: MemNode, key: string, name: Buffer, node: MemNode): void {
    node.dir = new DirState(dir);
    node.nlink = 2;
    this.addEntry(dir, key, name, node);
    dir.nlink++;
  }

  /** Removes a name and drops the link it held (used by populate and unlink/rmdir). */
  private dropEntry(dir: MemNode, ent: DirEnt): void {
    this.removeEntry(dir, ent);
    const node = ent.node;
    if (node.dir) {
      node.dir.removed = true;
      node.nlink = 0;
      dir.nlink--;
      // populate may replace a non-empty seeded directory: its children go too.
      for (const child of [...node.dir.entries.values()]) this.dropEntry(node, child);
    } else {
      node.nlink--;
    }
    touch(node, TOUCH_C);
    this.maybeFree(node);
  }

  private maybeFree(node: MemNode): void {
    if (node.ino === ROOT_ID || node.nlink > 0 || node.lookups > 0 || node.opens > 0) return;
    this.nodes.delete(node.ino);
    node.data?.free();
    node.data = undefined;
  }

  private attr(node: MemNode): Attr {
    let size: number;
    let blocks = 0;
    if (node.data) {
      size = node.data.size;
      blocks = node.data.blocks;
    } else if (node.target) {
      size = node.target.length;
    } else if (node.dir) {
      size = DIR_SIZE;
      blocks = DIR_SIZE / 512;
    } else {
      size = 0;
    }
    return {
      ino: node.ino,
      size,
      blocks,
      atime: node.atime,
      mtime: node.mtime,
      ctime: node.ctime,
      atimensec: node.atimensec,
      mtimensec: node.mtimensec,
      ctimensec: node.ctimensec,
      mode: node.mode,
      nlink: node.nlink,
      uid: node.uid,
      gid: node.gid,
      rdev: node.rdev,
      blksize: BLKSIZE,
      flags: 0,
    };
  }

  /** An Entry for `node`; the caller counts the lookup when the entry is really handed out. */
  private entryOf(node: MemNode): Entry {
    return {
      nodeid: node.ino,
      generation: 0,
      entry_valid: this.timeout,
      entry_valid_nsec: 0,
      attr_valid: this.timeout,
      attr_valid_nsec: 0,
      attr: this.attr(node),
    };
  }

  private lookedUp(node: MemNode): Entry {
    node.lookups++;
    return this.entryOf(node);
  }

  private attrReply(node: MemNode): AttrReply {
    return { attr_valid: this.timeout, attr_valid_nsec: 0, attr: this.attr(node) };
  }

  private newHandle(node: MemNode, flags: number, isDir: boolean): number {
    const fh = this.nextFh++;
    this.handles.set(fh, { node, flags, isDir });
    node.opens++;
    return fh;
  }

  /** Is `anc` the directory `node` or one of its ancestors? */
  private isAncestor(anc: MemNode, node: MemNode): boolean {
    let cur = node;
    for (;;) {
      if (cur === anc) return true;
      const parent = cur.dir?.parent;
      if (!parent || parent === cur) return false;
      cur = parent;
    }
  }

  // ---- FileSystem ------------------------------------------------------------

  init(info: InitInfo): bigint {
    // ATOMIC_O_TRUNC: open() handles O_TRUNC itself (one request, not two).
    // HANDLE_KILLPRIV_V2: we clear setuid/setgid on write/truncate/chown
    // ourselves; without it the kernel sends the writer's chmod first, which a
    // group member writing a setuid g+w file may not do (EPERM where Linux
    // succeeds).
    let want = info.want | FUSE_ATOMIC_O_TRUNC | FUSE_HANDLE_KILLPRIV_V2;
    // Nothing but this mount changes a symlink: the client may cache targets.
    if (this.cache === 'always') want |= FUSE_CACHE_SYMLINKS;
    return want & info.capable;
  }

  destroy(): void {
    // The kernel has forgotten everything: drop handles and lookup counts.
    this.handles.clear();
    for (const node of [...this.nodes.values()]) {
      node.opens = 0;
      node.lookups = 0;
      this.maybeFree(node);
    }
  }

  lookup(ctx: RequestContext, parent: number, name: Buffer): Entry {
    const dir = this.dirNode(parent);
    const key = nameKey(name);
    this.checkPerm(ctx, dir, X_OK);
    if (dir.dir.removed) throw enoent();
    if (key === '.') return this.lookedUp(dir);
    if (key === '..') return this.lookedUp(dir.dir.parent);
    const ent = dir.dir.entries.get(key);
    if (!ent) throw enoent();
    return this.lookedUp(ent.node);
  }

  forget(nodeid: number, nlookup: number): void {
    const node = this.nodes.get(nodeid);
    if (!node) return;
    node.lookups = Math.max(0, node.lookups - nlookup);
    this.maybeFree(node);
  }

  getattr(_ctx: RequestContext, nodeid: number, _fh: number | undefined): AttrReply {
    return this.attrReply(this.node(nodeid));
  }

  setattr(ctx: RequestContext, nodeid: number, set: SetAttrRequest): AttrReply {
    const node = this.node(nodeid);
    const valid = set.valid;
    this.mutable();
    let changed = false;

    if (valid & FATTR_SIZE) {
      const size = set.size ?? 0;
      if (node.dir) throw eisdir();
      if (!node.data) throw einval();
      if (size < 0) throw einval();
      if (size > MAX_FILE_SIZE) throw new FsError(E.EFBIG);
      const h = valid & FATTR_FH && set.fh !== undefined ? this.handles.get(set.fh) : undefined;
      // ftruncate needs a writable handle; truncate needs write permission.
      if (h && h.node === node) {
        if ((h.flags & O_ACCMODE) === O_RDONLY) throw einval();
      } else {
        this.checkPerm(ctx, node, W_OK);
      }
    }
    if (valid & FATTR_MODE && !this.isOwner(ctx, node)) throw eperm();
    if (valid & FATTR_UID && set.uid !== undefined && set.uid !== node.uid && ctx.uid !== 0) throw eperm();
    // chown_ok(): only root changes the owner (an owner may "change" it to itself).
    if (valid & FATTR_UID && set.uid !== undefined && ctx.uid !== 0 && ctx.uid !== node.uid) throw eperm();
    if (valid & FATTR_GID && set.gid !== undefined && ctx.uid !== 0) {
      // chgrp_ok(): an owner may only give the file to a group it is in (we know the primary one).
      if (ctx.uid !== node.uid || (set.gid !== ctx.gid && set.gid !== node.gid)) throw eperm();
    }
    if (valid & (FATTR_ATIME | FATTR_MTIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW)) {
      const explicit =
        (valid & FATTR_ATIME && !(valid & FATTR_ATIME_NOW) && !set.atimeNow) ||
        (valid & FATTR_MTIME && !(valid & FATTR_MTIME_NOW) && !set.mtimeNow);
      if (!this.isOwner(ctx, node)) {
        // utimensat(): explicit times need ownership; "now" also allows a writer.
        if (explicit) throw eperm();
        this.checkPerm(ctx, node, W_OK);
      }
    }

    // All checks passed: apply.
    if (valid & FATTR_SIZE) {
      const size = set.size ?? 0;
      const data = node.data!;
      if (size !== data.size || valid & FATTR_FH) touch(node, TOUCH_M);
      data.truncate(size);
      if (ctx.uid !== 0) killSuidSgid(node);
      changed = true;
    }
    if (valid & (FATTR_UID | FATTR_GID)) {
      if (valid & FATTR_UID && set.uid !== undefined) node.uid = set.uid >>> 0;
      if (valid & FATTR_GID && set.gid !== undefined) node.gid = set.gid >>> 0;
      // chown_common(): non-directories lose setuid (and setgid with group-exec), even for root.
      if (!node.dir) killSuidSgid(node);
      changed = true;
    }
    if (valid & FATTR_MODE && set.mode !== undefined) {
      let mode = set.mode & 0o7777;
      // chmod by a caller outside the file's group drops setgid (no CAP_FSETID).
      if (ctx.uid !== 0 && ctx.gid !== node.gid && !node.dir) mode &= ~S_ISGID;
      node.mode = node.type | mode;
      changed = true;
    }
    if (valid & FATTR_ATIME) {
      if (valid & FATTR_ATIME_NOW || set.atimeNow) touch(node, TOUCH_A);
      else {
        node.atime = set.atime ?? 0;
        node.atimensec = set.atimensec ?? 0;
      }
      changed = true;
    }
    if (valid & FATTR_MTIME) {
      if (valid & FATTR_MTIME_NOW || set.mtimeNow) touch(node, TOUCH_M);
      else {
        node.mtime = set.mtime ?? 0;
        node.mtimensec = set.mtimensec ?? 0;
      }
      changed = true;
    }
    if ((valid & FATTR_KILL_SUIDGID || set.killSuidGid) && !node.dir) {
      killSuidSgid(node);
      changed = true;
    }
    if (valid & FATTR_CTIME && set.ctime !== undefined) {
      node.ctime = set.ctime;
      node.ctimensec = set.ctimensec ?? 0;
    } else if (changed) {
      touch(node, TOUCH_C);
    }
    return this.attrReply(node);
  }

  readlink(_ctx: RequestContext, nodeid: number): Buffer {
    const node = this.node(nodeid);
    if (!node.target) throw einval();
    return Buffer.from(node.target);
  }

  symlink(ctx: RequestContext, parent: number, name: Buffer, target: Buffer): Entry {
    this.mutable();
    const dir = this.dirNode(parent);
    const key = nameKey(name);
    if (target.length === 0) throw enoent();
    if (target.length >= PATH_MAX) throw enametoolong();
    this.checkPerm(ctx, dir, X_OK);
    if (dir.dir.entries.has(key)) throw eexist(); // before the write check, as filename_create() does
    this.mayCreate(ctx, dir);
    const node = this.newNode(ctx, dir, S_IFLNK, 0o777);
    node.target = Buffer.from(target);
    this.addEntry(dir, key, name, node);
    touch(dir, TOUCH_M | TOUCH_C);
    return this.lookedUp(node);
  }

  mknod(ctx: RequestContext, parent: number, name: Buffer, mode: number, rdev: number, umask: number): Entry {
    this.mutable();
    let type = mode & S_IFMT;
    if (type === 0) type = S_IFREG;
    switch (type) {
      case S_IFREG:
      case S_IFIFO:
      case S_IFSOCK:
        break;
      case S_IFCHR:
      case S_IFBLK:
        if (ctx.uid !== 0) throw eperm(); // CAP_MKNOD
        break;
      case S_IFDIR:
        throw eperm();
      default:
        throw einval();
    }
    const dir = this.dirNode(parent);
    const key = nameKey(name);
    this.checkPerm(ctx, dir, X_OK);
    if (dir.dir.entries.has(key)) throw eexist(); // before the write check, as filename_create() does
    this.mayCreate(ctx, dir);
    const node = this.newNode(ctx, dir, type, mode & ~umask);
    if (type === S_IFREG) node.data = new FileData(this.store);
    if (type === S_IFCHR || type === S_IFBLK) node.rdev = rdev >>> 0;
    this.addEntry(dir, key, name, node);
    touch(dir, TOUCH_M | TOUCH_C);
    return this.lookedUp(node);
  }

  mkdir(ctx: RequestContext, parent: number, name: Buffer, mode: number, umask: number): Entry {
    this.mutable();
    const dir = this.dirNode(parent);
    const key = nameKey(name);
    this.checkPerm(ctx, dir, X_OK);
    if (dir.dir.entries.has(key)) throw eexist(); // before the write check, as filename_create() does
    this.mayCreate(ctx, dir);
    // mkdir(2) takes only rwx and sticky from mode; setgid comes from the parent.
    const node = this.newNode(ctx, dir, S_IFDIR, mode & ~umask & (0o777 | S_ISVTX));
    this.linkNewDir(dir, key, name, node);
    touch(dir, TOUCH_M | TOUCH_C);
    return this.lookedUp(node);
  }

  unlink(ctx: RequestContext, parent: number, name: Buffer): void {
    this.mutable();
    const dir = this.dirNode(parent);
    const key = nameKey(name);
    this.checkPerm(ctx, dir, X_OK);
    const ent = dir.dir.entries.get(key);
    if (!ent) throw enoent();
    this.mayDelete(ctx, dir, ent.node);
    if (ent.node.dir) throw eisdir();
    this.dropEntry(dir, ent);
    touch(dir, TOUCH_M | TOUCH_C);
  }

  rmdir(ctx: RequestContext, parent: number, name: Buffer): void {
    this.mutable();
    const dir = this.dirNode(parent);
    const key = nameKey(name);
    if (key === '.') throw einval();
    if (key === '..') throw enotempty();
    this.checkPerm(ctx, dir, X_OK);
    const ent = dir.dir.entries.get(key);
    if (!ent) throw enoent();
    this.mayDelete(ctx, dir, ent.node);
    if (!ent.node.dir) throw enotdir();
    if (ent.node.dir.entries.size > 0) throw enotempty();
    this.dropEntry(dir, ent);
    touch(dir, TOUCH_M | TOUCH_C);
  }

  rename(ctx: RequestContext, parent: number, name: Buffer, newparent: number, newname: Buffer, flags: number): void {
    this.mutable();
    if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)) throw einval();
    if (flags & RENAME_NOREPLACE && flags & RENAME_EXCHANGE) throw einval();
    if (flags & RENAME_WHITEOUT && flags & RENAME_EXCHANGE) throw einval();
    const sp = this.dirNode(parent);
    const tp = this.dirNode(newparent);
    const skey = nameKey(name);
    const tkey = nameKey(newname);
    this.checkPerm(ctx, sp, X_OK);
    this.checkPerm(ctx, tp, X_OK);
    const se = sp.dir.entries.get(skey);
    if (!se) throw enoent();
    const te = tp.dir.entries.get(tkey);
    const exchange = (flags & RENAME_EXCHANGE) !== 0;
    if (flags & RENAME_NOREPLACE && te) throw eexist();
    if (exchange && !te) throw enoent();
    if (tp.dir.removed) throw enoent();
    const src = se.node;
    const tgt = te?.node;
    // lock_rename() traps: the source may not contain the target's directory;
    // a target that contains the source's directory is "not empty".
    if (src.dir && this.isAncestor(src, tp)) throw einval();
    if (tgt?.dir && this.isAncestor(tgt, sp)) throw exchange ? einval() : enotempty();
    if (src === tgt) return; // two names of one inode: rename does nothing

    this.mayDelete(ctx, sp, src);
    if (tgt) {
      this.mayDelete(ctx, tp, tgt);
      if (!exchange) {
        if (src.dir && !tgt.dir) throw enotdir();
        if (!src.dir && tgt.dir) throw eisdir();
      }
    } else {
      this.mayCreate(ctx, tp);
    }
    // Moving a directory to a new parent rewrites its '..': needs write on it.
    if (sp !== tp) {
      if (src.dir) this.checkPerm(ctx, src, W_OK);
      if (exchange && tgt?.dir) this.checkPerm(ctx, tgt, W_OK);
    }
    if (!exchange && tgt?.dir && tgt.dir.entries.size > 0) throw enotempty();
    // RENAME_WHITEOUT (overlayfs upper layers): the source name is left
    // holding a 0:0 character device owned by the caller, as ext4 does.
    // Made before anything moves, so ENOSPC leaves the tree as it was.
    const whiteout = flags & RENAME_WHITEOUT ? this.newNode(ctx, sp, S_IFCHR, 0) : undefined;

    if (exchange) {
      const t = tgt!;
      se.node = t;
      te!.node = src;
      if (sp !== tp) {
        if (src.dir) {
          src.dir.parent = tp;
          sp.nlink--;
          tp.nlink++;
        }
        if (t.dir) {
          t.dir.parent = sp;
          tp.nlink--;
          sp.nlink++;
        }
      }
      touch(t, TOUCH_C);
    } else {
      if (te) this.dropEntry(tp, te);
      this.removeEntry(sp, se);
      this.addEntry(tp, tkey, newname, src);
      if (whiteout) this.addEntry(sp, skey, name, whiteout);
      if (src.dir && sp !== tp) {
        src.dir.parent = tp;
        sp.nlink--;
        tp.nlink++;
      }
    }
    touch(src, TOUCH_C);
    touch(sp, TOUCH_M | TOUCH_C);
    if (tp !== sp) touch(tp, TOUCH_M | TOUCH_C);
  }

  link(ctx: RequestContext, nodeid: number, newparent: number, newname: Buffer): Entry {
    this.mutable();
    const node = this.node(nodeid);
    const dir = this.dirNode(newparent);
    const key = nameKey(newname);
    // filename_create() finds an existing name before vfs_link() looks at the source.
    this.checkPerm(ctx, dir, X_OK);
    if (dir.dir.entries.has(key)) throw eexist();
    // may_linkat() with fs.protected_hardlinks=1 (the Linux default): a
    // non-owner may only link a plain regular file it can read and write.
    if (ctx.uid !== 0 && ctx.uid !== node.uid) {
      const safe =
        node.type === S_IFREG &&
        !(node.mode & S_ISUID) &&
        (node.mode & (S_ISGID | S_IXGRP)) !== (S_ISGID | S_IXGRP) &&
        this.permitted(ctx, node, R_OK | W_OK);
      if (!safe) throw eperm();
    }
    this.mayCreate(ctx, dir);
    if (node.dir) throw eperm();
    if (node.nlink === 0) throw enoent(); // an unlinked-but-open file cannot come back
    this.addEntry(dir, key, newname, node);
    node.nlink++;
    touch(node, TOUCH_C);
    touch(dir, TOUCH_M | TOUCH_C);
    return this.lookedUp(node);
  }

  open(ctx: RequestContext, nodeid: number, flags: number): OpenReply {
    const node = this.node(nodeid);
    return { fh: this.openNode(ctx, node, flags), open_flags: this.openFlags };
  }

  private openNode(ctx: RequestContext, node: MemNode, flags: number, created = false): number {
    const acc = flags & O_ACCMODE;
    if (acc === 3) throw einval();
    const writing = acc !== O_RDONLY || (flags & O_TRUNC) !== 0;
    // may_open(): type errors first, then inode_permission() (EROFS for
    // files and directories, then the mode bits), then, here, ENXIO.
    if (node.type === S_IFLNK) throw new FsError(E.ELOOP);
    if (node.dir && writing) throw eisdir();
    const special = !node.data && !node.dir;
    if (writing && this.readonly && !special) throw erofs();
    if (!created) {
      let mask = 0;
      if (acc === O_RDONLY || acc === fsc.O_RDWR) mask |= R_OK;
      if (writing) mask |= W_OK;
      this.checkPerm(ctx, node, mask);
    }
    // FIFOs, sockets and devices are metadata only here: nothing to do I/O with.
    if (special) throw new FsError(E.ENXIO);
    // Linux truncates on O_TRUNC whatever the access mode (the write check above covers it).
    if (flags & O_TRUNC && node.data) {
      node.data.truncate(0);
      if (ctx.uid !== 0) killSuidSgid(node);
      touch(node, TOUCH_M | TOUCH_C);
    }
    return this.newHandle(node, flags, false);
  }

  create(
    ctx: RequestContext,
    parent: number,
    name: Buffer,
    mode: number,
    flags: number,
    umask: number,
  ): { entry: Entry; open: OpenReply } {
    const dir = this.dirNode(parent);
    const key = nameKey(name);
    this.checkPerm(ctx, dir, X_OK);
    const existing = dir.dir.entries.get(key);
    if (existing) {
      // O_CREAT on an existing name: EEXIST with O_EXCL, else a plain open.
      if (flags & O_EXCL) throw eexist();
      const fh = this.openNode(ctx, existing.node, flags);
      return { entry: this.lookedUp(existing.node), open: { fh, open_flags: this.openFlags } };
    }
    this.mutable();
    this.mayCreate(ctx, dir);
    const node = this.newNode(ctx, dir, S_IFREG, mode & ~umask);
    node.data = new FileData(this.store);
    this.addEntry(dir, key, name, node);
    touch(dir, TOUCH_M | TOUCH_C);
    const fh = this.openNode(ctx, node, flags & ~O_TRUNC, true);
    return { entry: this.lookedUp(node), open: { fh, open_flags: this.openFlags } };
  }

  read(_ctx: RequestContext, nodeid: number, fh: number, offset: number, size: number, dest: Buffer): number {
    const node = this.node(nodeid);
    // Any handle of the node may read: with writeback caching the kernel reads
    // through O_WRONLY handles to fill partial pages.
    this.handle(fh, node, false);
    if (!node.data) throw eisdir();
    if (offset < 0) throw einval();
    const n = node.data.read(offset, Math.min(size, dest.length), dest, 0);
    // relatime: record the access only when atime is not already newer than the last change.
    if (!this.readonly && (node.atime < node.mtime || (node.atime === node.mtime && node.atimensec <= node.mtimensec))) {
      touch(node, TOUCH_A);
    }
    return n;
  }

  write(ctx: RequestContext, nodeid: number, fh: number, offset: number, data: Buffer, writeFlags: number): number {
    const node = this.node(nodeid);
    const h = this.handle(fh, node, false);
    this.mutable();
    if ((h.flags & O_ACCMODE) === O_RDONLY) throw ebadf();
    if (!node.data) throw eisdir();
    if (offset < 0) throw einval();
    // The kernel passes offsets even for O_APPEND; honour the flag so two
    // appenders (or a stale offset) never overwrite each other.
    const at = h.flags & O_APPEND ? node.data.size : offset;
    if (data.length === 0) return 0;
    const n = node.data.write(at, data);
    if (node.mode & (S_ISUID | S_ISGID) && (ctx.uid !== 0 || writeFlags & FUSE_WRITE_KILL_SUIDGID)) killSuidSgid(node);
    touch(node, TOUCH_M | TOUCH_C);
    return n;
  }

  flush(_ctx: RequestContext, nodeid: number, fh: number, _lockOwner: bigint): void {
    this.handle(fh, this.node(nodeid), false);
  }

  release(_ctx: RequestContext, nodeid: number, fh: number, _flags: number): void {
    const h = this.handles.get(fh);
    if (!h || h.isDir || h.node.ino !== nodeid) throw ebadf();
    this.handles.delete(fh);
    h.node.opens--;
    this.maybeFree(h.node);
  }

  fsync(_ctx: RequestContext, nodeid: number, fh: number, _datasync: boolean): void {
    this.handle(fh, this.node(nodeid), false);
  }

  fallocate(ctx: RequestContext, nodeid: number, fh: number, offset: number, length: number, mode: number): void {
    const node = this.node(nodeid);
    const h = this.handle(fh, node, false);
    this.mutable();
    if (offset < 0 || length <= 0) throw einval();
    if (mode & FALLOC_FL_PUNCH_HOLE && mode & FALLOC_FL_ZERO_RANGE) throw einval();
    if ((h.flags & O_ACCMODE) === O_RDONLY) throw ebadf();
    if (node.dir) throw eisdir();
    if (!node.data) throw new FsError(E.ENODEV);
    if (offset + length > MAX_FILE_SIZE) throw new FsError(E.EFBIG);
    const data = node.data;
    const end = offset + length;
    const known = [0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE];
    // file_modified(): fallocate drops setuid/setgid like a write (callers without CAP_FSETID).
    if (known.includes(mode) && ctx.uid !== 0) killSuidSgid(node);
    switch (mode) {
      case 0:
      case FALLOC_FL_KEEP_SIZE:
        data.allocate(offset, length);
        if (mode === 0 && end > data.size) {
          data.size = end;
          touch(node, TOUCH_M | TOUCH_C);
        }
        return;
      case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
        // The whole range, past EOF too: the page holding EOF is freed when the
        // range covers it, and space kept by KEEP_SIZE goes, as on ext4.
        data.zero(offset, length, true);
        touch(node, TOUCH_M | TOUCH_C);
        return;
      case FALLOC_FL_ZERO_RANGE:
      case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
        data.allocate(offset, length);
        data.zero(offset, length, false);
        if (!(mode & FALLOC_FL_KEEP_SIZE) && end > data.size) data.size = end;
        touch(node, TOUCH_M | TOUCH_C);
        return;
      default:
        // PUNCH_HOLE without KEEP_SIZE, COLLAPSE/INSERT/UNSHARE: not supported.
        throw new FsError(E.EOPNOTSUPP);
    }
  }

  lseek(_ctx: RequestContext, nodeid: number, fh: number, offset: number, whence: number): number {
    const node = this.node(nodeid);
    this.handle(fh, node, false);
    if (!node.data) throw einval();
    let at: number;
    switch (whence) {
      case SEEK_SET:
      case SEEK_CUR: // the kernel keeps the position; it only asks us with an absolute offset
        at = offset;
        break;
      case SEEK_END:
        at = node.data.size + offset;
        break;
      case SEEK_DATA:
        if (offset < 0) throw new FsError(E.ENXIO);
        return node.data.seekData(offset);
      case SEEK_HOLE:
        if (offset < 0) throw new FsError(E.ENXIO);
        return node.data.seekHole(offset);
      default:
        throw einval();
    }
    if (at < 0) throw einval();
    return at;
  }

  copyFileRange(
    ctx: RequestContext,
    nodeidIn: number,
    fhIn: number,
    offIn: number,
    nodeidOut: number,
    fhOut: number,
    offOut: number,
    len: number,
    flags: number,
  ): number {
    const src = this.node(nodeidIn);
    const dst = this.node(nodeidOut);
    const hin = this.handle(fhIn, src, false);
    const hout = this.handle(fhOut, dst, false);
    if (flags !== 0) throw einval();
    this.mutable();
    if ((hin.flags & O_ACCMODE) === O_WRONLY || (hout.flags & O_ACCMODE) === O_RDONLY) throw ebadf();
    if (hout.flags & O_APPEND) throw ebadf();
    if (src.dir || dst.dir) throw eisdir();
    if (!src.data || !dst.data) throw einval();
    if (offIn < 0 || offOut < 0 || len < 0) throw einval();
    const total = Math.max(0, Math.min(len, src.data.size - offIn));
    if (total === 0) return 0;
    if (offOut + total > MAX_FILE_SIZE) throw new FsError(E.EFBIG);
    // Same file, overlapping ranges: EINVAL, as Linux says.
    if (src === dst && offIn < offOut + total && offOut < offIn + total) throw einval();
    // Runs of data pages go through one chunk-sized buffer; runs of hole pages
    // are punched in the copy, so a sparse file stays sparse.
    const buf = Buffer.allocUnsafe(Math.min(total, CHUNK_SIZE));
    let done = 0;
    while (done < total) {
      const pos = offIn + done;
      let n = Math.min((Math.floor(pos / PAGE_SIZE) + 1) * PAGE_SIZE - pos, total - done);
      const hole = src.data.isHole(pos, n);
      while (done + n < total && n < buf.length) {
        const m = Math.min(PAGE_SIZE, total - done - n, buf.length - n);
        if (src.data.isHole(pos + n, m) !== hole) break;
        n += m;
      }
      if (hole) {
        dst.data.zero(offOut + done, n, true);
        if (offOut + done + n > dst.data.size) dst.data.size = offOut + done + n;
      } else {
        src.data.read(pos, n, buf, 0);
        const w = dst.data.write(offOut + done, buf, 0, n);
        if (w < n) {
          done += w;
          break;
        }
      }
      done += n;
    }
    if (dst.mode & (S_ISUID | S_ISGID) && ctx.uid !== 0) killSuidSgid(dst);
    touch(dst, TOUCH_M | TOUCH_C);
    return done;
  }

  opendir(ctx: RequestContext, nodeid: number, flags: number): OpenReply {
    const node = this.dirNode(nodeid);
    const acc = flags & O_ACCMODE;
    if (acc !== O_RDONLY) throw eisdir();
    this.checkPerm(ctx, node, R_OK);
    return { fh: this.newHandle(node, flags, true), open_flags: 0 };
  }

  /** Index in `list` of the first entry whose serial is greater than `cookie`. */
  private static firstAfter(list: DirEnt[], cookie: number): number {
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (list[mid]!.serial <= cookie) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  readdir(_ctx: RequestContext, nodeid: number, fh: number, offset: number, sink: DirSink): void {
    const node = this.dirNode(nodeid);
    this.handle(fh, node, true);
    if (node.dir.removed) throw enoent();
    const DT_DIR = S_IFDIR >> 12;
    if (offset < 1 && !sink.add({ ino: node.ino, off: 1, type: DT_DIR, name: DOT })) return;
    if (offset < 2 && !sink.add({ ino: node.dir.parent.ino, off: 2, type: DT_DIR, name: DOTDOT })) return;
    const list = node.dir.list;
    for (let i = MemoryFs.firstAfter(list, offset); i < list.length; i++) {
      const e = list[i]!;
      if (e.dead) continue;
      if (!sink.add({ ino: e.node.ino, off: e.serial, type: e.node.type >> 12, name: e.name })) return;
    }
  }

  readdirplus(_ctx: RequestContext, nodeid: number, fh: number, offset: number, sink: DirPlusSink): void {
    const node = this.dirNode(nodeid);
    this.handle(fh, node, true);
    if (node.dir.removed) throw enoent();
    const DT_DIR = S_IFDIR >> 12;
    // '.' and '..' carry nodeid 0: the kernel takes no reference for them.
    if (offset < 1) {
      const e = { ...this.entryOf(node), nodeid: 0, entry_valid: 0, attr_valid: 0 };
      if (!sink.add({ ino: node.ino, off: 1, type: DT_DIR, name: DOT }, e)) return;
    }
    if (offset < 2) {
      const p = node.dir.parent;
      const e = { ...this.entryOf(p), nodeid: 0, entry_valid: 0, attr_valid: 0 };
      if (!sink.add({ ino: p.ino, off: 2, type: DT_DIR, name: DOTDOT }, e)) return;
    }
    const list = node.dir.list;
    for (let i = MemoryFs.firstAfter(list, offset); i < list.length; i++) {
      const e = list[i]!;
      if (e.dead) continue;
      const child = e.node;
      if (!sink.add({ ino: child.ino, off: e.serial, type: child.type >> 12, name: e.name }, this.entryOf(child))) return;
      child.lookups++; // only for entries the sink took
    }
  }

  releasedir(_ctx: RequestContext, nodeid: number, fh: number): void {
    const h = this.handles.get(fh);
    if (!h || !h.isDir || h.node.ino !== nodeid) throw ebadf();
    this.handles.delete(fh);
    h.node.opens--;
    this.maybeFree(h.node);
  }

  fsyncdir(_ctx: RequestContext, nodeid: number, fh: number, _datasync: boolean): void {
    this.handle(fh, this.dirNode(nodeid), true);
  }

  statfs(_ctx: RequestContext, _nodeid: number): StatFs {
    const blocks = this.capacity / BLKSIZE;
    const free = Math.max(0, Math.floor((this.capacity - this.store.usedBytes) / BLKSIZE));
    return {
      blocks,
      bfree: free,
      bavail: free,
      files: this.maxInodes,
      ffree: Math.max(0, this.maxInodes - this.nodes.size),
      bsize: BLKSIZE,
      namelen: NAME_MAX,
      frsize: BLKSIZE,
    };
  }

  access(ctx: RequestContext, nodeid: number, mask: number): void {
    const node = this.node(nodeid);
    if (mask & ~7) throw einval();
    if (mask & W_OK && this.readonly && (node.dir || node.data || node.target)) throw erofs();
    this.checkPerm(ctx, node, mask);
  }

  // ---- xattrs ------------------------------------------------------------------

  /** xattr_permission() + namespace check. Returns the key to store under. */
  private xattrCheck(ctx: RequestContext, node: MemNode, name: Buffer, write: boolean): string {
    if (name.length > XATTR_NAME_MAX) throw new FsError(E.ERANGE);
    const key = name.toString('latin1');
    const prefix = XATTR_PREFIXES.find((p) => key.startsWith(p));
    // No ACLs (system.posix_acl_*) and no unknown namespaces.
    if (!prefix) throw new FsError(E.EOPNOTSUPP);
    if (key.length === prefix.length) throw einval();
    if (prefix === 'trusted.') {
      if (ctx.uid !== 0) throw write ? eperm() : enodata();
      return key;
    }
    if (prefix === 'security.') {
      if (write && ctx.uid !== 0) throw eperm();
      return key;
    }
    // user.*: only regular files and directories; sticky directories only by their owner.
    if (!node.data && !node.dir) throw write ? eperm() : enodata();
    if (write && node.dir && node.mode & S_ISVTX && !this.isOwner(ctx, node)) throw eperm();
    this.checkPerm(ctx, node, write ? W_OK : R_OK);
    return key;
  }

  setxattr(ctx: RequestContext, nodeid: number, name: Buffer, value: Buffer, flags: number): void {
    const node = this.node(nodeid);
    this.mutable();
    if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) throw einval();
    if (value.length > XATTR_SIZE_MAX) throw new FsError(E.E2BIG);
    const key = this.xattrCheck(ctx, node, name, true);
    const has = node.xattrs?.has(key) ?? false;
    if (flags & XATTR_CREATE && has) throw eexist();
    if (flags & XATTR_REPLACE && !has) throw enodata();
    (node.xattrs ??= new Map()).set(key, Buffer.from(value));
    touch(node, TOUCH_C);
  }

  getxattr(ctx: RequestContext, nodeid: number, name: Buffer): Buffer {
    const node = this.node(nodeid);
    const key = this.xattrCheck(ctx, node, name, false);
    const value = node.xattrs?.get(key);
    if (!value) throw enodata();
    return Buffer.from(value);
  }

  listxattr(ctx: RequestContext, nodeid: number): Buffer {
    const node = this.node(nodeid);
    if (!node.xattrs || node.xattrs.size === 0) return Buffer.alloc(0);
    const parts: Buffer[] = [];
    for (const key of node.xattrs.keys()) {
      if (key.startsWith('trusted.') && ctx.uid !== 0) continue;
      parts.push(Buffer.from(key, 'latin1'), Buffer.alloc(1));
    }
    return Buffer.concat(parts);
  }

  removexattr(ctx: RequestContext, nodeid: number, name: Buffer): void {
    const node = this.node(nodeid);
    this.mutable();
    const key = this.xattrCheck(ctx, node, name, true);
    if (!node.xattrs?.delete(key)) throw enodata();
    touch(node, TOUCH_C);
  }
}

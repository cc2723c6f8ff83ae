// Layer: driver. A small VFS over the raw FUSE client: path walking with an
// entry cache and an attribute cache kept for exactly as long as the backend
// said (entry_valid / attr_valid), exact lookup counting with FORGET, and a
// promise API shaped like node:fs/promises. Imports ./fuse-client.ts,
// ./errors.ts, ./dax/dax-manager.ts, fuse/abi.ts (types, constants) only.
//
// Lookup counts: every reply that hands out a node reference (LOOKUP, CREATE,
// MKDIR, MKNOD, SYMLINK, LINK) adds one to that node's `nlookup` here. A node
// is forgotten (FORGET with its whole count) when nothing refers to it any
// more: no cached entry and no open handle. close() forgets everything left.
import { Readable } from 'node:stream';
import { constants as fsc } from 'node:fs';
import { FUSE_ROOT_ID, type Attr, type EntryOut } from '../fuse/abi.ts';
import { DriverError } from './errors.ts';
import { FuseClient } from './fuse-client.ts';
import type { DaxManager } from './dax/dax-manager.ts';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const MAX_SYMLINKS = 40;
/** Requests of one big read/write in flight together. */
const IO_PARALLEL = 8;

interface Node {
  nodeid: number;
  nlookup: number;
  /** Open handles and walks in progress holding the node. */
  refs: number;
  /** Entry keys ("parent\0name") that point here. */
  dentries: Set<string>;
  attr: Attr | null;
  attrExpires: number;
}

interface Dentry {
  nodeid: number;
  expires: number;
}

const validUntil = (sec: number, nsec: number): number => {
  const ms = sec * 1000 + nsec / 1e6;
  return ms > 0 ? performance.now() + ms : 0;
};

/** A Stats-like object (the fields of node:fs Stats a program reads). */
export class VStats {
  readonly dev = 0;
  readonly ino: number;
  readonly mode: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly rdev: number;
  readonly size: number;
  readonly blksize: number;
  readonly blocks: number;
  readonly atimeMs: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly birthtimeMs: number;
  constructor(a: Attr) {
    this.ino = a.ino;
    this.mode = a.mode;
    this.nlink = a.nlink;
    this.uid = a.uid;
    this.gid = a.gid;
    this.rdev = a.rdev;
    this.size = a.size;
    this.blksize = a.blksize;
    this.blocks = a.blocks;
    this.atimeMs = a.atime * 1000 + a.atimensec / 1e6;
    this.mtimeMs = a.mtime * 1000 + a.mtimensec / 1e6;
    this.ctimeMs = a.ctime * 1000 + a.ctimensec / 1e6;
    this.birthtimeMs = this.ctimeMs;
  }
  get atime(): Date { return new Date(this.atimeMs); }
  get mtime(): Date { return new Date(this.mtimeMs); }
  get ctime(): Date { return new Date(this.ctimeMs); }
  get birthtime(): Date { return new Date(this.birthtimeMs); }
  isFile(): boolean { return (this.mode & S_IFMT) === S_IFREG; }
  isDirectory(): boolean { return (this.mode & S_IFMT) === S_IFDIR; }
  isSymbolicLink(): boolean { return (this.mode & S_IFMT) === S_IFLNK; }
  isFIFO(): boolean { return (this.mode & S_IFMT) === S_IFIFO; }
  isSocket(): boolean { return (this.mode & S_IFMT) === S_IFSOCK; }
  isCharacterDevice(): boolean { return (this.mode & S_IFMT) === S_IFCHR; }
  isBlockDevice(): boolean { return (this.mode & S_IFMT) === S_IFBLK; }
}

/** A Dirent-like entry (readdir with withFileTypes). */
export class VDirent {
  constructor(readonly name: string, readonly path: string, private readonly dtype: number) {}
  isFile(): boolean { return this.dtype === 8; }
  isDirectory(): boolean { return this.dtype === 4; }
  isSymbolicLink(): boolean { return this.dtype === 10; }
  isFIFO(): boolean { return this.dtype === 1; }
  isSocket(): boolean { return this.dtype === 12; }
  isCharacterDevice(): boolean { return this.dtype === 2; }
  isBlockDevice(): boolean { return this.dtype === 6; }
}

function parseFlags(flags: string | number | undefined): number {
  if (typeof flags === 'number') return flags;
  switch (flags ?? 'r') {
    case 'r': return fsc.O_RDONLY;
    case 'rs': case 'sr': return fsc.O_RDONLY | fsc.O_SYNC;
    case 'r+': return fsc.O_RDWR;
    case 'rs+': case 'sr+': return fsc.O_RDWR | fsc.O_SYNC;
    case 'w': return fsc.O_TRUNC | fsc.O_CREAT | fsc.O_WRONLY;
    case 'wx': case 'xw': return fsc.O_TRUNC | fsc.O_CREAT | fsc.O_WRONLY | fsc.O_EXCL;
    case 'w+': return fsc.O_TRUNC | fsc.O_CREAT | fsc.O_RDWR;
    case 'wx+': case 'xw+': return fsc.O_TRUNC | fsc.O_CREAT | fsc.O_RDWR | fsc.O_EXCL;
    case 'a': return fsc.O_APPEND | fsc.O_CREAT | fsc.O_WRONLY;
    case 'ax': case 'xa': return fsc.O_APPEND | fsc.O_CREAT | fsc.O_WRONLY | fsc.O_EXCL;
    case 'a+': return fsc.O_APPEND | fsc.O_CREAT | fsc.O_RDWR;
    case 'ax+': case 'xa+': return fsc.O_APPEND | fsc.O_CREAT | fsc.O_RDWR | fsc.O_EXCL;
    default: throw new DriverError('EINVAL', `unknown open flags '${String(flags)}'`, 'open');
  }
}

function withPath(err: unknown, syscall: string, path: string): Error {
  if (err instanceof DriverError) return new DriverError(err.code, err.message.replace(/^E[A-Z0-9]+: /, '').replace(/, \w+$/, ''), syscall, path);
  return err as Error;
}

function splitPath(path: string): string[] {
  if (typeof path !== 'string') throw new DriverError('EINVAL', 'path must be a string', 'resolve');
  if (path.includes('\0')) throw new DriverError('EINVAL', 'path contains a NUL byte', 'resolve', path.replace(/\0/g, '\\0'));
  return path.split('/').filter((c) => c !== '' && c !== '.');
}

export interface VirtioFsOptions {
  /** Applied to created files and directories (the guest's umask). Default 0o022. */
  umask?: number;
  /** DAX window manager (null/undefined: every read is a FUSE_READ). */
  dax?: DaxManager | null;
}

/** The node:fs/promises-shaped API over one FUSE session. */
export class VirtioFs {
  private readonly nodes = new Map<number, Node>();
  private readonly dentries = new Map<string, Dentry>();
  private readonly umask: number;
  readonly dax: DaxManager | null;
  private readonly candidates = new Set<number>();
  private lastFullSweep = 0;
  /** VFS calls in progress (sweep() waits for 0). */
  private active = 0;
  private nextFd = 100;

  constructor(readonly client: FuseClient, opts: VirtioFsOptions = {}) {
    this.umask = opts.umask ?? 0o022;
    this.dax = opts.dax ?? null;
    // The root is never looked up and never forgotten (its count is implicit).
    this.nodes.set(FUSE_ROOT_ID, { nodeid: FUSE_ROOT_ID, nlookup: 0, refs: 1, dentries: new Set(), attr: null, attrExpires: 0 });
  }

  /** Nodes the backend currently holds lookup references for (tests check FORGET bookkeeping). */
  get lookupCounts(): Map<number, number> {
    const m = new Map<number, number>();
    for (const n of this.nodes.values()) if (n.nlookup > 0) m.set(n.nodeid, n.nlookup);
    return m;
  }

  // ---- node and entry bookkeeping -------------------------------------------------

  /** Record a reply that handed out one reference to e.nodeid under parent/name. */
  private remember(parent: number, name: string, e: EntryOut): Node {
    let n = this.nodes.get(e.nodeid);
    if (!n) {
      n = { nodeid: e.nodeid, nlookup: 0, refs: 0, dentries: new Set(), attr: null, attrExpires: 0 };
      this.nodes.set(e.nodeid, n);
    }
    n.nlookup++;
    n.attr = e.attr;
    n.attrExpires = validUntil(e.attr_valid, e.attr_valid_nsec);
    const key = `${parent}\0${name}`;
    const old = this.dentries.get(key);
    if (old && old.nodeid !== e.nodeid) this.unlinkDentry(key);
    const expires = validUntil(e.entry_valid, e.entry_valid_nsec);
    this.dentries.set(key, { nodeid: e.nodeid, expires });
    n.dentries.add(key);
    this.maybeForget(n); // forgotten at the next sweep unless an entry or handle keeps it
    return n;
  }

  private unlinkDentry(key: string): void {
    const d = this.dentries.get(key);
    if (!d) return;
    this.dentries.delete(key);
    const n = this.nodes.get(d.nodeid);
    if (n) {
      n.dentries.delete(key);
      this.maybeForget(n);
    }
  }

  /**
   * Note a node that may have lost its last reference. It is forgotten only
   * by sweep(), which runs when no VFS call is in progress: a walk holds bare
   * nodeids between awaits, and a FORGET under it would free them.
   */
  private maybeForget(n: Node): void {
    if (n.nodeid !== FUSE_ROOT_ID) this.candidates.add(n.nodeid);
  }

  private unused(n: Node, now: number): boolean {
    if (n.nodeid === FUSE_ROOT_ID || n.refs > 0) return false;
    for (const key of n.dentries) {
      const d = this.dentries.get(key);
      if (d && d.expires > now) return false;
    }
    return true;
  }

  /** FORGET every candidate (or, now and then, every node) nothing refers to. */
  private sweep(): void {
    const now = performance.now();
    let list: Iterable<number> = this.candidates;
    if (this.nodes.size > 256 && now - this.lastFullSweep > 1000) {
      this.lastFullSweep = now;
      list = [...this.nodes.keys()]; // expired entries make nodes unused without any call noticing
    }
    const batch: { nodeid: number; nlookup: number }[] = [];
    for (const id of list) {
      const n = this.nodes.get(id);
      if (!n || !this.unused(n, now)) continue;
      for (const key of n.dentries) if (this.dentries.get(key)?.nodeid === id) this.dentries.delete(key);
      n.dentries.clear();
      this.nodes.delete(id);
      this.dax?.forgetNode(id);
      if (n.nlookup > 0) batch.push({ nodeid: id, nlookup: n.nlookup });
    }
    this.candidates.clear();
    if (batch.length === 1) this.client.forget(batch[0]!.nodeid, batch[0]!.nlookup).catch(() => {});
    else for (let i = 0; i < batch.length; i += 200) this.client.batchForget(batch.slice(i, i + 200)).catch(() => {});
  }

  private hold(nodeid: number): Node {
    const n = this.nodes.get(nodeid)!;
    n.refs++;
    return n;
  }

  private drop(n: Node): void {
    n.refs--;
    this.maybeForget(n);
    if (this.active === 0) this.sweep();
  }

  private async lookupChild(parent: number, name: string): Promise<number> {
    if (Buffer.byteLength(name) > 255) throw new DriverError('ENAMETOOLONG', 'name longer than 255 bytes', 'lookup');
    const key = `${parent}\0${name}`;
    const d = this.dentries.get(key);
    if (d && d.expires > performance.now()) return d.nodeid;
    const e = await this.client.lookup(parent, name);
    if (e.nodeid === 0) throw new DriverError('ENOENT', 'negative entry', 'lookup');
    return this.remember(parent, name, e).nodeid;
  }

  private async attrOf(nodeid: number): Promise<Attr> {
    const n = this.nodes.get(nodeid);
    if (n?.attr && n.attrExpires > performance.now()) return n.attr;
    const a = await this.client.getattr(nodeid);
    const m = this.nodes.get(nodeid);
    if (m) {
      m.attr = a.attr;
      m.attrExpires = validUntil(a.attr_valid, a.attr_valid_nsec);
    }
    return a.attr;
  }

  private invalidateAttr(nodeid: number): void {
    const n = this.nodes.get(nodeid);
    if (n) n.attrExpires = 0;
  }

  /**
   * Walk `path` from the root. Intermediate symlinks are followed (absolute
   * targets from the virtio-fs root); the last component only when
   * `followLast`. '..' never climbs above the root.
   */
  private async walk(path: string, followLast: boolean, depth = 0): Promise<number> {
    const parts = splitPath(path);
    const stack: number[] = [FUSE_ROOT_ID];
    let links = depth;
    for (let i = 0; i < parts.length; i++) {
      const c = parts[i]!;
      const cur = stack[stack.length - 1]!;
      if (c === '..') {
        if (stack.length > 1) stack.pop();
        continue;
      }
      const child = await this.lookupChild(cur, c);
      const last = i === parts.length - 1;
      const a = await this.attrOf(child);
      if ((a.mode & S_IFMT) === S_IFLNK && (!last || followLast)) {
        if (++links > MAX_SYMLINKS) throw new DriverError('ELOOP', 'too many symbolic links', 'resolve');
        const target = (await this.client.readlink(child)).toString();
        const rest = parts.slice(i + 1).join('/');
        const prefix = target.startsWith('/') ? '' : this.pathOf(stack);
        return this.walk(`${prefix}/${target}/${rest}`, followLast, links);
      }
      if (!last && (a.mode & S_IFMT) !== S_IFDIR) throw new DriverError('ENOTDIR', 'not a directory', 'resolve');
      stack.push(child);
    }
    return stack[stack.length - 1]!;
  }

  /** Reconstruct a path for a walked stack (only used for relative symlink targets). */
  private pathOf(stack: number[]): string {
    const names: string[] = [];
    for (let i = 1; i < stack.length; i++) {
      const want = stack[i]!;
      const parent = stack[i - 1]!;
      const n = this.nodes.get(want);
      let found = '';
      for (const key of n?.dentries ?? []) {
        const [p, name] = key.split('\0');
        if (Number(p) === parent) { found = name!; break; }
      }
      names.push(found);
    }
    return '/' + names.join('/');
  }

  /** Parent nodeid and final name of `path` (the parent's symlinks followed). */
  private async parentOf(path: string): Promise<[number, string]> {
    const parts = splitPath(path);
    const name = parts.pop();
    if (name === undefined || name === '..') throw new DriverError('EINVAL', 'path has no final name', 'resolve', path);
    const parent = parts.length === 0 ? FUSE_ROOT_ID : await this.walk(parts.join('/'), true);
    const pa = await this.attrOf(parent);
    if ((pa.mode & S_IFMT) !== S_IFDIR) throw new DriverError('ENOTDIR', 'not a directory', 'resolve', path);
    if (Buffer.byteLength(name) > 255) throw new DriverError('ENAMETOOLONG', 'name longer than 255 bytes', 'resolve', path);
    return [parent, name];
  }

  private async op<T>(syscall: string, path: string, fn: () => Promise<T>): Promise<T> {
    this.active++;
    try {
      return await fn();
    } catch (err) {
      throw withPath(err, syscall, path);
    } finally {
      if (--this.active === 0) this.sweep();
    }
  }

  // ---- fs/promises ------------------------------------------------------------------

  stat(path: string): Promise<VStats> {
    return this.op('stat', path, async () => new VStats(await this.attrOf(await this.walk(path, true))));
  }

  lstat(path: string): Promise<VStats> {
    return this.op('lstat', path, async () => new VStats(await this.attrOf(await this.walk(path, false))));
  }

  access(path: string, mode = fsc.F_OK): Promise<void> {
    return this.op('access', path, async () => {
      const n = await this.walk(path, true);
      if (mode !== fsc.F_OK) await this.client.access(n, mode);
    });
  }

  readlink(path: string): Promise<string> {
    return this.op('readlink', path, async () => {
      const n = await this.walk(path, false);
      // The kernel's VFS answers EINVAL for a non-symlink before asking the fs; so do we.
      if (((await this.attrOf(n)).mode & S_IFMT) !== S_IFLNK) throw new DriverError('EINVAL', 'not a symbolic link', 'readlink');
      return (await this.client.readlink(n)).toString();
    });
  }

  async readdir(path: string, opts?: { withFileTypes?: false } | BufferEncoding): Promise<string[]>;
  async readdir(path: string, opts: { withFileTypes: true }): Promise<VDirent[]>;
  async readdir(path: string, opts?: { withFileTypes?: boolean } | BufferEncoding): Promise<string[] | VDirent[]> {
    const types = typeof opts === 'object' && opts.withFileTypes === true;
    return this.op('scandir', path, async () => {
      const dir = await this.walk(path, true);
      const n = this.hold(dir);
      try {
        const o = await this.client.opendir(dir);
        const out: { name: string; type: number }[] = [];
        try {
          let offset = 0;
          for (;;) {
            const ents = await this.client.readdir(dir, o.fh, offset);
            if (ents.length === 0) break;
            for (const e of ents) {
              const name = e.name.toString();
              if (name !== '.' && name !== '..') out.push({ name, type: e.type });
              offset = e.off;
            }
          }
        } finally {
          await this.client.releasedir(dir, o.fh).catch(() => {});
        }
        out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        return types ? out.map((e) => new VDirent(e.name, path, e.type)) : out.map((e) => e.name);
      } finally {
        this.drop(n);
      }
    });
  }

  mkdir(path: string, opts: { recursive?: boolean; mode?: number } | number = {}): Promise<string | undefined> {
    const o = typeof opts === 'number' ? { mode: opts } : opts;
    const mode = o.mode ?? 0o777;
    return this.op('mkdir', path, async () => {
      if (o.recursive) {
        const parts = splitPath(path);
        let first: string | undefined;
        let cur = FUSE_ROOT_ID;
        for (let i = 0; i < parts.length; i++) {
          const c = parts[i]!;
          try {
            cur = await this.lookupChild(cur, c);
            const a = await this.attrOf(cur);
            if ((a.mode & S_IFMT) !== S_IFDIR) throw new DriverError('ENOTDIR', 'not a directory', 'mkdir');
          } catch (err) {
            if ((err as DriverError).code !== 'ENOENT') throw err;
            const e = await this.client.mkdir(cur, c, mode & ~this.umask, this.umask);
            this.invalidateAttr(cur);
            cur = this.remember(cur, c, e).nodeid;
            first ??= '/' + parts.slice(0, i + 1).join('/');
          }
        }
        return first;
      }
      const [parent, name] = await this.parentOf(path);
      const e = await this.client.mkdir(parent, name, mode & ~this.umask, this.umask);
      this.invalidateAttr(parent);
      this.remember(parent, name, e);
      return undefined;
    });
  }

  unlink(path: string): Promise<void> {
    return this.op('unlink', path, async () => {
      const [parent, name] = await this.parentOf(path);
      await this.lookupChild(parent, name); // ENOENT here, as the kernel's VFS would (some backends answer EIO)
      await this.client.unlink(parent, name);
      this.afterRemove(parent, name);
    });
  }

  rmdir(path: string): Promise<void> {
    return this.op('rmdir', path, async () => {
      const [parent, name] = await this.parentOf(path);
      await this.lookupChild(parent, name);
      await this.client.rmdir(parent, name);
      this.afterRemove(parent, name);
    });
  }

  private afterRemove(parent: number, name: string): void {
    const key = `${parent}\0${name}`;
    const d = this.dentries.get(key);
    if (d) {
      this.invalidateAttr(d.nodeid); // nlink changed
      const n = this.nodes.get(d.nodeid);
      this.dentries.delete(key);
      n?.dentries.delete(key);
      if (n) this.maybeForget(n);
    }
    this.invalidateAttr(parent);
  }

  rm(path: string, opts: { recursive?: boolean; force?: boolean } = {}): Promise<void> {
    return this.op('rm', path, async () => {
      let st: VStats;
      try {
        st = await this.lstat(path);
      } catch (err) {
        if (opts.force && (err as DriverError).code === 'ENOENT') return;
        throw err;
      }
      if (st.isDirectory()) {
        if (!opts.recursive) throw new DriverError('EISDIR', 'is a directory (use recursive)', 'rm', path);
        for (const name of await this.readdir(path)) await this.rm(`${path}/${name}`, opts);
        await this.rmdir(path);
      } else {
        await this.unlink(path);
      }
    });
  }

  rename(oldPath: string, newPath: string): Promise<void> {
    return this.op('rename', oldPath, async () => {
      const [op, on] = await this.parentOf(oldPath);
      const [np, nn] = await this.parentOf(newPath);
      await this.lookupChild(op, on); // the source must exist (kernel VFS order)
      await this.client.rename(op, on, np, nn);
      const moved = this.dentries.get(`${op}\0${on}`);
      const replaced = this.dentries.get(`${np}\0${nn}`);
      if (replaced) this.invalidateAttr(replaced.nodeid); // its nlink dropped
      this.unlinkDentry(`${np}\0${nn}`);
      this.unlinkDentry(`${op}\0${on}`);
      if (moved) this.invalidateAttr(moved.nodeid);
      this.invalidateAttr(op);
      this.invalidateAttr(np);
    });
  }

  symlink(target: string, path: string): Promise<void> {
    return this.op('symlink', path, async () => {
      const [parent, name] = await this.parentOf(path);
      const e = await this.client.symlink(parent, name, target);
      this.invalidateAttr(parent);
      this.remember(parent, name, e);
    });
  }

  link(existing: string, newPath: string): Promise<void> {
    return this.op('link', newPath, async () => {
      const node = await this.walk(existing, false);
      const [parent, name] = await this.parentOf(newPath);
      // linkat(2) checks the new name before the source's type (EEXIST before EPERM).
      if (await this.lookupChild(parent, name).then(() => true, () => false)) throw new DriverError('EEXIST', 'file exists', 'link');
      const e = await this.client.link(node, parent, name);
      this.invalidateAttr(parent);
      this.remember(parent, name, e);
    });
  }

  chmod(path: string, mode: number): Promise<void> {
    return this.op('chmod', path, async () => {
      const n = await this.walk(path, true);
      await this.client.setattr(n, { mode });
      this.invalidateAttr(n);
    });
  }

  truncate(path: string, len = 0): Promise<void> {
    return this.op('truncate', path, async () => {
      const n = await this.walk(path, true);
      await this.client.setattr(n, { size: len });
      this.invalidateAttr(n);
      this.dax?.invalidate(n);
    });
  }

  utimes(path: string, atime: number | Date, mtime: number | Date): Promise<void> {
    const s = (t: number | Date) => (t instanceof Date ? t.getTime() / 1000 : t);
    return this.op('utime', path, async () => {
      const n = await this.walk(path, true);
      await this.client.setattr(n, { atime: s(atime), mtime: s(mtime) });
      this.invalidateAttr(n);
    });
  }

  realpath(path: string): Promise<string> {
    return this.op('realpath', path, async () => {
      // Resolve symlinks component by component, lexically.
      const out: string[] = [];
      let pending = splitPath(path);
      let links = 0;
      while (pending.length > 0) {
        const c = pending.shift()!;
        if (c === '..') { out.pop(); continue; }
        const p = '/' + [...out, c].join('/');
        const st = await this.lstat(p);
        if (st.isSymbolicLink()) {
          if (++links > MAX_SYMLINKS) throw new DriverError('ELOOP', 'too many symbolic links', 'realpath', path);
          const t = await this.readlink(p);
          if (t.startsWith('/')) out.length = 0;
          pending = [...splitPath(t), ...pending];
        } else {
          out.push(c);
        }
      }
      return '/' + out.join('/');
    });
  }

  /** open(path, flags, mode) -> a FileHandle with read/write/stat/truncate/close. */
  open(path: string, flags?: string | number, mode = 0o666): Promise<VFileHandle> {
    const f = parseFlags(flags);
    return this.op('open', path, async () => {
      const acc = f & 3;
      const openFlags = f & ~(fsc.O_CREAT | fsc.O_EXCL | fsc.O_TRUNC);
      let node: number;
      let fh: number;
      let existed = true;
      if (f & fsc.O_CREAT) {
        const [parent, name] = await this.parentOf(path);
        try {
          node = await this.walk(path, true);
          if (f & fsc.O_EXCL) throw new DriverError('EEXIST', 'file exists', 'open');
        } catch (err) {
          if ((err as DriverError).code !== 'ENOENT') throw err;
          existed = false;
          const r = await this.client.create(parent, name, openFlags | fsc.O_CREAT | (f & fsc.O_EXCL), mode & ~this.umask, this.umask);
          this.invalidateAttr(parent);
          node = this.remember(parent, name, r.entry).nodeid;
          fh = r.open.fh;
        }
      } else {
        node = await this.walk(path, true);
      }
      const n = this.hold(node!);
      try {
        if (existed) {
          const a = await this.attrOf(node!);
          if ((a.mode & S_IFMT) === S_IFDIR && acc !== fsc.O_RDONLY) throw new DriverError('EISDIR', 'is a directory', 'open');
          fh = (await this.client.open(node!, openFlags)).fh;
          if ((f & fsc.O_TRUNC) && acc !== fsc.O_RDONLY) {
            await this.client.setattr(node!, { size: 0, fh: fh! });
            this.invalidateAttr(node!);
            this.dax?.invalidate(node!);
          }
        }
      } catch (err) {
        this.drop(n);
        throw err;
      }
      return new VFileHandle(this, n.nodeid, fh!, f, this.nextFd++, path, () => this.drop(n));
    });
  }

  async readFile(path: string, opts?: BufferEncoding | { encoding?: BufferEncoding | null }): Promise<Buffer | string> {
    const enc = typeof opts === 'string' ? opts : opts?.encoding ?? null;
    const h = await this.open(path, 'r');
    try {
      const data = await h.readFile();
      return enc ? data.toString(enc) : data;
    } finally {
      await h.close();
    }
  }

  async writeFile(path: string, data: string | Uint8Array, opts?: BufferEncoding | { encoding?: BufferEncoding; mode?: number; flag?: string }): Promise<void> {
    const o = typeof opts === 'string' ? { encoding: opts } : opts ?? {};
    const buf = typeof data === 'string' ? Buffer.from(data, o.encoding ?? 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const h = await this.open(path, o.flag ?? 'w', o.mode ?? 0o666);
    try {
      await h.writeAll(buf, (h.flags & fsc.O_APPEND) ? null : 0);
    } finally {
      await h.close();
    }
  }

  async appendFile(path: string, data: string | Uint8Array): Promise<void> {
    return this.writeFile(path, data, { flag: 'a' });
  }

  /** A Readable over [start, end] (inclusive, like node:fs) of `path`. */
  createReadStream(path: string, opts: { start?: number; end?: number; highWaterMark?: number } = {}): Readable {
    const chunk = opts.highWaterMark ?? 64 * 1024;
    const self = this;
    async function* gen(): AsyncGenerator<Buffer> {
      const h = await self.open(path, 'r');
      try {
        let pos = opts.start ?? 0;
        const end = opts.end ?? Infinity;
        while (pos <= end) {
          const want = Math.min(chunk, end - pos + 1);
          const b = await h.readAt(pos, want);
          if (b.length === 0) break;
          pos += b.length;
          yield b;
        }
      } finally {
        await h.close();
      }
    }
    return Readable.from(gen(), { objectMode: false });
  }

  // ---- internals used by handles -----------------------------------------------------

  /** One READ at `pos`, through the DAX window when it can serve it (and `dax` is not false). */
  async readOnce(nodeid: number, fh: number, pos: number, len: number, dax = true, writable = false): Promise<Buffer> {
    if (dax && this.dax?.enabled) {
      const a = await this.attrOf(nodeid);
      const b = await this.dax.read(nodeid, fh, pos, len, a.size, false, writable);
      if (b) return b;
    }
    return this.client.read(nodeid, fh, pos, Math.min(len, this.client.maxIo));
  }

  /** The size in the attribute cache, expired or not (-1 when none): a hint, never a promise. */
  sizeHint(nodeid: number): number {
    return this.nodes.get(nodeid)?.attr?.size ?? -1;
  }

  attrFresh(nodeid: number): Promise<Attr> {
    this.invalidateAttr(nodeid);
    return this.attrOf(nodeid);
  }

  /**
   * Store the leading part of a write that lies inside the file through a
   * writable DAX mapping; resolves how many bytes went that way (0 when DAX
   * cannot: the caller sends everything with FUSE_WRITE). The size is the
   * cached one, the same bound reads use: stores never reach past it.
   */
  async writeThroughWindow(nodeid: number, fh: number, pos: number, data: Buffer): Promise<number> {
    if (!this.dax?.enabled) return 0;
    const a = await this.attrOf(nodeid);
    if (pos >= a.size) return 0;
    return this.dax.write(nodeid, fh, pos, data, a.size);
  }

  /** FUSE's "no handle" (u64 all ones): SETUPMAPPING by inode, what Linux always sends. */
  static readonly NO_FH = -1;

  /**
   * After a WRITE: the size may have changed. DAX mappings stay: they share
   * the host file's page cache, so they already show the new bytes.
   */
  noteWrite(nodeid: number): void {
    this.invalidateAttr(nodeid);
  }

  /** After a size change that may shrink the file: pages past the new end must not be read. */
  noteTruncate(nodeid: number): void {
    this.invalidateAttr(nodeid);
    this.dax?.invalidate(nodeid);
  }

  /** Forget every node and close the session's handles' references (the transport stays up). */
  async forgetAll(): Promise<void> {
    const items: { nodeid: number; nlookup: number }[] = [];
    for (const n of this.nodes.values()) {
      if (n.nodeid !== FUSE_ROOT_ID && n.nlookup > 0) items.push({ nodeid: n.nodeid, nlookup: n.nlookup });
    }
    this.nodes.clear();
    this.dentries.clear();
    this.nodes.set(FUSE_ROOT_ID, { nodeid: FUSE_ROOT_ID, nlookup: 0, refs: 1, dentries: new Set(), attr: null, attrExpires: 0 });
    for (let i = 0; i < items.length; i += 200) await this.client.batchForget(items.slice(i, i + 200));
  }
}

/** What open() returns: node:fs/promises FileHandle's everyday methods. */
export class VFileHandle {
  private pos = 0;
  private closed = false;

  constructor(
    private readonly vfs: VirtioFs,
    readonly nodeid: number,
    readonly fh: number,
    readonly flags: number,
    readonly fd: number,
    readonly path: string,
    private readonly onClose: () => void,
  ) {}

  private check(): void {
    if (this.closed) throw new DriverError('EBADF', 'file handle is closed', 'read', this.path);
  }

  /**
   * Read `length` bytes at `position` (several requests in flight for large
   * reads); short only at EOF. `dax` false: FUSE_READ even with a window.
   */
  async readAt(position: number, length: number, dax = true): Promise<Buffer> {
    this.check();
    const max = this.vfs.client.maxIo;
    const w = (this.flags & 3) !== fsc.O_RDONLY;
    if (length <= max) return this.vfs.readOnce(this.nodeid, this.fh, position, length, dax, w);
    const pieces: Promise<Buffer>[] = [];
    const parts: Buffer[] = [];
    let got = 0;
    for (let off = 0; off < length; off += max * IO_PARALLEL) {
      pieces.length = 0;
      for (let k = 0; k < IO_PARALLEL && off + k * max < length; k++) {
        const at = off + k * max;
        pieces.push(this.vfs.readOnce(this.nodeid, this.fh, position + at, Math.min(max, length - at), dax, w));
      }
      const res = await Promise.all(pieces);
      for (const b of res) {
        parts.push(b);
        got += b.length;
        if (b.length < max) return Buffer.concat(parts, got);
      }
    }
    return Buffer.concat(parts, got);
  }

  async read(buffer?: Uint8Array | { buffer?: Uint8Array; offset?: number; length?: number; position?: number | null }, offset?: number, length?: number, position?: number | null): Promise<{ bytesRead: number; buffer: Uint8Array }> {
    let buf: Uint8Array;
    if (buffer === undefined || !(buffer instanceof Uint8Array)) {
      const o = buffer ?? {};
      buf = o.buffer ?? Buffer.alloc(16384);
      offset = o.offset;
      length = o.length;
      position = o.position;
    } else {
      buf = buffer;
    }
    const off = offset ?? 0;
    const len = length ?? buf.byteLength - off;
    const at = position === null || position === undefined || position < 0 ? this.pos : position;
    const data = await this.readAt(at, len);
    buf.set(data, off);
    if (position === null || position === undefined || position < 0) this.pos += data.length;
    return { bytesRead: data.length, buffer: buf };
  }

  /** Write all of `data` at `position` (null: the current position, or the end for O_APPEND). */
  async writeAll(data: Buffer, position: number | null): Promise<number> {
    this.check();
    if ((this.flags & 3) === fsc.O_RDONLY) throw new DriverError('EBADF', 'not open for writing', 'write', this.path);
    let at = position ?? this.pos;
    if (this.flags & fsc.O_APPEND) at = (await this.vfs.attrFresh(this.nodeid)).size;
    const max = this.vfs.client.maxIo;
    const c = this.vfs.client;
    let done = 0;
    // Inside the file: stores into a writable DAX mapping (appends never are).
    // An O_WRONLY fd cannot be mmapped (mmap needs read access), so such a
    // handle asks for the mapping by inode; the backend maps its own fd.
    const mapFh = (this.flags & 3) === fsc.O_WRONLY ? VirtioFs.NO_FH : this.fh;
    const viaWindow = (this.flags & fsc.O_APPEND) ? 0 : await this.vfs.writeThroughWindow(this.nodeid, mapFh, at, data);
    done += viaWindow;
    for (let off = viaWindow; off < data.length; off += max * IO_PARALLEL) {
      const batch: Promise<number>[] = [];
      for (let k = 0; k < IO_PARALLEL && off + k * max < data.length; k++) {
        const s = off + k * max;
        const piece = data.subarray(s, Math.min(data.length, s + max));
        batch.push(c.write(this.nodeid, this.fh, at + s, piece).then((n) => {
          if (n !== piece.length) throw new DriverError('EIO', `short write (${n} of ${piece.length})`, 'write', this.path);
          return n;
        }));
      }
      for (const n of await Promise.all(batch)) done += n;
    }
    this.vfs.noteWrite(this.nodeid);
    if (position === null) this.pos = at + done;
    return done;
  }

  async write(data: Uint8Array | string, offsetOrPosition?: number | null, length?: number, position?: number | null): Promise<{ bytesWritten: number; buffer: Uint8Array | string }> {
    if (typeof data === 'string') {
      const n = await this.writeAll(Buffer.from(data), offsetOrPosition ?? null);
      return { bytesWritten: n, buffer: data };
    }
    const off = offsetOrPosition ?? 0;
    const len = length ?? data.byteLength - off;
    const b = Buffer.from(data.buffer, data.byteOffset + off, len);
    const n = await this.writeAll(b, position ?? null);
    return { bytesWritten: n, buffer: data };
  }

  /**
   * The whole file. One byte more than the expected size is asked for, so a
   * short read proves EOF without another request. Through FUSE_READ the
   * size is only a hint (the cached attribute, even if expired: a wrong
   * guess costs a request, never a wrong byte), so no GETATTR is sent; the
   * DAX window needs the current size (pages past EOF are not readable), so
   * it asks for it. Files below the DAX manager's minFileBytes skip the
   * window: one FUSE_READ is cheaper than SETUPMAPPING (a request plus the
   * backend's own map request) for a file read once, and a window chunk
   * stays free for files that are read a lot (module loading at boot).
   */
  async readFile(): Promise<Buffer> {
    const dax = this.vfs.dax;
    const hint = this.vfs.sizeHint(this.nodeid);
    const viaWindow = dax !== null && dax.enabled && !(hint >= 0 && hint < dax.minFileBytes);
    const size = viaWindow ? (await this.vfs.attrFresh(this.nodeid)).size : Math.max(hint, 0);
    const first = await this.readAt(0, size + 1, viaWindow);
    if (first.length <= size) return first;
    // The file grew since we asked: keep reading until EOF.
    const parts = [first];
    let pos = first.length;
    for (;;) {
      const b = await this.readAt(pos, this.vfs.client.maxIo, viaWindow);
      if (b.length === 0) break;
      parts.push(b);
      pos += b.length;
    }
    return Buffer.concat(parts);
  }

  async stat(): Promise<VStats> {
    this.check();
    return new VStats((await this.vfs.client.getattr(this.nodeid, this.fh)).attr);
  }

  async truncate(len = 0): Promise<void> {
    this.check();
    await this.vfs.client.setattr(this.nodeid, { size: len, fh: this.fh });
    this.vfs.noteTruncate(this.nodeid);
  }

  async sync(): Promise<void> {
    this.check();
    await this.vfs.client.fsync(this.nodeid, this.fh);
  }

  createReadStream(opts: { start?: number; end?: number; highWaterMark?: number } = {}): Readable {
    const self = this;
    async function* gen(): AsyncGenerator<Buffer> {
      let pos = opts.start ?? 0;
      const end = opts.end ?? Infinity;
      const chunk = opts.highWaterMark ?? 64 * 1024;
      while (pos <= end) {
        const b = await self.readAt(pos, Math.min(chunk, end - pos + 1));
        if (b.length === 0) break;
        pos += b.length;
        yield b;
      }
    }
    return Readable.from(gen(), { objectMode: false });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      if ((this.flags & 3) !== fsc.O_RDONLY) await this.vfs.client.flush(this.nodeid, this.fh).catch(() => {});
      await this.vfs.client.release(this.nodeid, this.fh, this.flags);
    } finally {
      this.onClose();
    }
  }
}

// Layer: fs (passthrough backend). The inode table: node ids <-> host inodes,
// each held by an O_PATH fd and/or a file handle, never by a path string.
// Imports sys/ (syscalls) and fuse/ errors only.
//
// Identity: one Inode per host (st_dev, st_ino), so hard links share a node id.
// (st_ino is kept as a JS number: exact below 2^53, which covers ext4, xfs,
// btrfs and tmpfs in practice; a file system with larger inode numbers could
// see two inodes share a key, which the handle comparison below then catches
// for evicted inodes only.)
// Node ids are handed out once and never reused (below 2^53), so (nodeid,
// generation) is unique for the life of the mount; `generation` counts how
// often a (dev, ino) pair was seen bound to a different host inode (an inode
// number recycled after a delete, detected by comparing file handles).
//
// Bounded fds: when the shared directory's file system has file handles
// (name_to_handle_at) and we may use them (open_by_handle_at needs
// CAP_DAC_READ_SEARCH), at most `maxLive` O_PATH fds stay open, least recently
// used first out; an inode takes its file handle when it is evicted (not
// before: most inodes are forgotten before that, and the syscall is not free)
// and is reopened from it on its next use. Inodes without a handle (file
// systems that have none, e.g. some FUSE or proc mounts, an unprivileged
// daemon, or a file on a submount first met as a non-directory) keep their fd
// for as long as the kernel knows them ("pinned"); those are not bounded,
// exactly like a classic passthrough daemon. So does an inode whose last name
// is gone (its handle could not be opened again): pinned by hold() before a
// removal, or found with nlink 0 when it is about to be evicted. When the
// process runs out of fds (EMFILE), shed() gives LRU fds back early.
import { constants } from 'node:os';
import { FsError } from '../../fuse/errors.ts';
import { STATX_SIZE } from '../../sys/stat.ts';
import * as sys from '../../sys/syscalls.ts';

const E = constants.errno;
const STATX_NLINK = 0x4;
/** stx_nlink's offset in struct statx. */
const STATX_NLINK_OFFSET = 16;
/** LRU fds given back per EMFILE (see shed()). */
const SHED_BATCH = 64;

export class Inode {
  /** Live O_PATH fd, or -1 when evicted (then `handle` reopens it). */
  fd = -1;
  /** Lookups the kernel holds (see the contract in fuse/filesystem.ts). */
  lookups = 0;
  /** LRU links; only for live, unpinned inodes. */
  prev: Inode | null = null;
  next: Inode | null = null;
  /** fds of open file/dir handles on this inode: a fallback when the handle went stale (unlinked file). */
  openFds: number[] | null = null;

  constructor(
    readonly nodeid: number,
    readonly dev: number,
    readonly ino: number,
    /** S_IFMT bits; an inode never changes type. */
    readonly type: number,
    readonly generation: number,
    /** struct file_handle bytes, taken at eviction (null while the fd is the only hold). */
    public handle: Buffer | null,
    public mountId: number,
    /**
     * Keeps its fd for as long as it is known, outside the LRU: inodes without
     * a handle, the root, and inodes that lost a name while the kernel knows
     * them (see hold()).
     */
    public pinned: boolean,
  ) {}
}

export class InodeStore {
  private readonly byId = new Map<number, Inode>();
  private readonly byKey = new Map<number, Map<number, Inode>>();
  /** mount id -> a real (non-O_PATH) directory fd on that mount, for open_by_handle_at. */
  private readonly mountFds = new Map<number, number>();
  private nextId = 2;
  private head: Inode | null = null;
  private tail: Inode | null = null;
  private live = 0;
  /** Evicted fds reopened from their file handle so far (LRU misses). */
  reopens = 0;
  /** LRU fds given back on EMFILE so far. */
  shedFds = 0;
  /** Known inodes whose fd is closed (held by their handle only). */
  private evicted = 0;
  /** statx scratch for the eviction's link count check. */
  private readonly nlinkBuf = Buffer.alloc(STATX_SIZE);
  readonly useHandles: boolean;
  readonly root: Inode;

  /**
   * Takes ownership of `rootFd` (an O_PATH directory fd). `maxLive` bounds the
   * evictable O_PATH fds; `useHandles` false keeps every fd (no handles).
   */
  constructor(rootFd: number, readonly maxLive: number, useHandles: boolean) {
    const st = sys.fstat(rootFd);
    let handle: Buffer | null = null;
    let mountId = -1;
    if (useHandles) {
      const h = this.handleOf(rootFd, st.mode & sys.S_IFMT);
      if (h) {
        handle = h.bytes;
        mountId = h.mountId;
        // Prove we may reopen from handles (CAP_DAC_READ_SEARCH, a file system
        // that really decodes them); otherwise fall back to holding fds.
        try {
          sys.close(sys.openByHandleAt(this.mountFds.get(mountId)!, handle, sys.O_PATH));
        } catch {
          handle = null;
        }
      }
    }
    this.useHandles = handle !== null;
    this.root = new Inode(1, st.dev, st.ino, st.mode & sys.S_IFMT, 0, handle, mountId, true);
    this.root.fd = rootFd;
    this.root.lookups = 1;
    this.register(this.root);
  }

  get(nodeid: number): Inode {
    const inode = this.byId.get(nodeid);
    if (inode === undefined) throw new FsError(E.ENOENT, `unknown node id ${nodeid}`);
    return inode;
  }

  find(dev: number, ino: number): Inode | undefined {
    return this.byKey.get(dev)?.get(ino);
  }

  /** Number of node ids known (root included). */
  get size(): number {
    return this.byId.size;
  }

  /**
   * Known inodes held by their file handle only (fd evicted). While it is 0,
   * every known inode has a live fd, and the eviction itself keeps the fd of
   * an inode that lost its last name (see evictTail), so a name can be
   * removed without first finding out which inode it named.
   */
  get evictedCount(): number {
    return this.evicted;
  }

  /** Evictable O_PATH fds open right now. */
  get liveFds(): number {
    return this.live;
  }

  /**
   * A usable fd for the inode: its O_PATH fd (reopened from the handle if it
   * was evicted), or, when the handle is stale but the file is open, an open
   * handle's fd. The fd stays valid until the next call into the store.
   */
  fdOf(inode: Inode): number {
    if (inode.fd >= 0) {
      if (!inode.pinned && inode !== this.head) this.touch(inode);
      return inode.fd;
    }
    if (inode.handle === null) throw new FsError(E.ESTALE, 'inode has neither fd nor handle');
    let fd: number;
    try {
      fd = this.openByHandle(inode);
    } catch (err) {
      // Unlinked while we held only its handle: an open handle still pins it.
      if (inode.openFds !== null && inode.openFds.length > 0) return inode.openFds[0];
      throw err;
    }
    this.makeLive(inode, fd);
    return fd;
  }

  private openByHandle(inode: Inode): number {
    this.reopens++;
    const mountFd = this.mountFds.get(inode.mountId)!;
    try {
      return sys.openByHandleAt(mountFd, inode.handle!, sys.O_PATH);
    } catch (err) {
      if (!this.shedFor(err)) throw err;
      return sys.openByHandleAt(mountFd, inode.handle!, sys.O_PATH);
    }
  }

  /**
   * Binds a freshly opened O_PATH fd (ownership passes to the store) for host
   * inode (dev, ino, type) and returns its Inode: the known one when there is
   * one (hard links, a repeated lookup), else a new one. Does not count a lookup.
   */
  attach(fd: number, dev: number, ino: number, type: number): Inode {
    const known = this.find(dev, ino);
    let generation = 0;
    if (known !== undefined) {
      if (known.fd >= 0) {
        sys.close(fd);
        return known;
      }
      const h = this.handleOf(fd, type);
      if (h !== null && known.handle !== null && h.mountId === known.mountId && h.bytes.equals(known.handle)) {
        this.makeLive(known, fd);
        return known;
      }
      // Same (dev, ino), another inode: the old one is gone from the host. It
      // keeps its node id until forgotten; new lookups get a new one.
      generation = known.generation + 1;
      this.byKey.get(dev)!.delete(ino);
    }
    return this.create(fd, dev, ino, type, generation);
  }

  /**
   * Pins the inode's fd until it is forgotten. Called before a name of it goes
   * away (unlink, rmdir, rename over it): once the last link is gone its
   * handle can no longer be opened, yet the kernel may still act on the inode
   * (flush times of a deleted file under writeback caching, fstat of an open
   * unlinked file), exactly as on a native file system.
   */
  hold(inode: Inode): boolean {
    if (inode.pinned) return false;
    this.fdOf(inode);
    if (inode.fd < 0) return false; // stale already: nothing left to hold
    this.unlink(inode);
    inode.pinned = true;
    return true;
  }

  /** Undoes a hold() that returned true (the name did not go away after all). */
  unhold(inode: Inode): void {
    if (!inode.pinned || inode.fd < 0 || !this.byId.has(inode.nodeid)) return;
    inode.pinned = false;
    this.makeLive(inode, inode.fd);
  }

  /** Registers that an open file/dir handle holds `fd` on this inode. */
  addOpenFd(inode: Inode, fd: number): void {
    (inode.openFds ??= []).push(fd);
  }

  removeOpenFd(inode: Inode, fd: number): void {
    const list = inode.openFds;
    if (list === null) return;
    const i = list.indexOf(fd);
    if (i !== -1) list.splice(i, 1);
  }

  /** Takes `n` lookups away; at zero the inode is dropped (never the root). */
  forget(nodeid: number, n: number): void {
    const inode = this.byId.get(nodeid);
    if (inode === undefined || inode === this.root) return;
    inode.lookups -= n;
    if (inode.lookups > 0) return;
    this.drop(inode);
  }

  /** Closes every fd the store holds. The store is unusable afterwards. */
  closeAll(): void {
    for (const inode of this.byId.values()) {
      if (inode.fd >= 0) {
        try {
          sys.close(inode.fd);
        } catch {
          /* already gone: nothing to release */
        }
        inode.fd = -1;
      }
    }
    for (const fd of this.mountFds.values()) {
      try {
        sys.close(fd);
      } catch {
        /* ignore */
      }
    }
    this.byId.clear();
    this.byKey.clear();
    this.mountFds.clear();
    this.head = this.tail = null;
    this.live = 0;
  }

  // ------------------------------------------------------------ internals

  private create(fd: number, dev: number, ino: number, type: number, generation: number): Inode {
    const inode = new Inode(this.nextId++, dev, ino, type, generation, null, -1, !this.useHandles);
    this.register(inode);
    if (inode.pinned) inode.fd = fd;
    else this.makeLive(inode, fd);
    return inode;
  }

  private register(inode: Inode): void {
    this.byId.set(inode.nodeid, inode);
    let m = this.byKey.get(inode.dev);
    if (m === undefined) this.byKey.set(inode.dev, (m = new Map()));
    m.set(inode.ino, inode);
  }

  private drop(inode: Inode): void {
    this.byId.delete(inode.nodeid);
    const m = this.byKey.get(inode.dev);
    if (m !== undefined && m.get(inode.ino) === inode) m.delete(inode.ino);
    if (inode.fd >= 0) {
      if (!inode.pinned) this.unlink(inode);
      const fd = inode.fd;
      inode.fd = -1;
      sys.close(fd);
    } else if (inode.handle !== null) {
      this.evicted--;
    }
  }

  /**
   * The file handle of the inode behind `fd`, or null where the file system
   * has none. Makes sure a mount fd exists for its mount (only a directory can
   * provide one without opening a file: otherwise no handle for now).
   */
  private handleOf(fd: number, type: number): sys.FileHandle | null {
    let h: sys.FileHandle;
    try {
      h = sys.nameToHandleAt(fd, '', sys.AT_EMPTY_PATH);
    } catch {
      return null;
    }
    if (!this.mountFds.has(h.mountId)) {
      if (type !== sys.S_IFDIR) return null;
      // open_by_handle_at refuses O_PATH mount fds: reopen the directory for real.
      this.mountFds.set(h.mountId, sys.openat(fd, '.', sys.O_RDONLY | sys.O_DIRECTORY));
    }
    return h;
  }

  private makeLive(inode: Inode, fd: number): void {
    if (inode.fd < 0 && inode.handle !== null) this.evicted--; // back from its handle
    inode.fd = fd;
    if (inode.pinned) return;
    // Insert at the head (most recent), then evict from the tail.
    inode.prev = null;
    inode.next = this.head;
    if (this.head !== null) this.head.prev = inode;
    this.head = inode;
    if (this.tail === null) this.tail = inode;
    this.live++;
    while (this.live > this.maxLive && this.tail !== null && this.tail !== inode) this.evictTail();
  }

  /**
   * Closes the least recently used evictable fd (its inode keeps its file
   * handle to come back). Returns false when there is none.
   */
  private evictTail(): boolean {
    const victim = this.tail;
    if (victim === null) return false;
    this.unlink(victim);
    // Its last name is gone (removed through us without a hold, see
    // evictedCount, or by someone else on the host): the handle could never
    // be opened again, so the fd stays, pinned outside the budget, exactly as
    // hold() would have done.
    let nlink = 1;
    try {
      sys.statxInto(victim.fd, '', sys.AT_EMPTY_PATH | sys.AT_SYMLINK_NOFOLLOW, STATX_NLINK, this.nlinkBuf);
      nlink = this.nlinkBuf.readUInt32LE(STATX_NLINK_OFFSET);
    } catch {
      /* keep the default: evict as before */
    }
    if (nlink === 0) {
      victim.pinned = true;
      return true;
    }
    if (victim.handle === null) {
      const h = this.handleOf(victim.fd, victim.type);
      if (h === null) {
        // No way back without the fd: keep it (pinned, outside the budget).
        victim.pinned = true;
        return true;
      }
      victim.handle = h.bytes;
      victim.mountId = h.mountId;
    }
    const vfd = victim.fd;
    victim.fd = -1;
    this.evicted++;
    sys.close(vfd);
    return true;
  }

  /**
   * Gives fds back to the process when it ran out of them (EMFILE): open
   * files and directories share the open-file limit with the O_PATH budget,
   * which may be most of it. Evicts up to `n` LRU fds; returns how many.
   */
  shed(n: number): number {
    let done = 0;
    // Never the most recent: the caller may be about to use that very fd.
    while (done < n && this.tail !== this.head && this.evictTail()) done++;
    this.shedFds += done;
    return done;
  }

  /** True when `err` is EMFILE and fds could be shed: the caller retries once. */
  shedFor(err: unknown): boolean {
    return (err as { errno?: unknown } | null)?.errno === E.EMFILE && this.shed(SHED_BATCH) > 0;
  }

  private touch(inode: Inode): void {
    this.unlink(inode);
    inode.prev = null;
    inode.next = this.head;
    if (this.head !== null) this.head.prev = inode;
    this.head = inode;
    if (this.tail === null) this.tail = inode;
    this.live++;
  }

  private unlink(inode: Inode): void {
    if (inode.prev !== null) inode.prev.next = inode.next;
    else this.head = inode.next;
    if (inode.next !== null) inode.next.prev = inode.prev;
    else this.tail = inode.prev;
    inode.prev = inode.next = null;
    this.live--;
  }
}

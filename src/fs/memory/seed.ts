// Layer: fs (memory backend). Walks a small host directory tree for
// MemoryFs.fromHostDirectory (the embedded demo and read-only tests start from
// one). Uses node:fs and sys/ (xattrs) only here, at start-up, never on the
// request path. Names are raw bytes, so non-UTF-8 names survive the copy.
import { closeSync, constants as fsc, lstatSync, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { fgetxattr, flistxattr } from '../../sys/syscalls.ts';

export interface HostSeedLimits {
  /** Refuse trees holding more file bytes than this (default 64 MiB). */
  maxBytes?: number;
  /** Refuse trees with more entries than this (default 100,000). */
  maxEntries?: number;
}

/** What the copy keeps of a host inode. Times are nanoseconds since the epoch. */
export interface HostMeta {
  mode: number;
  uid: number;
  gid: number;
  rdev: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  /** name -> value, for the namespaces MemoryFs keeps (user., trusted., security.). */
  xattrs: Array<[Buffer, Buffer]>;
}

/** Where the walk puts what it finds; node ids are the sink's own. */
export interface HostTreeSink {
  root(meta: HostMeta): number;
  dir(parent: number, name: Buffer, meta: HostMeta): number;
  file(parent: number, name: Buffer, meta: HostMeta, data: Buffer): number;
  symlink(parent: number, name: Buffer, meta: HostMeta, target: Buffer): number;
  /** FIFOs, sockets, character and block devices: metadata only. */
  special(parent: number, name: Buffer, meta: HostMeta): number;
  /** Another name for a node already copied (a hard link on the host). */
  hardlink(parent: number, name: Buffer, existing: number): void;
}

const KEPT_XATTR = /^(user|trusted|security)\./;

function xattrsOf(path: Buffer): Array<[Buffer, Buffer]> {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch {
    return []; // unreadable here: its contents read will report the problem
  }
  try {
    const out: Array<[Buffer, Buffer]> = [];
    let list: Buffer;
    try {
      list = flistxattr(fd);
    } catch {
      return []; // the host fs has no xattrs (EOPNOTSUPP)
    }
    for (const name of list.toString('latin1').split('\0')) {
      if (!KEPT_XATTR.test(name)) continue;
      try {
        out.push([Buffer.from(name, 'latin1'), fgetxattr(fd, name)]);
      } catch {
        // gone or not readable by us: skip that one name
      }
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/**
 * Copies `dir` into `sink`: directories, regular files (contents), symlinks,
 * FIFOs/sockets/devices (metadata), hard links as links, and for every node
 * its mode, owner, atime/mtime and user/trusted/security xattrs. Throws an
 * Error naming the limit when the tree is too big to hold in memory.
 */
export function copyHostTree(dir: string, sink: HostTreeSink, limits: HostSeedLimits = {}): void {
  const maxBytes = limits.maxBytes ?? 64 * 1024 * 1024;
  const maxEntries = limits.maxEntries ?? 100_000;
  let bytes = 0;
  let entries = 0;
  const seen = new Map<string, number>(); // "dev:ino" -> node id, for hard links
  const metaOf = (path: Buffer, withXattrs: boolean): HostMeta => {
    const st = lstatSync(path, { bigint: true });
    return {
      mode: Number(st.mode),
      uid: Number(st.uid),
      gid: Number(st.gid),
      rdev: Number(st.rdev),
      atimeNs: st.atimeNs,
      mtimeNs: st.mtimeNs,
      xattrs: withXattrs ? xattrsOf(path) : [],
    };
  };
  const walk = (path: Buffer, id: number) => {
    for (const name of readdirSync(path, { encoding: 'buffer' })) {
      const full = Buffer.concat([path, Buffer.from('/'), name]);
      if (++entries > maxEntries) throw new Error(`${dir}: more than ${maxEntries} entries to copy into memory`);
      const st = lstatSync(full, { bigint: true });
      const type = Number(st.mode) & fsc.S_IFMT;
      const key = `${st.dev}:${st.ino}`;
      if (type !== fsc.S_IFDIR && st.nlink > 1n) {
        const existing = seen.get(key);
        if (existing !== undefined) {
          sink.hardlink(id, name, existing);
          continue;
        }
      }
      let child: number;
      if (type === fsc.S_IFDIR) {
        child = sink.dir(id, name, metaOf(full, true));
        walk(full, child);
      } else if (type === fsc.S_IFREG) {
        bytes += Number(st.size);
        if (bytes > maxBytes) throw new Error(`${dir}: more than ${maxBytes} bytes to copy into memory`);
        child = sink.file(id, name, metaOf(full, true), readFileSync(full));
      } else if (type === fsc.S_IFLNK) {
        child = sink.symlink(id, name, metaOf(full, false), readlinkSync(full, { encoding: 'buffer' }));
      } else {
        child = sink.special(id, name, metaOf(full, false));
      }
      if (type !== fsc.S_IFDIR && st.nlink > 1n) seen.set(key, child);
    }
  };
  const root = Buffer.from(dir);
  walk(root, sink.root(metaOf(root, true)));
}

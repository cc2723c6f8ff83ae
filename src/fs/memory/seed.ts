// Layer: fs (memory backend). Reads a small host directory tree into a SeedTree
// for MemoryFs (the embedded demo starts from one). Uses node:fs only here, at
// start-up, never on the request path.
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { SeedTree } from './memory-fs.ts';

export interface HostSeedLimits {
  /** Refuse trees holding more file bytes than this (default 64 MiB). */
  maxBytes?: number;
  /** Refuse trees with more entries than this (default 100,000). */
  maxEntries?: number;
}

/**
 * A SeedTree copy of `dir`: regular files (contents, mode, owner), directories
 * and symlinks. Other file types (devices, FIFOs, sockets) are skipped. Throws
 * an Error naming the limit when the tree is too big to copy into memory.
 */
export function seedFromHostDirectory(dir: string, limits: HostSeedLimits = {}): SeedTree {
  const maxBytes = limits.maxBytes ?? 64 * 1024 * 1024;
  const maxEntries = limits.maxEntries ?? 100_000;
  let bytes = 0;
  let entries = 0;
  const walk = (path: string): SeedTree => {
    const tree: SeedTree = {};
    for (const name of readdirSync(path)) {
      const full = join(path, name);
      const st = lstatSync(full);
      if (++entries > maxEntries) throw new Error(`${dir}: more than ${maxEntries} entries to copy into memory`);
      if (st.isFile()) {
        bytes += st.size;
        if (bytes > maxBytes) throw new Error(`${dir}: more than ${maxBytes} bytes to copy into memory`);
        tree[name] = { data: readFileSync(full), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
      } else if (st.isDirectory()) {
        tree[name] = { dir: walk(full), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
      } else if (st.isSymbolicLink()) {
        tree[name] = { symlink: readlinkSync(full), uid: st.uid, gid: st.gid };
      }
    }
    return tree;
  };
  return walk(dir);
}

// Layer: guest tooling (host side), pure. Imports node:buffer only.
// A writer for the "newc" cpio format (magic 070701), the format the Linux
// kernel unpacks as an initramfs (Documentation/driver-api/early-userspace/
// buffer-format.rst). Written here rather than shelling out to cpio(1) so that
// entries can be device nodes and root-owned files without being root, and so
// the per-run layer is built in memory in microseconds.

import { Buffer } from 'node:buffer';

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

/** One archive member. Paths are relative ("bin/busybox"), never absolute. */
export type CpioEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; data: Uint8Array; mode?: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'chardev'; path: string; major: number; minor: number; mode?: number };

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`cpio field out of range: ${n}`);
  return n.toString(16).padStart(8, '0');
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/** Accumulates newc members; `finish()` appends the trailer and returns the bytes. */
export class CpioWriter {
  private readonly chunks: Buffer[] = [];
  private length = 0;
  private nextIno = 1;
  private readonly seen = new Set<string>();

  add(entry: CpioEntry): this {
    const path = entry.path.replace(/^\/+/, '');
    if (path === '' || path.split('/').includes('..')) throw new Error(`bad cpio path: ${JSON.stringify(entry.path)}`);
    // The kernel would happily overwrite; a duplicate here is always a bug in the caller.
    if (this.seen.has(path)) throw new Error(`duplicate cpio path: ${path}`);
    this.seen.add(path);
    switch (entry.kind) {
      case 'dir':
        return this.member(path, S_IFDIR | (entry.mode ?? 0o755), 2, Buffer.alloc(0), 0, 0);
      case 'file':
        return this.member(path, S_IFREG | (entry.mode ?? 0o644), 1, entry.data, 0, 0);
      case 'symlink':
        return this.member(path, S_IFLNK | 0o777, 1, Buffer.from(entry.target), 0, 0);
      case 'chardev':
        return this.member(path, S_IFCHR | (entry.mode ?? 0o600), 1, Buffer.alloc(0), entry.major, entry.minor);
    }
  }

  /** Adds every missing parent directory of `path` (e.g. "lib/modules" for "lib/modules/x.ko"). */
  addParents(path: string): this {
    const parts = path.replace(/^\/+/, '').split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!this.seen.has(dir)) this.add({ kind: 'dir', path: dir });
    }
    return this;
  }

  has(path: string): boolean {
    return this.seen.has(path.replace(/^\/+/, ''));
  }

  finish(): Buffer {
    this.member('TRAILER!!!', 0, 1, Buffer.alloc(0), 0, 0, 0);
    return Buffer.concat(this.chunks, this.length);
  }

  private member(name: string, mode: number, nlink: number, data: Uint8Array, rdevMajor: number, rdevMinor: number, ino = this.nextIno++): this {
    const nameBytes = Buffer.from(`${name}\0`);
    const header =
      '070701' +
      hex8(ino) +
      hex8(mode) +
      hex8(0) + // uid: root
      hex8(0) + // gid: root
      hex8(nlink) +
      hex8(0) + // mtime: fixed, so archives are reproducible
      hex8(data.length) +
      hex8(0) +
      hex8(0) +
      hex8(rdevMajor) +
      hex8(rdevMinor) +
      hex8(nameBytes.length) +
      hex8(0); // check: only used by the 070702 variant
    this.push(Buffer.from(header, 'latin1'));
    this.push(nameBytes);
    this.push(Buffer.alloc(pad4(110 + nameBytes.length)));
    this.push(Buffer.from(data.buffer, data.byteOffset, data.length));
    this.push(Buffer.alloc(pad4(data.length)));
    return this;
  }

  private push(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }
}

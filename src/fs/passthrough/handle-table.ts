// Layer: fs (passthrough backend). Open file and directory handles: FUSE fh
// numbers -> real (non-O_PATH) host fds. Imports fuse/ errors and ./inode-store.ts types.
import { constants } from 'node:os';
import { FsError } from '../../fuse/errors.ts';
import type { RawDirent } from '../../sys/dirent.ts';
import type { Inode } from './inode-store.ts';

const E = constants.errno;

/**
 * Where a directory handle stands in its getdents64 stream. Cookies we hand the
 * kernel are entry indexes (1 = after the first entry), never the host's d_off
 * (ext4 hands out 63-bit hashes that a JS number cannot carry). The host's
 * d_off of every entry handed out is kept (8 bytes each, `cookies`), so a
 * request for any earlier index resumes at the host's own cookie: exact even
 * when entries are removed meanwhile, as natively. The last getdents64 batch
 * is kept too, so re-reading an offset inside it (the kernel does that
 * whenever a user buffer fills mid-reply) costs no syscall.
 */
export class DirStream {
  buf: Buffer | null = null;
  /** 32-bit words of buf (same memory), for parseDirentInto and the cookies. */
  words: Uint32Array | null = null;
  /** Bytes of buf filled by the last getdents64. */
  len = 0;
  /** Byte position of the next record to hand out. */
  pos = 0;
  /** Index of the record at `pos` (= the cookie of the entry before it). */
  index = 0;
  /** Index of the first record in buf. */
  bufIndex = 0;
  /** Host d_off of entry i as two little-endian words at [2i, 2i+2). */
  cookies = new Uint32Array(0);
  /** Entries whose host d_off is in `cookies`. */
  known = 0;
  /** The record at ds.pos, filled by the backend's parse (one object per stream, not per entry). */
  readonly rec: RawDirent = { ino: 0, type: 0, nameStart: 0, nameEnd: 0, next: 0 };

  /** Takes a getdents64 buffer (aligned: its own ArrayBuffer or a 4-aligned slice). */
  setBuffer(buf: Buffer): void {
    this.buf = buf;
    this.words = new Uint32Array(buf.buffer, buf.byteOffset, buf.length >>> 2);
  }

  /** Records the host d_off of the record at byte `recPos` of buf as entry `index`'s. */
  recordCookie(recPos: number): void {
    const at = this.index * 2;
    if (at + 2 > this.cookies.length) {
      const grown = new Uint32Array(Math.max(256, this.cookies.length * 2));
      grown.set(this.cookies.subarray(0, this.known * 2));
      this.cookies = grown;
    }
    // d_off is the 8 bytes at recPos + 8; records are 8-aligned in buf.
    const w = this.words!;
    const q = (recPos + 8) >>> 2;
    this.cookies[at] = w[q];
    this.cookies[at + 1] = w[q + 1];
    this.known = this.index + 1;
  }

  /** The host d_off recorded for entry `i`. */
  cookie(i: number): bigint {
    return BigInt.asIntN(64, (BigInt(this.cookies[2 * i + 1]) << 32n) | BigInt(this.cookies[2 * i]));
  }
}

export class OpenHandle {
  constructor(
    readonly fd: number,
    readonly inode: Inode,
    readonly dir: DirStream | null,
  ) {}
}

export class HandleTable {
  private readonly map = new Map<number, OpenHandle>();
  private nextFh = 1;

  add(h: OpenHandle): number {
    const fh = this.nextFh++;
    this.map.set(fh, h);
    return fh;
  }

  get(fh: number): OpenHandle {
    const h = this.map.get(fh);
    if (h === undefined) throw new FsError(E.EBADF, `unknown file handle ${fh}`);
    return h;
  }

  /** The handle, or undefined for an fh we never handed out (or already released). */
  peek(fh: number | undefined): OpenHandle | undefined {
    return fh === undefined ? undefined : this.map.get(fh);
  }

  remove(fh: number): OpenHandle {
    const h = this.get(fh);
    this.map.delete(fh);
    return h;
  }

  get size(): number {
    return this.map.size;
  }

  values(): IterableIterator<OpenHandle> {
    return this.map.values();
  }

  clear(): void {
    this.map.clear();
  }
}

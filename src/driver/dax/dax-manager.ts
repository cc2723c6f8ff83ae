// Layer: driver. The DAX window manager (after OSv's virtio-fs driver): the
// window is cut into fixed chunks; mappings {nodeid, nchunks, fstart, mstart}
// live on a LIFO stack; a new mapping goes on top, one contiguous with the
// top mapping of the same file extends it, and when the window is full chunks
// are taken back from the top (no REMOVEMAPPING: the next SETUPMAPPING over
// them replaces the old pages, virtio-fs overlap semantics). Any failure
// falls back to FUSE_READ; ENOSYS turns DAX off for the session.
//
// Writable mappings (a step beyond OSv): a handle open for writing maps its
// chunks with FUSE_SETUPMAPPING_FLAG_WRITE, and write() stores into the
// window the part of a write that lies inside the file's current size. The
// backend maps the file itself MAP_SHARED, so the stores land in the host's
// page cache: host readers and FUSE_READ see them at once, FUSE_FSYNC on the
// host fd writes them back (fsync needs nothing extra), and a FUSE_WRITE
// shows in every mapping of the file (no stale view). Writes past the size
// are the caller's FUSE_WRITE (pages past EOF are not backed).
// Imports ./dax-window.ts, ../fuse-client.ts, ../errors.ts, fuse/abi.ts.
import { FUSE_SETUPMAPPING_FLAG_READ, FUSE_SETUPMAPPING_FLAG_WRITE } from '../../fuse/abi.ts';
import type { FuseClient } from '../fuse-client.ts';
import type { DriverError } from '../errors.ts';
import type { DaxWindow } from './dax-window.ts';

export const DEFAULT_CHUNK_BYTES = 2 * 1024 * 1024;
export const DEFAULT_MIN_FILE_BYTES = 64 * 1024;

/** One run of chunks: file chunks [fstart, +nchunks) at window chunks [mstart, +nchunks). */
export interface DaxMapping {
  nodeid: number;
  nchunks: number;
  fstart: number;
  mstart: number;
  /** Mapped with FUSE_SETUPMAPPING_FLAG_WRITE (stores allowed). */
  writable: boolean;
}

/** What the stack decided for a miss: map `nchunks` file chunks from `fstart` at window chunk `mstart`. */
export interface MapPlan {
  fstart: number;
  mstart: number;
  nchunks: number;
  /** The top mapping grows (same file, contiguous) instead of a new one being pushed. */
  extend: boolean;
  /** Mappings (or parts) taken back from the top to make room. */
  evicted: DaxMapping[];
}

/**
 * The pure bookkeeping half: which window chunk holds which file chunk.
 * No I/O, so its rules are unit-tested directly.
 */
export class ChunkStack {
  readonly stack: DaxMapping[] = [];
  constructor(readonly totalChunks: number) {}

  get usedChunks(): number {
    const top = this.stack[this.stack.length - 1];
    return top ? top.mstart + top.nchunks : 0;
  }

  /** The window chunk holding file chunk `fchunk` of `nodeid` (writable when `write`), or -1. Newest mappings win. */
  find(nodeid: number, fchunk: number, write = false): number {
    for (let i = this.stack.length - 1; i >= 0; i--) {
      const m = this.stack[i]!;
      if (m.nodeid === nodeid && (m.writable || !write) && fchunk >= m.fstart && fchunk < m.fstart + m.nchunks) return m.mstart + (fchunk - m.fstart);
    }
    return -1;
  }

  /**
   * Plan room for file chunks [fstart, +nchunks) of nodeid. Returns null when
   * the request is bigger than the whole window. Applies the plan to the stack
   * (call undo() if the mapping then fails).
   */
  plan(nodeid: number, fstart: number, nchunks: number, writable = false): MapPlan | null {
    if (nchunks <= 0 || nchunks > this.totalChunks) return null;
    const evicted: DaxMapping[] = [];
    // Mappings of forgotten files on top are dead weight: take them back first.
    while (this.stack.length > 0 && this.stack[this.stack.length - 1]!.nodeid === -1) evicted.push(this.stack.pop()!);
    const top = this.stack[this.stack.length - 1];
    if (top && top.nodeid === nodeid && top.writable === writable && top.fstart + top.nchunks === fstart && top.mstart + top.nchunks + nchunks <= this.totalChunks) {
      const mstart = top.mstart + top.nchunks;
      top.nchunks += nchunks;
      return { fstart, mstart, nchunks, extend: true, evicted };
    }
    // Take chunks back from the top until the new run fits.
    while (this.usedChunks + nchunks > this.totalChunks) {
      const t = this.stack[this.stack.length - 1]!;
      const over = this.usedChunks + nchunks - this.totalChunks;
      if (t.nchunks <= over) {
        evicted.push(this.stack.pop()!);
      } else {
        // Shrink the top mapping from its end: its tail chunks are reused.
        evicted.push({ nodeid: t.nodeid, fstart: t.fstart + t.nchunks - over, mstart: t.mstart + t.nchunks - over, nchunks: over, writable: t.writable });
        t.nchunks -= over;
      }
    }
    const mstart = this.usedChunks;
    this.stack.push({ nodeid, nchunks, fstart, mstart, writable });
    return { fstart, mstart, nchunks, extend: false, evicted };
  }

  /** Roll back the last plan (its SETUPMAPPING failed): the chunks hold nothing known now. */
  undo(p: MapPlan): void {
    const top = this.stack[this.stack.length - 1]!;
    if (p.extend) top.nchunks -= p.nchunks;
    else this.stack.pop();
    // Evicted chunks may have been partly overwritten: they stay evicted.
  }

  /** Start over with an empty window (the next SETUPMAPPINGs overwrite whatever is mapped). */
  clear(): void {
    this.stack.length = 0;
  }

  /** Forget every mapping of a node (its nodeid may be reused, or its data changed). */
  dropNode(nodeid: number): void {
    // Entries stay in place to keep the stack contiguous; they just never match again.
    for (const m of this.stack) if (m.nodeid === nodeid) m.nodeid = -1;
  }
}

export interface DaxStats {
  hits: number;
  misses: number;
  fallbacks: number;
  setupmappings: number;
  evictions: number;
  /** Writes (or their inside-the-file part) stored through the window. */
  windowWrites: number;
}

export class DaxManager {
  readonly chunkBytes: number;
  readonly chunks: ChunkStack;
  /** False once the backend said ENOSYS (or the window is unusable): every read is a FUSE_READ. */
  enabled: boolean;
  disabledReason = '';
  readonly stats: DaxStats = { hits: 0, misses: 0, fallbacks: 0, setupmappings: 0, evictions: 0, windowWrites: 0 };
  private lock: Promise<unknown> = Promise.resolve();
  /** Chunks mapped at once when a read continues the top mapping of its file. */
  readonly readaheadChunks: number;
  /** Whole-file reads (VirtioFs.readFile) of files smaller than this use FUSE_READ. Default 64 KiB. */
  readonly minFileBytes: number;

  constructor(
    private readonly client: FuseClient,
    readonly window: DaxWindow,
    opts: { chunkBytes?: number; mapAlignmentLog2?: number; readaheadChunks?: number; minFileBytes?: number } = {},
  ) {
    this.readaheadChunks = opts.readaheadChunks ?? 4;
    this.minFileBytes = opts.minFileBytes ?? DEFAULT_MIN_FILE_BYTES;
    const align = 2 ** (opts.mapAlignmentLog2 ?? 12);
    let chunk = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    if (chunk % align !== 0) chunk = Math.ceil(chunk / align) * align; // a multiple of the backend's alignment
    this.chunkBytes = chunk;
    this.chunks = new ChunkStack(Math.floor(window.size / chunk));
    this.enabled = window.usable && this.chunks.totalChunks > 0;
    if (!this.enabled) this.disabledReason = window.usable ? 'window smaller than one chunk' : 'backend did not negotiate shared-memory mapping';
  }

  /**
   * Drop every mapping (like a fresh mount). LIFO keeps the oldest mappings
   * longest, so a new working set bigger than the free space above them
   * thrashes at the top; callers switching data sets can start clean.
   */
  reset(): void {
    this.chunks.clear();
  }

  forgetNode(nodeid: number): void {
    this.chunks.dropNode(nodeid);
  }

  /** The file changed through us (write, truncate): remap on the next read. */
  invalidate(nodeid: number): void {
    this.chunks.dropNode(nodeid);
  }

  /**
   * Read [pos, +len) of the file (clamped to fileSize) through the window.
   * Resolves null when DAX cannot serve it (the caller does a FUSE_READ).
   * `writable`: the handle is open for writing, so missing chunks are mapped
   * writable (a later write() then finds them).
   */
  async read(nodeid: number, fh: number, pos: number, len: number, fileSize: number, zeroCopy = false, writable = false): Promise<Buffer | null> {
    if (!this.enabled) return null;
    if (pos >= fileSize) return Buffer.alloc(0);
    const n = Math.min(len, fileSize - pos);
    const c = this.chunkBytes;
    const first = Math.floor(pos / c);
    // Fast path: every chunk already mapped and contiguous in the window.
    const hit = this.contiguous(nodeid, first, Math.floor((pos + n - 1) / c), false);
    if (hit >= 0) {
      const b = this.take(hit * c + (pos - first * c), n, zeroCopy);
      if (b) {
        this.stats.hits++;
        return b;
      }
    }
    this.stats.misses++;
    const at = await this.ensure(nodeid, fh, pos, n, fileSize, writable);
    if (at < 0) return null;
    const b = this.take(at * c + (pos - first * c), n, zeroCopy);
    if (!b) this.lostMapping(nodeid);
    return b;
  }

  /**
   * Store `data` at file offset `pos` through a writable mapping. Only the
   * part inside [0, fileSize) can go this way: resolves how many leading
   * bytes were stored (0 = none; the caller sends the rest with FUSE_WRITE).
   * `fh` must be open for writing (the backend checks).
   */
  async write(nodeid: number, fh: number, pos: number, data: Uint8Array, fileSize: number): Promise<number> {
    if (!this.enabled || pos >= fileSize || data.byteLength === 0) return 0;
    const n = Math.min(data.byteLength, fileSize - pos);
    const c = this.chunkBytes;
    const first = Math.floor(pos / c);
    if (Math.floor((pos + n - 1) / c) - first + 1 > this.chunks.totalChunks) return 0;
    let at = this.contiguous(nodeid, first, Math.floor((pos + n - 1) / c), true);
    if (at < 0) {
      this.stats.misses++;
      at = await this.ensure(nodeid, fh, pos, n, fileSize, true);
      if (at < 0) return 0;
    } else {
      this.stats.hits++;
    }
    if (!this.window.write(at * c + (pos - first * c), data.subarray(0, n))) {
      this.lostMapping(nodeid);
      return 0;
    }
    this.stats.windowWrites++;
    return n;
  }

  /** The backend said yes but the pages are not there (or not writable): do not trust it again for this node. */
  private lostMapping(nodeid: number): void {
    this.chunks.dropNode(nodeid);
    this.stats.fallbacks++;
  }

  /**
   * Map the chunks under [pos, +n) (writable when asked) and return the
   * window chunk of the first, or -1 (the caller falls back to FUSE).
   * Misses are serialized: two calls must not plan the same chunks at once.
   */
  private ensure(nodeid: number, fh: number, pos: number, n: number, fileSize: number, writable: boolean): Promise<number> {
    const c = this.chunkBytes;
    const first = Math.floor(pos / c);
    const last = Math.floor((pos + n - 1) / c);
    const run = async (): Promise<number> => {
      if (!this.enabled) return -1;
      const again = this.contiguous(nodeid, first, last, writable);
      if (again >= 0) return again;
      // Sequential access (the miss continues the top mapping of this file):
      // map a few chunks ahead in one SETUPMAPPING, like readahead.
      let count = last - first + 1;
      const top = this.chunks.stack[this.chunks.stack.length - 1];
      if (top && top.nodeid === nodeid && top.writable === writable && top.fstart + top.nchunks === first) {
        const toEof = Math.ceil(fileSize / c) - first;
        count = Math.max(count, Math.min(this.readaheadChunks, toEof, this.chunks.totalChunks - this.chunks.usedChunks));
      }
      const plan = this.chunks.plan(nodeid, first, count, writable);
      if (!plan) {
        this.stats.fallbacks++;
        return -1;
      }
      this.stats.evictions += plan.evicted.length;
      try {
        this.stats.setupmappings++;
        const flags = FUSE_SETUPMAPPING_FLAG_READ | (writable ? FUSE_SETUPMAPPING_FLAG_WRITE : 0);
        await this.client.setupmapping(nodeid, fh, plan.fstart * c, plan.nchunks * c, flags, plan.mstart * c);
      } catch (err) {
        this.chunks.undo(plan);
        this.stats.fallbacks++;
        const code = (err as DriverError).code;
        if (code === 'ENOSYS' || code === 'EOPNOTSUPP' || code === 'ENOTCONN') {
          this.enabled = false;
          this.disabledReason = `SETUPMAPPING: ${code}`;
        }
        return -1;
      }
      const at = this.contiguous(nodeid, first, last, writable);
      if (at < 0) this.lostMapping(nodeid);
      return at;
    };
    const p = this.lock.then(run, run);
    this.lock = p.catch(() => {});
    return p;
  }

  /** Window chunk of file chunk `first` when chunks first..last sit contiguously in the window, else -1. */
  private contiguous(nodeid: number, first: number, last: number, write: boolean): number {
    const m0 = this.chunks.find(nodeid, first, write);
    if (m0 < 0) return -1;
    for (let f = first + 1; f <= last; f++) if (this.chunks.find(nodeid, f, write) !== m0 + (f - first)) return -1;
    return m0;
  }

  private take(offset: number, len: number, zeroCopy: boolean): Buffer | null {
    return zeroCopy ? this.window.view(offset, len) : this.window.copy(offset, len);
  }
}

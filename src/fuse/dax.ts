// Layer: fuse (pure: no sys/, no node:fs). The daemon half of the virtio-fs
// DAX window: validates FUSE_SETUPMAPPING / FUSE_REMOVEMAPPING and turns them
// into map/unmap calls on a ShmemMapper (over vhost-user: SHMEM_MAP /
// SHMEM_UNMAP on the backend request channel). Imports ./filesystem.ts and
// ./errors.ts types only; the mapper is injected by the transport.
//
// Why the server (not each backend) does this: the checks (inside the window,
// aligned, flags) and the bookkeeping of live mappings are the same for every
// backend; a backend only has to lend an fd for (nodeid, fh) with the access
// asked for (FileSystem.withMappableFd).
//
// Bookkeeping: QEMU's frontend (11.1) keeps each SHMEM_MAP as its own memory
// subregion and removes one only on an UNMAP of exactly its (offset, len); it
// does not replace overlapping ranges. The virtio-fs rules are "a mapping that
// covers an earlier one replaces it; a partial overlap splits it", so we keep
// the live mappings and, before mapping over them, UNMAP each one overlapped
// exactly and MAP again (by inode) the parts of it that stay outside.
import { constants } from 'node:os';
import { FsError } from './errors.ts';
import type { FileSystem, RequestContext } from './filesystem.ts';

const E = constants.errno;

/** FUSE_SETUPMAPPING_FLAG_WRITE / _READ (fuse.h). */
export const SETUPMAPPING_FLAG_WRITE = 1;
export const SETUPMAPPING_FLAG_READ = 2;

/**
 * Maps file ranges into the shared-memory window (region 0). Calls are
 * synchronous and return once the frontend acknowledged; a refusal throws an
 * error with a positive `errno`. `fd` is borrowed: the mapper must not keep it
 * (SCM_RIGHTS gives the frontend its own copy). A mapper that must not send a
 * map (the frontend would die of one more region: QEMU 11.1) throws ENOSPC
 * before sending anything.
 */
export interface ShmemMapper {
  /** Bytes of the window; offsets are checked against it before any call. */
  readonly windowSize: number;
  /** False while no frontend channel can carry map requests: SETUPMAPPING then answers ENOSYS. */
  readonly ready: boolean;
  map(fd: number, fdOffset: number, shmOffset: number, len: number, writable: boolean): void;
  unmap(shmOffset: number, len: number): void;
  /** The largest window whose mappings can never run out of room (unset: no limit). */
  readonly safeWindowSize?: number;
}

/** One live mapping in the window. */
export interface LiveMapping {
  moffset: number;
  len: number;
  nodeid: number;
  foffset: number;
  writable: boolean;
}

export interface DaxStats {
  setups: number;
  removes: number;
  refused: number;
  live: number;
  /** SETUPMAPPINGs the mapper had no room for (ENOSPC), also counted in `refused`. */
  noRoom: number;
}

/** At most one log line per this many ms about maps refused for want of room (a guest can ask thousands). */
const NO_ROOM_LOG_MS = 60_000;

/** The window's state for one daemon: validation + live mappings. */
export class DaxWindow {
  /** Sorted by moffset, never overlapping. */
  private live: LiveMapping[] = [];
  readonly stats: DaxStats = { setups: 0, removes: 0, refused: 0, live: 0, noRoom: 0 };
  private noRoomLoggedAt = -Infinity;
  private noRoomLogged = 0;
  readonly alignment: number;

  /**
   * alignLog2: the FUSE_MAP_ALIGNMENT we announce (12 = host pages; Linux
   * accepts up to 21 and maps 2 MiB ranges, all multiples of it).
   */
  constructor(readonly mapper: ShmemMapper, readonly alignLog2 = 12, private readonly log: (msg: string) => void = () => {}) {
    if (!Number.isInteger(alignLog2) || alignLog2 < 12 || alignLog2 > 21) throw new RangeError(`map alignment 2^${alignLog2} is not in 2^12..2^21`);
    this.alignment = 2 ** alignLog2;
    const w = mapper.windowSize;
    if (!Number.isSafeInteger(w) || w <= 0 || w % this.alignment !== 0) throw new RangeError(`DAX window of ${w} bytes is not a positive multiple of ${this.alignment}`);
    // Said once at start: a window past it works until the guest has mapped
    // that much, then maps are refused (ENOSPC) rather than kill the VM.
    const safe = mapper.safeWindowSize;
    if (safe !== undefined && w > safe) {
      const MiB = 2 ** 20;
      this.log(`DAX: the ${w / MiB} MiB window (${w / (2 * MiB)} ranges of 2 MiB, up to two mapped regions each) can need more regions than QEMU 11.1 allows (it aborts past 512): once ${safe / MiB} are live, further mappings are refused and the guest's read gets ENOSPC. A window of at most ${safe / MiB} MiB (256M as a power of two) never runs out.`);
    }
  }

  /** The live mappings (a copy, sorted by window offset). */
  mappings(): LiveMapping[] {
    return this.live.map((m) => ({ ...m }));
  }

  private refuse(errno: number, why: string): never {
    this.stats.refused++;
    this.log(`DAX: refused: ${why}`);
    throw new FsError(errno, why);
  }

  /** A range the window can hold: aligned, non-empty, inside, no wrap. */
  private checkRange(what: string, moffset: number, len: number): void {
    const a = this.alignment;
    if (!Number.isSafeInteger(moffset) || !Number.isSafeInteger(len) || len <= 0) this.refuse(E.EINVAL, `${what}: range ${moffset}+${len} is empty or beyond 2^53`);
    if (moffset % a !== 0 || len % a !== 0) this.refuse(E.EINVAL, `${what}: range 0x${moffset.toString(16)}+0x${len.toString(16)} is not aligned to ${a}`);
    if (moffset >= this.mapper.windowSize || len > this.mapper.windowSize - moffset) {
      this.refuse(E.EINVAL, `${what}: range 0x${moffset.toString(16)}+0x${len.toString(16)} runs past the 0x${this.mapper.windowSize.toString(16)}-byte window`);
    }
  }

  /**
   * FUSE_SETUPMAPPING: map [foffset, +len) of nodeid's file at window offset
   * moffset. fh undefined = by inode (what Linux sends); otherwise a handle we
   * gave out for that nodeid, and a writable mapping needs it open for writing.
   * Ranges past EOF are mapped as asked (Linux maps whole 2 MiB ranges of
   * smaller files and touches only the pages below EOF).
   */
  setup(fs: FileSystem, ctx: RequestContext, nodeid: number, fh: number | undefined, foffset: number, len: number, flags: number, moffset: number): void {
    if (!this.mapper.ready || !fs.withMappableFd) this.refuse(E.ENOSYS, 'no frontend channel to map with');
    if (flags !== Math.trunc(flags) || flags < 0 || (flags & ~(SETUPMAPPING_FLAG_WRITE | SETUPMAPPING_FLAG_READ)) !== 0 || flags > 3) {
      this.refuse(E.EINVAL, `SETUPMAPPING flags 0x${flags.toString(16)} has unknown bits`);
    }
    this.checkRange('SETUPMAPPING', moffset, len);
    if (!Number.isSafeInteger(foffset) || foffset < 0 || foffset % this.alignment !== 0 || foffset > Number.MAX_SAFE_INTEGER - len) {
      this.refuse(E.EINVAL, `SETUPMAPPING: file offset ${foffset} is not aligned to ${this.alignment}`);
    }
    const writable = (flags & SETUPMAPPING_FLAG_WRITE) !== 0;
    // Throws EBADF (fh never handed out / another node's), EACCES (write on a
    // read-only open), ENOENT (unknown node), EINVAL (not a regular file).
    let lent = false;
    try {
      fs.withMappableFd(ctx, nodeid, fh, writable, (fd) => {
        lent = true;
        this.clear(ctx, fs, moffset, len);
        this.mapper.map(fd, foffset, moffset, len, writable);
      });
    } catch (err) {
      if (!lent) this.stats.refused++;
      else if ((err as { errno?: unknown }).errno === E.ENOSPC) this.noRoom(err as Error);
      else this.log(`DAX: mapping node ${nodeid} 0x${foffset.toString(16)}+0x${len.toString(16)} at 0x${moffset.toString(16)} failed: ${(err as Error).message}`);
      throw err;
    }
    this.insert({ moffset, len, nodeid, foffset, writable });
    this.stats.setups++;
  }

  /** One line now and then, not one per refused map: the guest retries each read that needs a range. */
  private noRoom(err: Error): void {
    this.stats.refused++;
    this.stats.noRoom++;
    const now = Date.now();
    if (now - this.noRoomLoggedAt < NO_ROOM_LOG_MS) return;
    const since = this.stats.noRoom - this.noRoomLogged;
    this.noRoomLoggedAt = now;
    this.noRoomLogged = this.stats.noRoom;
    this.log(`${err.message}; the guest's read gets ENOSPC (${since} such refusal(s) since the last line). A smaller --dax-window avoids it.`);
  }

  /** FUSE_REMOVEMAPPING: every range is checked first; then each is cleared (nothing mapped there is fine). */
  remove(fs: FileSystem, ctx: RequestContext, ranges: ReadonlyArray<{ moffset: number; len: number }>): void {
    if (!this.mapper.ready) this.refuse(E.ENOSYS, 'no frontend channel to unmap with');
    for (const r of ranges) this.checkRange('REMOVEMAPPING', r.moffset, r.len);
    for (const r of ranges) this.clear(ctx, fs, r.moffset, r.len);
    this.stats.removes += ranges.length;
  }

  /** Unmap everything we mapped (a new FUSE session on the same device). Errors are logged, not thrown. */
  unmapAll(): void {
    const all = this.live;
    this.live = [];
    this.stats.live = 0;
    for (const m of all) {
      try {
        if (this.mapper.ready) this.mapper.unmap(m.moffset, m.len);
      } catch (err) {
        this.log(`DAX: unmapping 0x${m.moffset.toString(16)}+0x${m.len.toString(16)} failed: ${(err as Error).message}`);
      }
    }
  }

  /** The frontend dropped every mapping itself (device reset, channel gone): forget them. */
  forgetAll(): void {
    this.live = [];
    this.stats.live = 0;
  }

  private insert(m: LiveMapping): void {
    let i = 0;
    while (i < this.live.length && this.live[i]!.moffset < m.moffset) i++;
    this.live.splice(i, 0, m);
    this.stats.live = this.live.length;
  }

  /**
   * Make [moffset, +len) hold no mapping: UNMAP every live mapping that
   * overlaps it (exactly as mapped), then MAP again by inode the pieces of
   * those that lie outside. A piece that cannot be mapped again (its node is
   * gone) is left unmapped: the guest asks again and gets a fresh mapping.
   */
  private clear(ctx: RequestContext, fs: FileSystem, moffset: number, len: number): void {
    const end = moffset + len;
    const hit = this.live.filter((m) => m.moffset < end && m.moffset + m.len > moffset);
    if (hit.length === 0) return;
    this.live = this.live.filter((m) => !hit.includes(m));
    this.stats.live = this.live.length;
    for (const m of hit) {
      this.mapper.unmap(m.moffset, m.len);
      const pieces: LiveMapping[] = [];
      if (m.moffset < moffset) pieces.push({ ...m, len: moffset - m.moffset });
      if (m.moffset + m.len > end) pieces.push({ ...m, moffset: end, foffset: m.foffset + (end - m.moffset), len: m.moffset + m.len - end });
      for (const p of pieces) {
        try {
          fs.withMappableFd!(ctx, p.nodeid, undefined, p.writable, (fd) => this.mapper.map(fd, p.foffset, p.moffset, p.len, p.writable));
          this.insert(p);
        } catch (err) {
          this.log(`DAX: could not keep 0x${p.moffset.toString(16)}+0x${p.len.toString(16)} of node ${p.nodeid} mapped: ${(err as Error).message}`);
        }
      }
    }
  }
}

// Layer: transport (data-plane worker). The DAX window's ShmemMapper over the
// vhost-user backend request channel, with the one workaround QEMU needs.
// Imports fuse/dax.ts (types), vhost-user/shmem.ts, sys/ (mmap, syscalls).
//
// QEMU 11.1 maps each SHMEM_MAP with memory_region_init_ram_from_fd(), which
// refuses a range that STRADDLES the end of its file ("backing store size ...
// is too small"): ranges wholly inside or wholly past EOF are accepted. The
// Linux client maps whole 2 MiB ranges, so every file whose size is not a
// multiple of 2 MiB has such a range. Our TypeScript frontend has no such
// rule. So: a map is sent as asked; when the frontend refuses one that
// straddles EOF, the channel switches to split mode for good, and such ranges
// are sent as
//   - the page-aligned part below EOF, mapped from the file itself;
//   - the page holding EOF (when the size is not page aligned) from a private
//     4 KiB memfd "tail page" holding those bytes;
//   - nothing past that page (the guest never touches pages past EOF).
// A tail page is a copy, so it is kept coherent by syncTails(), which the
// worker runs before and after every FUSE request, with `known` = what the
// file held at the last sync: bytes the guest stored into the copy (a snapshot
// of it differs from `known`) are written to the file; then only the bytes the
// FILE changed since (it differs from `known`: the guest's FUSE_WRITEs, host
// writes, truncation, past EOF reading as zeros) are copied in. vCPUs keep
// running meanwhile, so a guest store landing mid-sync differs from `known`
// and is left for the next push, never overwritten. A file that grows past
// its pieces is cut again for the new size. Known limits: each side sees the
// other's change to the last page only at the guest's next FUSE request (an
// fsync or msync is one); a guest store and a host (or FUSE_WRITE) change to
// the SAME byte between two syncs conflict and either may win, as between any
// two unordered writers; only the EOF page of a file is ever a copy.
//
// Third QEMU 11.1 rule, the one that kills the VM: every SHMEM_MAP becomes a
// region of the vhost memory table QEMU keeps for us (we get an ADD_MEM_REG
// for it), and QEMU asserts that table holds at most 512 regions
// (VHOST_USER_MAX_RAM_SLOTS; seen: guest RAM + 511 maps, then the 512th map
// aborted QEMU in vhost_user_add_remove_regions). Its backend-slot check
// (our GET_MAX_MEM_SLOTS reply) covers guest RAM and memory devices at device
// start, not these maps. So the mapper keeps a budget of live regions: the
// 512 minus the 32 slots our GET_MAX_MEM_SLOTS reply (vhost-user-device.ts)
// lets QEMU use for its own memory, and a map that would go past it is
// refused with ENOSPC before anything is sent: the guest's read fails or its
// mmap access gets SIGBUS (fs/fuse/dax.c gives the range back to its free
// pool, no retry), the VM lives. Not EAGAIN (the Linux fault path retries it
// forever) nor ENOMEM (a DAX fault turns it into the guest's OOM killer). A
// window of at most 480 MiB (256M as a power-of-two BAR) never reaches the
// budget even when every 2 MiB range is split in two regions.
//
// Second QEMU 11.1 rule: it mmaps every SHMEM_MAP fd PROT_READ|PROT_WRITE
// (a read-only map only makes the guest's view read-only), so an fd opened
// O_RDONLY fails with EACCES. A read-only map is therefore sent with an O_RDWR
// reopen of the same file when the host allows one (the guest still gets a
// read-only mapping), else with the fd as lent.
import { constants } from 'node:os';
import type { ShmemMapper } from '../fuse/dax.ts';
import { ShmemChannel, ShmemRequestError } from '../vhost-user/shmem.ts';
import { mapFd, memfdCreate, unmap, type Mapping } from '../sys/mmap.ts';
import * as sys from '../sys/syscalls.ts';
import { fdStatusFlags } from '../sys/fd-flags.ts';

const PAGE = 4096;
const E = constants.errno;

/** QEMU 11.1 aborts once its vhost memory table for us would hold more regions than this. */
export const QEMU_MAX_VHOST_REGIONS = 512;
/** Our GET_MAX_MEM_SLOTS reply (vhost-user-device.ts): QEMU keeps its own memory (guest RAM, DIMMs) within it. */
export const FRONTEND_MEMORY_SLOTS = 32;
/** Live SHMEM_MAP regions we allow ourselves. */
export const DAX_REGION_BUDGET = QEMU_MAX_VHOST_REGIONS - FRONTEND_MEMORY_SLOTS;
/** Linux maps the window in ranges of this size; in split mode one range can take two regions. */
export const LINUX_DAX_RANGE = 2 * 1024 * 1024;

/** The window size (a multiple of 2 MiB) whose ranges can never need more regions than `budget`, worst case two per range. */
export function safeWindowSize(budget = DAX_REGION_BUDGET): number {
  return Math.floor(budget / 2) * LINUX_DAX_RANGE;
}

/** A map refused because it would take the frontend past its region limit. */
export class RegionBudgetError extends Error {
  override readonly name = 'RegionBudgetError';
  readonly errno = E.ENOSPC;
  constructor(
    readonly live: number,
    readonly needed: number,
    readonly budget: number,
  ) {
    super(`DAX: no room for ${needed} more mapped region(s) (${live} of ${budget} live): QEMU aborts past ${QEMU_MAX_VHOST_REGIONS} vhost memory regions, so this mapping is refused (ENOSPC)`);
  }
}

interface TailPage {
  memfd: number;
  mapping: Mapping;
  view: Buffer;
  /** What the file held at the last sync (the guest's writes are what differs from it). */
  known: Buffer;
  /** Our own fd of the file (a dup of the lent one): read, and written when writable. */
  fileFd: number;
  fileOffset: number;
  writable: boolean;
}

interface Piece {
  shmOffset: number;
  len: number;
  tail: TailPage | null;
}

/** A mapping sent in pieces: kept with its own fd so it can be placed again when the file grows. */
interface Split {
  fileFd: number;
  fdOffset: number;
  shmOffset: number;
  len: number;
  writable: boolean;
  /** File size the pieces were cut for. */
  size: number;
  pieces: Piece[];
}

export class ChannelMapper implements ShmemMapper {
  private channel: ShmemChannel | null = null;
  /** Window offset of each live mapping -> what was really sent for it (split mode). */
  private readonly splits = new Map<number, Split>();
  private readonly tails = new Set<TailPage>();
  /** Set once the frontend refused a range straddling EOF (QEMU). */
  splitMode = false;
  private readonly scratch = Buffer.alloc(PAGE);
  /** Window offsets of live mappings sent whole (one region each). */
  private readonly plain = new Set<number>();
  /** Regions the frontend holds for us right now (each accepted SHMEM_MAP, minus each UNMAP). */
  private regions = 0;
  /** Most regions ever live at once (for logs and tests). */
  peakRegions = 0;

  constructor(
    readonly windowSize: number,
    private readonly log: (msg: string) => void = () => {},
    /** Live regions allowed; see the header (QEMU 11.1 aborts past 512). */
    readonly regionBudget = DAX_REGION_BUDGET,
  ) {}

  /** Every 2 MiB range of a window this size fits the budget even split in two regions. */
  get safeWindowSize(): number {
    return safeWindowSize(this.regionBudget);
  }

  get liveRegions(): number {
    return this.regions;
  }

  /** Throws RegionBudgetError unless `n` more regions fit. */
  private reserve(n: number): void {
    if (this.regions + n > this.regionBudget) throw new RegionBudgetError(this.regions, n, this.regionBudget);
  }

  private sendMap(fd: number, fdOffset: number, shmOffset: number, len: number, writable: boolean): void {
    this.reserve(1);
    this.channel!.map(fd, fdOffset, shmOffset, len, writable);
    this.regions++;
    if (this.regions > this.peakRegions) this.peakRegions = this.regions;
  }

  private sendUnmap(shmOffset: number, len: number): void {
    const ch = this.channel;
    if (ch === null) return;
    try {
      ch.unmap(shmOffset, len);
    } finally {
      // Refused (it holds no such region) or the channel is gone (setChannel resets the count): not held any more.
      this.regions--;
    }
  }

  get ready(): boolean {
    return this.channel !== null && this.channel.ready;
  }

  get tailPages(): number {
    return this.tails.size;
  }

  /** True while some mapping is in pieces: syncTails() must run around every request. */
  get syncNeeded(): boolean {
    return this.splits.size > 0;
  }

  /** A new backend channel: mappings made through the old one are the frontend's past. */
  setChannel(c: ShmemChannel | null): void {
    this.channel?.close();
    this.channel = c;
    this.dropAll(false);
  }

  /** The frontend dropped its mappings (device reset): forget ours, writing tail pages back first. */
  dropAll(writeBack = true): void {
    for (const t of this.tails) {
      if (writeBack) this.syncTail(t);
      this.freeTail(t);
    }
    this.tails.clear();
    for (const sp of this.splits.values()) sys.close(sp.fileFd);
    this.splits.clear();
    this.plain.clear();
    this.regions = 0;
  }

  map(lent: number, fdOffset: number, shmOffset: number, len: number, writable: boolean): void {
    let rw = -1;
    if (!writable && (fdStatusFlags(lent) & sys.O_ACCMODE) === sys.O_RDONLY) {
      try {
        rw = sys.open(`/proc/self/fd/${lent}`, sys.O_RDWR);
      } catch {
        rw = -1; // a read-only file system or an immutable file: send the fd as lent
      }
    }
    try {
      this.mapWith(rw >= 0 ? rw : lent, fdOffset, shmOffset, len, writable);
    } finally {
      if (rw >= 0) sys.close(rw);
    }
  }

  private mapWith(fd: number, fdOffset: number, shmOffset: number, len: number, writable: boolean): void {
    const ch = this.channel!;
    const size = sys.fstat(fd).size;
    const straddles = fdOffset < size && size < fdOffset + len;
    // Checked before anything is sent: the most regions this map can take.
    this.reserve(straddles && this.splitMode ? this.regionsFor({ fdOffset, len }, size) : 1);
    if (!straddles || !this.splitMode) {
      try {
        this.sendMap(fd, fdOffset, shmOffset, len, writable);
        this.plain.add(shmOffset);
        return;
      } catch (err) {
        if (!straddles || !(err instanceof ShmemRequestError) || !ch.ready) throw err;
        this.splitMode = true;
        this.log('DAX: the frontend refuses mappings that straddle the end of a file (QEMU): mapping the part below EOF and a copy of the last page from now on');
        this.reserve(this.regionsFor({ fdOffset, len }, size));
      }
    }
    const sp: Split = { fileFd: sys.dup(fd), fdOffset, shmOffset, len, writable, size, pieces: [] };
    try {
      this.place(sp, size);
    } catch (err) {
      sys.close(sp.fileFd);
      throw err;
    }
    this.splits.set(shmOffset, sp);
  }

  /** Where a split's pieces end for a file of `size` bytes: the file part, and whether a tail page follows. */
  private cut(sp: { fdOffset: number; len: number }, size: number): { below: number; tail: boolean } {
    const below = Math.min(sp.len, Math.max(0, Math.floor((size - sp.fdOffset) / PAGE) * PAGE));
    return { below, tail: size % PAGE !== 0 && below < sp.len && size > sp.fdOffset };
  }

  /** Regions a split of this range takes for a file of `size` bytes (1 or 2). */
  private regionsFor(sp: { fdOffset: number; len: number }, size: number): number {
    const c = this.cut(sp, size);
    return (c.below > 0 ? 1 : 0) + (c.tail ? 1 : 0);
  }

  /** Send the pieces of `sp` for a file of `size` bytes. */
  private place(sp: Split, size: number): void {
    const { below, tail: withTail } = this.cut(sp, size);
    const pieces: Piece[] = [];
    try {
      if (below > 0) {
        this.sendMap(sp.fileFd, sp.fdOffset, sp.shmOffset, below, sp.writable);
        pieces.push({ shmOffset: sp.shmOffset, len: below, tail: null });
      }
      if (withTail) {
        const tail = this.makeTail(sp.fileFd, sp.fdOffset + below, sp.writable);
        try {
          this.sendMap(tail.memfd, 0, sp.shmOffset + below, PAGE, sp.writable);
        } catch (err) {
          this.freeTail(tail);
          throw err;
        }
        this.tails.add(tail);
        pieces.push({ shmOffset: sp.shmOffset + below, len: PAGE, tail });
      }
    } catch (err) {
      this.unmapPieces(pieces);
      throw err;
    }
    sp.pieces = pieces;
    sp.size = size;
  }

  /**
   * A file that grew past its pieces (a host append, the guest's extending
   * FUSE_WRITE): the guest will read the new bytes through the range it
   * already has, so the range is cut again for the new size. The file pieces
   * already sent stay mapped (vCPUs may be reading them right now); only the
   * old EOF copy is replaced, by the file's new whole pages and a new copy.
   */
  private regrow(): void {
    for (const sp of this.splits.values()) {
      let size: number;
      try {
        size = sys.fstat(sp.fileFd).size;
      } catch {
        continue;
      }
      if (size <= sp.size) continue;
      const was = this.cut(sp, sp.size);
      const now = this.cut(sp, size);
      if (was.below === now.below && was.tail === now.tail) {
        sp.size = size; // still within the same last page: the copy is refreshed by pull()
        continue;
      }
      try {
        this.extend(sp, was.below, now, size);
      } catch (err) {
        this.log(`DAX: re-mapping 0x${sp.shmOffset.toString(16)} for a file grown to ${size} bytes: ${(err as Error).message}`);
      }
    }
  }

  /** Replace the EOF copy of `sp` (cut at `below`) by the pieces for the larger `size`. */
  private extend(sp: Split, below: number, now: { below: number; tail: boolean }, size: number): void {
    const files = sp.pieces.filter((p) => p.tail === null);
    const copies = sp.pieces.filter((p) => p.tail !== null);
    // Over budget: keep the old pieces (the guest sees the range as cut for
    // the old size) rather than drop the copy and fail half way.
    this.reserve((now.below > below ? 1 : 0) + (now.tail ? 1 : 0) - copies.length);
    sp.pieces = files;
    this.unmapPieces(copies); // writes the guest's stores in the old copy to the file first
    const added: Piece[] = [];
    try {
      if (now.below > below) {
        this.sendMap(sp.fileFd, sp.fdOffset + below, sp.shmOffset + below, now.below - below, sp.writable);
        added.push({ shmOffset: sp.shmOffset + below, len: now.below - below, tail: null });
      }
      if (now.tail) {
        const tail = this.makeTail(sp.fileFd, sp.fdOffset + now.below, sp.writable);
        try {
          this.sendMap(tail.memfd, 0, sp.shmOffset + now.below, PAGE, sp.writable);
        } catch (err) {
          this.freeTail(tail);
          throw err;
        }
        this.tails.add(tail);
        added.push({ shmOffset: sp.shmOffset + now.below, len: PAGE, tail });
      }
    } catch (err) {
      try {
        this.unmapPieces(added);
      } catch {
        // the channel is gone: nothing more to undo
      }
      throw err;
    }
    sp.pieces = files.concat(added);
    sp.size = size;
  }

  unmap(shmOffset: number, len: number): void {
    const sp = this.splits.get(shmOffset);
    if (sp === undefined) {
      if (!this.plain.delete(shmOffset)) {
        this.channel!.unmap(shmOffset, len); // not ours to count (the frontend refuses what it does not hold)
        return;
      }
      this.sendUnmap(shmOffset, len);
      return;
    }
    this.splits.delete(shmOffset);
    try {
      this.unmapPieces(sp.pieces);
    } finally {
      sys.close(sp.fileFd);
    }
  }

  /** Write the guest's stores in tail pages to their files, then refresh the copies. Cheap when there are none. */
  syncTails(): void {
    // Every push before any pull: two copies of one file's last page (two
    // mappings) must both see what the guest stored through either.
    for (const t of this.tails) if (t.writable) this.guard(t, () => this.push(t));
    for (const t of this.tails) this.guard(t, () => this.pull(t));
    if (this.splits.size > 0 && this.channel?.ready) this.regrow();
  }

  private guard(t: TailPage, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log(`DAX: syncing the copy of the last page at file offset ${t.fileOffset}: ${(err as Error).message}`);
    }
  }

  close(): void {
    this.setChannel(null);
  }

  private unmapPieces(pieces: Piece[]): void {
    let first: unknown = null;
    for (const p of pieces) {
      try {
        if (p.tail) this.syncTail(p.tail);
        this.sendUnmap(p.shmOffset, p.len);
      } catch (err) {
        first ??= err;
      } finally {
        if (p.tail) {
          this.tails.delete(p.tail);
          this.freeTail(p.tail);
        }
      }
    }
    if (first !== null) throw first;
  }

  private makeTail(fd: number, fileOffset: number, writable: boolean): TailPage {
    const memfd = memfdCreate('virtiofs-ts-dax-tail', PAGE);
    let mapping: Mapping | null = null;
    let fileFd = -1;
    try {
      mapping = mapFd(memfd, PAGE, 0, true);
      fileFd = sys.dup(fd);
      const t: TailPage = { memfd, mapping, view: Buffer.from(mapping.view(0, PAGE)), known: Buffer.alloc(PAGE), fileFd, fileOffset, writable };
      this.pull(t);
      return t;
    } catch (err) {
      if (mapping) unmap(mapping);
      if (fileFd >= 0) sys.close(fileFd);
      sys.close(memfd);
      throw err;
    }
  }

  private freeTail(t: TailPage): void {
    try {
      unmap(t.mapping);
    } finally {
      sys.close(t.memfd);
      sys.close(t.fileFd);
    }
  }

  private syncTail(t: TailPage): void {
    try {
      if (t.writable) this.push(t);
      this.pull(t);
    } catch (err) {
      this.log(`DAX: syncing the copy of the last page at file offset ${t.fileOffset}: ${(err as Error).message}`);
    }
  }

  /**
   * Bytes the guest changed in the copy go to the file (only below the current
   * EOF). The copy is read ONCE into a snapshot and only the snapshot is
   * compared, written and remembered as known: a guest store landing while we
   * work then differs from `known` and goes out at the next push (reading the
   * live copy twice, once to write and once to remember, would mark such a
   * store known without writing it, and the next pull would undo it).
   */
  private push(t: TailPage): void {
    if (t.view.equals(t.known)) return;
    const snap = this.scratch;
    t.view.copy(snap);
    const valid = Math.min(PAGE, Math.max(0, sys.fstat(t.fileFd).size - t.fileOffset));
    let i = 0;
    while (i < valid) {
      if (snap[i] === t.known[i]) {
        i++;
        continue;
      }
      let j = i;
      while (j < valid && snap[j] !== t.known[j]) j++;
      sys.pwrite(t.fileFd, snap, i, j - i, t.fileOffset + i);
      snap.copy(t.known, i, i, j);
      i = j;
    }
  }

  /**
   * Bytes the FILE changed since the last sync into the copy (past EOF reads
   * as zeros). Only those: a byte the guest stored after the push (a vCPU
   * runs while we sync) differs from `known` in the copy, not in the file,
   * and must survive until the next push.
   */
  private pull(t: TailPage): void {
    const s = this.scratch;
    const n = sys.pread(t.fileFd, s, 0, PAGE, t.fileOffset);
    s.fill(0, Math.max(0, n));
    if (s.equals(t.known)) return;
    for (let i = 0; i < PAGE; i++) {
      if (s[i] !== t.known[i]) {
        t.view[i] = s[i]!;
        t.known[i] = s[i]!;
      }
    }
  }
}

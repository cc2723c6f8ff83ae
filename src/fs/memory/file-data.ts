// Layer: fs (memory backend). Sparse file contents kept in fixed-size chunks;
// pure Buffer code, imports only fuse/errors. Memory is held in 64 KiB chunks
// (few Map entries, big copies on the hot path), but allocation is tracked per
// 4 KiB page inside each chunk, so st_blocks, SEEK_DATA/SEEK_HOLE and punched
// holes have the granularity of a 4 KiB-block file system such as ext4.
// A 1 GiB file that is mostly hole costs almost nothing; holes read as zeros.
//
// Like ext4, a page has three states: hole, unwritten (allocated by fallocate
// or ZERO_RANGE, counted in st_blocks, but a hole to SEEK_DATA/SEEK_HOLE) and
// data (written). The model test compares SEEK_DATA/SEEK_HOLE with ext4.
//
// Invariants:
// - every byte of an unallocated page, and every byte at or beyond `size`, is
//   zero in the chunk buffer (shrinking zeroes the boundary tail), so a later
//   extension or page allocation exposes zeros, as POSIX requires;
// - a chunk exists exactly when at least one of its pages is allocated.
import { constants } from 'node:os';
import { FsError } from '../../fuse/errors.ts';
import { CHUNK_SIZE, type ChunkStore } from './chunk-store.ts';

const E = constants.errno;

export { CHUNK_SIZE };
export const PAGE_SIZE = 4096;
const PAGES_PER_CHUNK = CHUNK_SIZE / PAGE_SIZE; // 16: a chunk's page mask fits in an int
const FULL_MASK = (1 << PAGES_PER_CHUNK) - 1;

/** Largest size/offset we accept: offsets are JS numbers, exact below 2^53. */
export const MAX_FILE_SIZE = Number.MAX_SAFE_INTEGER;

class Chunk {
  /** Bit i set: page i (bytes [i*4096, (i+1)*4096) of the chunk) is allocated. */
  mask = 0;
  /** Bit i set: page i holds written data (a subset of mask). */
  data = 0;
  constructor(readonly buf: Buffer) {}
}

/** Bits of the pages touched by byte range [start, end) of a chunk (end > start). */
function touchedPages(start: number, end: number): number {
  const first = Math.floor(start / PAGE_SIZE);
  const last = Math.floor((end - 1) / PAGE_SIZE);
  return ((1 << (last + 1)) - 1) & ~((1 << first) - 1);
}

/** Bits of the pages wholly inside byte range [start, end) of a chunk (0 if none). */
function coveredPages(start: number, end: number): number {
  const first = Math.ceil(start / PAGE_SIZE);
  const past = Math.floor(end / PAGE_SIZE);
  if (past <= first) return 0;
  return ((1 << past) - 1) & ~((1 << first) - 1);
}

function popcount16(x: number): number {
  x = x - ((x >> 1) & 0x5555);
  x = (x & 0x3333) + ((x >> 2) & 0x3333);
  x = (x + (x >> 4)) & 0x0f0f;
  return (x + (x >> 8)) & 0x1f;
}

export class FileData {
  size = 0;
  /** Chunk index -> chunk. */
  private readonly chunks = new Map<number, Chunk>();
  /** Allocated pages over all chunks (for st_blocks). */
  private pages = 0;

  constructor(private readonly store: ChunkStore) {}

  /** Allocated 512-byte blocks, as st_blocks counts them. */
  get blocks(): number {
    return this.pages * (PAGE_SIZE / 512);
  }

  /** Chunks holding memory (each CHUNK_SIZE bytes). */
  get chunkCount(): number {
    return this.chunks.size;
  }

  /** Copies up to `length` bytes at `offset` into dest[destOffset...]; returns the count (short at EOF). */
  read(offset: number, length: number, dest: Buffer, destOffset = 0): number {
    if (offset >= this.size || length <= 0) return 0;
    const end = Math.min(this.size, offset + length);
    let pos = offset;
    while (pos < end) {
      const idx = Math.floor(pos / CHUNK_SIZE);
      const inChunk = pos - idx * CHUNK_SIZE;
      const n = Math.min(CHUNK_SIZE - inChunk, end - pos);
      const at = destOffset + (pos - offset);
      const chunk = this.chunks.get(idx);
      if (chunk) chunk.buf.copy(dest, at, inChunk, inChunk + n);
      else dest.fill(0, at, at + n);
      pos += n;
    }
    return end - offset;
  }

  /**
   * Writes data[dataOffset, dataOffset+length) at `offset`. Returns the count
   * written: short only if space ran out part-way (ENOSPC if nothing fit).
   */
  write(offset: number, data: Buffer, dataOffset = 0, length = data.length - dataOffset): number {
    if (length <= 0) return 0;
    if (offset + length > MAX_FILE_SIZE) throw new FsError(E.EFBIG);
    const end = offset + length;
    let pos = offset;
    while (pos < end) {
      const idx = Math.floor(pos / CHUNK_SIZE);
      const inChunk = pos - idx * CHUNK_SIZE;
      const n = Math.min(CHUNK_SIZE - inChunk, end - pos);
      let chunk = this.chunks.get(idx);
      if (!chunk) {
        try {
          chunk = this.newChunk(idx);
        } catch (err) {
          if (pos === offset) throw err;
          break; // a short write, like a full disk
        }
      }
      const src = dataOffset + (pos - offset);
      data.copy(chunk.buf, inChunk, src, src + n);
      const touched = touchedPages(inChunk, inChunk + n);
      this.setMask(chunk, chunk.mask | touched);
      chunk.data |= touched;
      pos += n;
    }
    if (pos > this.size) this.size = pos;
    return pos - offset;
  }

  /** Sets the size; shrinking frees pages wholly past the end and zeroes the boundary tail. */
  truncate(newSize: number): void {
    if (newSize > MAX_FILE_SIZE) throw new FsError(E.EFBIG);
    if (newSize < this.size) {
      // Also frees space kept past EOF by fallocate KEEP_SIZE, as ext4 does.
      const boundary = Math.floor(newSize / CHUNK_SIZE);
      for (const idx of [...this.chunks.keys()]) {
        if (idx > boundary) this.dropChunk(idx);
      }
      const chunk = this.chunks.get(boundary);
      if (chunk) {
        const tail = newSize - boundary * CHUNK_SIZE;
        chunk.buf.fill(0, tail);
        const gone = coveredPages(Math.ceil(tail / PAGE_SIZE) * PAGE_SIZE, CHUNK_SIZE);
        this.setMask(chunk, chunk.mask & ~gone);
        chunk.data &= ~gone;
        if (chunk.mask === 0) this.dropChunk(boundary);
      }
    }
    this.size = newSize;
  }

  /**
   * Makes [offset, offset+length) allocated (fallocate mode 0 / KEEP_SIZE):
   * all-or-nothing on space. Does not change the size.
   */
  allocate(offset: number, length: number): void {
    if (length <= 0) return;
    if (offset + length > MAX_FILE_SIZE) throw new FsError(E.EFBIG);
    const end = offset + length;
    const first = Math.floor(offset / CHUNK_SIZE);
    const last = Math.floor((end - 1) / CHUNK_SIZE);
    const missing = last - first + 1 - this.chunksIn(first, last).length;
    if (missing > 0) this.store.reserve(missing);
    for (let idx = first; idx <= last; idx++) {
      let chunk = this.chunks.get(idx);
      if (!chunk) {
        chunk = new Chunk(this.store.take());
        this.chunks.set(idx, chunk);
      }
      const start = idx * CHUNK_SIZE;
      const s = Math.max(offset, start) - start;
      const e = Math.min(end, start + CHUNK_SIZE) - start;
      this.setMask(chunk, chunk.mask | touchedPages(s, e));
    }
  }

  /**
   * Zeroes [offset, offset+length). With `punch`, pages the range covers wholly
   * are freed (they become hole); partly covered pages are zero-filled and keep
   * their state. Without it (ZERO_RANGE, followed by allocate) whole pages
   * become unwritten and partly covered ones written data, as ext4 does.
   */
  zero(offset: number, length: number, punch: boolean): void {
    if (length <= 0) return;
    const end = offset + length;
    const first = Math.floor(offset / CHUNK_SIZE);
    const last = Math.floor((end - 1) / CHUNK_SIZE);
    for (const idx of this.chunksIn(first, last)) {
      const chunk = this.chunks.get(idx)!;
      const start = idx * CHUNK_SIZE;
      const s = Math.max(offset, start) - start;
      const e = Math.min(end, start + CHUNK_SIZE) - start;
      chunk.buf.fill(0, s, e);
      const covered = coveredPages(s, e);
      if (punch) {
        this.setMask(chunk, chunk.mask & ~covered);
        chunk.data &= ~covered;
        if (chunk.mask === 0) this.dropChunk(idx);
      } else {
        chunk.data = (chunk.data & ~covered) | (touchedPages(s, e) & ~covered);
      }
    }
  }

  /** lseek SEEK_DATA: the first data offset >= offset, or ENXIO. */
  seekData(offset: number): number {
    if (offset >= this.size) throw new FsError(E.ENXIO);
    const fromPage = Math.floor(offset / PAGE_SIZE);
    const fromChunk = Math.floor(fromPage / PAGES_PER_CHUNK);
    let best = Infinity;
    for (const [idx, chunk] of this.chunks) {
      if (idx < fromChunk || idx * PAGES_PER_CHUNK >= best) continue;
      let mask = chunk.data;
      if (idx === fromChunk) mask &= ~((1 << (fromPage - idx * PAGES_PER_CHUNK)) - 1);
      if (mask === 0) continue;
      const page = idx * PAGES_PER_CHUNK + (31 - Math.clz32(mask & -mask));
      if (page < best) best = page;
    }
    if (best === Infinity) throw new FsError(E.ENXIO);
    const at = Math.max(offset, best * PAGE_SIZE);
    if (at >= this.size) throw new FsError(E.ENXIO);
    return at;
  }

  /** lseek SEEK_HOLE: the first hole offset >= offset (EOF counts as a hole), or ENXIO. */
  seekHole(offset: number): number {
    if (offset >= this.size) throw new FsError(E.ENXIO);
    let page = Math.floor(offset / PAGE_SIZE);
    for (;;) {
      if (page * PAGE_SIZE >= this.size) break;
      const idx = Math.floor(page / PAGES_PER_CHUNK);
      const chunk = this.chunks.get(idx);
      if (!chunk) break;
      const bit = page - idx * PAGES_PER_CHUNK;
      if (!(chunk.data & (1 << bit))) break;
      // skip the rest of a fully written chunk in one step
      if (bit === 0 && chunk.data === FULL_MASK) page += PAGES_PER_CHUNK;
      else page++;
    }
    return Math.min(Math.max(offset, page * PAGE_SIZE), this.size);
  }

  /** True when [offset, offset+length) holds no written page (unwritten pages read as zeros too). */
  isHole(offset: number, length: number): boolean {
    if (length <= 0) return true;
    const end = offset + length;
    for (const idx of this.chunksIn(Math.floor(offset / CHUNK_SIZE), Math.floor((end - 1) / CHUNK_SIZE))) {
      const start = idx * CHUNK_SIZE;
      const s = Math.max(offset, start) - start;
      const e = Math.min(end, start + CHUNK_SIZE) - start;
      if (this.chunks.get(idx)!.data & touchedPages(s, e)) return false;
    }
    return true;
  }

  /** Frees every chunk (the file is gone). */
  free(): void {
    for (const chunk of this.chunks.values()) this.store.give(chunk.buf);
    this.chunks.clear();
    this.pages = 0;
  }

  private newChunk(idx: number): Chunk {
    this.store.reserve(1);
    const chunk = new Chunk(this.store.take());
    this.chunks.set(idx, chunk);
    return chunk;
  }

  private setMask(chunk: Chunk, mask: number): void {
    if (mask === chunk.mask) return;
    this.pages += popcount16(mask) - popcount16(chunk.mask);
    chunk.mask = mask;
  }

  private dropChunk(idx: number): void {
    const chunk = this.chunks.get(idx);
    if (!chunk) return;
    this.pages -= popcount16(chunk.mask);
    this.chunks.delete(idx);
    this.store.give(chunk.buf);
  }

  /** Indexes of existing chunks in [first, last], walking whichever is smaller: the range or the map. */
  private chunksIn(first: number, last: number): number[] {
    const out: number[] = [];
    if (last - first + 1 <= this.chunks.size) {
      for (let idx = first; idx <= last; idx++) if (this.chunks.has(idx)) out.push(idx);
    } else {
      for (const idx of this.chunks.keys()) if (idx >= first && idx <= last) out.push(idx);
      out.sort((a, b) => a - b);
    }
    return out;
  }
}

// Layer: fs (memory backend). Sparse file contents kept in fixed-size chunks;
// pure Buffer code, imports only fuse/errors. A chunk exists only where data was
// written or space allocated, so a 1 GiB file that is mostly hole costs almost
// nothing, and holes read as zeros.
//
// Invariant: every byte of an allocated chunk that lies at or beyond `size` is
// zero. Shrinking zeroes the tail of the boundary chunk, so a later extension
// (truncate up, write past EOF) exposes zeros, as POSIX requires.
import { constants } from 'node:os';
import { FsError } from '../../fuse/errors.ts';

const E = constants.errno;

export const CHUNK_SIZE = 64 * 1024;

/** Largest size/offset we accept: offsets are JS numbers, exact below 2^53. */
export const MAX_FILE_SIZE = Number.MAX_SAFE_INTEGER;

/** Where chunk memory is accounted (the file system's capacity, for ENOSPC and statfs). */
export interface SpaceAccount {
  /** Takes `bytes` from the free space or throws ENOSPC (taking nothing). */
  reserve(bytes: number): void;
  release(bytes: number): void;
}

export class FileData {
  size = 0;
  /** Chunk index -> CHUNK_SIZE bytes. */
  readonly chunks = new Map<number, Buffer>();

  constructor(private readonly space: SpaceAccount) {}

  /** Allocated 512-byte blocks, as st_blocks counts them. */
  get blocks(): number {
    return this.chunks.size * (CHUNK_SIZE / 512);
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
      if (chunk) chunk.copy(dest, at, inChunk, inChunk + n);
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
          this.space.reserve(CHUNK_SIZE);
        } catch (err) {
          if (pos === offset) throw err;
          break; // a short write, like a full disk
        }
        chunk = Buffer.alloc(CHUNK_SIZE);
        this.chunks.set(idx, chunk);
      }
      const src = dataOffset + (pos - offset);
      data.copy(chunk, inChunk, src, src + n);
      pos += n;
    }
    if (pos > this.size) this.size = pos;
    return pos - offset;
  }

  /** Sets the size; shrinking frees whole chunks past the end and zeroes the boundary tail. */
  truncate(newSize: number): void {
    if (newSize > MAX_FILE_SIZE) throw new FsError(E.EFBIG);
    if (newSize < this.size) {
      // Drop every chunk wholly at or beyond newSize (including space kept past
      // EOF by fallocate KEEP_SIZE, as ext4 frees it on truncate).
      const firstDropped = Math.ceil(newSize / CHUNK_SIZE);
      for (const idx of [...this.chunks.keys()]) {
        if (idx >= firstDropped) this.dropChunk(idx);
      }
      const tail = newSize % CHUNK_SIZE;
      if (tail > 0) this.chunks.get(Math.floor(newSize / CHUNK_SIZE))?.fill(0, tail);
    }
    this.size = newSize;
  }

  /**
   * Makes [offset, offset+length) allocated (fallocate mode 0 / KEEP_SIZE):
   * all-or-nothing on space. Does not change the size.
   */
  allocate(offset: number, length: number): void {
    if (offset + length > MAX_FILE_SIZE) throw new FsError(E.EFBIG);
    const first = Math.floor(offset / CHUNK_SIZE);
    const last = Math.floor((offset + length - 1) / CHUNK_SIZE);
    const missing = last - first + 1 - this.countChunks(first, last);
    if (missing <= 0) return;
    this.space.reserve(missing * CHUNK_SIZE);
    for (let idx = first; idx <= last; idx++) {
      if (!this.chunks.has(idx)) this.chunks.set(idx, Buffer.alloc(CHUNK_SIZE));
    }
  }

  /**
   * Zeroes [offset, offset+length). With `punch`, chunks the range covers
   * wholly are freed (they become hole); partial chunks are zero-filled.
   */
  zero(offset: number, length: number, punch: boolean): void {
    if (length <= 0) return;
    const end = offset + length;
    const first = Math.floor(offset / CHUNK_SIZE);
    const last = Math.floor((end - 1) / CHUNK_SIZE);
    for (const idx of this.chunksIn(first, last)) {
      const start = idx * CHUNK_SIZE;
      const s = Math.max(offset, start);
      const e = Math.min(end, start + CHUNK_SIZE);
      if (punch && s === start && e === start + CHUNK_SIZE) this.dropChunk(idx);
      else this.chunks.get(idx)!.fill(0, s - start, e - start);
    }
  }

  /** lseek SEEK_DATA: the first data offset >= offset, or ENXIO. Chunk granularity. */
  seekData(offset: number): number {
    if (offset >= this.size) throw new FsError(E.ENXIO);
    const from = Math.floor(offset / CHUNK_SIZE);
    let best = Infinity;
    for (const idx of this.chunks.keys()) {
      if (idx >= from && idx < best) best = idx;
    }
    if (best === Infinity) throw new FsError(E.ENXIO);
    const at = Math.max(offset, best * CHUNK_SIZE);
    if (at >= this.size) throw new FsError(E.ENXIO);
    return at;
  }

  /** lseek SEEK_HOLE: the first hole offset >= offset (EOF counts as a hole), or ENXIO. */
  seekHole(offset: number): number {
    if (offset >= this.size) throw new FsError(E.ENXIO);
    let idx = Math.floor(offset / CHUNK_SIZE);
    while (this.chunks.has(idx) && idx * CHUNK_SIZE < this.size) idx++;
    return Math.min(Math.max(offset, idx * CHUNK_SIZE), this.size);
  }

  /** True when [offset, offset+length) holds no allocated chunk. */
  isHole(offset: number, length: number): boolean {
    if (length <= 0) return true;
    return this.countChunks(Math.floor(offset / CHUNK_SIZE), Math.floor((offset + length - 1) / CHUNK_SIZE)) === 0;
  }

  /** Frees every chunk (the file is gone). */
  free(): void {
    this.space.release(this.chunks.size * CHUNK_SIZE);
    this.chunks.clear();
  }

  private dropChunk(idx: number): void {
    if (this.chunks.delete(idx)) this.space.release(CHUNK_SIZE);
  }

  /** Indexes of allocated chunks in [first, last], walking whichever is smaller: the range or the map. */
  private chunksIn(first: number, last: number): number[] {
    const out: number[] = [];
    if (last - first + 1 <= this.chunks.size) {
      for (let idx = first; idx <= last; idx++) if (this.chunks.has(idx)) out.push(idx);
    } else {
      for (const idx of this.chunks.keys()) if (idx >= first && idx <= last) out.push(idx);
    }
    return out;
  }

  private countChunks(first: number, last: number): number {
    let n = 0;
    if (last - first + 1 <= this.chunks.size) {
      for (let idx = first; idx <= last; idx++) if (this.chunks.has(idx)) n++;
    } else {
      for (const idx of this.chunks.keys()) if (idx >= first && idx <= last) n++;
    }
    return n;
  }
}

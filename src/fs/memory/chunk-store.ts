// Layer: fs (memory backend). Where file chunks come from: 64 KiB zeroed
// Buffers carved out of 2 MiB slabs, with the capacity limit (ENOSPC) and the
// byte count statfs reports. Imports only fuse/errors.
//
// Why slabs: every ArrayBuffer is external memory to V8, and allocating many
// 64 KiB ones makes it collect garbage over and over (measured ~150 µs per
// chunk, so first writes crawled at ~250 MiB/s); one 2 MiB slab per 32 chunks
// is ~10x cheaper. A slab whose chunks are all free again is dropped, so
// deleting files gives memory back rather than pinning it in a free list.
import { constants } from 'node:os';
import { FsError } from '../../fuse/errors.ts';

const E = constants.errno;

export const CHUNK_SIZE = 64 * 1024;
const SLAB_SIZE = 2 * 1024 * 1024;
const CHUNKS_PER_SLAB = SLAB_SIZE / CHUNK_SIZE;

interface Slab {
  /** Free chunks of this slab (all zero-filled). */
  free: Buffer[];
  /** Chunks of this slab handed out and not yet given back. */
  used: number;
}

export class ChunkStore {
  private readonly slabs = new Map<ArrayBufferLike, Slab>();
  /** Slabs with at least one free chunk. */
  private readonly partial = new Set<Slab>();
  private usedChunks = 0;
  private reservedChunks = 0;

  constructor(readonly capacityBytes: number) {}

  /** Bytes of chunks in use or reserved (statfs). */
  get usedBytes(): number {
    return (this.usedChunks + this.reservedChunks) * CHUNK_SIZE;
  }

  /** Promises `count` chunks to the caller's next take()s, or throws ENOSPC promising nothing. */
  reserve(count: number): void {
    if ((this.usedChunks + this.reservedChunks + count) * CHUNK_SIZE > this.capacityBytes) throw new FsError(E.ENOSPC);
    this.reservedChunks += count;
  }

  /** A zero-filled CHUNK_SIZE Buffer; needs a prior reserve(). */
  take(): Buffer {
    if (this.reservedChunks <= 0) throw new Error('ChunkStore.take without reserve');
    this.reservedChunks--;
    this.usedChunks++;
    let slab: Slab | undefined = this.partial.values().next().value;
    if (!slab) {
      const mem = Buffer.alloc(SLAB_SIZE);
      slab = { free: [], used: 0 };
      for (let i = CHUNKS_PER_SLAB - 1; i >= 0; i--) slab.free.push(mem.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE));
      this.slabs.set(mem.buffer, slab);
      this.partial.add(slab);
    }
    const buf = slab.free.pop()!;
    slab.used++;
    if (slab.free.length === 0) this.partial.delete(slab);
    return buf;
  }

  /** Gives a chunk back (its contents are wiped); a wholly free slab is released. */
  give(buf: Buffer): void {
    const slab = this.slabs.get(buf.buffer);
    if (!slab) throw new Error('ChunkStore.give of a foreign buffer');
    this.usedChunks--;
    slab.used--;
    if (slab.used === 0) {
      this.slabs.delete(buf.buffer);
      this.partial.delete(slab);
      return;
    }
    buf.fill(0);
    slab.free.push(buf);
    this.partial.add(slab);
  }
}

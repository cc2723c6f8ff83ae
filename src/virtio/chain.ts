// Layer: virtio (pure). Descriptor chains: walk, validate, gather, scatter.
// Imports ./memory.ts, ./ring.ts, ./errors.ts only.
//
// A Chain is a reusable record of one request's buffers as (region, offset,
// length) segments: readable ones first, then writable ones. Walking checks
// every rule in virtio 1.2 2.7.5 / 2.7.5.3 a hostile driver could break; any
// violation throws QueueError and the caller returns the chain unused.
import { QueueError } from './errors.ts';
import type { GuestMemory } from './memory.ts';
import { DESC_SIZE, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from './ring.ts';

/** Largest number of buffers one chain may name (direct + indirect). */
export const MAX_CHAIN_SEGMENTS = 65536;
const TWO_32 = 0x1_0000_0000;
/**
 * Up to this many bytes a byte loop beats Buffer#copy, whose argument
 * checks cost more than moving a request header or a reply header.
 */
const SMALL_COPY = 128;
/** Descriptor addresses at or above 2^53 are outside any memory we map. */
const MAX_HI = 0x20_0000;

export class Chain {
  /** Head descriptor index (the id given back in the used ring). */
  head = 0;
  /** Segments: readable [0, readable), writable [readable, count). */
  count = 0;
  readable = 0;
  readableBytes = 0;
  writableBytes = 0;
  segRegion: Int32Array;
  segOffset: Float64Array;
  segLen: Uint32Array;

  constructor(capacity = 256) {
    this.segRegion = new Int32Array(capacity);
    this.segOffset = new Float64Array(capacity);
    this.segLen = new Uint32Array(capacity);
  }

  reset(head: number): void {
    this.head = head;
    this.count = 0;
    this.readable = 0;
    this.readableBytes = 0;
    this.writableBytes = 0;
  }

  private grow(): void {
    const cap = this.segLen.length * 2;
    if (cap > MAX_CHAIN_SEGMENTS) throw new QueueError('CHAIN_TOO_LONG', `more than ${MAX_CHAIN_SEGMENTS} buffers in one chain`);
    const r = new Int32Array(cap); r.set(this.segRegion); this.segRegion = r;
    const o = new Float64Array(cap); o.set(this.segOffset); this.segOffset = o;
    const l = new Uint32Array(cap); l.set(this.segLen); this.segLen = l;
  }

  /** Append one buffer after checking it against memory and the direction rule. */
  push(mem: GuestMemory, lo: number, hi: number, len: number, writable: boolean): void {
    if (!writable && this.count > this.readable) {
      throw new QueueError('BAD_DIRECTION', `device-readable descriptor after a device-writable one (chain head ${this.head})`);
    }
    if (len === 0) return; // an empty buffer names no memory; nothing to check or copy
    if (hi >= MAX_HI) throw new QueueError('ADDRESS_OUT_OF_RANGE', `buffer address 0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')} is outside guest memory`);
    const addr = hi * TWO_32 + lo;
    if (writable) {
      this.writableBytes += len;
      if (this.writableBytes >= TWO_32) throw new QueueError('CHAIN_TOO_LONG', 'writable part longer than 2^32 - 1 bytes');
    } else {
      this.readableBytes += len;
      if (this.readableBytes >= TWO_32) throw new QueueError('CHAIN_TOO_LONG', 'readable part longer than 2^32 - 1 bytes');
    }
    const ri = mem.findGpa(addr, len);
    if (ri >= 0) {
      this.add(ri, addr - mem.regions[ri].gpa, len, writable);
    } else {
      // Slow path: a buffer may run on from one region into the next when
      // they are contiguous in guest-physical space (big RAM is cut into
      // several views). Any byte outside every region refuses the chain.
      let a = addr;
      let rem = len;
      while (rem > 0) {
        const r = mem.findGpa(a, 1);
        if (r < 0) throw new QueueError('ADDRESS_OUT_OF_RANGE', `buffer 0x${addr.toString(16)}+${len} is not inside guest memory`);
        const reg = mem.regions[r];
        const piece = Math.min(rem, reg.gpa + reg.size - a);
        this.add(r, a - reg.gpa, piece, writable);
        a += piece;
        rem -= piece;
      }
    }
    if (!writable) this.readable = this.count;
  }

  private add(region: number, offset: number, len: number, writable: boolean): void {
    // A buffer that continues the previous one in the same region and the
    // same direction extends it: a guest's physically contiguous pages
    // become one piece, which writableView can hand out whole and
    // gather/scatter copy in one go. (A readable buffer only ever follows
    // readable ones, push refuses otherwise; a writable one merges only into
    // a writable segment, index >= readable.) Totals stay < 2^32 (checked in
    // push), so the Uint32 length cannot wrap.
    const last = this.count - 1;
    if (last >= 0 && (!writable || last >= this.readable)
      && this.segRegion[last] === region && this.segOffset[last] + this.segLen[last] === offset) {
      this.segLen[last] += len;
      return;
    }
    if (this.count === this.segLen.length) this.grow();
    const i = this.count++;
    this.segRegion[i] = region;
    this.segOffset[i] = offset;
    this.segLen[i] = len;
  }

  /** Copy the readable part into dst (from its start). Returns bytes copied (stops when dst is full). */
  gather(mem: GuestMemory, dst: Uint8Array): number {
    let n = 0;
    const rs = mem.regions;
    for (let i = 0; i < this.readable && n < dst.length; i++) {
      const len = Math.min(this.segLen[i], dst.length - n);
      const off = this.segOffset[i];
      const src = rs[this.segRegion[i]].bytes;
      if (len <= SMALL_COPY) {
        for (let k = 0; k < len; k++) dst[n + k] = src[off + k];
      } else {
        // Buffer#copy copies without making view objects: no allocation per segment.
        src.copy(dst, n, off, off + len);
      }
      n += len;
    }
    return n;
  }

  /**
   * A view of the writable part's bytes [at, at + len) when they lie in one
   * segment (one mapped region), else null (the caller copies instead). The
   * view aliases guest memory: use it only while `mem` is the current table
   * (within one request, never across a memory-table change).
   */
  writableView(mem: GuestMemory, at: number, len: number): Buffer | null {
    return this.viewIn(mem, this.readable, this.count, at, len);
  }

  /**
   * A view of the readable part's bytes [at, at + len) when they lie in one
   * segment, else null. Aliases guest memory like writableView: the driver
   * may still change those bytes, so use it only for payload whose content
   * the device does not validate (WRITE data), within one request.
   */
  readableView(mem: GuestMemory, at: number, len: number): Buffer | null {
    return this.viewIn(mem, 0, this.readable, at, len);
  }

  /** Bytes [at, at + len) of segments [first, end) as one view when one segment holds them all. */
  private viewIn(mem: GuestMemory, first: number, end: number, at: number, len: number): Buffer | null {
    let skip = at;
    for (let i = first; i < end; i++) {
      const l = this.segLen[i];
      if (skip < l) {
        if (l - skip < len) return null;
        const off = this.segOffset[i] + skip;
        return mem.regions[this.segRegion[i]].bytes.subarray(off, off + len);
      }
      skip -= l;
    }
    return null;
  }

  /** Copy src[0, len) into the writable part. Returns bytes written (short when the chain is). */
  scatter(mem: GuestMemory, src: Buffer, len: number): number {
    let n = 0;
    const rs = mem.regions;
    for (let i = this.readable; i < this.count && n < len; i++) {
      const l = Math.min(this.segLen[i], len - n);
      const dst = rs[this.segRegion[i]].bytes;
      if (l <= SMALL_COPY) {
        const at = this.segOffset[i] - n;
        for (let k = n; k < n + l; k++) dst[at + k] = src[k];
      } else {
        src.copy(dst, this.segOffset[i], n, n + l);
      }
      n += l;
    }
    return n;
  }
}

/**
 * Walk the chain starting at `head` of the descriptor table at region `tr`,
 * offset `tOff`, `size` entries, into `chain`. `indirectOk` is the negotiated
 * VIRTIO_RING_F_INDIRECT_DESC. Throws QueueError on any violation.
 */
export function walkChain(
  mem: GuestMemory,
  tr: number,
  tOff: number,
  size: number,
  head: number,
  indirectOk: boolean,
  chain: Chain,
): void {
  chain.reset(head);
  let view = mem.regions[tr].view;
  let base = tOff;
  let tableSize = size;
  let idx = head;
  // ttl bounds the walk: a chain can name each descriptor of its table once;
  // more steps than that means the driver built a loop.
  let ttl = size;
  let inIndirect = false;
  for (;;) {
    if (idx >= tableSize) throw new QueueError('DESC_OUT_OF_RANGE', `descriptor ${idx} past a table of ${tableSize}`);
    if (ttl-- === 0) throw new QueueError('CHAIN_LOOP', `chain from head ${head} is longer than its table (${tableSize}): a loop`);
    const d = base + idx * DESC_SIZE;
    const lo = view.getUint32(d, true);
    const hi = view.getUint32(d + 4, true);
    const len = view.getUint32(d + 8, true);
    const flags = view.getUint16(d + 12, true);
    const next = view.getUint16(d + 14, true);
    if (flags & VIRTQ_DESC_F_INDIRECT) {
      if (!indirectOk) throw new QueueError('BAD_INDIRECT', 'INDIRECT descriptor without VIRTIO_RING_F_INDIRECT_DESC');
      if (inIndirect) throw new QueueError('NESTED_INDIRECT', 'indirect table inside an indirect table');
      if (flags & VIRTQ_DESC_F_NEXT) throw new QueueError('BAD_INDIRECT', 'INDIRECT together with NEXT');
      if (len === 0 || len % DESC_SIZE !== 0) throw new QueueError('BAD_INDIRECT', `indirect table of ${len} bytes is not a whole number of descriptors`);
      if (hi >= MAX_HI) throw new QueueError('ADDRESS_OUT_OF_RANGE', 'indirect table outside guest memory');
      const addr = hi * TWO_32 + lo;
      const ri = mem.findGpa(addr, len);
      if (ri < 0) throw new QueueError('ADDRESS_OUT_OF_RANGE', `indirect table 0x${addr.toString(16)}+${len} is not inside guest memory`);
      const r = mem.regions[ri];
      view = r.view;
      base = addr - r.gpa;
      tableSize = len / DESC_SIZE;
      ttl = tableSize;
      idx = 0;
      inIndirect = true;
      // The table's own descriptors are walked from entry 0 (virtio 1.2 2.7.5.3.2).
      continue;
    }
    chain.push(mem, lo, hi, len, (flags & VIRTQ_DESC_F_WRITE) !== 0);
    if (!(flags & VIRTQ_DESC_F_NEXT)) return;
    idx = next;
  }
}

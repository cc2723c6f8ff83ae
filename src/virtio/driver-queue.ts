// Layer: virtio (pure). The DRIVER side of one split virtqueue (virtio 1.2
// 2.7): the part a guest kernel plays. Imports ./memory.ts, ./ring.ts,
// ./errors.ts only. Like the device side it never stores memory: every call
// takes the GuestMemory to use (STYLE 7 rule 4).
//
// Memory ordering. The device runs in another process on another CPU. On
// x86-64 (TSO) stores become visible in program order and a later load may
// pass an earlier store; V8 may reorder plain typed-array accesses among
// themselves but never across an Atomics op. Ring indices go through Atomics
// on the region's Uint16Array (a seq-cst store is an XCHG: a full fence), so
// descriptors and avail slots are visible before the idx that publishes them,
// and the notify check after a publish cannot read a stale event index.
import type { GuestMemory, Region } from './memory.ts';
import {
  DESC_SIZE,
  MAX_QUEUE_SIZE,
  USED_ELEM_SIZE,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_USED_F_NO_NOTIFY,
  availSize,
  usedSize,
  vringNeedEvent,
} from './ring.ts';

/** Guest-physical addresses of the three ring parts. */
export interface DriverRingLayout {
  desc: number;
  avail: number;
  used: number;
  /** Bytes from `desc` to the end of the used ring (all three are laid out in one block). */
  bytes: number;
}

/** One buffer of a chain: guest-physical address, length, device-writable or not. */
export interface Segment {
  addr: number;
  len: number;
  write: boolean;
}

/** A used entry: the head of the chain the device returned and the bytes it wrote. */
export interface UsedEntry {
  head: number;
  len: number;
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;

export type DriverQueueErrorCode =
  | 'BAD_SIZE' // queue size not a power of two within the spec's limit
  | 'BAD_RING' // ring parts not inside guest memory
  | 'BAD_CHAIN' // a chain we were asked to add is malformed (our own bug or a caller's)
  | 'BAD_USED_IDX' // the device moved used idx further than the queue holds (fatal)
  | 'BAD_USED_ID'; // the device returned a head that is not outstanding (fatal)

/** A driver-side queue violation. `fatal`: the device broke the ring; stop using the queue. */
export class DriverQueueError extends Error {
  override readonly name = 'DriverQueueError';
  readonly fatal: boolean;
  constructor(readonly code: DriverQueueErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.fatal = code === 'BAD_USED_IDX' || code === 'BAD_USED_ID';
  }
}

/** Lay the rings of a `size`-entry queue out from `base` (4 KiB aligned parts, as legacy virtio did). */
export function layoutRing(base: number, size: number): DriverRingLayout {
  const desc = base;
  const avail = align(desc + DESC_SIZE * size, 4096);
  const used = align(avail + availSize(size) + 2, 4096);
  const end = align(used + usedSize(size) + 2, 4096);
  return { desc, avail, used, bytes: end - base };
}

export class DriverQueue {
  /** Free descriptor indices (a stack). */
  private readonly free: number[] = [];
  /** Chain length per head, so reaping frees the right descriptors. */
  private readonly chainLen: Uint16Array;
  /** Descriptors of each chain, by head (we build chains from the free stack, not in index order). */
  private readonly chains: Int32Array[];
  /** Our avail idx (free-running mod 2^16). */
  private availIdx = 0;
  /** avail idx at the last kick decision. */
  private kickedIdx = 0;
  /** Next used ring slot we will read. */
  private lastUsedIdx = 0;
  private readonly inFlight: Uint8Array;

  constructor(readonly size: number, readonly layout: DriverRingLayout, readonly eventIdx: boolean) {
    if (!Number.isInteger(size) || size < 1 || size > MAX_QUEUE_SIZE || (size & (size - 1)) !== 0) {
      throw new DriverQueueError('BAD_SIZE', `queue size ${size} is not a power of two in 1..${MAX_QUEUE_SIZE}`);
    }
    for (let i = size - 1; i >= 0; i--) this.free.push(i);
    this.chainLen = new Uint16Array(size);
    this.chains = Array.from({ length: size }, () => new Int32Array(0));
    this.inFlight = new Uint8Array(size);
  }

  /** Descriptors not in use. */
  get freeCount(): number {
    return this.free.length;
  }

  /** Chains added and not yet reaped. */
  get pending(): number {
    return this.size - this.free.length;
  }

  private region(mem: GuestMemory, gpa: number, len: number): [Region, number] {
    const i = mem.findGpa(gpa, len);
    if (i < 0) throw new DriverQueueError('BAD_RING', `ring address 0x${gpa.toString(16)}+${len} is outside guest memory`);
    const r = mem.regions[i]!;
    return [r, gpa - r.gpa];
  }

  /** Zero the rings (a fresh queue: idx 0, no flags). */
  reset(mem: GuestMemory): void {
    const [r, off] = this.region(mem, this.layout.desc, this.layout.bytes);
    r.bytes.fill(0, off, off + this.layout.bytes);
    this.availIdx = this.kickedIdx = this.lastUsedIdx = 0;
  }

  /**
   * Write a chain into the descriptor table and its head into the avail ring
   * (not yet published: call publish()). Readable segments must come before
   * writable ones (virtio 2.7.4). Returns the head, or -1 when there are not
   * enough free descriptors.
   */
  add(mem: GuestMemory, segs: readonly Segment[]): number {
    const n = segs.length;
    if (n === 0) throw new DriverQueueError('BAD_CHAIN', 'a chain needs at least one buffer');
    if (n > this.free.length) return -1;
    let sawWrite = false;
    for (const s of segs) {
      if (s.write) sawWrite = true;
      else if (sawWrite) throw new DriverQueueError('BAD_CHAIN', 'a readable buffer after a writable one');
      if (mem.findGpa(s.addr, s.len) < 0) throw new DriverQueueError('BAD_CHAIN', `buffer 0x${s.addr.toString(16)}+${s.len} is outside guest memory`);
    }
    const ids = new Int32Array(n);
    for (let i = 0; i < n; i++) ids[i] = this.free.pop()!;
    const [dr, doff] = this.region(mem, this.layout.desc, DESC_SIZE * this.size);
    const v = dr.view;
    for (let i = 0; i < n; i++) {
      const s = segs[i]!;
      const at = doff + DESC_SIZE * ids[i]!;
      v.setUint32(at, s.addr >>> 0, true);
      v.setUint32(at + 4, Math.floor(s.addr / 0x1_0000_0000), true);
      v.setUint32(at + 8, s.len, true);
      v.setUint16(at + 12, (s.write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0), true);
      v.setUint16(at + 14, i + 1 < n ? ids[i + 1]! : 0, true);
    }
    const head = ids[0]!;
    this.chains[head] = ids;
    this.chainLen[head] = n;
    this.inFlight[head] = 1;
    const [ar, aoff] = this.region(mem, this.layout.avail, availSize(this.size) + 2);
    ar.view.setUint16(aoff + 4 + 2 * (this.availIdx & (this.size - 1)), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    return head;
  }

  /**
   * Publish every chain added since the last publish and say whether the
   * device must be kicked (EVENT_IDX: avail_event passed; else no NO_NOTIFY).
   */
  publish(mem: GuestMemory): boolean {
    const [ar, aoff] = this.region(mem, this.layout.avail, availSize(this.size) + 2);
    // Seq-cst store: descriptor and avail-slot writes above are visible first,
    // and it is a full fence, so the event-index load below sees the device's
    // latest value (the device re-checks avail idx after arming it).
    Atomics.store(ar.u16, (aoff + 2) >> 1, this.availIdx);
    const old = this.kickedIdx;
    this.kickedIdx = this.availIdx;
    if (old === this.availIdx) return false;
    const [ur, uoff] = this.region(mem, this.layout.used, usedSize(this.size) + 2);
    if (this.eventIdx) {
      const availEvent = Atomics.load(ur.u16, (uoff + 4 + USED_ELEM_SIZE * this.size) >> 1);
      return vringNeedEvent(availEvent, this.availIdx, old);
    }
    return (Atomics.load(ur.u16, uoff >> 1) & VIRTQ_USED_F_NO_NOTIFY) === 0;
  }

  /**
   * Take every used entry the device has published, free its descriptors and
   * hand it to `onUsed`. A head we never made available or a length beyond
   * the chain's writable bytes is the device's fault: DriverQueueError (the caller
   * fails the queue; nothing is freed twice).
   */
  reap(mem: GuestMemory, onUsed: (e: UsedEntry) => void): number {
    const [ur, uoff] = this.region(mem, this.layout.used, usedSize(this.size) + 2);
    let count = 0;
    for (;;) {
      // Load the used idx before the entries it covers (x86 keeps load order; Atomics stops the JIT).
      const usedIdx = Atomics.load(ur.u16, (uoff + 2) >> 1);
      if (((usedIdx - this.lastUsedIdx) & 0xffff) > this.size) {
        throw new DriverQueueError('BAD_USED_IDX', `device used idx ${usedIdx} is more than ${this.size} ahead of ${this.lastUsedIdx}`);
      }
      if (usedIdx === this.lastUsedIdx) break;
      while (this.lastUsedIdx !== usedIdx) {
        const at = uoff + 4 + USED_ELEM_SIZE * (this.lastUsedIdx & (this.size - 1));
        const id = ur.view.getUint32(at, true);
        const len = ur.view.getUint32(at + 4, true);
        this.lastUsedIdx = (this.lastUsedIdx + 1) & 0xffff;
        if (id >= this.size || this.inFlight[id] !== 1) {
          throw new DriverQueueError('BAD_USED_ID', `device returned descriptor ${id}, which is not an outstanding chain head`);
        }
        this.inFlight[id] = 0;
        const ids = this.chains[id]!;
        for (let i = ids.length - 1; i >= 0; i--) this.free.push(ids[i]!);
        this.chains[id] = new Int32Array(0);
        count++;
        onUsed({ head: id, len });
      }
    }
    return count;
  }

  /**
   * Ask for an interrupt at the next used entry (EVENT_IDX: used_event =
   * lastUsedIdx; else clear NO_INTERRUPT). Returns true when entries arrived
   * meanwhile, so the caller reaps again instead of sleeping.
   */
  armInterrupt(mem: GuestMemory): boolean {
    const [ar, aoff] = this.region(mem, this.layout.avail, availSize(this.size) + 2);
    if (this.eventIdx) Atomics.store(ar.u16, (aoff + 4 + 2 * this.size) >> 1, this.lastUsedIdx);
    else Atomics.store(ar.u16, aoff >> 1, 0);
    // The store above is a full fence: this load cannot be satisfied before it.
    const [ur, uoff] = this.region(mem, this.layout.used, usedSize(this.size) + 2);
    return Atomics.load(ur.u16, (uoff + 2) >> 1) !== this.lastUsedIdx;
  }

  /** Ask the device not to interrupt (polling). Without EVENT_IDX it is a hint only. */
  suppressInterrupt(mem: GuestMemory): void {
    if (this.eventIdx) return; // used_event left behind is enough
    const [ar, aoff] = this.region(mem, this.layout.avail, availSize(this.size) + 2);
    Atomics.store(ar.u16, aoff >> 1, VIRTQ_AVAIL_F_NO_INTERRUPT);
  }
}

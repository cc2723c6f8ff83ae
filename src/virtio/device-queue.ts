// Layer: virtio (pure). The device side of one split virtqueue (virtio 1.2 2.7).
// Imports ./memory.ts, ./ring.ts, ./chain.ts, ./errors.ts only.
//
// The queue stores ring addresses and indices, never memory: every operation
// takes the GuestMemory it must use (STYLE 3, rust-vmm), so a memory-table
// swap cannot leave a stale view inside the queue. Ring offsets resolved from
// one table are cached together with that table's generation and re-resolved
// when a different table is passed.
//
// Memory ordering. The driver runs on other CPUs and shares the rings with us.
// On x86-64 (TSO) the only reordering the hardware does is a later load
// passing an earlier store; JS engines, though, may reorder plain typed-array
// accesses among themselves. Every ring index we publish or poll goes through
// Atomics on a Uint16Array over the ring, which the JIT never reorders with
// other memory accesses; where store->load order matters, an explicit full
// fence (fullFence, a locked instruction) follows the store. The comments at
// each site say which order they guarantee.
import { Chain, walkChain } from './chain.ts';
import { QueueError } from './errors.ts';
import type { GuestMemory } from './memory.ts';
import {
  DESC_SIZE,
  MAX_QUEUE_SIZE,
  USED_ELEM_SIZE,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_USED_F_NO_NOTIFY,
  availSize,
  usedSize,
  vringNeedEvent,
} from './ring.ts';

/**
 * A full memory barrier. Atomics on a SharedArrayBuffer are locked
 * instructions on x86-64 (LOCK XADD), which order every earlier load and store
 * before every later one. The ring lives in an external, non-shared buffer,
 * and we do not want to depend on how V8 lowers Atomics.store there, so the
 * two places that need store->load order (publish then read the driver's
 * event index; request a kick then re-check avail) also pass through this.
 */
const fenceCell = new Int32Array(new SharedArrayBuffer(4));
function fullFence(): void {
  Atomics.add(fenceCell, 0, 0);
}

export interface RingAddresses {
  /** Frontend-virtual addresses, as vhost-user SET_VRING_ADDR gives them. */
  desc: number;
  avail: number;
  used: number;
}

export class DeviceQueue {
  size = 0;
  addr: RingAddresses | null = null;
  /** Next avail ring slot we will take (free-running mod 2^16). */
  lastAvailIdx = 0;
  /** Our used idx (free-running mod 2^16); mirrors what we last published. */
  usedIdx = 0;
  eventIdx = false;
  indirect = false;
  /** used idx at the last notify decision (EVENT_IDX); -1 = notify next time. */
  private signalledUsed = -1;

  // Resolved ring locations for memory generation `gen`.
  private gen = -1;
  private descRegion = 0;
  private descOff = 0;
  private availRegion = 0;
  private availOff = 0;
  private usedRegion = 0;
  private usedOff = 0;

  /** Set queue size (SET_VRING_NUM). */
  setSize(size: number): void {
    if (!Number.isInteger(size) || size < 1 || size > MAX_QUEUE_SIZE || (size & (size - 1)) !== 0) {
      throw new QueueError('INVALID_RING', `queue size ${size} is not a power of two in 1..${MAX_QUEUE_SIZE}`);
    }
    this.size = size;
    this.gen = -1;
  }

  setAddresses(addr: RingAddresses): void {
    this.addr = addr;
    this.gen = -1;
  }

  /** SET_VRING_BASE: where the driver's avail ring and our used ring continue from. */
  setBase(lastAvailIdx: number): void {
    this.lastAvailIdx = lastAvailIdx & 0xffff;
    this.usedIdx = lastAvailIdx & 0xffff;
    this.signalledUsed = -1;
  }

  /**
   * Check the rings against `mem` and cache their offsets. Throws a fatal
   * QueueError when a ring is outside memory or misaligned (2.7: desc 16,
   * avail 2, used 4).
   */
  resolve(mem: GuestMemory): void {
    if (this.gen === mem.generation) return;
    const a = this.addr;
    if (a === null || this.size === 0) throw new QueueError('INVALID_RING', 'ring used before its size and addresses were set');
    const n = this.size;
    const d = mem.findUva(a.desc, n * DESC_SIZE);
    const av = mem.findUva(a.avail, availSize(n));
    const u = mem.findUva(a.used, usedSize(n));
    if (d < 0 || av < 0 || u < 0) {
      throw new QueueError('INVALID_RING', `ring (desc 0x${a.desc.toString(16)}, avail 0x${a.avail.toString(16)}, used 0x${a.used.toString(16)}, size ${n}) is not inside guest memory`);
    }
    const rs = mem.regions;
    const dOff = a.desc - rs[d].uva;
    const aOff = a.avail - rs[av].uva;
    const uOff = a.used - rs[u].uva;
    if (dOff % 16 !== 0 || aOff % 2 !== 0 || uOff % 4 !== 0) throw new QueueError('INVALID_RING', 'misaligned ring address');
    this.descRegion = d;
    this.descOff = dOff;
    this.availRegion = av;
    this.availOff = aOff;
    this.usedRegion = u;
    this.usedOff = uOff;
    this.gen = mem.generation;
  }

  /** Number of chains the driver has made available and we have not taken. Fatal QueueError if impossible. */
  pending(mem: GuestMemory): number {
    this.resolve(mem);
    // Acquire: the avail idx load comes before our loads of the ring entries
    // and descriptors it covers (x86 keeps load order; Atomics stops the JIT).
    const idx = Atomics.load(mem.regions[this.availRegion].u16, (this.availOff + 2) >> 1);
    const n = (idx - this.lastAvailIdx) & 0xffff;
    if (n > this.size) throw new QueueError('INVALID_AVAIL_IDX', `avail idx ${idx} is ${n} ahead of ${this.lastAvailIdx} on a queue of ${this.size}`);
    return n;
  }

  /**
   * Take the next available chain into `chain`. Returns false when none is
   * pending. The head is consumed even when walking it throws QueueError
   * (code != INVALID_HEAD): the caller then returns it with 0 bytes used.
   */
  pop(mem: GuestMemory, chain: Chain): boolean {
    if (this.pending(mem) === 0) return false;
    const ar = mem.regions[this.availRegion];
    const slot = this.lastAvailIdx & (this.size - 1);
    const head = ar.view.getUint16(this.availOff + 4 + 2 * slot, true);
    this.lastAvailIdx = (this.lastAvailIdx + 1) & 0xffff;
    if (head >= this.size) {
      chain.reset(head);
      throw new QueueError('INVALID_HEAD', `avail entry names descriptor ${head} on a queue of ${this.size}`);
    }
    walkChain(mem, this.descRegion, this.descOff, this.size, head, this.indirect, chain);
    return true;
  }

  /** Publish one used element {id: head, len: written}. */
  pushUsed(mem: GuestMemory, head: number, written: number): void {
    this.resolve(mem);
    const ur = mem.regions[this.usedRegion];
    const slot = this.usedIdx & (this.size - 1);
    const e = this.usedOff + 4 + USED_ELEM_SIZE * slot;
    ur.view.setUint32(e, head, true);
    ur.view.setUint32(e + 4, written >>> 0, true);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    // Release: the element above is written before the idx that publishes it
    // (x86 keeps store order; Atomics.store keeps the JIT from sinking the
    // element stores below it). The driver reads idx, then the element.
    Atomics.store(ur.u16, (this.usedOff + 2) >> 1, this.usedIdx);
  }

  /**
   * Should we interrupt the driver for what we published since the last
   * decision? Call after pushUsed (its Atomics.store is the full fence that
   * keeps the used idx store ahead of the loads below: store->load is the one
   * order x86 would otherwise break, and losing it loses an interrupt).
   */
  needsNotify(mem: GuestMemory): boolean {
    this.resolve(mem);
    const ar = mem.regions[this.availRegion];
    if (this.eventIdx) {
      const old = this.signalledUsed;
      this.signalledUsed = this.usedIdx;
      if (old < 0) return true;
      // Our used idx store must be visible before we read the driver's
      // used_event, or both sides may decide the other will act.
      fullFence();
      // used_event sits after avail.ring[size].
      const usedEvent = Atomics.load(ar.u16, (this.availOff + 4 + 2 * this.size) >> 1);
      return vringNeedEvent(usedEvent, this.usedIdx, old);
    }
    fullFence();
    const flags = Atomics.load(ar.u16, this.availOff >> 1);
    return (flags & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /** Ask the driver not to kick while we are busy draining the ring (no-op with EVENT_IDX). */
  disableNotification(mem: GuestMemory): void {
    if (this.eventIdx) return; // a stale avail_event already suppresses kicks until we publish a new one
    this.resolve(mem);
    const ur = mem.regions[this.usedRegion];
    Atomics.store(ur.u16, this.usedOff >> 1, VIRTQ_USED_F_NO_NOTIFY);
  }

  /**
   * Ask for a kick on the next new buffer, then look again: returns true when
   * buffers arrived meanwhile (the caller must drain them, no kick will come
   * for them). The store below is sequentially consistent (a full fence), so
   * the re-check load cannot pass it: either the driver sees our request and
   * kicks, or we see its new avail idx.
   */
  enableNotification(mem: GuestMemory): boolean {
    this.resolve(mem);
    const ur = mem.regions[this.usedRegion];
    if (this.eventIdx) {
      // avail_event sits after used.ring[size]: "kick me when avail idx passes lastAvailIdx".
      Atomics.store(ur.u16, (this.usedOff + 4 + USED_ELEM_SIZE * this.size) >> 1, this.lastAvailIdx);
    } else {
      Atomics.store(ur.u16, this.usedOff >> 1, 0);
    }
    // Store (our request) -> load (avail idx): the one order x86 may break.
    fullFence();
    return this.pending(mem) !== 0;
  }
}

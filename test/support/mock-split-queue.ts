// Test support: the DRIVER side of one split virtqueue, written from the raw
// offsets of virtio 1.2 section 2.7 over a plain ArrayBuffer standing in for
// guest RAM. It deliberately shares no code with src/virtio/ so that a layout
// bug cannot hide by being on both ends. Offsets used here:
//   desc[i]  at descAddr + 16*i: u64 addr, u32 len, u16 flags, u16 next
//   avail    at availAddr: u16 flags, u16 idx, u16 ring[n], u16 used_event
//   used     at usedAddr:  u16 flags, u16 idx, {u32 id, u32 len} ring[n], u16 avail_event
// flags: NEXT 1, WRITE 2, INDIRECT 4.

export interface MockBuffer {
  /** Device-readable bytes, or a writable buffer of `len` bytes. */
  data?: Uint8Array;
  len?: number;
  writable?: boolean;
}

export interface MockLayout {
  /** Guest-physical base of the RAM buffer. */
  gpaBase: number;
  /** The frontend's virtual address of the same RAM (ring addresses use it). */
  uvaBase: number;
  ramSize: number;
  queueSize: number;
}

export class MockSplitQueue {
  readonly ram: ArrayBuffer;
  readonly dv: DataView;
  readonly bytes: Uint8Array;
  readonly descAddr: number; // guest-physical
  readonly availAddr: number;
  readonly usedAddr: number;
  private heap: number; // next free guest-physical byte for buffers
  private readonly ramOffset: number;
  private nextDesc = 0;
  private availIdx = 0;
  private lastUsedSeen = 0;

  /** `ram`: guest RAM to use (e.g. a memfd mapping shared with a daemon); default a fresh ArrayBuffer. */
  constructor(readonly layout: MockLayout = { gpaBase: 0x10_0000, uvaBase: 0x7f00_0000_0000, ramSize: 1 << 20, queueSize: 16 }, ram?: ArrayBuffer, ramOffset = 0) {
    this.ram = ram ?? new ArrayBuffer(layout.ramSize);
    this.ramOffset = ramOffset;
    this.dv = new DataView(this.ram, ramOffset, layout.ramSize);
    this.bytes = new Uint8Array(this.ram, ramOffset, layout.ramSize);
    const n = layout.queueSize;
    this.descAddr = layout.gpaBase + 0x1000;
    this.availAddr = this.descAddr + 16 * n;
    this.usedAddr = Math.ceil((this.availAddr + 6 + 2 * n) / 4096) * 4096;
    this.heap = Math.ceil((this.usedAddr + 6 + 8 * n) / 4096) * 4096;
  }

  /** The region list to build the device's GuestMemory from. */
  regions(): { guestPhysAddr: number; userAddr: number; buffer: ArrayBuffer; bufferOffset: number; size: number }[] {
    return [{ guestPhysAddr: this.layout.gpaBase, userAddr: this.layout.uvaBase, buffer: this.ram, bufferOffset: this.ramOffset, size: this.layout.ramSize }];
  }

  /** Ring addresses as the frontend would send them (frontend-virtual). */
  ringAddresses(): { desc: number; avail: number; used: number } {
    const d = this.layout.uvaBase - this.layout.gpaBase;
    return { desc: this.descAddr + d, avail: this.availAddr + d, used: this.usedAddr + d };
  }

  private off(gpa: number): number { return gpa - this.layout.gpaBase; }

  /** Allocate `len` bytes of guest RAM (8-aligned), optionally filled. */
  alloc(len: number, fill?: Uint8Array): number {
    const gpa = this.heap;
    this.heap += Math.ceil(Math.max(len, 1) / 8) * 8;
    if (this.off(this.heap) > this.layout.ramSize) throw new Error('mock RAM exhausted');
    if (fill) this.bytes.set(fill, this.off(gpa));
    return gpa;
  }

  /** Write descriptor i of the table at `tableGpa` (raw: anything goes, including hostile values). */
  writeDesc(i: number, addr: bigint | number, len: number, flags: number, next: number, tableGpa = this.descAddr): void {
    const o = this.off(tableGpa) + 16 * i;
    this.dv.setBigUint64(o, BigInt(addr), true);
    this.dv.setUint32(o + 8, len >>> 0, true);
    this.dv.setUint16(o + 12, flags, true);
    this.dv.setUint16(o + 14, next, true);
  }

  /** Build a direct chain from fresh descriptors; returns its head (not yet published). */
  addChain(bufs: MockBuffer[]): { head: number; addrs: number[] } {
    const n = this.layout.queueSize;
    const idxs = bufs.map(() => this.nextDesc++ % n);
    const addrs: number[] = [];
    bufs.forEach((b, k) => {
      const len = b.data ? b.data.length : (b.len ?? 0);
      const a = this.alloc(len, b.data);
      addrs.push(a);
      const flags = (k + 1 < bufs.length ? 1 : 0) | (b.writable ? 2 : 0);
      this.writeDesc(idxs[k], a, len, flags, k + 1 < bufs.length ? idxs[k + 1] : 0);
    });
    return { head: idxs[0], addrs };
  }

  /** Build a chain of one INDIRECT descriptor pointing at a table of `bufs`. */
  addIndirectChain(bufs: MockBuffer[]): { head: number; addrs: number[]; table: number } {
    const table = this.alloc(16 * bufs.length);
    const addrs: number[] = [];
    bufs.forEach((b, k) => {
      const len = b.data ? b.data.length : (b.len ?? 0);
      const a = this.alloc(len, b.data);
      addrs.push(a);
      const flags = (k + 1 < bufs.length ? 1 : 0) | (b.writable ? 2 : 0);
      this.writeDesc(k, a, len, flags, k + 1, table);
    });
    const head = this.nextDesc++ % this.layout.queueSize;
    this.writeDesc(head, table, 16 * bufs.length, 4, 0);
    return { head, addrs, table };
  }

  /** Put `head` in the avail ring and bump avail idx (the driver's publish). */
  publish(head: number): void {
    const n = this.layout.queueSize;
    const a = this.off(this.availAddr);
    this.dv.setUint16(a + 4 + 2 * (this.availIdx % n), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.dv.setUint16(a + 2, this.availIdx, true);
  }

  /** Overwrite avail idx directly (hostile drivers). */
  setAvailIdx(idx: number): void {
    this.availIdx = idx & 0xffff;
    this.dv.setUint16(this.off(this.availAddr) + 2, this.availIdx, true);
  }

  /** Start both rings at `idx` (as after a SET_VRING_BASE of idx): avail idx and the used idx we expect next. */
  startAt(idx: number): void {
    this.setAvailIdx(idx);
    this.lastUsedSeen = idx & 0xffff;
    this.dv.setUint16(this.off(this.usedAddr) + 2, idx & 0xffff, true);
  }

  setAvailFlags(flags: number): void { this.dv.setUint16(this.off(this.availAddr), flags, true); }
  setUsedEvent(v: number): void { this.dv.setUint16(this.off(this.availAddr) + 4 + 2 * this.layout.queueSize, v, true); }
  /**
   * The driver's "interrupt me after the next used entry" (EVENT_IDX): set
   * used_event to the last entry seen, then look again. Returns true when new
   * used entries are already there (no interrupt will come for them).
   */
  armUsedEvent(): boolean {
    this.setUsedEvent(this.lastUsedSeen);
    return this.usedIdx() !== this.lastUsedSeen;
  }
  availEvent(): number { return this.dv.getUint16(this.off(this.usedAddr) + 4 + 8 * this.layout.queueSize, true); }
  usedFlags(): number { return this.dv.getUint16(this.off(this.usedAddr), true); }
  usedIdx(): number { return this.dv.getUint16(this.off(this.usedAddr) + 2, true); }

  /** Used elements published since the last call. */
  takeUsed(): { id: number; len: number }[] {
    const out: { id: number; len: number }[] = [];
    const u = this.off(this.usedAddr);
    const idx = this.usedIdx();
    while (this.lastUsedSeen !== idx) {
      const e = u + 4 + 8 * (this.lastUsedSeen % this.layout.queueSize);
      out.push({ id: this.dv.getUint32(e, true), len: this.dv.getUint32(e + 4, true) });
      this.lastUsedSeen = (this.lastUsedSeen + 1) & 0xffff;
    }
    return out;
  }

  read(gpa: number, len: number): Uint8Array { return this.bytes.slice(this.off(gpa), this.off(gpa) + len); }
}

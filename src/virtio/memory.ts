// Layer: virtio (pure). Guest memory as a table of mapped regions; imports nothing.
// The mapping itself comes from sys/ (mmap of the fds vhost-user hands us);
// this module only translates addresses into offsets of byte views, checking
// that every [address, address+length) lies wholly inside one region.
//
// Addresses are JS numbers: guest-physical and frontend-virtual addresses on
// x86_64 stay far below 2^53, and a descriptor address with bits above 2^53 is
// simply "outside memory" (see chain.ts), so no BigInt on the hot path.

export interface RegionSpec {
  /** Guest-physical address of the first byte (descriptor buffers live here). */
  readonly guestPhysAddr: number;
  /** Frontend (QEMU) virtual address of the first byte (SET_VRING_ADDR uses these). */
  readonly userAddr: number;
  /** The region's bytes: a mapping from sys/mmap.ts, or a plain ArrayBuffer in tests. */
  readonly buffer: ArrayBuffer;
  /** Byte offset of the region inside `buffer` (tests put several regions in one buffer). */
  readonly bufferOffset?: number;
  readonly size: number;
}

/** One region with its views built once (STYLE: cache views per region). */
export class Region {
  readonly gpa: number;
  readonly uva: number;
  readonly size: number;
  readonly bytes: Buffer;
  readonly view: DataView;
  /** 16-bit view for Atomics on ring indices; index = byte offset >> 1. */
  readonly u16: Uint16Array;

  constructor(spec: RegionSpec) {
    const off = spec.bufferOffset ?? 0;
    if (!Number.isSafeInteger(spec.guestPhysAddr) || spec.guestPhysAddr < 0) throw new RangeError('bad region guest address');
    if (!Number.isSafeInteger(spec.userAddr) || spec.userAddr < 0) throw new RangeError('bad region user address');
    if (!Number.isSafeInteger(spec.size) || spec.size <= 0 || off + spec.size > spec.buffer.byteLength) {
      throw new RangeError(`region of ${spec.size} bytes does not fit its buffer of ${spec.buffer.byteLength}`);
    }
    if (off % 8 !== 0) throw new RangeError('region buffer offset must be 8-aligned');
    this.gpa = spec.guestPhysAddr;
    this.uva = spec.userAddr;
    this.size = spec.size;
    this.bytes = Buffer.from(spec.buffer, off, spec.size);
    this.view = new DataView(spec.buffer, off, spec.size);
    this.u16 = new Uint16Array(spec.buffer, off, Math.floor(spec.size / 2));
  }
}

let generations = 0;

/**
 * An immutable region table. A memory-table change builds a new GuestMemory
 * (with a new `generation`), so anything derived from an old table can tell it
 * is stale. Queues never store one: every queue operation takes it as an argument.
 */
export class GuestMemory {
  readonly regions: readonly Region[];
  readonly generation = ++generations;
  private lastGpa = 0;

  constructor(specs: readonly RegionSpec[]) {
    this.regions = specs.map((s) => new Region(s));
    const byGpa = [...this.regions].sort((a, b) => a.gpa - b.gpa);
    for (let i = 1; i < byGpa.length; i++) {
      if (byGpa[i - 1].gpa + byGpa[i - 1].size > byGpa[i].gpa) throw new RangeError('guest memory regions overlap');
    }
  }

  /**
   * The index of the region holding guest-physical [gpa, gpa+len), or -1.
   * Offset inside it is `gpa - regions[i].gpa`. len 0 may sit at the region's end.
   */
  findGpa(gpa: number, len: number): number {
    const rs = this.regions;
    // The last hit first: consecutive descriptors mostly land in one region.
    let r = rs[this.lastGpa];
    if (r !== undefined && gpa >= r.gpa && len <= r.size && gpa - r.gpa <= r.size - len) return this.lastGpa;
    for (let i = 0; i < rs.length; i++) {
      r = rs[i];
      // Written so nothing overflows: gpa - r.gpa is exact for gpa < 2^53.
      if (gpa >= r.gpa && len <= r.size && gpa - r.gpa <= r.size - len) {
        this.lastGpa = i;
        return i;
      }
    }
    return -1;
  }

  /** The index of the region holding frontend-virtual [uva, uva+len), or -1 (ring addresses). */
  findUva(uva: number, len: number): number {
    const rs = this.regions;
    for (let i = 0; i < rs.length; i++) {
      const r = rs[i];
      if (uva >= r.uva && len <= r.size && uva - r.uva <= r.size - len) return i;
    }
    return -1;
  }

  /** Copying read of guest-physical bytes (tests, slow paths). Throws RangeError outside memory. */
  read(gpa: number, len: number): Buffer {
    const i = this.findGpa(gpa, len);
    if (i < 0) throw new RangeError(`guest address 0x${gpa.toString(16)}+${len} is outside memory`);
    const r = this.regions[i];
    return Buffer.from(r.bytes.subarray(gpa - r.gpa, gpa - r.gpa + len));
  }
}

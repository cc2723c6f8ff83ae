// Layer: driver (the guest side). The virtio-fs transport: FUSE requests go
// into guest memory, onto the request (or hiprio) vring, and replies come
// back from the used ring. Imports vhost-user/frontend.ts,
// virtio/driver-queue.ts, ./fuse-client.ts (the FuseTransport contract) and
// ./errors.ts. Never imports fs/ or fuse/server (STYLE 7 rule 5).
//
// One request = one arena block in guest memory: [request bytes | reply
// space], described as one readable and one writable descriptor. Many
// requests are in flight at once; when descriptors or arena space run out,
// new requests wait (FIFO) until replies free some.
import { HIPRIO_QUEUE, REQUEST_QUEUE, VhostUserFrontend, type FrontendOptions } from '../vhost-user/frontend.ts';
import type { DriverQueue } from '../virtio/driver-queue.ts';
import { DriverError } from './errors.ts';
import type { FuseTransport, QueueName } from './fuse-client.ts';

const ALIGN = 64;

/** First-fit allocator over guest-physical [start, end). Tens of blocks live at once, so a sorted array is enough. */
export class ArenaAllocator {
  /** Free blocks sorted by address: [addr, len] pairs. */
  private readonly freeList: { addr: number; len: number }[];
  constructor(readonly start: number, readonly end: number) {
    this.freeList = [{ addr: start, len: end - start }];
  }

  get largestFree(): number {
    return this.freeList.reduce((m, b) => Math.max(m, b.len), 0);
  }

  /** A block of at least `len` bytes, or -1 when none is free now. */
  alloc(len: number): number {
    const need = Math.ceil(Math.max(len, 1) / ALIGN) * ALIGN;
    for (let i = 0; i < this.freeList.length; i++) {
      const b = this.freeList[i]!;
      if (b.len >= need) {
        const addr = b.addr;
        b.addr += need;
        b.len -= need;
        if (b.len === 0) this.freeList.splice(i, 1);
        return addr;
      }
    }
    return -1;
  }

  free(addr: number, len: number): void {
    const size = Math.ceil(Math.max(len, 1) / ALIGN) * ALIGN;
    const list = this.freeList;
    let i = 0;
    while (i < list.length && list[i]!.addr < addr) i++;
    const prev = i > 0 ? list[i - 1] : undefined;
    const next = list[i];
    if ((prev && prev.addr + prev.len > addr) || (next && addr + size > next.addr)) {
      throw new Error(`arena: double free or overlap at 0x${addr.toString(16)}+${size}`);
    }
    if (prev && prev.addr + prev.len === addr) {
      prev.len += size;
      if (next && prev.addr + prev.len === next.addr) {
        prev.len += next.len;
        list.splice(i, 1);
      }
    } else if (next && addr + size === next.addr) {
      next.addr = addr;
      next.len += size;
    } else {
      list.splice(i, 0, { addr, len: size });
    }
  }
}

interface Pending {
  block: number;
  blockLen: number;
  inLen: number;
  replyCap: number;
  resolve: (b: Buffer) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout | null;
  /** The caller gave up (timeout): drop the reply, just free the memory when it comes. */
  abandoned: boolean;
}

interface Waiting {
  q: number;
  parts: readonly Buffer[];
  replyCap: number;
  timeoutMs: number;
  resolve: (b: Buffer) => void;
  reject: (e: Error) => void;
}

export interface VirtioFsTransportOptions extends FrontendOptions {
  /** Default request timeout (each call may pass its own). 30 s. */
  requestTimeoutMs?: number;
}

/** FuseTransport over a vhost-user frontend: the guest's virtio-fs device driver. */
export class VirtioFsTransport implements FuseTransport {
  private readonly arena: ArenaAllocator;
  private readonly pending: Map<number, Pending>[] = [new Map(), new Map()];
  private readonly waiting: Waiting[] = [];
  private readonly toPublish = new Set<number>();
  private publishScheduled = false;
  private dead: Error | null = null;
  readonly maxRequestBytes: number;

  constructor(readonly frontend: VhostUserFrontend) {
    this.arena = new ArenaAllocator(frontend.arenaStart, frontend.arenaEnd);
    this.maxRequestBytes = Math.floor((frontend.arenaEnd - frontend.arenaStart) / 2);
    frontend.onCall((q) => this.reapQueue(q));
    frontend.onClose((reason) => this.failAll(new DriverError('ENOTCONN', `virtio-fs backend is gone: ${reason.message}`)));
    for (let q = 0; q < frontend.queues.length; q++) frontend.queues[q]!.armInterrupt(frontend.memory);
  }

  static async connect(opts: VirtioFsTransportOptions): Promise<VirtioFsTransport> {
    return new VirtioFsTransport(await VhostUserFrontend.connect(opts));
  }

  get inFlight(): number {
    return this.pending[0]!.size + this.pending[1]!.size;
  }

  call(queue: QueueName, parts: readonly Buffer[], replyCap: number, timeoutMs: number): Promise<Buffer> {
    if (this.dead) return Promise.reject(this.dead);
    const q = queue === 'hiprio' ? HIPRIO_QUEUE : REQUEST_QUEUE;
    const inLen = parts.reduce((n, p) => n + p.length, 0);
    if (inLen + replyCap > this.maxRequestBytes) {
      return Promise.reject(new DriverError('E2BIG', `request of ${inLen}+${replyCap} bytes exceeds the ${this.maxRequestBytes}-byte limit of guest memory`));
    }
    return new Promise<Buffer>((resolve, reject) => {
      const w: Waiting = { q, parts, replyCap, timeoutMs, resolve, reject };
      if (this.waiting.length > 0 || !this.trySubmit(w)) this.waiting.push(w);
    });
  }

  /** Put one request on its ring; false when descriptors or memory are short right now. */
  private trySubmit(w: Waiting): boolean {
    const fe = this.frontend;
    const queue: DriverQueue = fe.queues[w.q]!;
    const nseg = w.replyCap > 0 ? 2 : 1;
    if (queue.freeCount < nseg) return false;
    const inLen = w.parts.reduce((n, p) => n + p.length, 0);
    const blockLen = inLen + w.replyCap;
    const block = this.arena.alloc(blockLen);
    if (block < 0) return false;
    const region = fe.memory.regions[0]!;
    let off = block - region.gpa;
    for (const p of w.parts) {
      p.copy(region.bytes, off);
      off += p.length;
    }
    const segs = [{ addr: block, len: inLen, write: false }];
    if (w.replyCap > 0) segs.push({ addr: block + inLen, len: w.replyCap, write: true });
    const head = queue.add(fe.memory, segs);
    const p: Pending = { block, blockLen, inLen, replyCap: w.replyCap, resolve: w.resolve, reject: w.reject, timer: null, abandoned: false };
    if (w.timeoutMs > 0 && Number.isFinite(w.timeoutMs)) {
      p.timer = setTimeout(() => {
        p.abandoned = true;
        p.timer = null;
        w.reject(new DriverError('ETIMEDOUT', `virtio-fs request got no reply within ${w.timeoutMs} ms`));
      }, w.timeoutMs);
    }
    if (this.inFlight === 0) this.frontend.hold(true);
    this.pending[w.q]!.set(head, p);
    this.toPublish.add(w.q);
    if (!this.publishScheduled) {
      // Requests made in the same tick share one avail-idx publish and one kick.
      this.publishScheduled = true;
      queueMicrotask(() => this.publish());
    }
    return true;
  }

  private publish(): void {
    this.publishScheduled = false;
    if (this.dead) return;
    for (const q of this.toPublish) {
      if (this.frontend.queues[q]!.publish(this.frontend.memory)) this.frontend.kick(q);
    }
    this.toPublish.clear();
  }

  private reapQueue(q: number): void {
    if (this.dead) return;
    const fe = this.frontend;
    const queue = fe.queues[q]!;
    const region = fe.memory.regions[0]!;
    try {
      do {
        queue.reap(fe.memory, ({ head, len }) => {
          const p = this.pending[q]!.get(head)!;
          this.pending[q]!.delete(head);
          if (p.timer) clearTimeout(p.timer);
          if (!p.abandoned) {
            if (len > p.replyCap) {
              p.reject(new DriverError('EPROTO', `device claims ${len} reply bytes in a ${p.replyCap}-byte buffer`));
            } else {
              const at = p.block + p.inLen - region.gpa;
              p.resolve(Buffer.from(region.bytes.subarray(at, at + len)));
            }
          }
          this.arena.free(p.block, p.blockLen);
          if (this.inFlight === 0) this.frontend.hold(false);
        });
      } while (queue.armInterrupt(fe.memory));
    } catch (err) {
      // The device broke the ring: nothing on this device can be trusted now.
      this.failAll(new DriverError('EPROTO', `virtio-fs device broke queue ${q}: ${(err as Error).message}`));
      fe.close();
      return;
    }
    this.drainWaiting();
  }

  private drainWaiting(): void {
    while (this.waiting.length > 0 && !this.dead) {
      if (!this.trySubmit(this.waiting[0]!)) break;
      this.waiting.shift();
    }
  }

  private failAll(err: Error): void {
    if (this.dead) return;
    this.dead = err;
    for (const m of this.pending) {
      for (const p of m.values()) {
        if (p.timer) clearTimeout(p.timer);
        if (!p.abandoned) p.reject(err);
      }
      m.clear();
    }
    for (const w of this.waiting.splice(0)) w.reject(err);
  }

  close(): void {
    this.frontend.close();
  }
}

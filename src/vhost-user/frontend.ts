// Layer: vhost-user. The FRONTEND side of the protocol (the part QEMU plays):
// connects to a vhost-user-fs backend, negotiates features, shares guest
// memory (a memfd) with SET_MEM_TABLE, sets up the hiprio and request vrings
// with kick/call eventfds, and serves the backend request channel (SHMEM_MAP /
// SHMEM_UNMAP into the DAX window). Imports ./message.ts,
// ./frontend-messages.ts, ./connection.ts, ./errors.ts, virtio/memory.ts,
// virtio/driver-queue.ts and sys/ (sockets, eventfd, mmap, window).
//
// Nothing here blocks the event loop: the control socket, the backend channel
// and the call eventfds are watched through libuv (koffi.node.poll); control
// replies are awaited as promises. Bring-up pipelines: the SET_* messages go
// out back to back and their REPLY_ACKs are checked in order at the end (one
// round trip instead of ~17; a backend answers in order, as QEMU relies on).
import { constants } from 'node:os';
import { closeFd, eventfdCreate, eventfdDrain, eventfdSignal } from '../sys/eventfd.ts';
import { mapFd, memfdCreate, unmap, type Mapping } from '../sys/mmap.ts';
import { Window } from '../sys/window.ts';
import { closeSocket, connectUnix, setNonBlocking, socketPair, UnixChannel } from '../sys/unix-socket.ts';
import { watchFd, type RefWatch } from '../sys/fd-watch.ts';
import { GuestMemory } from '../virtio/memory.ts';
import { DriverQueue, layoutRing } from '../virtio/driver-queue.ts';
import { VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX } from '../virtio/ring.ts';
import { VhostUserConnection, type Message } from './connection.ts';
import { VhostUserError } from './errors.ts';
import {
  FLAG_NEED_REPLY,
  FLAG_REPLY,
  HEADER_SIZE,
  MAX_PAYLOAD,
  ProtocolFeature,
  Request,
  VERSION_MASK,
  VHOST_USER_F_PROTOCOL_FEATURES,
  VHOST_USER_VERSION,
  bit,
  encodeHeader,
  encodeMemTable,
  encodeU64,
  encodeVringAddr,
  encodeVringState,
  requestName,
} from './message.ts';
import { BackendRequest, PROTOCOL_F_SHMEM, SHMEM_MAP_F_RW, decodeShmemMap } from './frontend-messages.ts';

/** Queue 0 = hiprio (FORGET, INTERRUPT), queue 1 = the request queue (virtio 1.2 5.11.2). */
export const HIPRIO_QUEUE = 0;
export const REQUEST_QUEUE = 1;

/** A fake guest-physical base: the backend must translate, never assume gpa == offset. */
export const GUEST_PHYS_BASE = 0x4000_0000;

export interface FrontendOptions {
  socketPath: string;
  /** Bytes of guest RAM shared with the backend (rings + request buffers). Default 64 MiB. */
  memoryBytes?: number;
  /** Entries per vring (power of two). Default 128. */
  queueSize?: number;
  /** DAX window size in bytes; 0 = no window (the default). */
  daxWindowBytes?: number;
  /** How long a control reply may take. Default 5000 ms. */
  controlTimeoutMs?: number;
  /** Diagnostic lines (refused backend requests, disconnects). */
  log?: (line: string) => void;
  /**
   * Called once, synchronously, when the bring-up batch is on the wire and
   * before its acks are awaited: a caller with blocking work of its own (the
   * boot command starting its module-hooks thread) does it while the backend
   * works. An exception it throws fails connect().
   */
  onBringUpSent?: () => void;
}

export interface Negotiated {
  features: bigint;
  protocolFeatures: bigint;
  eventIdx: boolean;
  /** The backend may send SHMEM_MAP/UNMAP (SHMEM + BACKEND_REQ + BACKEND_SEND_FD + a window). */
  shmem: boolean;
}

interface Waiter {
  request: number;
  resolve: (m: { request: number; flags: number; payload: Buffer }) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

const PAGE = 4096;

export class VhostUserFrontend {
  readonly memory: GuestMemory;
  readonly queues: DriverQueue[] = [];
  /** Guest-physical [arenaStart, arenaEnd): free for request buffers (after the rings). */
  readonly arenaStart: number;
  readonly arenaEnd: number;
  readonly window: Window | null;
  negotiated: Negotiated = { features: 0n, protocolFeatures: 0n, eventIdx: false, shmem: false };

  private readonly ctrl: UnixChannel;
  private ctrlWatch: RefWatch | null = null;
  private inbuf = Buffer.alloc(0);
  /** Replies still expected, in the order the requests went out. */
  private readonly waiters: Waiter[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private backendConn: VhostUserConnection | null = null;
  private backendWatch: RefWatch | null = null;
  private readonly kickFds: number[] = [];
  private readonly callFds: number[] = [];
  private readonly callWatches: RefWatch[] = [];
  /** Reasons the event loop must stay alive (control request or data requests in flight). */
  private busy = 0;
  private readonly callHandlers: ((q: number) => void)[] = [];
  private readonly closeHandlers: ((reason: Error) => void)[] = [];
  /** One byte per window page: 1 when a file page is mapped there read-only, 2 read-write (accesses check this first). */
  private readonly mappedPages: Uint8Array;
  private closedReason: Error | null = null;
  private readonly timeoutMs: number;
  private readonly log: (line: string) => void;
  private onBringUpSent: (() => void) | null = null;

  private constructor(
    private readonly ctrlFd: number,
    private readonly memfd: number,
    readonly mapping: Mapping,
    readonly opts: Required<Omit<FrontendOptions, 'log' | 'onBringUpSent'>>,
    log: (line: string) => void,
  ) {
    this.ctrl = new UnixChannel(ctrlFd);
    this.timeoutMs = opts.controlTimeoutMs;
    this.log = log;
    this.memory = new GuestMemory([
      { guestPhysAddr: GUEST_PHYS_BASE, userAddr: Number(mapping.address), buffer: mapping.buffer, size: mapping.length },
    ]);
    let at = GUEST_PHYS_BASE;
    for (let q = 0; q < 2; q++) {
      const layout = layoutRing(at, opts.queueSize);
      at += layout.bytes;
      this.queues.push(new DriverQueue(opts.queueSize, layout, false));
    }
    this.arenaStart = at;
    this.arenaEnd = GUEST_PHYS_BASE + mapping.length;
    this.window = opts.daxWindowBytes > 0 ? Window.reserve(opts.daxWindowBytes) : null;
    this.mappedPages = new Uint8Array(opts.daxWindowBytes / PAGE);
  }

  /** Connect and bring the device up: features, memory, both vrings running. */
  static async connect(options: FrontendOptions): Promise<VhostUserFrontend> {
    const opts = {
      socketPath: options.socketPath,
      memoryBytes: options.memoryBytes ?? 64 * 1024 * 1024,
      queueSize: options.queueSize ?? 128,
      daxWindowBytes: options.daxWindowBytes ?? 0,
      controlTimeoutMs: options.controlTimeoutMs ?? 5000,
    };
    if (opts.memoryBytes % PAGE !== 0 || opts.memoryBytes < 1024 * 1024) throw new RangeError(`guest memory must be >= 1 MiB and page-aligned (got ${opts.memoryBytes})`);
    if (opts.daxWindowBytes % PAGE !== 0 || opts.daxWindowBytes < 0) throw new RangeError(`DAX window size ${opts.daxWindowBytes} is not a multiple of ${PAGE}`);
    const fd = connectUnix(opts.socketPath);
    let memfd = -1;
    let mapping: Mapping | null = null;
    let fe: VhostUserFrontend;
    try {
      memfd = memfdCreate('virtiofs-ts-guest-ram', opts.memoryBytes);
      mapping = mapFd(memfd, opts.memoryBytes, 0);
      setNonBlocking(fd, true);
      fe = new VhostUserFrontend(fd, memfd, mapping, opts, options.log ?? (() => {}));
      fe.onBringUpSent = options.onBringUpSent ?? null;
    } catch (err) {
      if (mapping) unmap(mapping);
      if (memfd >= 0) closeFd(memfd);
      closeSocket(fd);
      throw err;
    }
    try {
      await fe.start();
    } catch (err) {
      fe.releaseMemory();
      throw err;
    }
    fe.backendWatch?.unref();
    return fe;
  }

  // ---- control channel -------------------------------------------------------

  private onCtrlReadable(): void {
    const chunk = Buffer.alloc(4096);
    for (;;) {
      let n: number;
      const fds: number[] = [];
      try {
        n = this.ctrl.recv(chunk, 0, chunk.length, fds);
      } catch (err) {
        this.fail(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      for (const f of fds) closeFd(f); // replies to our requests carry no fds we use
      if (n < 0) break;
      if (n === 0) {
        this.fail(new VhostUserError('DISCONNECTED', 'the backend closed the vhost-user socket', true));
        return;
      }
      this.inbuf = Buffer.concat([this.inbuf, chunk.subarray(0, n)]);
    }
    while (this.inbuf.length >= HEADER_SIZE) {
      const request = this.inbuf.readUInt32LE(0);
      const flags = this.inbuf.readUInt32LE(4);
      const size = this.inbuf.readUInt32LE(8);
      if ((flags & VERSION_MASK) !== VHOST_USER_VERSION || (flags & FLAG_REPLY) === 0 || size > MAX_PAYLOAD) {
        this.fail(new VhostUserError('BAD_HEADER', `backend sent a bad reply header (request ${requestName(request)}, flags 0x${flags.toString(16)}, size ${size})`, true));
        return;
      }
      if (this.inbuf.length < HEADER_SIZE + size) break;
      const payload = Buffer.from(this.inbuf.subarray(HEADER_SIZE, HEADER_SIZE + size));
      this.inbuf = this.inbuf.subarray(HEADER_SIZE + size);
      const w = this.waiters[0];
      if (w === undefined || w.request !== request) {
        const want = w ? ` (expected the reply to ${requestName(w.request)})` : '';
        this.fail(new VhostUserError('BAD_HEADER', `backend sent an unexpected reply to ${requestName(request)}${want}`, true));
        return;
      }
      this.waiters.shift();
      clearTimeout(w.timer);
      w.resolve({ request, flags, payload });
    }
  }

  private sendCtrl(request: number, flags: number, payload: Buffer, fds: readonly number[]): void {
    const b = Buffer.alloc(HEADER_SIZE + payload.length);
    encodeHeader({ request, flags: VHOST_USER_VERSION | flags, size: payload.length }, b);
    payload.copy(b, HEADER_SIZE);
    let off = 0;
    let f = fds;
    let spins = 0;
    while (off < b.length) {
      const n = this.ctrl.send(b, off, b.length - off, f);
      if (n < 0) {
        // Control messages are tiny; a full socket means a backend that stopped reading.
        if (++spins > 1000) throw new VhostUserError('TRUNCATED', `backend stopped reading (sending ${requestName(request)})`, true);
        continue;
      }
      off += n;
      f = [];
    }
  }

  /** True when REPLY_ACK was negotiated (SET_PROTOCOL_FEATURES sent). */
  private get acking(): boolean {
    return (this.negotiated.protocolFeatures & bit(ProtocolFeature.REPLY_ACK)) !== 0n;
  }

  /** Queue a waiter for the next reply, which must answer `request`. */
  private expectReply(request: number): Promise<{ request: number; flags: number; payload: Buffer }> {
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        request, resolve, reject,
        timer: setTimeout(() => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new VhostUserError('TRUNCATED', `no reply to ${requestName(request)} within ${this.timeoutMs} ms`, true));
        }, this.timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  /** Checks a REPLY_ACK payload: status 0 or a clear refusal naming the request. */
  private static checkAck(request: number, m: { payload: Buffer }): void {
    if (m.payload.length !== 8) throw new VhostUserError('BAD_SIZE', `REPLY_ACK to ${requestName(request)} has ${m.payload.length} bytes`, true);
    const status = m.payload.readBigUInt64LE(0);
    if (status !== 0n) throw new VhostUserError('REFUSED', `backend refused ${requestName(request)} (status ${status})`);
  }

  /** Runs `op` after every earlier control exchange, holding the loop open meanwhile. */
  private serialize<T>(op: () => Promise<T>): Promise<T> {
    this.hold(true);
    const next = this.chain.then(op, op).finally(() => this.hold(false));
    this.chain = next.catch(() => {});
    return next;
  }

  /**
   * Send one request. `expect`: 'none' (no reply), 'reply' (the request's own
   * reply), 'ack' (REPLY_ACK when negotiated, else nothing to wait for).
   * Exchanges go out strictly one after another.
   */
  private rpc(request: number, payload: Buffer, expect: 'none' | 'reply' | 'ack', fds: readonly number[] = []): Promise<Buffer | null> {
    return this.serialize(async (): Promise<Buffer | null> => {
      if (this.closedReason) throw this.closedReason;
      const ack = expect === 'ack' && this.acking;
      const p = expect === 'reply' || ack ? this.expectReply(request) : null;
      try {
        this.sendCtrl(request, ack ? FLAG_NEED_REPLY : 0, payload, fds);
      } catch (err) {
        // Nothing was sent: the waiter just queued can never be answered.
        const w = this.waiters.pop();
        if (w) clearTimeout(w.timer);
        throw err;
      }
      if (!p) return null;
      const m = await p;
      if (ack) {
        VhostUserFrontend.checkAck(request, m);
        return null;
      }
      return m.payload;
    });
  }

  /**
   * Send requests that need no payload back, back to back (NEED_REPLY set
   * when REPLY_ACK was negotiated), then check every REPLY_ACK in order: the
   * first refusal is the error, naming its request. The caller keeps
   * ownership of the fds.
   */
  private ackBatch(msgs: ReadonlyArray<{ request: number; payload?: Buffer; fds?: readonly number[] }>): Promise<void> {
    return this.serialize(async (): Promise<void> => {
      if (this.closedReason) throw this.closedReason;
      const ack = this.acking;
      const replies: [number, Promise<{ payload: Buffer }>][] = [];
      for (const m of msgs) {
        const p = ack ? this.expectReply(m.request) : null;
        // Checked in order below; an earlier failure must not leave these unhandled.
        p?.catch(() => {});
        try {
          this.sendCtrl(m.request, ack ? FLAG_NEED_REPLY : 0, m.payload ?? Buffer.alloc(0), m.fds ?? []);
        } catch (err) {
          // Part of the batch is out and part is not: the reply stream can no
          // longer be matched up, so the device is unusable.
          const e = err instanceof Error ? err : new Error(String(err));
          this.fail(e);
          throw e;
        }
        if (p) replies.push([m.request, p]);
      }
      const sent = this.onBringUpSent;
      this.onBringUpSent = null;
      sent?.();
      for (const [request, p] of replies) VhostUserFrontend.checkAck(request, await p);
    });
  }

  private async getU64(request: number): Promise<bigint> {
    const p = await this.rpc(request, Buffer.alloc(0), 'reply');
    if (!p || p.length !== 8) throw new VhostUserError('BAD_SIZE', `reply to ${requestName(request)} is not a u64`, true);
    return p.readBigUInt64LE(0);
  }

  // ---- bring-up ---------------------------------------------------------------

  private async start(): Promise<void> {
    this.ctrlWatch = watchFd(this.ctrlFd, () => this.onCtrlReadable());
    const offered = await this.getU64(Request.GET_FEATURES);
    const want = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_EVENT_IDX) | bit(VHOST_USER_F_PROTOCOL_FEATURES);
    const features = offered & want;
    if ((features & bit(VIRTIO_F_VERSION_1)) === 0n) {
      throw new VhostUserError('BAD_VALUE', `backend does not offer VIRTIO_F_VERSION_1 (features 0x${offered.toString(16)})`, true);
    }
    let protocol = 0n;
    if (features & bit(VHOST_USER_F_PROTOCOL_FEATURES)) {
      const offeredP = await this.getU64(Request.GET_PROTOCOL_FEATURES);
      let wantP = bit(ProtocolFeature.REPLY_ACK) | bit(ProtocolFeature.BACKEND_REQ) | bit(ProtocolFeature.BACKEND_SEND_FD);
      if (this.window) wantP |= bit(PROTOCOL_F_SHMEM);
      protocol = offeredP & wantP;
      await this.rpc(Request.SET_PROTOCOL_FEATURES, encodeU64(protocol), 'none');
    }
    const eventIdx = (features & bit(VIRTIO_RING_F_EVENT_IDX)) !== 0n;
    const shmem = this.window !== null && (protocol & (bit(PROTOCOL_F_SHMEM) | bit(ProtocolFeature.BACKEND_REQ) | bit(ProtocolFeature.BACKEND_SEND_FD))) ===
      (bit(PROTOCOL_F_SHMEM) | bit(ProtocolFeature.BACKEND_REQ) | bit(ProtocolFeature.BACKEND_SEND_FD));
    // REPLY_ACK takes effect from here on (rpc reads it on each request).
    this.negotiated = { features, protocolFeatures: protocol, eventIdx, shmem };
    for (let q = 0; q < this.queues.length; q++) {
      const old = this.queues[q]!;
      this.queues[q] = new DriverQueue(old.size, old.layout, eventIdx);
    }

    // Everything from here needs no answer but REPLY_ACK: one pipelined batch.
    const batch: { request: number; payload?: Buffer; fds?: readonly number[] }[] = [{ request: Request.SET_OWNER }];
    let theirs = -1;
    try {
      if (protocol & bit(ProtocolFeature.BACKEND_REQ)) {
        const [ours, peer] = socketPair();
        theirs = peer;
        this.backendConn = new VhostUserConnection(ours);
        this.backendWatch = watchFd(ours, () => this.onBackendReadable());
        batch.push({ request: Request.SET_BACKEND_REQ_FD, fds: [theirs] });
      }
      batch.push({ request: Request.SET_FEATURES, payload: encodeU64(features) });
      batch.push({
        request: Request.SET_MEM_TABLE,
        payload: encodeMemTable([{ guest_phys_addr: BigInt(GUEST_PHYS_BASE), memory_size: BigInt(this.mapping.length), userspace_addr: this.mapping.address, mmap_offset: 0n }]),
        fds: [this.memfd],
      });
      const uva = (gpa: number) => this.mapping.address + BigInt(gpa - GUEST_PHYS_BASE);
      for (let q = 0; q < this.queues.length; q++) {
        const queue = this.queues[q]!;
        queue.reset(this.memory);
        const kick = eventfdCreate(0, true);
        this.kickFds.push(kick);
        const call = eventfdCreate(0, true);
        this.callFds.push(call);
        batch.push(
          { request: Request.SET_VRING_NUM, payload: encodeVringState({ index: q, num: queue.size }) },
          { request: Request.SET_VRING_BASE, payload: encodeVringState({ index: q, num: 0 }) },
          {
            request: Request.SET_VRING_ADDR,
            payload: encodeVringAddr({ index: q, flags: 0, descriptor: uva(queue.layout.desc), used: uva(queue.layout.used), available: uva(queue.layout.avail), log: 0n }),
          },
          { request: Request.SET_VRING_CALL, payload: encodeU64(BigInt(q)), fds: [call] },
          { request: Request.SET_VRING_KICK, payload: encodeU64(BigInt(q)), fds: [kick] },
        );
        const w = watchFd(call, () => {
          eventfdDrain(call);
          for (const h of this.callHandlers) h(q);
        });
        if (this.busy === 0) w.unref();
        this.callWatches.push(w);
      }
      if (protocol !== 0n || (features & bit(VHOST_USER_F_PROTOCOL_FEATURES))) {
        for (let q = 0; q < this.queues.length; q++) batch.push({ request: Request.SET_VRING_ENABLE, payload: encodeVringState({ index: q, num: 1 }) });
      }
      await this.ackBatch(batch);
    } finally {
      // The backend holds its own copy once SET_BACKEND_REQ_FD went out.
      if (theirs >= 0) closeSocket(theirs);
    }
  }

  // ---- backend request channel (SHMEM_MAP / SHMEM_UNMAP) ------------------------

  private onBackendReadable(): void {
    const conn = this.backendConn;
    if (!conn) return;
    for (;;) {
      let m: Message | null;
      try {
        m = conn.tryRead();
      } catch (err) {
        // The backend closing its request channel is not fatal for the device
        // (QEMU keeps going); a framing error is, for that channel only.
        const e = err as VhostUserError;
        if (e.code !== 'DISCONNECTED') this.log(`backend request channel: ${e.message}`);
        this.backendWatch?.close();
        this.backendWatch = null;
        conn.close();
        this.backendConn = null;
        return;
      }
      if (m === null) return;
      let status = 0n;
      try {
        status = this.handleBackendRequest(m);
      } finally {
        for (const fd of m.fds) closeFd(fd);
      }
      if (m.flags & FLAG_NEED_REPLY) {
        try {
          conn.reply(m.request, encodeU64(status));
        } catch (err) {
          this.log(`backend request channel: cannot reply: ${(err as Error).message}`);
        }
      }
    }
  }

  /** Returns the REPLY_ACK status: 0 = done, else a positive errno. */
  private handleBackendRequest(m: Message): bigint {
    const E = constants.errno;
    const refuse = (errno: number, why: string): bigint => {
      this.log(`refused backend request ${m.request}: ${why}`);
      return BigInt(errno);
    };
    if (m.request !== BackendRequest.SHMEM_MAP && m.request !== BackendRequest.SHMEM_UNMAP) {
      return refuse(E.ENOSYS, 'not a request this frontend serves');
    }
    if (!this.negotiated.shmem || !this.window) return refuse(E.EOPNOTSUPP, 'no shared memory window was negotiated');
    const req = decodeShmemMap(m.payload);
    if (!req) return refuse(E.EINVAL, `payload of ${m.payload.length} bytes (want 40)`);
    if (req.shmid !== 0) return refuse(E.EINVAL, `shmid ${req.shmid} (only region 0, the DAX window, exists)`);
    const size = BigInt(this.window.size);
    if (req.len === 0n || req.shm_offset >= size || req.len > size - req.shm_offset) {
      return refuse(E.EINVAL, `range ${req.shm_offset}+${req.len} is outside the ${size}-byte window`);
    }
    if (req.shm_offset % BigInt(PAGE) !== 0n || req.len % BigInt(PAGE) !== 0n || req.fd_offset % BigInt(PAGE) !== 0n) {
      return refuse(E.EINVAL, 'offsets and length must be page-aligned');
    }
    const off = Number(req.shm_offset);
    const len = Number(req.len);
    try {
      if (m.request === BackendRequest.SHMEM_MAP) {
        if (m.fds.length !== 1) return refuse(E.EBADF, `SHMEM_MAP carries ${m.fds.length} fds (want 1)`);
        // MAP_FIXED over an earlier mapping replaces it; a partial overlap
        // splits the old one: exactly the virtio-fs window semantics.
        const rw = (req.flags & SHMEM_MAP_F_RW) !== 0n;
        this.window.map(off, len, m.fds[0]!, req.fd_offset, rw);
        this.mappedPages.fill(rw ? 2 : 1, off / PAGE, (off + len) / PAGE);
      } else {
        if (m.fds.length !== 0) return refuse(E.EINVAL, 'SHMEM_UNMAP carries fds');
        this.window.unmap(off, len);
        this.mappedPages.fill(0, off / PAGE, (off + len) / PAGE);
      }
    } catch (err) {
      const errno = (err as { errno?: number }).errno;
      return refuse(typeof errno === 'number' && errno > 0 ? errno : E.EIO, (err as Error).message);
    }
    return 0n;
  }

  /** True when every page of window[offset, +length) holds a file mapping (safe to read). */
  windowMapped(offset: number, length: number): boolean {
    if (!this.window || offset < 0 || length <= 0 || offset + length > this.window.size) return false;
    const last = Math.floor((offset + length - 1) / PAGE);
    for (let p = Math.floor(offset / PAGE); p <= last; p++) if (this.mappedPages[p] === 0) return false;
    return true;
  }

  /** True when every page of window[offset, +length) holds a writable file mapping (safe to store into). */
  windowWritable(offset: number, length: number): boolean {
    if (!this.window || offset < 0 || length <= 0 || offset + length > this.window.size) return false;
    const last = Math.floor((offset + length - 1) / PAGE);
    for (let p = Math.floor(offset / PAGE); p <= last; p++) if (this.mappedPages[p] !== 2) return false;
    return true;
  }

  // ---- data path hooks --------------------------------------------------------

  /**
   * Keep the process alive while something is expected from the backend
   * (true/false calls nest). Idle, the watches are unref'd: a program using
   * the driver exits when its own work is done, like with a socket. The
   * backend request channel stays unref'd: it only matters while requests run.
   */
  hold(on: boolean): void {
    const before = this.busy;
    this.busy = Math.max(0, this.busy + (on ? 1 : -1));
    if ((before === 0) === (this.busy === 0)) return;
    const watches = [this.ctrlWatch, ...this.callWatches];
    for (const w of watches) if (w) (this.busy > 0 ? w.ref() : w.unref());
  }

  /** Tell the backend queue `q` has new buffers. */
  kick(q: number): void {
    const fd = this.kickFds[q];
    if (fd !== undefined && !this.closedReason) eventfdSignal(fd);
  }

  /** Called (from the event loop) whenever queue `q`'s call eventfd fires. */
  onCall(handler: (q: number) => void): void {
    this.callHandlers.push(handler);
  }

  /** Called once when the backend goes away or the frontend is closed. */
  onClose(handler: (reason: Error) => void): void {
    if (this.closedReason) handler(this.closedReason);
    else this.closeHandlers.push(handler);
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  private fail(reason: Error): void {
    if (this.closedReason) return;
    this.closedReason = reason;
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(reason);
    }
    this.teardown();
    for (const h of this.closeHandlers.splice(0)) h(reason);
  }

  private teardown(): void {
    this.ctrlWatch?.close();
    this.ctrlWatch = null;
    this.backendWatch?.close();
    this.backendWatch = null;
    this.backendConn?.close();
    this.backendConn = null;
    for (const w of this.callWatches.splice(0)) w.close();
    for (const fd of this.kickFds.splice(0)) closeFd(fd);
    for (const fd of this.callFds.splice(0)) closeFd(fd);
    closeSocket(this.ctrlFd);
    closeFd(this.memfd);
    // The guest RAM mapping and the window stay mapped: Buffers handed out
    // earlier may still view them, and unmapping under a view would fault.
    // Both are released by close() once the owner says nothing views them.
  }

  /** Disconnect (the backend sees EOF, like a VM going away). */
  close(): void {
    if (!this.closedReason) this.fail(new VhostUserError('DISCONNECTED', 'frontend closed', true));
  }

  /** Release guest RAM and the window. Only when no view over them is in use any more. */
  releaseMemory(): void {
    this.close();
    try {
      unmap(this.mapping);
    } catch { /* already gone */ }
    this.window?.close();
  }
}

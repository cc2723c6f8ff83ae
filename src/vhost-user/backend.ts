// Layer: vhost-user. The backend side of the protocol: validates each request
// and drives a VhostUserDevice. Imports ./message.ts, ./connection.ts,
// ./errors.ts, ./shmem.ts, ./frontend-messages.ts, sys/eventfd.ts (closeFd for
// fds we refuse), sys/unix-socket.ts.
//
// Shape (STYLE 3, rust-vmm vhost): the connection frames messages, this file
// checks syntax and state, a small device interface does the work. Requests
// are handled one at a time, in order; the device may be asynchronous (the
// data plane lives on a worker), and the next message is not read until the
// current one is done, so the frontend sees the order it asked for.
import { closeFd } from '../sys/eventfd.ts';
import { watchReadable, type FdWatch } from '../sys/unix-socket.ts';
import { VhostUserConnection, type Message } from './connection.ts';
import { VhostUserError } from './errors.ts';
import {
  FLAG_NEED_REPLY,
  ProtocolFeature,
  Request,
  SINGLE_REGION_SIZE,
  U64_SIZE,
  VHOST_USER_F_PROTOCOL_FEATURES,
  VRING_ADDR_SIZE,
  VRING_IDX_MASK,
  VRING_NOFD_MASK,
  VRING_STATE_SIZE,
  bit,
  decodeConfig,
  decodeMemTable,
  decodeSingleRegion,
  decodeVringAddr,
  decodeVringState,
  encodeConfig,
  encodeU64,
  encodeVringState,
  requestName,
  type MemoryRegion,
  type VringAddr,
} from './message.ts';
import { PROTOCOL_F_SHMEM } from './frontend-messages.ts';
import { GET_SHMEM_CONFIG, encodeShmemConfig } from './shmem.ts';

/** What a vhost-user device must do; every fd handed over becomes the device's to close. */
export interface VhostUserDevice {
  readonly numQueues: number;
  /** Virtio feature bits offered (the backend adds VHOST_USER_F_PROTOCOL_FEATURES). */
  readonly features: bigint;
  /** Protocol feature bits offered. */
  readonly protocolFeatures: bigint;
  readonly maxMemSlots: number;
  /** Device config space bytes (only asked when CONFIG was offered). */
  config?(): Buffer;
  /** Sizes of the VIRTIO shared memory regions (GET_SHMEM_CONFIG; only asked when SHMEM was offered). */
  shmemRegions?(): number[];
  /** The protocol features the frontend acked (SET_PROTOCOL_FEATURES). */
  setProtocolFeatures?(features: bigint): void;
  setFeatures(features: bigint): Promise<void>;
  setMemTable(regions: MemoryRegion[], fds: number[]): Promise<void>;
  addMemRegion(region: MemoryRegion, fd: number): Promise<void>;
  removeMemRegion(region: MemoryRegion): Promise<void>;
  setVringNum(index: number, num: number): Promise<void>;
  setVringAddr(index: number, addr: VringAddr): Promise<void>;
  setVringBase(index: number, base: number): Promise<void>;
  /** Stops the ring and returns the next avail index it would have taken. */
  getVringBase(index: number): Promise<number>;
  /** fd -1: no fd (polling mode). */
  setVringKick(index: number, fd: number): Promise<void>;
  setVringCall(index: number, fd: number): Promise<void>;
  setVringErr(index: number, fd: number): Promise<void>;
  setVringEnable(index: number, enabled: boolean): Promise<void>;
  setBackendReqFd(fd: number): Promise<void>;
  /** RESET_OWNER / RESET_DEVICE: stop every ring, forget memory and features. */
  reset(): Promise<void>;
}

export type BackendLog = (level: 'error' | 'warn' | 'info' | 'debug', msg: string) => void;

/** Requests whose answer is a reply of their own (REPLY_ACK does not add an ack to these). */
const REPLYING: ReadonlySet<number> = new Set([
  Request.GET_FEATURES,
  Request.GET_PROTOCOL_FEATURES,
  Request.GET_VRING_BASE,
  Request.GET_QUEUE_NUM,
  Request.GET_CONFIG,
  Request.GET_MAX_MEM_SLOTS,
  GET_SHMEM_CONFIG,
]);

export interface ServeResult {
  reason: 'disconnected' | 'protocol-error' | 'closed';
  error?: Error;
  messages: number;
}

export class VhostUserBackend {
  private ackedFeatures = 0n;
  private ackedProtocol = 0n;
  private owned = false;
  messages = 0;

  constructor(private readonly device: VhostUserDevice, private readonly log: BackendLog = () => {}) {}

  private get offeredFeatures(): bigint {
    return this.device.features | bit(VHOST_USER_F_PROTOCOL_FEATURES);
  }

  private protocolNegotiated(f: ProtocolFeature): boolean {
    return (this.ackedProtocol & bit(f)) !== 0n;
  }

  /**
   * Serve `conn` until the peer disconnects, a fatal protocol error, or
   * close() on the returned handle. Reads on readability from the event loop.
   */
  serve(conn: VhostUserConnection): { done: Promise<ServeResult>; close(): void } {
    let resolveDone!: (r: ServeResult) => void;
    const done = new Promise<ServeResult>((r) => (resolveDone = r));
    let finished = false;
    let busy = false;
    let watch: FdWatch | null = null;
    const finish = (r: ServeResult) => {
      if (finished) return;
      finished = true;
      watch?.close();
      conn.close();
      resolveDone(r);
    };
    const pump = async () => {
      if (busy || finished) return;
      busy = true;
      watch?.stop();
      try {
        for (;;) {
          const msg = conn.tryRead();
          if (msg === null) break;
          await this.dispatch(conn, msg);
          if (finished) return;
        }
      } catch (err) {
        if (err instanceof VhostUserError && err.code === 'DISCONNECTED') {
          this.log('info', `frontend disconnected after ${this.messages} messages`);
          finish({ reason: 'disconnected', messages: this.messages });
        } else {
          const msg = (err as Error).message;
          this.log('error', `vhost-user: closing the connection: ${msg}`);
          finish({ reason: 'protocol-error', error: err as Error, messages: this.messages });
        }
        return;
      } finally {
        busy = false;
      }
      watch?.start();
    };
    watch = watchReadable(conn.fd, () => void pump());
    // Anything that arrived before the watch started is read now.
    void pump();
    return { done, close: () => finish({ reason: 'closed', messages: this.messages }) };
  }

  /** Handle one message: run it, then answer (reply, ack, or nothing). Throws fatal errors only. */
  async dispatch(conn: VhostUserConnection, msg: Message): Promise<void> {
    this.messages++;
    const name = requestName(msg.request);
    const needReply = (msg.flags & FLAG_NEED_REPLY) !== 0 && this.protocolNegotiated(ProtocolFeature.REPLY_ACK);
    let reply: Buffer | null = null;
    try {
      reply = await this.handle(msg);
    } catch (err) {
      for (const fd of msg.fds) closeFd(fd);
      msg.fds.length = 0;
      if (!(err instanceof VhostUserError)) {
        // The device failed (mmap refused, worker gone...): a refusal, not a crash.
        err = new VhostUserError('REFUSED', (err as Error).message);
      }
      const e = err as VhostUserError;
      if (e.fatal || REPLYING.has(msg.request)) {
        // The frontend waits for a reply we cannot give: end the connection cleanly.
        throw new VhostUserError(e.code, `${name}: ${e.message}`, true);
      }
      this.log('warn', `vhost-user: refused ${name}: ${e.message}`);
      if (needReply) conn.reply(msg.request, encodeU64(1n));
      return;
    }
    this.log('debug', `vhost-user: ${name} done`);
    if (reply !== null) conn.reply(msg.request, reply);
    else if (needReply) conn.reply(msg.request, encodeU64(0n));
  }

  private size(msg: Message, expected: number): void {
    if (msg.payload.length !== expected) {
      throw new VhostUserError('BAD_SIZE', `payload of ${msg.payload.length} bytes, expected ${expected}`);
    }
  }

  private noFds(msg: Message): void {
    if (msg.fds.length !== 0) throw new VhostUserError('EXTRA_FD', `${msg.fds.length} unexpected fd(s) attached`);
  }

  private index(i: number | bigint): number {
    const n = Number(i);
    if (n >= this.device.numQueues) throw new VhostUserError('BAD_INDEX', `vring ${n} does not exist (we have ${this.device.numQueues})`);
    return n;
  }

  private u64(msg: Message): bigint {
    this.size(msg, U64_SIZE);
    return msg.payload.readBigUInt64LE(0);
  }

  /** Take the one fd a request must carry; the message no longer owns it. */
  private oneFd(msg: Message): number {
    if (msg.fds.length === 0) throw new VhostUserError('MISSING_FD', 'the fd this request needs is missing');
    if (msg.fds.length > 1) throw new VhostUserError('EXTRA_FD', `${msg.fds.length} fds attached, expected 1`);
    return msg.fds.pop()!;
  }

  private async vringFd(msg: Message, set: (i: number, fd: number) => Promise<void>): Promise<null> {
    const v = this.u64(msg);
    const index = this.index(v & VRING_IDX_MASK);
    if ((v & ~(VRING_IDX_MASK | VRING_NOFD_MASK)) !== 0n) throw new VhostUserError('BAD_VALUE', `unknown bits in 0x${v.toString(16)}`);
    if (v & VRING_NOFD_MASK) {
      this.noFds(msg);
      await set(index, -1);
    } else {
      await set(index, this.oneFd(msg));
    }
    return null;
  }

  /** Returns the reply payload, or null for requests without one. */
  private async handle(msg: Message): Promise<Buffer | null> {
    const d = this.device;
    switch (msg.request) {
      case Request.GET_FEATURES:
        this.size(msg, 0);
        this.noFds(msg);
        return encodeU64(this.offeredFeatures);
      case Request.SET_FEATURES: {
        this.noFds(msg);
        const f = this.u64(msg);
        const unknown = f & ~this.offeredFeatures;
        if (unknown !== 0n) throw new VhostUserError('BAD_VALUE', `features 0x${unknown.toString(16)} were never offered`);
        this.ackedFeatures = f;
        await d.setFeatures(f);
        return null;
      }
      case Request.GET_PROTOCOL_FEATURES:
        this.size(msg, 0);
        this.noFds(msg);
        return encodeU64(d.protocolFeatures);
      case Request.SET_PROTOCOL_FEATURES: {
        this.noFds(msg);
        const f = this.u64(msg);
        const unknown = f & ~d.protocolFeatures;
        if (unknown !== 0n) throw new VhostUserError('BAD_VALUE', `protocol features 0x${unknown.toString(16)} were never offered`);
        this.ackedProtocol = f;
        d.setProtocolFeatures?.(f);
        return null;
      }
      case Request.SET_OWNER:
        this.size(msg, 0);
        this.noFds(msg);
        this.owned = true;
        return null;
      case Request.RESET_OWNER:
      case Request.RESET_DEVICE:
        this.size(msg, 0);
        this.noFds(msg);
        this.ackedFeatures = 0n;
        this.owned = msg.request === Request.RESET_DEVICE && this.owned;
        await d.reset();
        return null;
      case Request.GET_QUEUE_NUM:
        this.size(msg, 0);
        this.noFds(msg);
        return encodeU64(BigInt(d.numQueues));
      case Request.GET_MAX_MEM_SLOTS:
        this.size(msg, 0);
        this.noFds(msg);
        return encodeU64(BigInt(d.maxMemSlots));
      case Request.SET_MEM_TABLE: {
        const regions = decodeMemTable(msg.payload);
        if (regions === null) throw new VhostUserError('BAD_SIZE', `memory table of ${msg.payload.length} bytes does not match its region count`);
        if (msg.fds.length !== regions.length) {
          throw new VhostUserError('MISSING_FD', `${regions.length} regions but ${msg.fds.length} fds`);
        }
        const fds = msg.fds.splice(0);
        await d.setMemTable(regions, fds);
        return null;
      }
      case Request.ADD_MEM_REG: {
        if (!this.protocolNegotiated(ProtocolFeature.CONFIGURE_MEM_SLOTS)) throw new VhostUserError('BAD_STATE', 'CONFIGURE_MEM_SLOTS was not negotiated');
        this.size(msg, SINGLE_REGION_SIZE);
        const region = decodeSingleRegion(msg.payload);
        await d.addMemRegion(region, this.oneFd(msg));
        return null;
      }
      case Request.REM_MEM_REG: {
        if (!this.protocolNegotiated(ProtocolFeature.CONFIGURE_MEM_SLOTS)) throw new VhostUserError('BAD_STATE', 'CONFIGURE_MEM_SLOTS was not negotiated');
        this.size(msg, SINGLE_REGION_SIZE);
        // QEMU attaches the region's fd here too; it names nothing we need.
        for (const fd of msg.fds.splice(0)) closeFd(fd);
        await d.removeMemRegion(decodeSingleRegion(msg.payload));
        return null;
      }
      case Request.SET_VRING_NUM: {
        this.noFds(msg);
        this.size(msg, VRING_STATE_SIZE);
        const s = decodeVringState(msg.payload);
        const num = s.num;
        if (num === 0 || num > 32768 || (num & (num - 1)) !== 0) throw new VhostUserError('BAD_VALUE', `queue size ${num} is not a power of two up to 32768`);
        await d.setVringNum(this.index(s.index), num);
        return null;
      }
      case Request.SET_VRING_ADDR: {
        this.noFds(msg);
        this.size(msg, VRING_ADDR_SIZE);
        const a = decodeVringAddr(msg.payload);
        const limit = 1n << 53n;
        if (a.descriptor >= limit || a.used >= limit || a.available >= limit) throw new VhostUserError('BAD_VALUE', 'ring address beyond 2^53');
        await d.setVringAddr(this.index(a.index), a);
        return null;
      }
      case Request.SET_VRING_BASE: {
        this.noFds(msg);
        this.size(msg, VRING_STATE_SIZE);
        const s = decodeVringState(msg.payload);
        if (s.num > 0xffff) throw new VhostUserError('BAD_VALUE', `vring base ${s.num} does not fit 16 bits`);
        await d.setVringBase(this.index(s.index), s.num);
        return null;
      }
      case Request.GET_VRING_BASE: {
        this.noFds(msg);
        this.size(msg, VRING_STATE_SIZE);
        const s = decodeVringState(msg.payload);
        const index = this.index(s.index);
        const base = await d.getVringBase(index);
        return encodeVringState({ index, num: base });
      }
      case Request.SET_VRING_KICK:
        return this.vringFd(msg, async (i, fd) => {
          // Without VHOST_USER_F_PROTOCOL_FEATURES a ring starts enabled;
          // with it, it waits for SET_VRING_ENABLE(1).
          if ((this.ackedFeatures & bit(VHOST_USER_F_PROTOCOL_FEATURES)) === 0n) await d.setVringEnable(i, true);
          await d.setVringKick(i, fd);
        });
      case Request.SET_VRING_CALL:
        return this.vringFd(msg, (i, fd) => d.setVringCall(i, fd));
      case Request.SET_VRING_ERR:
        return this.vringFd(msg, (i, fd) => d.setVringErr(i, fd));
      case Request.SET_VRING_ENABLE: {
        this.noFds(msg);
        this.size(msg, VRING_STATE_SIZE);
        const s = decodeVringState(msg.payload);
        if (s.num > 1) throw new VhostUserError('BAD_VALUE', `SET_VRING_ENABLE with ${s.num}, expected 0 or 1`);
        await d.setVringEnable(this.index(s.index), s.num === 1);
        return null;
      }
      case Request.SET_BACKEND_REQ_FD: {
        if (!this.protocolNegotiated(ProtocolFeature.BACKEND_REQ)) throw new VhostUserError('BAD_STATE', 'BACKEND_REQ was not negotiated');
        this.size(msg, 0);
        await d.setBackendReqFd(this.oneFd(msg));
        return null;
      }
      case Request.GET_CONFIG: {
        this.noFds(msg);
        const c = decodeConfig(msg.payload);
        if (c === null || !d.config || !this.protocolNegotiated(ProtocolFeature.CONFIG)) {
          throw new VhostUserError('BAD_STATE', 'GET_CONFIG without CONFIG negotiated, or malformed');
        }
        const space = d.config();
        if (c.offset > space.length || c.size > space.length - c.offset) throw new VhostUserError('BAD_VALUE', `config range ${c.offset}+${c.size} past ${space.length} bytes`);
        return encodeConfig({ offset: c.offset, size: c.size, flags: c.flags, payload: space.subarray(c.offset, c.offset + c.size) });
      }
      case GET_SHMEM_CONFIG: {
        this.noFds(msg);
        if (!d.shmemRegions || (this.ackedProtocol & bit(PROTOCOL_F_SHMEM)) === 0n) throw new VhostUserError('BAD_STATE', 'GET_SHMEM_CONFIG without SHMEM negotiated');
        return encodeShmemConfig(d.shmemRegions());
      }
      case Request.SET_CONFIG:
        throw new VhostUserError('BAD_STATE', 'the virtio-fs config space is read-only');
      case Request.SET_LOG_BASE:
      case Request.SET_LOG_FD:
        throw new VhostUserError('BAD_STATE', 'dirty-page logging (migration) is not supported; LOG_SHMFD was never offered');
      default:
        throw new VhostUserError('UNKNOWN_REQUEST', `${requestName(msg.request)} is not implemented by this backend`);
    }
  }
}


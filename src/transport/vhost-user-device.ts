// Layer: transport (control plane of the vhost-user-fs device, main thread).
// Listens on a Unix socket (or an inherited listening fd), accepts ONE
// frontend (QEMU), speaks vhost-user with it through vhost-user/backend.ts,
// and forwards ring and memory setup to the data-plane worker
// (vhost-user-device-worker.ts), which owns the FUSE server and the queues.
// Imports vhost-user/, sys/ (sockets, eventfd), fs/backend-spec.ts and
// node: modules; only cli/ imports this file.
//
// Lifecycle: worker builds the backend ('ready') -> listen -> accept one
// frontend -> serve until it disconnects -> worker told to exit -> `done`.
import { MessageChannel, type Worker } from 'node:worker_threads';
import type { BackendSpec } from '../fs/backend-spec.ts';
import { closeFd, eventfdCreate, eventfdSignal } from '../sys/eventfd.ts';
import { acceptUnix, closeSocket, listenUnix, setNonBlocking, unlinkPath, watchReadable, type FdWatch } from '../sys/unix-socket.ts';
import { VhostUserBackend, type ServeResult, type VhostUserDevice } from '../vhost-user/backend.ts';
import { VhostUserConnection } from '../vhost-user/connection.ts';
import { VhostUserError } from '../vhost-user/errors.ts';
import { ProtocolFeature, bit, encodeVirtioFsConfig, type MemoryRegion, type VringAddr } from '../vhost-user/message.ts';
import { PROTOCOL_F_SHMEM } from '../vhost-user/frontend-messages.ts';
import { VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../virtio/ring.ts';
import { startTsWorker } from './ts-worker.ts';
import type { ControlMsg, FromWorker, LogLevel, RegionMsg, ToWorker, VhostWorkerData } from './vhost-user-device-protocol.ts';

export type { LogLevel } from './vhost-user-device-protocol.ts';

export interface VhostUserFsOptions {
  /** Create and listen on this socket path... */
  socketPath?: string;
  /** ...or accept on an inherited listening socket (libvirt's --fd)... */
  listenFd?: number;
  /** ...or serve an already connected socket (tests: one end of a socketpair). */
  connectedFd?: number;
  backend: BackendSpec;
  /** When set, offer the CONFIG protocol feature and serve a config space with this tag. */
  tag?: string;
  /**
   * DAX window bytes (a multiple of 2 MiB): offer protocol feature SHMEM with
   * this window as shared memory region 0 and serve FUSE_SETUPMAPPING by
   * SHMEM_MAP requests on the backend channel. Absent: no window (QEMU 7.2 sees no change).
   */
  daxWindow?: number;
  /**
   * Longest adaptive poll of a request queue after each batch, in µs
   * (default 0 = never poll, always sleep in epoll). The poll window
   * shrinks to nothing while requests come less often than this.
   */
  pollUs?: number;
  /** Request queues besides hiprio (default 1). */
  requestQueues?: number;
  maxWrite?: number;
  logLevel?: LogLevel;
  log?: (level: LogLevel, msg: string) => void;
}

export interface DeviceResult {
  reason: ServeResult['reason'] | 'crashed';
  messages: number;
  requests: number;
  error?: Error;
}

export interface VhostUserFsDevice {
  /** Resolves when a frontend has connected. */
  readonly connected: Promise<void>;
  /** Resolves when serving ended (frontend gone, close(), or a crash). Never rejects. */
  readonly done: Promise<DeviceResult>;
  /** Stop: drop the frontend (or stop listening) and end the worker. */
  close(): void;
}

export class VhostUserDeviceError extends Error {
  override readonly name = 'VhostUserDeviceError';
}

/** Virtio features of our virtio-fs device. */
const DEVICE_FEATURES = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_INDIRECT_DESC) | bit(VIRTIO_RING_F_EVENT_IDX);
/**
 * Protocol features. Never CONFIG unless a tag asks for it: QEMU 7.1-8.0
 * crash when a vhost-user-fs backend offers it.
 */
const PROTOCOL_FEATURES =
  bit(ProtocolFeature.MQ) |
  bit(ProtocolFeature.REPLY_ACK) |
  bit(ProtocolFeature.BACKEND_REQ) |
  bit(ProtocolFeature.RESET_DEVICE) |
  bit(ProtocolFeature.CONFIGURE_MEM_SLOTS);
const MAX_MEM_SLOTS = 32;
/** Default adaptive poll window (µs): off. Measured through the driver on this 2-core machine kind, polling cost CPU and won no throughput (README, serve --help). */
const DEFAULT_POLL_US = 0;
const DAX_WINDOW_ALIGN = 2 * 1024 * 1024;
/** With a DAX window: SHMEM, and file fds on the backend channel. */
const DAX_PROTOCOL_FEATURES = bit(PROTOCOL_F_SHMEM) | bit(ProtocolFeature.BACKEND_SEND_FD);

function toNumber(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new VhostUserError('BAD_VALUE', `${what} 0x${v.toString(16)} is beyond 2^53`);
  return Number(v);
}

function regionMsg(r: MemoryRegion, fd: number): RegionMsg {
  const size = toNumber(r.memory_size, 'region size');
  if (size === 0) throw new VhostUserError('BAD_VALUE', 'empty memory region');
  return {
    gpa: toNumber(r.guest_phys_addr, 'guest address'),
    size,
    uva: toNumber(r.userspace_addr, 'frontend address'),
    mmapOffset: toNumber(r.mmap_offset, 'mmap offset'),
    fd,
  };
}

/** The VhostUserDevice of virtio-fs: each request becomes one message to the worker. */
class FsDevice implements VhostUserDevice {
  readonly numQueues: number;
  readonly features = DEVICE_FEATURES;
  readonly protocolFeatures: bigint;
  readonly maxMemSlots = MAX_MEM_SLOTS;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: number | undefined) => void; reject: (e: Error) => void }>();
  private dead: Error | null = null;
  private backendReqFd = -1;
  private ackedProtocol = 0n;
  readonly config?: () => Buffer;
  readonly shmemRegions?: () => number[];

  constructor(
    private readonly post: (m: ToWorker) => void,
    private readonly controlFd: number,
    private readonly controlFlag: Int32Array,
    requestQueues: number,
    tag: string | undefined,
    daxWindow: number | undefined,
  ) {
    this.numQueues = 1 + requestQueues;
    this.protocolFeatures = PROTOCOL_FEATURES | (tag !== undefined ? bit(ProtocolFeature.CONFIG) : 0n)
      | (daxWindow !== undefined ? DAX_PROTOCOL_FEATURES : 0n);
    if (daxWindow !== undefined) this.shmemRegions = () => [daxWindow];
    if (tag !== undefined) {
      const space = encodeVirtioFsConfig(tag, requestQueues);
      this.config = () => space;
    }
  }

  onAck(m: { id: number; value?: number; error?: string }): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (m.error !== undefined) p.reject(new VhostUserError('REFUSED', m.error));
    else p.resolve(m.value);
  }

  workerGone(err: Error): void {
    this.dead = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  /** Post to the worker, wake it, wait for its ack. fds in the message become the worker's. */
  private call(m: ControlMsg, fds: number[] = []): Promise<number | undefined> {
    if (this.dead) {
      for (const fd of fds) closeFd(fd);
      return Promise.reject(this.dead);
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.post({ ...m, id } as ToWorker);
      // The message is queued before the wakeup: the worker drains the port after reading the eventfd.
      // The flag ends a poll in progress (the worker is not in epoll then).
      Atomics.store(this.controlFlag, 0, 1);
      eventfdSignal(this.controlFd);
    });
  }

  async setFeatures(f: bigint): Promise<void> {
    await this.call({ t: 'features', eventIdx: (f & bit(VIRTIO_RING_F_EVENT_IDX)) !== 0n, indirect: (f & bit(VIRTIO_RING_F_INDIRECT_DESC)) !== 0n });
  }
  async setMemTable(regions: MemoryRegion[], fds: number[]): Promise<void> {
    let msgs: RegionMsg[];
    try {
      msgs = regions.map((r, i) => regionMsg(r, fds[i]!));
    } catch (err) {
      for (const fd of fds) closeFd(fd);
      throw err;
    }
    await this.call({ t: 'mem', regions: msgs }, fds);
  }
  async addMemRegion(region: MemoryRegion, fd: number): Promise<void> {
    let msg: RegionMsg;
    try {
      msg = regionMsg(region, fd);
    } catch (err) {
      closeFd(fd);
      throw err;
    }
    await this.call({ t: 'add-region', region: msg }, [fd]);
  }
  async removeMemRegion(r: MemoryRegion): Promise<void> {
    await this.call({ t: 'remove-region', gpa: toNumber(r.guest_phys_addr, 'guest address'), size: toNumber(r.memory_size, 'region size'), uva: toNumber(r.userspace_addr, 'frontend address') });
  }
  async setVringNum(index: number, num: number): Promise<void> {
    await this.call({ t: 'num', index, num });
  }
  async setVringAddr(index: number, a: VringAddr): Promise<void> {
    await this.call({ t: 'addr', index, desc: Number(a.descriptor), avail: Number(a.available), used: Number(a.used) });
  }
  async setVringBase(index: number, base: number): Promise<void> {
    await this.call({ t: 'base', index, base });
  }
  async getVringBase(index: number): Promise<number> {
    return (await this.call({ t: 'get-base', index })) ?? 0;
  }
  async setVringKick(index: number, fd: number): Promise<void> {
    await this.call({ t: 'kick', index, fd }, fd >= 0 ? [fd] : []);
  }
  async setVringCall(index: number, fd: number): Promise<void> {
    await this.call({ t: 'call', index, fd }, fd >= 0 ? [fd] : []);
  }
  async setVringErr(index: number, fd: number): Promise<void> {
    await this.call({ t: 'err', index, fd }, fd >= 0 ? [fd] : []);
  }
  async setVringEnable(index: number, enabled: boolean): Promise<void> {
    await this.call({ t: 'enable', index, enabled });
  }
  setProtocolFeatures(f: bigint): void {
    this.ackedProtocol = f;
  }
  async setBackendReqFd(fd: number): Promise<void> {
    const dax = DAX_PROTOCOL_FEATURES | bit(ProtocolFeature.REPLY_ACK) | bit(ProtocolFeature.BACKEND_REQ);
    if (this.shmemRegions && (this.ackedProtocol & dax) === dax) {
      // The worker serves SETUPMAPPING: it sends SHMEM_MAP/UNMAP itself (fds are process-wide).
      await this.call({ t: 'backend-req', fd }, [fd]);
      return;
    }
    // Kept for other backend-initiated requests; nothing is sent on it.
    if (this.backendReqFd >= 0) closeFd(this.backendReqFd);
    this.backendReqFd = fd;
  }
  async reset(): Promise<void> {
    await this.call({ t: 'reset' });
  }
  async exit(): Promise<void> {
    await this.call({ t: 'exit' });
  }
  closeOwnFds(): void {
    if (this.backendReqFd >= 0) closeFd(this.backendReqFd);
    this.backendReqFd = -1;
  }
}

export async function startVhostUserFsDevice(opts: VhostUserFsOptions): Promise<VhostUserFsDevice> {
  const log = opts.log ?? (() => {});
  const sources = [opts.socketPath, opts.listenFd, opts.connectedFd].filter((x) => x !== undefined).length;
  if (sources !== 1) throw new VhostUserDeviceError('give exactly one of socketPath, listenFd, connectedFd');
  const requestQueues = opts.requestQueues ?? 1;
  if (!Number.isInteger(requestQueues) || requestQueues < 1 || requestQueues > 64) throw new VhostUserDeviceError(`requestQueues ${requestQueues} is not in 1..64`);
  const dw = opts.daxWindow;
  if (dw !== undefined && (!Number.isSafeInteger(dw) || dw <= 0 || dw % DAX_WINDOW_ALIGN !== 0)) {
    throw new VhostUserDeviceError(`DAX window of ${dw} bytes is not a positive multiple of 2 MiB (the Linux client's range size)`);
  }

  const pollUs = opts.pollUs ?? DEFAULT_POLL_US;
  if (!Number.isInteger(pollUs) || pollUs < 0 || pollUs > 10_000) throw new VhostUserDeviceError(`pollUs ${pollUs} is not in 0..10000`);
  const controlFd = eventfdCreate(0, true);
  const controlFlag = new SharedArrayBuffer(4);
  const { port1, port2 } = new MessageChannel();
  const data: VhostWorkerData = {
    backend: opts.backend,
    numQueues: 1 + requestQueues,
    controlFd,
    controlFlag,
    pollUs,
    port: port2,
    logLevel: opts.logLevel ?? 'warn',
    ...(opts.maxWrite !== undefined ? { maxWrite: opts.maxWrite } : {}),
    ...(opts.daxWindow !== undefined ? { daxWindow: opts.daxWindow } : {}),
  };
  const worker: Worker = startTsWorker(new URL('./vhost-user-device-worker.ts', import.meta.url), data, { transferList: [port2] });
  const device = new FsDevice((m) => port1.postMessage(m), controlFd, new Int32Array(controlFlag), requestQueues, opts.tag, opts.daxWindow);

  let requests = 0;
  let crash: Error | undefined;
  let readyResolve!: () => void;
  let readyReject!: (e: Error) => void;
  const ready = new Promise<void>((res, rej) => {
    readyResolve = res;
    readyReject = rej;
  });
  let workerExited!: () => void;
  const exited = new Promise<void>((r) => (workerExited = r));
  port1.on('message', (m: FromWorker) => {
    switch (m.t) {
      case 'ready':
        readyResolve();
        break;
      case 'ack':
        device.onAck(m);
        break;
      case 'log':
        log(m.level, m.msg);
        break;
      case 'fatal': {
        const err = new Error(m.message);
        if (m.stack) err.stack = m.stack;
        crash ??= err;
        readyReject(err);
        break;
      }
      case 'stopped':
        requests = m.requests;
        break;
    }
  });
  worker.on('error', (err) => {
    crash ??= err;
    readyReject(err);
  });
  worker.on('exit', (code) => {
    const err = crash ?? new Error(`data-plane worker exited (code ${code})`);
    readyReject(err);
    device.workerGone(err);
    port1.close();
    workerExited();
  });

  try {
    await ready;
  } catch (err) {
    await exited;
    closeFd(controlFd);
    throw new VhostUserDeviceError(`cannot start the ${opts.backend.kind} backend: ${(err as Error).message}`);
  }

  // The listening socket: ours (created at socketPath) or inherited.
  let listenFd = -1;
  if (opts.socketPath !== undefined) {
    try {
      listenFd = listenUnix(opts.socketPath);
    } catch (err) {
      await device.exit().catch(() => {});
      await exited;
      closeFd(controlFd);
      throw new VhostUserDeviceError(`cannot listen on ${opts.socketPath}: ${(err as Error).message}`);
    }
  } else if (opts.listenFd !== undefined) {
    listenFd = opts.listenFd;
  }

  let connectedResolve!: () => void;
  const connected = new Promise<void>((r) => (connectedResolve = r));
  let doneResolve!: (r: DeviceResult) => void;
  const done = new Promise<DeviceResult>((r) => (doneResolve = r));
  let listenWatch: FdWatch | null = null;
  let session: { done: Promise<ServeResult>; close(): void } | null = null;
  let ending = false;

  const stopListening = () => {
    listenWatch?.close();
    listenWatch = null;
    if (listenFd >= 0) {
      closeSocket(listenFd);
      listenFd = -1;
      if (opts.socketPath !== undefined) unlinkPath(opts.socketPath);
    }
  };

  const finish = async (r: ServeResult) => {
    if (ending) return;
    ending = true;
    stopListening();
    // Tell the worker to leave its epoll loop, then wait for it to unmap and exit.
    await device.exit().catch(() => {});
    await exited;
    device.closeOwnFds();
    closeFd(controlFd);
    doneResolve({ reason: crash ? 'crashed' : r.reason, messages: r.messages, requests, ...(crash ? { error: crash } : r.error ? { error: r.error } : {}) });
  };

  const serveFd = (fd: number) => {
    const conn = new VhostUserConnection(fd);
    const backend = new VhostUserBackend(device, (level, msg) => log(level, msg));
    session = backend.serve(conn);
    connectedResolve();
    void session.done.then(finish);
  };

  if (opts.connectedFd !== undefined) {
    serveFd(opts.connectedFd);
  } else {
    setNonBlocking(listenFd, true);
    listenWatch = watchReadable(listenFd, () => {
      let fd: number;
      try {
        fd = acceptUnix(listenFd, true);
      } catch (err) {
        log('error', `accept failed: ${(err as Error).message}`);
        return;
      }
      if (fd < 0) return;
      // One frontend per daemon, like virtiofsd: stop listening once it is here.
      stopListening();
      log('info', 'frontend connected');
      serveFd(fd);
    });
  }
  worker.on('exit', () => {
    // A worker that dies mid-session leaves nobody serving the rings: drop the frontend.
    if (!ending) {
      if (session) session.close();
      else void finish({ reason: 'closed', messages: 0 });
    }
  });

  return {
    connected,
    done,
    close() {
      if (session) session.close();
      else void finish({ reason: 'closed', messages: 0 });
    },
  };
}

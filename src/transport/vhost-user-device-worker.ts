// Layer: transport (data plane of the vhost-user-fs device). Runs on ONE
// worker thread that owns the FileSystem, the FuseServer, guest memory
// mappings and every virtqueue (hiprio included). It sleeps in epoll_wait on
// all kick eventfds plus a control eventfd, drains each kicked queue in a
// batch, and signals the call eventfd when the ring's notification rules say
// so. Imports virtio/, fuse/server.ts, fuse/dax.ts, fs/create.ts,
// vhost-user/shmem.ts (DAX map requests), sys/ (mmap, eventfd,
// epoll, unix-socket for fcntl).
//
// Control messages (memory tables, ring setup) arrive on a MessagePort that is
// read synchronously (receiveMessageOnPort) when the control eventfd fires,
// between batches: no request is in flight while memory or a ring changes.
// The one exception, ADD/REM_MEM_REG while a DAX map waits for the frontend's
// ack, keeps removed regions mapped until the batch ends (see `holding`).
import { receiveMessageOnPort, workerData } from 'node:worker_threads';
import { constants } from 'node:os';
import { fstatSync } from 'node:fs';
import { FuseServer, type ReadTarget } from '../fuse/server.ts';
import type { FileSystem } from '../fuse/filesystem.ts';
import { createFileSystem } from '../fs/create.ts';
import { DaxWindow } from '../fuse/dax.ts';
import { ShmemChannel } from '../vhost-user/shmem.ts';
import { ChannelMapper } from './dax-mapper.ts';
import { Chain } from '../virtio/chain.ts';
import { DeviceQueue } from '../virtio/device-queue.ts';
import { QueueError } from '../virtio/errors.ts';
import { GuestMemory, type RegionSpec } from '../virtio/memory.ts';
import { mapFd, unmap, type Mapping } from '../sys/mmap.ts';
import { closeFd, eventfdDrain, eventfdSignal } from '../sys/eventfd.ts';
import { Epoll } from '../sys/epoll.ts';
import { setNonBlocking } from '../sys/unix-socket.ts';
import { LOG_LEVELS, type FromWorker, type LogLevel, type RegionMsg, type ToWorker, type VhostWorkerData } from './vhost-user-device-protocol.ts';

const data = (workerData as { data: VhostWorkerData }).data;
const port = data.port;
const post = (m: FromWorker) => port.postMessage(m);
const threshold = LOG_LEVELS.indexOf(data.logLevel);
function log(level: LogLevel, msg: string): void {
  if (LOG_LEVELS.indexOf(level) <= threshold) post({ t: 'log', level, msg });
}

const CONTROL_TOKEN = 0xffff_ffff;
/** Queue 0 is hiprio (FORGET, INTERRUPT): rare, never polled. */
const HIPRIO = 0;
const FUSE_IN_HEADER_SIZE = 40;
const FUSE_OUT_HEADER_SIZE = 16;
/** fuse_in_header.opcode of FUSE_INIT and FUSE_WRITE. */
const FUSE_INIT = 26;
const FUSE_WRITE = 16;
/** fuse_in_header + fuse_write_in (7.9+): where a WRITE's data starts. */
const WRITE_HEAD = FUSE_IN_HEADER_SIZE + 40;
/** WRITEs at least this long (header included) pass their data as a view of guest memory; smaller ones are cheaper to copy. */
const WRITE_APART_MIN = WRITE_HEAD + 16 * 1024;
/** Interrupt the driver at least this often inside a long batch. */
const NOTIFY_EVERY = 64;
const PAGE = 4096;
/** Requests up to this size get a cached view of reqBuf (headers, names, small writes). */
const SMALL_REQUEST = 4096 + 128;
const EIO = constants.errno.EIO;
/**
 * Kick eventfds are watched edge-triggered: every write to an eventfd is a
 * new edge (the kernel re-queues the epoll item on each wakeup), so a kick is
 * never missed, and we skip one read(2) per wakeup that level-triggered
 * epoll would need to reset the counter. The counter itself just grows; it
 * would take 2^64 kicks to saturate it.
 */
const EPOLLIN_ET = 0x8000_0001;

interface Vring {
  dq: DeviceQueue;
  kickFd: number;
  callFd: number;
  errFd: number;
  enabled: boolean;
  /** Started by SET_VRING_KICK, stopped by GET_VRING_BASE / reset. */
  started: boolean;
  /** A fatal QueueError (hostile ring) stopped it until the frontend sets it up again. */
  broken: boolean;
  complaints: number;
}

/** One frontend region: one mapping, seen as pieces of at most PIECE bytes. */
interface MappedRegion {
  gpa: number;
  size: number;
  specs: RegionSpec[];
  mapping: Mapping;
}

/**
 * Views are cut into pieces (Node typed arrays and koffi views stop at 4 GiB);
 * chains whose buffers cross from one piece into the next are followed
 * across (Chain.push), so the cut is invisible to the driver.
 */
const PIECE = 2 ** 31;

/** FUSE_MAP_ALIGNMENT we announce with a DAX window: host pages (as virtiofsd); Linux maps 2 MiB ranges, multiples of it. */
const DAX_ALIGN_LOG2 = 12;

/** The DAX window's mapper: SHMEM_MAP/UNMAP on whichever backend channel the frontend gave us last. */
const daxMapper = data.daxWindow !== undefined ? new ChannelMapper(data.daxWindow, (msg) => log('info', msg)) : null;
const dax = daxMapper !== null ? new DaxWindow(daxMapper, DAX_ALIGN_LOG2, (msg) => log('warn', msg)) : null;

class DataPlane {
  private readonly epoll = new Epoll(64);
  private readonly vrings: Vring[] = [];
  private regions: MappedRegion[] = [];
  private mem: GuestMemory | null = null;
  /**
   * >0 while a queue is being served. A region that leaves the table then
   * (a REM_MEM_REG handled while a SETUPMAPPING waits for its ack, see
   * controlWhileWaiting) may still hold the request in flight, its reply
   * buffer or the ring itself: it is only taken out of the table for new
   * lookups, and unmapped (from `retired`) once the batch is over.
   */
  private holding = 0;
  private readonly retired: MappedRegion[] = [];
  private eventIdx = false;
  private indirect = false;
  private readonly chain = new Chain(256);
  private readonly reqBuf: Buffer;
  /** The first WRITE_HEAD bytes of a large request, to see whether it is a WRITE. */
  private readonly writeHead = Buffer.alloc(WRITE_HEAD);
  /** reqBuf.subarray(0, n) for small n, made once: most requests are one of a few sizes. */
  private readonly reqViews: (Buffer | undefined)[] = [];
  private readonly errReply = Buffer.alloc(FUSE_OUT_HEADER_SIZE);
  // The request being served, for readTarget (set and cleared around handle()).
  private curMem: GuestMemory | null = null;
  private curChain: Chain | null = null;
  /**
   * Zero-copy READ: the server reads file data straight into the guest's
   * writable buffer after the 16-byte reply header when that part of the
   * chain is one contiguous piece of guest memory (our driver's layout, and a
   * Linux guest's 4 KiB page reads); otherwise null and the server copies.
   * The view lives only inside this handle() call: memory tables change
   * between batches, never during a READ.
   */
  private readonly readTarget: ReadTarget = (size) =>
    this.curChain !== null && this.curMem !== null ? this.curChain.writableView(this.curMem, FUSE_OUT_HEADER_SIZE, size) : null;
  /**
   * Adaptive polling (as QEMU's AioContext poll-max-ns): after draining a
   * request queue, watch its avail idx for up to pollNs before arming the
   * kick and sleeping in epoll. A request that arrives meanwhile is served
   * without a kick from the driver or a wakeup for us (both cost syscalls and
   * scheduler latency, which dominate a queue-depth-1 round trip). pollNs
   * grows while requests keep arriving within maxPollNs of the last batch and
   * shrinks to 0 when they do not, so an idle or slow guest costs no spinning.
   */
  private readonly maxPollNs = data.pollUs * 1000;
  private pollNs = 0;
  /** How long the last, unsuccessful, poll spun (ns); added to the epoll sleep for the grow/shrink decision. */
  private lastSpinNs = 0;
  /** Set (1) by the control plane before it signals controlFd: stop polling, a control message waits. */
  private readonly controlFlag = new Int32Array(data.controlFlag);
  exiting = false;
  /** The spare backend was used: run() returns so the caller can build the next one (async). */
  needSpare = false;
  requests = 0;
  server: FuseServer;

  constructor(
    public fs: FileSystem,
    /** A ready second backend for a new guest session (passthrough); null: reuse `fs` (memory keeps its data). */
    public spare: FileSystem | null,
    private readonly makeServer: (fs: FileSystem) => FuseServer,
  ) {
    this.server = makeServer(fs);
    this.reqBuf = Buffer.alloc(this.server.requestBufferSize);
    for (let i = 0; i < data.numQueues; i++) {
      this.vrings.push({ dq: new DeviceQueue(), kickFd: -1, callFd: -1, errFd: -1, enabled: false, started: false, broken: false, complaints: 0 });
    }
    this.epoll.add(data.controlFd, CONTROL_TOKEN);
  }

  /** Serve until told to exit, or until a new session used the spare backend. */
  run(): void {
    const ep = this.epoll;
    // Kicks that arrived while we were away are still pending in epoll (level
    // triggered); work published without a kick (a restart) is found here.
    for (let i = 0; i < this.vrings.length; i++) this.processQueue(i);
    while (!this.exiting && !this.needSpare) {
      const slept = this.maxPollNs > 0 ? performance.now() : 0;
      const n = ep.wait(-1);
      if (this.maxPollNs > 0) this.adaptPoll((performance.now() - slept) * 1e6 + this.lastSpinNs);
      this.lastSpinNs = 0;
      for (let i = 0; i < n; i++) {
        const token = ep.tokens[i];
        if (token === CONTROL_TOKEN) {
          eventfdDrain(data.controlFd);
          this.drainControl();
        } else {
          const v = this.vrings[token];
          if (v === undefined || v.kickFd < 0) continue;
          // Edge-triggered (EPOLLIN_ET): no counter to reset.
          this.processQueue(token);
        }
      }
    }
  }

  /**
   * The guest sent INIT on a session that is already initialized: its driver
   * was reset (a reboot, a driver reload). Everything it knew is gone, so the
   * FUSE session and the backend's inode and handle tables start over. A VM
   * pause (rings stopped, then resumed) is not a new session and keeps both.
   */
  private newSession(): void {
    log('info', 'the guest started a new FUSE session (INIT again): starting over from a clean backend state');
    const old = this.fs;
    // The old session's mappings name its files: take them out of the window.
    dax?.unmapAll();
    if (this.spare === null) {
      // The memory backend: destroy() drops lookups and handles but keeps the files.
      old.destroy?.();
      this.server.reset();
      return;
    }
    this.fs = this.spare;
    this.spare = null;
    this.needSpare = true;
    this.server = this.makeServer(this.fs);
    try {
      old.destroy?.();
    } catch (err) {
      log('warn', `destroying the previous session's backend failed: ${(err as Error).message}`);
    }
  }

  /** QEMU's rule: block time within the window grows the poll, beyond it shrinks it to nothing. */
  private adaptPoll(blockNs: number): void {
    if (blockNs <= this.pollNs) return;
    if (blockNs > this.maxPollNs) this.pollNs = 0;
    else this.pollNs = Math.min(this.maxPollNs, this.pollNs > 0 ? this.pollNs * 2 : 4000);
  }

  /** Spin up to pollNs for new buffers on dq; true when some arrived (notifications are still off). */
  private poll(dq: DeviceQueue, mem: GuestMemory): boolean {
    const t0 = performance.now();
    const deadline = t0 + this.pollNs / 1e6;
    const flag = this.controlFlag;
    let now = t0;
    do {
      if (Atomics.load(flag, 0) !== 0) break;
      if (dq.pending(mem) !== 0) return true;
      now = performance.now();
    } while (now < deadline);
    this.lastSpinNs = (now - t0) * 1e6;
    return false;
  }

  private complain(index: number, msg: string): void {
    const v = this.vrings[index];
    v.complaints++;
    // A hostile driver must not flood the log: the first few, then every 1000th.
    if (v.complaints <= 10 || v.complaints % 1000 === 0) log('warn', `queue ${index}: ${msg}${v.complaints > 10 ? ` (${v.complaints} so far)` : ''}`);
  }

  /**
   * Serve queue `index` until it is empty. If the memory table changed while
   * a request was served (only possible while a DAX map waits for the
   * frontend), that request is finished and published through the old table,
   * whose mappings are kept until here, and the queue is looked at again
   * through the new one: a ring the new table no longer holds stops the
   * queue (QueueError), never a touch of unmapped memory.
   */
  private processQueue(index: number): void {
    this.holding++;
    try {
      while (this.serveQueue(index));
    } finally {
      if (--this.holding === 0) for (const r of this.retired.splice(0)) unmap(r.mapping);
    }
  }

  /** One pass over the queue with the current table; true when the table changed under it (go again). */
  private serveQueue(index: number): boolean {
    const v = this.vrings[index];
    const mem = this.mem;
    if (!v.started || !v.enabled || v.broken || mem === null) return false;
    let changed = false;
    const dq = v.dq;
    const chain = this.chain;
    let unsignalled = 0;
    try {
      batch: for (;;) {
        dq.disableNotification(mem);
        for (;;) {
          let got: boolean;
          try {
            got = dq.pop(mem, chain);
          } catch (err) {
            if (!(err instanceof QueueError) || err.fatal) throw err;
            this.complain(index, `refused a chain: ${err.message}`);
            // The head was consumed: give it back empty so the driver can reuse it.
            if (err.code !== 'INVALID_HEAD') {
              dq.pushUsed(mem, chain.head, 0);
              unsignalled++;
            }
            continue;
          }
          if (!got) break;
          dq.pushUsed(mem, chain.head, this.serveChain(index, mem, chain));
          if (this.mem !== mem) {
            // The reply went out through the old table (still mapped); stop using it.
            unsignalled++;
            changed = true;
            break batch;
          }
          if (++unsignalled >= NOTIFY_EVERY) {
            if (dq.needsNotify(mem)) this.signal(v);
            unsignalled = 0;
          }
        }
        if (this.pollNs > 0 && index !== HIPRIO) {
          // The driver gets its replies before we poll for its next request.
          if (unsignalled > 0) {
            if (dq.needsNotify(mem)) this.signal(v);
            unsignalled = 0;
          }
          if (this.poll(dq, mem)) continue;
        }
        // Ordered re-check (see DeviceQueue.enableNotification): loop if buffers slipped in.
        if (!dq.enableNotification(mem)) break;
      }
    } catch (err) {
      if (err instanceof QueueError) {
        v.broken = true;
        log('error', `queue ${index} stopped: ${err.message}`);
      } else {
        log('error', `queue ${index}: ${(err as Error).stack ?? err}`);
      }
    }
    if (unsignalled > 0 && dq.needsNotify(mem)) this.signal(v);
    return changed;
  }

  private signal(v: Vring): void {
    if (v.callFd >= 0) eventfdSignal(v.callFd);
  }

  /** Run one request; returns the bytes written into the chain's writable part. */
  private serveChain(index: number, mem: GuestMemory, chain: Chain): number {
    if (chain.readableBytes < FUSE_IN_HEADER_SIZE) {
      this.complain(index, `chain ${chain.head}: ${chain.readableBytes} readable bytes, too short for a FUSE request header`);
      return 0;
    }
    if (chain.readableBytes > this.reqBuf.length) {
      chain.gather(mem, this.reqBuf.subarray(0, FUSE_IN_HEADER_SIZE));
      this.complain(index, `chain ${chain.head}: a ${chain.readableBytes}-byte request is larger than our ${this.reqBuf.length}-byte limit`);
      return this.errorReply(mem, chain, EIO);
    }
    // A large WRITE whose data is one piece of guest memory: copy only the
    // header and fuse_write_in, hand the data to the backend as a view.
    const writeData = chain.readableBytes >= WRITE_APART_MIN ? this.writeDataView(mem, chain) : null;
    // writeDataView left the header and fuse_write_in in writeHead.
    const n = writeData !== null ? this.writeHead.copy(this.reqBuf, 0, 0, WRITE_HEAD) : chain.gather(mem, this.reqBuf);
    this.requests++;
    if (this.reqBuf.readUInt32LE(4) === FUSE_INIT && this.server.negotiated !== null) this.newSession();
    let reply: Buffer | null;
    // DAX copies of files' last pages (dax-mapper.ts) are synced around every request.
    const tails = daxMapper !== null && daxMapper.syncNeeded;
    if (tails) daxMapper.syncTails();
    let direct = 0;
    this.curMem = mem;
    this.curChain = chain;
    try {
      let req = n <= SMALL_REQUEST ? this.reqViews[n] : undefined;
      if (req === undefined) {
        req = this.reqBuf.subarray(0, n);
        if (n <= SMALL_REQUEST) this.reqViews[n] = req;
      }
      reply = this.server.handle(req, this.readTarget, writeData ?? undefined);
      direct = this.server.directBytes;
      if (tails || (daxMapper !== null && daxMapper.syncNeeded)) daxMapper!.syncTails();
    } catch (err) {
      log('error', `FUSE server failed: ${(err as Error).stack ?? err}`);
      return this.errorReply(mem, chain, EIO);
    } finally {
      this.curMem = null;
      this.curChain = null;
    }
    if (reply === null) return 0;
    if (direct > 0) {
      // The payload is already in place after the header (writableView checked the room).
      return chain.scatter(mem, reply, reply.length) + direct;
    }
    if (reply.length > chain.writableBytes) {
      this.complain(index, `chain ${chain.head}: a ${reply.length}-byte reply does not fit ${chain.writableBytes} writable bytes`);
      return this.errorReply(mem, chain, EIO);
    }
    return chain.scatter(mem, reply, reply.length);
  }

  /**
   * The data of a WRITE (7.9+ layout, no extensions) as one view of guest
   * memory, or null when the request is something else or its data is in
   * pieces. Leaves the first WRITE_HEAD bytes in writeHead.
   */
  private writeDataView(mem: GuestMemory, chain: Chain): Buffer | null {
    const h = this.writeHead;
    if (chain.gather(mem, h) !== WRITE_HEAD || h.readUInt32LE(4) !== FUSE_WRITE || h.readUInt16LE(36) !== 0) return null;
    if ((this.server.negotiated?.minor ?? 0) < 9) return null;
    return chain.readableView(mem, WRITE_HEAD, chain.readableBytes - WRITE_HEAD);
  }

  /** fuse_out_header {len 16, error -errno, unique from the request in reqBuf}, if it fits. */
  private errorReply(mem: GuestMemory, chain: Chain, errno: number): number {
    if (chain.writableBytes < FUSE_OUT_HEADER_SIZE) return 0;
    const b = this.errReply;
    b.writeUInt32LE(FUSE_OUT_HEADER_SIZE, 0);
    b.writeInt32LE(-errno, 4);
    this.reqBuf.copy(b, 8, 8, 16); // unique
    return chain.scatter(mem, b, FUSE_OUT_HEADER_SIZE);
  }

  /** Control messages put off while a DAX map request waited (handled in order afterwards). */
  private deferred: ToWorker[] = [];

  /**
   * Inside a SETUPMAPPING, waiting for the frontend's ack: QEMU first adds the
   * new mapping to the guest memory map and waits for our ADD_MEM_REG /
   * REM_MEM_REG ack, so those are handled now (they add or drop a region the
   * request in flight does not use). Anything else waits until the request is
   * done, in order.
   */
  controlWhileWaiting(): void {
    eventfdDrain(data.controlFd);
    Atomics.store(this.controlFlag, 0, 0);
    for (;;) {
      const m = receiveMessageOnPort(port);
      if (m === undefined) return;
      const msg = m.message as ToWorker;
      if (this.deferred.length === 0 && (msg.t === 'add-region' || msg.t === 'remove-region')) this.controlOne(msg);
      else {
        this.deferred.push(msg);
        // The main loop's epoll must see it once this request is done.
        eventfdSignal(data.controlFd);
      }
    }
  }

  private controlOne(msg: ToWorker): void {
    try {
      const value = this.control(msg);
      post({ t: 'ack', id: msg.id, ...(value !== undefined ? { value } : {}) });
    } catch (err) {
      post({ t: 'ack', id: msg.id, error: (err as Error).message });
    }
  }

  private drainControl(): void {
    // Cleared before reading the port: a message posted after this sets it again.
    Atomics.store(this.controlFlag, 0, 0);
    for (const msg of this.deferred.splice(0)) this.controlOne(msg);
    for (;;) {
      const m = receiveMessageOnPort(port);
      if (m === undefined) return;
      const msg = m.message as ToWorker;
      try {
        const value = this.control(msg);
        post({ t: 'ack', id: msg.id, ...(value !== undefined ? { value } : {}) });
      } catch (err) {
        post({ t: 'ack', id: msg.id, error: (err as Error).message });
      }
    }
  }

  private vring(index: number): Vring {
    const v = this.vrings[index];
    if (v === undefined) throw new Error(`vring ${index} does not exist`);
    return v;
  }

  private setFd(v: Vring, which: 'kickFd' | 'callFd' | 'errFd', fd: number, token: number): void {
    const old = v[which];
    if (old >= 0) {
      if (which === 'kickFd') this.epoll.remove(old);
      closeFd(old);
    }
    v[which] = fd;
    if (fd >= 0) {
      // A blocking eventfd would stall the whole data plane on an empty read.
      setNonBlocking(fd, true);
      if (which === 'kickFd') this.epoll.add(fd, token, EPOLLIN_ET);
    }
  }

  private control(m: ToWorker): number | undefined {
    switch (m.t) {
      case 'mem': {
        const mapped: MappedRegion[] = [];
        try {
          for (const r of m.regions) mapped.push(this.mapRegion(r));
        } catch (err) {
          // All or nothing: undo what was mapped, close the fds not reached yet.
          for (const r of mapped) unmap(r.mapping);
          for (const r of m.regions.slice(mapped.length + 1)) closeFd(r.fd);
          throw err;
        }
        this.swapMemory(mapped, this.regions);
        return undefined;
      }
      case 'add-region': {
        const r = this.mapRegion(m.region);
        this.swapMemory([...this.regions, r], []);
        return undefined;
      }
      case 'remove-region': {
        const i = this.regions.findIndex((r) => r.gpa === m.gpa && r.size === m.size);
        if (i < 0) throw new Error(`no region at guest address 0x${m.gpa.toString(16)} of ${m.size} bytes`);
        const gone = this.regions[i];
        this.swapMemory(this.regions.filter((_, k) => k !== i), [gone]);
        return undefined;
      }
      case 'features':
        this.eventIdx = m.eventIdx;
        this.indirect = m.indirect;
        for (const v of this.vrings) {
          v.dq.eventIdx = m.eventIdx;
          v.dq.indirect = m.indirect;
        }
        return undefined;
      case 'num':
        this.vring(m.index).dq.setSize(m.num);
        return undefined;
      case 'addr': {
        const v = this.vring(m.index);
        v.dq.setAddresses({ desc: m.desc, avail: m.avail, used: m.used });
        v.broken = false;
        return undefined;
      }
      case 'base':
        this.vring(m.index).dq.setBase(m.base);
        return undefined;
      case 'get-base': {
        const v = this.vring(m.index);
        v.started = false;
        this.setFd(v, 'kickFd', -1, m.index);
        return v.dq.lastAvailIdx;
      }
      case 'kick': {
        const v = this.vring(m.index);
        this.setFd(v, 'kickFd', m.fd, m.index);
        v.started = true;
        v.broken = false;
        v.dq.eventIdx = this.eventIdx;
        v.dq.indirect = this.indirect;
        // Buffers may already be waiting (a restart): look without a kick.
        this.processQueue(m.index);
        return undefined;
      }
      case 'call':
        this.setFd(this.vring(m.index), 'callFd', m.fd, m.index);
        return undefined;
      case 'err':
        this.setFd(this.vring(m.index), 'errFd', m.fd, m.index);
        return undefined;
      case 'enable': {
        const v = this.vring(m.index);
        v.enabled = m.enabled;
        if (m.enabled) this.processQueue(m.index);
        return undefined;
      }
      case 'backend-req':
        // A new channel (a reconnecting frontend): whatever was mapped through the old one is the frontend's past.
        dax?.forgetAll();
        if (daxMapper) daxMapper.setChannel(new ShmemChannel(m.fd, daxMapper.windowSize, 10_000, 0, () => this.controlWhileWaiting()));
        else closeFd(m.fd);
        log('info', `backend request channel ready${daxMapper ? `: DAX window of ${daxMapper.windowSize} bytes` : ''}`);
        return undefined;
      case 'reset':
        // The frontend drops every shared-memory mapping when the device resets.
        dax?.forgetAll();
        daxMapper?.dropAll();
        this.resetRings();
        this.swapMemory([], this.regions);
        return undefined;
      case 'exit':
        this.exiting = true;
        return undefined;
    }
  }

  private resetRings(): void {
    this.vrings.forEach((v, i) => {
      this.setFd(v, 'kickFd', -1, i);
      this.setFd(v, 'callFd', -1, i);
      this.setFd(v, 'errFd', -1, i);
      v.started = false;
      v.enabled = false;
      v.broken = false;
      v.dq = new DeviceQueue();
    });
    this.eventIdx = false;
    this.indirect = false;
  }

  /** Map one region's fd (then close the fd: the mapping keeps the file). */
  private mapRegion(r: RegionMsg): MappedRegion {
    try {
      if (r.size <= 0 || !Number.isSafeInteger(r.size)) throw new Error(`region of ${r.size} bytes`);
      // Touching a mapping past the end of its file raises SIGBUS, which
      // would kill the daemon: the file must hold the whole region, and be a
      // file (memfd, tmpfs, hugetlbfs), not a device or anything else.
      const st = fstatSync(r.fd);
      if (!st.isFile()) throw new Error(`the fd of region 0x${r.gpa.toString(16)} is not a memory file`);
      if (r.mmapOffset + r.size > st.size) {
        throw new Error(`region 0x${r.gpa.toString(16)}+0x${r.size.toString(16)} at file offset 0x${r.mmapOffset.toString(16)} runs past the end of its ${st.size}-byte file`);
      }
      // mmap needs a page-aligned file offset: map from the page below and skip the difference.
      const skew = r.mmapOffset % PAGE;
      const mapping = mapFd(r.fd, r.size + skew, r.mmapOffset - skew);
      const specs: RegionSpec[] = [];
      try {
        for (let off = 0; off < r.size; off += PIECE) {
          const size = Math.min(PIECE, r.size - off);
          specs.push({ guestPhysAddr: r.gpa + off, userAddr: r.uva + off, size, buffer: mapping.view(skew + off, size) });
        }
      } catch (err) {
        unmap(mapping);
        throw err;
      }
      return { gpa: r.gpa, size: r.size, specs, mapping };
    } finally {
      closeFd(r.fd);
    }
  }

  /** Install a new region table, then unmap the regions that left it. */
  private swapMemory(next: MappedRegion[], gone: MappedRegion[]): void {
    let mem: GuestMemory | null;
    try {
      mem = next.length > 0 ? new GuestMemory(next.flatMap((r) => r.specs)) : null;
    } catch (err) {
      // Keep the old table; drop only what we just mapped.
      for (const r of next) if (!this.regions.includes(r)) unmap(r.mapping);
      throw err;
    }
    this.mem = mem;
    this.regions = next;
    for (const r of gone) {
      if (next.includes(r)) continue;
      if (this.holding > 0) this.retired.push(r);
      else unmap(r.mapping);
    }
    if (mem !== null) log('info', `guest memory: ${next.map((r) => `0x${r.gpa.toString(16)}+0x${r.size.toString(16)}`).join(', ')}`);
  }

  shutdown(): void {
    this.resetRings();
    this.swapMemory([], this.regions);
    this.epoll.close();
    daxMapper?.dropAll();
    daxMapper?.close();
  }
}

try {
  const makeServer = (fs: FileSystem) =>
    new FuseServer(fs, {
      ...(data.maxWrite !== undefined ? { maxWrite: data.maxWrite } : {}),
      log: (level, msg) => log(level, msg),
      ...(dax !== null ? { dax, mapAlignmentLog2: DAX_ALIGN_LOG2 } : {}),
    });
  // The passthrough backend's destroy() is final, so a guest reboot needs a
  // fresh one; build it ahead (creation is async, the serving loop is not).
  const needsSpare = data.backend.kind !== 'memory';
  const fs = await createFileSystem(data.backend);
  const plane = new DataPlane(fs, needsSpare ? await createFileSystem(data.backend) : null, makeServer);
  post({ t: 'ready' });
  for (;;) {
    plane.run();
    if (plane.exiting) break;
    if (plane.needSpare) {
      plane.spare = await createFileSystem(data.backend);
      plane.needSpare = false;
    }
  }
  plane.shutdown();
  for (const f of [plane.fs, plane.spare]) {
    try {
      f?.destroy?.();
    } catch (err) {
      log('warn', `backend destroy failed: ${(err as Error).message}`);
    }
  }
  post({ t: 'stopped', requests: plane.requests });
} catch (err) {
  post({ t: 'fatal', message: (err as Error).message, stack: (err as Error).stack });
}
port.close();

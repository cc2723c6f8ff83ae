// Layer: vhost-user. The BACKEND side of VIRTIO shared memory regions: the
// GET_SHMEM_CONFIG reply (frontend -> backend) and a synchronous client for
// SHMEM_MAP / SHMEM_UNMAP on the backend request channel (backend -> frontend,
// set up by SET_BACKEND_REQ_FD). Imports ./frontend-messages.ts (the shared
// wire structs), ./message.ts and sys/unix-socket.ts.
//
// Why synchronous: the map request is made while the data-plane worker serves
// one FUSE_SETUPMAPPING, whose reply must not go out before the frontend has
// the range mapped. The frontend (QEMU's main loop, our TypeScript frontend's
// event loop) answers promptly, so a blocking sendmsg + poll + recvmsg on the
// channel is the simplest correct thing; a frontend that stays silent for
// `timeoutMs` gets ETIMEDOUT and the channel is given up (a late ack would
// otherwise be taken for the next request's).
import { constants } from 'node:os';
import { closeSocket, pollFd, setNonBlocking, UnixChannel } from '../sys/unix-socket.ts';
import { BackendRequest, SHMEM_MAP_F_RW, SHMEM_MAP_SIZE, encodeShmemMap } from './frontend-messages.ts';
import { FLAG_NEED_REPLY, FLAG_REPLY, HEADER_SIZE, VERSION_MASK, VHOST_USER_VERSION, encodeHeader } from './message.ts';

const E = constants.errno;

/** Frontend -> backend: the sizes of the device's shared memory regions (index = shmid). */
export const GET_SHMEM_CONFIG = 44;
/** u32 nregions, u32 padding, u64 memory_sizes[256]. */
export const SHMEM_CONFIG_MAX_REGIONS = 256;
export const SHMEM_CONFIG_SIZE = 8 + 8 * SHMEM_CONFIG_MAX_REGIONS;

export function encodeShmemConfig(sizes: readonly number[]): Buffer {
  if (sizes.length > SHMEM_CONFIG_MAX_REGIONS) throw new RangeError(`${sizes.length} shared memory regions (at most ${SHMEM_CONFIG_MAX_REGIONS})`);
  const b = Buffer.alloc(SHMEM_CONFIG_SIZE);
  b.writeUInt32LE(sizes.length, 0);
  sizes.forEach((s, i) => b.writeBigUInt64LE(BigInt(s), 8 + 8 * i));
  return b;
}

/** A refused or failed map request; `errno` is what the FUSE reply carries. */
export class ShmemRequestError extends Error {
  override readonly name = 'ShmemRequestError';
  constructor(readonly errno: number, message: string) {
    super(message);
  }
}

const ACK_SIZE = HEADER_SIZE + 8;
const WAIT_SLICE_MS = 2;

/**
 * SHMEM_MAP / SHMEM_UNMAP of region `shmid` over one backend request channel.
 * Owns the channel fd (close() closes it). Needs REPLY_ACK negotiated: every
 * request waits for the frontend's status.
 */
export class ShmemChannel {
  private readonly ch: UnixChannel;
  private readonly msg = Buffer.alloc(HEADER_SIZE + SHMEM_MAP_SIZE);
  private readonly ack = Buffer.alloc(ACK_SIZE);
  private broken: string | null = null;
  requests = 0;

  constructor(
    readonly fd: number,
    readonly windowSize: number,
    private readonly timeoutMs = 10_000,
    private readonly shmid = 0,
    /**
     * Run while waiting for an ack (every few ms): QEMU adds each new mapping
     * to the guest's memory map and sends us ADD_MEM_REG / REM_MEM_REG, waiting
     * for OUR ack before it acks the map; the caller must keep serving those.
     */
    private readonly whileWaiting: () => void = () => {},
  ) {
    this.ch = new UnixChannel(fd);
    // Ours alone (the frontend closed its copy of this end): blocking I/O.
    setNonBlocking(fd, false);
  }

  get ready(): boolean {
    return this.broken === null;
  }

  map(fd: number, fdOffset: number, shmOffset: number, len: number, writable: boolean): void {
    this.request(BackendRequest.SHMEM_MAP, fdOffset, shmOffset, len, writable ? SHMEM_MAP_F_RW : 0n, [fd]);
  }

  unmap(shmOffset: number, len: number): void {
    this.request(BackendRequest.SHMEM_UNMAP, 0, shmOffset, len, 0n, []);
  }

  close(): void {
    if (this.broken !== 'closed') closeSocket(this.fd);
    this.broken = 'closed';
  }

  private fail(why: string): never {
    this.broken = why;
    throw new ShmemRequestError(E.EIO, `backend request channel: ${why}`);
  }

  private request(request: number, fdOffset: number, shmOffset: number, len: number, flags: bigint, fds: number[]): void {
    if (this.broken !== null) throw new ShmemRequestError(E.ENOSYS, `backend request channel unusable: ${this.broken}`);
    const m = this.msg;
    encodeHeader({ request, flags: VHOST_USER_VERSION | FLAG_NEED_REPLY, size: SHMEM_MAP_SIZE }, m);
    encodeShmemMap({ shmid: this.shmid, fd_offset: BigInt(fdOffset), shm_offset: BigInt(shmOffset), len: BigInt(len), flags }).copy(m, HEADER_SIZE);
    this.requests++;
    let sent: number;
    try {
      // The channel is a blocking socket (QEMU's socketpair end): sendmsg
      // completes or fails; a 52-byte message never partly sends.
      sent = this.ch.send(m, 0, m.length, fds);
    } catch (err) {
      this.fail(`sending: ${(err as Error).message}`);
    }
    if (sent !== m.length) this.fail(`sent ${sent} of ${m.length} bytes`);
    let got = 0;
    const junk: number[] = [];
    const t0 = Date.now();
    while (got < ACK_SIZE) {
      if (!pollFd(this.fd, WAIT_SLICE_MS)) {
        this.whileWaiting();
        if (Date.now() - t0 < this.timeoutMs) continue;
        const e = new ShmemRequestError(E.ETIMEDOUT, `frontend did not acknowledge ${request === BackendRequest.SHMEM_MAP ? 'SHMEM_MAP' : 'SHMEM_UNMAP'} within ${this.timeoutMs} ms`);
        this.broken = e.message;
        throw e;
      }
      const n = this.ch.recv(this.ack, got, ACK_SIZE - got, junk);
      for (const fd of junk.splice(0)) closeSocket(fd);
      if (n === 0) this.fail('the frontend closed it');
      if (n < 0) continue;
      got += n;
    }
    const rq = this.ack.readUInt32LE(0);
    const fl = this.ack.readUInt32LE(4);
    const size = this.ack.readUInt32LE(8);
    if (rq !== request || (fl & FLAG_REPLY) === 0 || (fl & VERSION_MASK) !== VHOST_USER_VERSION || size !== 8) {
      this.fail(`bad acknowledgement (request ${rq}, flags 0x${fl.toString(16)}, size ${size})`);
    }
    const status = this.ack.readBigUInt64LE(HEADER_SIZE);
    if (status !== 0n) {
      // Our frontend answers an errno; QEMU answers 1 for any failure.
      const errno = status > 1n && status < 4096n ? Number(status) : E.EIO;
      throw new ShmemRequestError(errno, `frontend refused ${request === BackendRequest.SHMEM_MAP ? 'SHMEM_MAP' : 'SHMEM_UNMAP'} 0x${shmOffset.toString(16)}+0x${len.toString(16)} (status ${status})`);
    }
  }
}

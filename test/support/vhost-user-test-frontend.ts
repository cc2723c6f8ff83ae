// Test support: a vhost-user FRONTEND (the QEMU side) built from the spec's
// raw byte layouts (docs/interop/vhost-user.rst), deliberately not from
// src/vhost-user/message.ts, so a layout bug cannot hide on both ends. It can
// send well-formed and hostile messages over a real Unix socket with fds.
import { connectUnix, pollFd, UnixChannel, closeSocket } from '../../src/sys/unix-socket.ts';
import { closeFd } from '../../src/sys/eventfd.ts';

// Request numbers from the spec.
export const R = {
  GET_FEATURES: 1, SET_FEATURES: 2, SET_OWNER: 3, RESET_OWNER: 4, SET_MEM_TABLE: 5, SET_LOG_BASE: 6,
  SET_VRING_NUM: 8, SET_VRING_ADDR: 9, SET_VRING_BASE: 10, GET_VRING_BASE: 11, SET_VRING_KICK: 12,
  SET_VRING_CALL: 13, SET_VRING_ERR: 14, GET_PROTOCOL_FEATURES: 15, SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17, SET_VRING_ENABLE: 18, SET_BACKEND_REQ_FD: 21, GET_CONFIG: 24, RESET_DEVICE: 34,
  GET_MAX_MEM_SLOTS: 36, ADD_MEM_REG: 37, REM_MEM_REG: 38,
} as const;
export const NEED_REPLY = 0x8;
export const REPLY_ACK_BIT = 3n;

export class TestFrontend {
  readonly ch: UnixChannel;
  constructor(readonly fd: number) {
    this.ch = new UnixChannel(fd);
  }

  static connect(path: string): TestFrontend {
    return new TestFrontend(connectUnix(path));
  }

  /** Raw bytes, exactly as given (hostile tests cut and corrupt them). */
  sendRaw(b: Buffer, fds: number[] = []): void {
    let off = 0;
    let f = fds;
    while (off < b.length) {
      const n = this.ch.send(b, off, b.length - off, f);
      if (n < 0) throw new Error('send would block');
      off += n;
      f = [];
    }
  }

  /** header {u32 request, u32 flags (version 1 | extra), u32 size} + payload. */
  send(request: number, payload: Buffer = Buffer.alloc(0), opts: { flags?: number; fds?: number[]; version?: number } = {}): void {
    const b = Buffer.alloc(12 + payload.length);
    b.writeUInt32LE(request, 0);
    b.writeUInt32LE((opts.version ?? 1) | (opts.flags ?? 0), 4);
    b.writeUInt32LE(payload.length, 8);
    payload.copy(b, 12);
    this.sendRaw(b, opts.fds ?? []);
  }

  /** Read one reply; throws on timeout or EOF. */
  recv(timeoutMs = 30_000): { request: number; flags: number; payload: Buffer } {
    const head = this.readExactly(12, timeoutMs);
    const size = head.readUInt32LE(8);
    const payload = size > 0 ? this.readExactly(size, timeoutMs) : Buffer.alloc(0);
    return { request: head.readUInt32LE(0), flags: head.readUInt32LE(4), payload };
  }

  private readExactly(n: number, timeoutMs: number): Buffer {
    const b = Buffer.alloc(n);
    let off = 0;
    while (off < n) {
      if (!pollFd(this.fd, timeoutMs)) throw new Error(`no reply within ${timeoutMs} ms`);
      const fds: number[] = [];
      const got = this.ch.recv(b, off, n - off, fds);
      for (const fd of fds) closeFd(fd);
      if (got === 0) throw new Error('EOF: the backend closed the connection');
      if (got > 0) off += got;
    }
    return b;
  }

  /** True when the backend has closed its end (EOF within timeoutMs). */
  closedByPeer(timeoutMs = 30_000): boolean {
    if (!pollFd(this.fd, timeoutMs)) return false;
    const b = Buffer.alloc(64);
    const n = this.ch.recv(b, 0, 64, []);
    return n === 0;
  }

  u64(request: number, v: bigint, opts: { flags?: number; fds?: number[] } = {}): void {
    const p = Buffer.alloc(8);
    p.writeBigUInt64LE(v);
    this.send(request, p, opts);
  }

  getU64(request: number): bigint {
    this.send(request);
    const r = this.recv();
    if (r.request !== request || r.payload.length !== 8) throw new Error(`bad reply to ${request}: ${JSON.stringify(r)}`);
    return r.payload.readBigUInt64LE(0);
  }

  /** Reply-ack of the last NEED_REPLY request: 0 = success. */
  ack(request: number): bigint {
    const r = this.recv();
    if (r.request !== request || (r.flags & 0x4) === 0 || r.payload.length !== 8) throw new Error(`bad ack to ${request}: ${JSON.stringify(r)}`);
    return r.payload.readBigUInt64LE(0);
  }

  vringState(request: number, index: number, num: number, flags = 0): void {
    const p = Buffer.alloc(8);
    p.writeUInt32LE(index, 0);
    p.writeUInt32LE(num, 4);
    this.send(request, p, { flags });
  }

  /** struct vhost_vring_addr: index, flags, desc, used, avail, log. */
  vringAddr(index: number, desc: number, used: number, avail: number, flags = 0): void {
    const p = Buffer.alloc(40);
    p.writeUInt32LE(index, 0);
    p.writeBigUInt64LE(BigInt(desc), 8);
    p.writeBigUInt64LE(BigInt(used), 16);
    p.writeBigUInt64LE(BigInt(avail), 24);
    this.send(R.SET_VRING_ADDR, p, { flags });
  }

  /** SET_MEM_TABLE with one region per entry: {gpa, size, uva, offset}. */
  memTable(regions: { gpa: number; size: number; uva: number; offset: number }[], fds: number[], flags = 0): void {
    const p = Buffer.alloc(8 + 32 * regions.length);
    p.writeUInt32LE(regions.length, 0);
    regions.forEach((r, i) => {
      const o = 8 + 32 * i;
      p.writeBigUInt64LE(BigInt(r.gpa), o);
      p.writeBigUInt64LE(BigInt(r.size), o + 8);
      p.writeBigUInt64LE(BigInt(r.uva), o + 16);
      p.writeBigUInt64LE(BigInt(r.offset), o + 24);
    });
    this.send(R.SET_MEM_TABLE, p, { flags, fds });
  }

  close(): void {
    closeSocket(this.fd);
  }
}

/** A FUSE_INIT request (fuse_in_header 40 bytes + fuse_init_in 64 bytes) written from fuse.h offsets. */
export function fuseInitRequest(unique: bigint): Buffer {
  const b = Buffer.alloc(104);
  b.writeUInt32LE(104, 0); // len
  b.writeUInt32LE(26, 4); // opcode FUSE_INIT
  b.writeBigUInt64LE(unique, 8);
  b.writeBigUInt64LE(0n, 16); // nodeid
  b.writeUInt32LE(7, 40); // major
  b.writeUInt32LE(31, 44); // minor
  b.writeUInt32LE(0x20000, 48); // max_readahead
  b.writeUInt32LE(0, 52); // flags
  return b;
}

// Layer: sys. AF_UNIX stream sockets with SCM_RIGHTS fd passing (Node's net
// module cannot pass fds). Imports ./ffi.ts, ./errors.ts and node: built-ins.
import { constants } from 'node:os';
import { lstatSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { koffi, libc, lastErrno } from './ffi.ts';
import { SysError } from './errors.ts';

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0x800;
const SOCK_CLOEXEC = 0x80000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_NOSIGNAL = 0x4000;
const MSG_CMSG_CLOEXEC = 0x40000000;
const MSG_CTRUNC = 0x8;
const POLLIN = 0x1;
const POLLOUT = 0x4;

/** Most fds one message may carry (vhost-user: 8 memory regions). */
export const MAX_FDS = 32;

const socketFn = libc.func('int socket(int domain, int type, int protocol)');
const socketpairFn = libc.func('int socketpair(int domain, int type, int protocol, void *sv)');
const bindFn = libc.func('int bind(int fd, const void *addr, uint32_t len)');
const connectFn = libc.func('int connect(int fd, const void *addr, uint32_t len)');
const listenFn = libc.func('int listen(int fd, int backlog)');
const accept4Fn = libc.func('int accept4(int fd, void *addr, void *len, int flags)');
const sendmsgFn = libc.func('intptr_t sendmsg(int fd, const void *msg, int flags)');
const recvmsgFn = libc.func('intptr_t recvmsg(int fd, void *msg, int flags)');
const pollFn = libc.func('int poll(void *fds, uint64_t nfds, int timeout)');
const fcntlFn = libc.func('int fcntl(int fd, int cmd, int arg)');
const closeFn = libc.func('int close(int fd)');
const unlinkFn = libc.func('int unlink(const char *path)');
const renameFn = libc.func('int rename(const char *from, const char *to)');

const EINTR = constants.errno.EINTR;
const EAGAIN = constants.errno.EAGAIN;

function sockaddrUn(path: string): Buffer {
  const p = Buffer.from(path);
  if (p.length >= 108) throw new SysError(constants.errno.ENAMETOOLONG, 'bind', `socket path too long: ${path}`);
  const sa = Buffer.alloc(110);
  sa.writeUInt16LE(AF_UNIX, 0);
  p.copy(sa, 2);
  return sa;
}

/**
 * A listening AF_UNIX stream socket at `path`. A socket file already there
 * (a stale one from an earlier run) is replaced; anything else there is
 * refused with EEXIST rather than destroyed.
 *
 * The path appears only once the socket is listening: bind() creates the file
 * before listen() makes it accept, and a frontend polling for the file (QEMU,
 * libvirt, tests) would get ECONNREFUSED in between. So we bind to a
 * temporary name in the same directory, listen, and rename() it onto `path`
 * (atomic; it also replaces a stale socket in one step).
 */
export function listenUnix(path: string, backlog = 1): number {
  const sa = sockaddrUn(path);
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (st !== undefined && !st.isSocket()) throw new SysError(constants.errno.EEXIST, 'bind', `${path} exists and is not a socket`);
  const fd = socketFn(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) throw new SysError(lastErrno(), 'socket');
  const dir = dirname(path);
  let tmp: string | null = null;
  for (let attempt = 0; ; attempt++) {
    const name = `${dir}/.vu${process.pid.toString(36)}${randomBytes(4).toString('hex')}`;
    if (Buffer.byteLength(name) >= 108) break; // no room for a temporary name: bind in place (below)
    const tsa = sockaddrUn(name);
    // SAFETY: tsa is a 110-byte sockaddr_un alive for the call.
    if ((bindFn(fd, tsa, tsa.length) as number) === 0) { tmp = name; break; }
    const e = lastErrno();
    if (e === constants.errno.EADDRINUSE && attempt < 8) continue;
    closeFn(fd);
    throw new SysError(e, 'bind', name);
  }
  if (tmp === null) {
    // A path within a few bytes of the sockaddr_un limit: the old way, with a short window before listen().
    unlinkFn(path);
    // SAFETY: sa is a 110-byte sockaddr_un alive for the call.
    if ((bindFn(fd, sa, sa.length) as number) !== 0) { const e = lastErrno(); closeFn(fd); throw new SysError(e, 'bind', path); }
  }
  if ((listenFn(fd, backlog) as number) !== 0) {
    const e = lastErrno();
    closeFn(fd);
    unlinkFn(tmp ?? path);
    throw new SysError(e, 'listen', path);
  }
  if (tmp !== null && (renameFn(tmp, path) as number) !== 0) {
    const e = lastErrno();
    closeFn(fd);
    unlinkFn(tmp);
    throw new SysError(e, 'rename', `${tmp} -> ${path}`);
  }
  return fd;
}

/** A connected AF_UNIX stream socket to `path` (blocking). */
export function connectUnix(path: string): number {
  const fd = socketFn(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) throw new SysError(lastErrno(), 'socket');
  const sa = sockaddrUn(path);
  // SAFETY: sa is a sockaddr_un alive for the call.
  if ((connectFn(fd, sa, sa.length) as number) !== 0) { const e = lastErrno(); closeFn(fd); throw new SysError(e, 'connect', path); }
  return fd;
}

/** accept4 with CLOEXEC; returns -1 when nothing is pending on a non-blocking listener. */
export function acceptUnix(listenFd: number, nonBlocking = false): number {
  for (;;) {
    // SAFETY: NULL addr/len: we do not want the peer address.
    const fd = accept4Fn(listenFd, null, null, SOCK_CLOEXEC | (nonBlocking ? SOCK_NONBLOCK : 0)) as number;
    if (fd >= 0) return fd;
    const e = lastErrno();
    if (e === EINTR) continue;
    if (e === EAGAIN) return -1;
    throw new SysError(e, 'accept4');
  }
}

/** A connected pair (tests: a frontend and a backend in one process). */
export function socketPair(): [number, number] {
  const sv = Buffer.alloc(8);
  // SAFETY: sv holds two ints, alive for the call.
  if ((socketpairFn(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) as number) !== 0) throw new SysError(lastErrno(), 'socketpair');
  return [sv.readInt32LE(0), sv.readInt32LE(4)];
}

const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0x800;

export function setNonBlocking(fd: number, on: boolean): void {
  const fl = fcntlFn(fd, F_GETFL, 0) as number;
  if (fl < 0) throw new SysError(lastErrno(), 'fcntl(F_GETFL)');
  if ((fcntlFn(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) as number) < 0) throw new SysError(lastErrno(), 'fcntl(F_SETFL)');
}

/** poll(2) one fd for readability (or writability); true when ready, false on timeout. */
export function pollFd(fd: number, timeoutMs: number, writable = false): boolean {
  const pfd = Buffer.alloc(8);
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(writable ? POLLOUT : POLLIN, 4);
  for (;;) {
    // SAFETY: pfd is one struct pollfd, alive for the call.
    const n = pollFn(pfd, 1n, timeoutMs) as number;
    if (n >= 0) return n > 0;
    const e = lastErrno();
    if (e !== EINTR) throw new SysError(e, 'poll');
  }
}

// struct msghdr (x86_64): name 8, namelen 4+4pad, iov 8, iovlen 8, control 8, controllen 8, flags 4+4pad = 56.
// struct iovec: base 8, len 8. struct cmsghdr: len 8, level 4, type 4, data.
const MSGHDR_SIZE = 56;
const CMSG_HDR = 16;
const CONTROL_SIZE = CMSG_HDR + 4 * MAX_FDS;

/**
 * Reusable send/receive state for one socket. Keeps its msghdr/iovec/control
 * buffers so each call allocates only the returned fd array.
 */
export class UnixChannel {
  private readonly msg = Buffer.alloc(MSGHDR_SIZE);
  private readonly iov = Buffer.alloc(16);
  private readonly control = Buffer.alloc(CONTROL_SIZE);
  private readonly msgAddr = koffi.address(this.msg);
  private readonly iovAddr = koffi.address(this.iov);
  private readonly controlAddr = koffi.address(this.control);

  constructor(readonly fd: number) {}

  private prepare(data: Buffer, offset: number, length: number, controlLen: number): void {
    if (offset < 0 || length < 0 || offset + length > data.length) throw new RangeError('iovec outside buffer');
    // SAFETY: the addresses written here are of Buffers held by this object
    // (msg, iov, control) or by the caller (data) for the duration of the call.
    this.iov.writeBigUInt64LE(koffi.address(data) + BigInt(offset), 0);
    this.iov.writeBigUInt64LE(BigInt(length), 8);
    this.msg.fill(0);
    this.msg.writeBigUInt64LE(this.iovAddr, 16);
    this.msg.writeBigUInt64LE(1n, 24);
    this.msg.writeBigUInt64LE(controlLen > 0 ? this.controlAddr : 0n, 32);
    this.msg.writeBigUInt64LE(BigInt(controlLen), 40);
  }

  /**
   * recvmsg into data[offset, offset+length). Returns the byte count (0 = peer
   * closed, -1 = would block) and pushes received fds onto `fds`. A truncated
   * control message (more fds than MAX_FDS) throws after closing what arrived.
   */
  recv(data: Buffer, offset: number, length: number, fds: number[]): number {
    this.control.fill(0);
    this.prepare(data, offset, length, CONTROL_SIZE);
    let n: number;
    for (;;) {
      // SAFETY: msg points at iov/control/data buffers kept alive across the call.
      n = recvmsgFn(this.fd, this.msgAddr, MSG_CMSG_CLOEXEC) as number;
      if (n >= 0) break;
      const e = lastErrno();
      if (e === EINTR) continue;
      if (e === EAGAIN) return -1;
      throw new SysError(e, 'recvmsg');
    }
    const controlLen = Number(this.msg.readBigUInt64LE(40));
    const flags = this.msg.readInt32LE(48);
    let off = 0;
    while (off + CMSG_HDR <= controlLen) {
      const len = Number(this.control.readBigUInt64LE(off));
      const level = this.control.readInt32LE(off + 8);
      const type = this.control.readInt32LE(off + 12);
      if (len < CMSG_HDR || off + len > controlLen) break;
      if (level === SOL_SOCKET && type === SCM_RIGHTS) {
        for (let p = off + CMSG_HDR; p + 4 <= off + len; p += 4) fds.push(this.control.readInt32LE(p));
      }
      off += (len + 7) & ~7;
    }
    if (flags & MSG_CTRUNC) {
      for (const fd of fds) closeFn(fd);
      fds.length = 0;
      throw new SysError(constants.errno.EMSGSIZE, 'recvmsg', 'too many fds in one message (control data truncated)');
    }
    return n;
  }

  /** sendmsg data[offset, offset+length) with `fds` as SCM_RIGHTS. Returns bytes sent, -1 would block. */
  send(data: Buffer, offset: number, length: number, fds: readonly number[] = []): number {
    if (fds.length > MAX_FDS) throw new RangeError(`at most ${MAX_FDS} fds per message`);
    let controlLen = 0;
    if (fds.length > 0) {
      const len = CMSG_HDR + 4 * fds.length;
      this.control.fill(0);
      this.control.writeBigUInt64LE(BigInt(len), 0);
      this.control.writeInt32LE(SOL_SOCKET, 8);
      this.control.writeInt32LE(SCM_RIGHTS, 12);
      fds.forEach((fd, i) => this.control.writeInt32LE(fd, CMSG_HDR + 4 * i));
      controlLen = (len + 7) & ~7;
    }
    this.prepare(data, offset, length, controlLen);
    for (;;) {
      // SAFETY: msg points at iov/control/data buffers kept alive across the call.
      const n = sendmsgFn(this.fd, this.msgAddr, MSG_NOSIGNAL) as number;
      if (n >= 0) return n;
      const e = lastErrno();
      if (e === EINTR) continue;
      if (e === EAGAIN) return -1;
      throw new SysError(e, 'sendmsg');
    }
  }
}

export function closeSocket(fd: number): void {
  if (fd >= 0) closeFn(fd);
}

export function unlinkPath(path: string): void {
  unlinkFn(path);
}

/** A libuv watch on an fd's readability (the event loop stays free). */
export interface FdWatch {
  stop(): void;
  start(): void;
  close(): void;
}

/**
 * Calls `onEvent` from the event loop whenever `fd` is readable (or hung up).
 * Uses koffi.node.poll, i.e. a uv_poll_t: the fd should be non-blocking.
 */
export function watchReadable(fd: number, onEvent: (ev: { readable: boolean; disconnect: boolean }) => void): FdWatch {
  const cb = (ev: { readable: boolean; writable: boolean; disconnect: boolean }) => onEvent(ev);
  const h = koffi.node.poll(fd, { readable: true, writable: false, disconnect: true }, cb);
  return {
    stop: () => h.stop(),
    start: () => h.start({ readable: true, writable: false, disconnect: true }, cb),
    close: () => h.close(),
  };
}

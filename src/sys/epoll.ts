// Layer: sys. epoll(7) for the data-plane worker; imports ./ffi.ts, ./errors.ts.
// struct epoll_event is packed on x86_64: u32 events, u64 data (12 bytes).
import { constants } from 'node:os';
import { libc, lastErrno } from './ffi.ts';
import { SysError } from './errors.ts';

export const EPOLLIN = 0x001;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
const EPOLL_CLOEXEC = 0x80000;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
const EVENT_SIZE = 12;

const createFn = libc.func('int epoll_create1(int flags)');
const ctlFn = libc.func('int epoll_ctl(int epfd, int op, int fd, void *event)');
const waitFn = libc.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)');
const closeFn = libc.func('int close(int fd)');

/** An epoll set keyed by a caller-chosen u32 token per fd. Not thread-safe: one owner. */
export class Epoll {
  readonly fd: number;
  private readonly ev = Buffer.alloc(EVENT_SIZE);
  private readonly out: Buffer;
  /** Tokens and event masks of the last wait(), valid up to the count it returned. */
  readonly tokens: Uint32Array;
  readonly events: Uint32Array;

  constructor(readonly maxEvents = 64) {
    const fd = createFn(EPOLL_CLOEXEC) as number;
    if (fd < 0) throw new SysError(lastErrno(), 'epoll_create1');
    this.fd = fd;
    this.out = Buffer.alloc(EVENT_SIZE * maxEvents);
    this.tokens = new Uint32Array(maxEvents);
    this.events = new Uint32Array(maxEvents);
  }

  private ctl(op: number, fd: number, events: number, token: number, name: string): void {
    this.ev.writeUInt32LE(events, 0);
    this.ev.writeUInt32LE(token >>> 0, 4);
    this.ev.writeUInt32LE(0, 8);
    // SAFETY: ev is a 12-byte Buffer alive for the call (kernel copies it).
    if ((ctlFn(this.fd, op, fd, this.ev) as number) !== 0) throw new SysError(lastErrno(), name);
  }

  add(fd: number, token: number, events = EPOLLIN): void { this.ctl(EPOLL_CTL_ADD, fd, events, token, 'epoll_ctl(ADD)'); }
  modify(fd: number, token: number, events = EPOLLIN): void { this.ctl(EPOLL_CTL_MOD, fd, events, token, 'epoll_ctl(MOD)'); }
  remove(fd: number): void { this.ctl(EPOLL_CTL_DEL, fd, 0, 0, 'epoll_ctl(DEL)'); }

  /** Block up to timeoutMs (-1 = forever). Returns the count; read tokens[i]/events[i]. EINTR returns 0. */
  wait(timeoutMs: number): number {
    // SAFETY: out holds maxEvents packed epoll_event entries, alive for the call.
    const n = waitFn(this.fd, this.out, this.maxEvents, timeoutMs) as number;
    if (n < 0) {
      const e = lastErrno();
      if (e === constants.errno.EINTR) return 0;
      throw new SysError(e, 'epoll_wait');
    }
    for (let i = 0; i < n; i++) {
      this.events[i] = this.out.readUInt32LE(i * EVENT_SIZE);
      this.tokens[i] = this.out.readUInt32LE(i * EVENT_SIZE + 4);
    }
    return n;
  }

  close(): void { closeFn(this.fd); }
}

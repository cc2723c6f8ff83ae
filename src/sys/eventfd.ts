// Layer: sys. eventfd(2) and plain fd read/write/close of 8-byte counters; imports ./ffi.ts, ./errors.ts.
import { constants } from 'node:os';
import { libc, lastErrno } from './ffi.ts';
import { SysError } from './errors.ts';

export const EFD_CLOEXEC = 0x80000;
export const EFD_NONBLOCK = 0x800;

const eventfdFn = libc.func('int eventfd(unsigned int initval, int flags)');
const readFn = libc.func('intptr_t read(int fd, void *buf, size_t count)');
const writeFn = libc.func('intptr_t write(int fd, const void *buf, size_t count)');
const closeFn = libc.func('int close(int fd)');

const EAGAIN = constants.errno.EAGAIN;
const EINTR = constants.errno.EINTR;

// One scratch counter per thread (module instances are per worker), so the
// signal/drain paths allocate nothing.
const one = Buffer.alloc(8);
one.writeBigUInt64LE(1n);
const scratch = Buffer.alloc(8);

/** A new eventfd; non-blocking unless told otherwise. */
export function eventfdCreate(initval = 0, nonBlocking = true): number {
  const fd = eventfdFn(initval, EFD_CLOEXEC | (nonBlocking ? EFD_NONBLOCK : 0)) as number;
  if (fd < 0) throw new SysError(lastErrno(), 'eventfd');
  return fd;
}

/** Add 1 to the counter (wakes a waiter). EAGAIN (counter saturated) is ignored: the waiter is already due. */
export function eventfdSignal(fd: number): void {
  for (;;) {
    // SAFETY: `one` is an 8-byte Buffer alive for the call.
    const n = writeFn(fd, one, 8) as number;
    if (n === 8) return;
    const e = lastErrno();
    if (e === EINTR) continue;
    if (e === EAGAIN) return;
    throw new SysError(e, 'write(eventfd)');
  }
}

/** Read and reset the counter; returns 0 when it was already 0 (non-blocking fd). */
export function eventfdDrain(fd: number): number {
  for (;;) {
    // SAFETY: `scratch` is an 8-byte Buffer alive for the call.
    const n = readFn(fd, scratch, 8) as number;
    if (n === 8) return Number(scratch.readBigUInt64LE(0));
    const e = lastErrno();
    if (e === EINTR) continue;
    if (e === EAGAIN) return 0;
    throw new SysError(e, 'read(eventfd)');
  }
}

/** close(2); errors other than EINTR are reported. */
export function closeFd(fd: number): void {
  if (fd < 0) return;
  if ((closeFn(fd) as number) !== 0) {
    const e = lastErrno();
    if (e !== EINTR) throw new SysError(e, 'close');
  }
}

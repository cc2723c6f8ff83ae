// Layer: sys. fcntl(F_GETFL): the access mode an open fd was opened with
// (DAX: a writable mapping needs a file opened for writing). Imports ./ffi.ts, ./errors.ts.
import { libc, lastErrno } from './ffi.ts';
import { SysError } from './errors.ts';

const F_GETFL = 3;
const fcntlFn = libc.func('int fcntl(int fd, int cmd, int arg)');

/** The fd's status flags (O_ACCMODE bits, O_APPEND...). */
export function fdStatusFlags(fd: number): number {
  const r = fcntlFn(fd, F_GETFL, 0) as number;
  if (r < 0) throw new SysError(lastErrno(), 'fcntl(F_GETFL)');
  return r;
}

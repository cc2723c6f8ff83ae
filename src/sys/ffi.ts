// Layer: sys (the only layer that touches libc). This file alone imports koffi;
// every other sys/ module declares its functions through `libc` from here.
import koffi from 'koffi';

export { koffi };

/** The C library of this process, loaded once. */
export const libc = koffi.load('libc.so.6');

/** errno of the calling thread, read right after a failed call. */
export function lastErrno(): number {
  return koffi.errno();
}

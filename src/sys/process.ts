// Layer: sys (libc through ffi.ts). Leaving the process when Node cannot:
// process.exit() waits for worker threads to stop, and a worker blocked in
// read(2) on /dev/fuse never stops, so an abort must end the process from libc.
import { libc } from './ffi.ts';

const exitFn = libc.func('void _exit(int status)');

/** _exit(2): ends every thread now. No exit handlers run and stdio is not flushed. */
export function exitNow(code: number): never {
  exitFn(code);
  throw new Error('unreachable: _exit returned');
}

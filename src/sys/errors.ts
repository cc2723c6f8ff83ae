// Layer: sys. A failed libc call becomes a SysError carrying errno and the call's name.
import { constants } from 'node:os';

const errnoNames = new Map<number, string>(
  Object.entries(constants.errno).map(([name, value]) => [value as number, name]),
);

export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

/**
 * Carries no stack trace: ENOENT from a lookup or ENODATA from getxattr are
 * answers on the hot path, not bugs, and capturing a stack costs ~15 us under
 * tsx (more than the syscall). errno + syscall name say where it came from.
 */
export class SysError extends Error {
  override readonly name = 'SysError';
  constructor(readonly errno: number, readonly syscall: string, detail?: string) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(`${syscall} failed: ${errnoName(errno)}${detail ? ` (${detail})` : ''}`);
    Error.stackTraceLimit = limit;
  }
}

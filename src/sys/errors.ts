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

  /**
   * The same error without running Error's constructor, which costs ~3 us even
   * without a stack (a plain object: ~0.4 us). For errno answers on the hot
   * path (sys/ wrappers use it). instanceof, errno, syscall, name and message
   * are as usual; there is no `stack`.
   */
  static quick(errno: number, syscall: string): SysError {
    const e = Object.create(SysError.prototype) as { -readonly [K in keyof SysError]: SysError[K] };
    e.errno = errno;
    e.syscall = syscall;
    e.name = 'SysError';
    e.message = `${syscall} failed: ${errnoName(errno)}`;
    return e as SysError;
  }
}

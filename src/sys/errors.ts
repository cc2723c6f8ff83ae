// Layer: sys. A failed libc call becomes a SysError carrying errno and the call's name.
import { constants } from 'node:os';

const errnoNames = new Map<number, string>(
  Object.entries(constants.errno).map(([name, value]) => [value as number, name]),
);

export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

export class SysError extends Error {
  override readonly name = 'SysError';
  constructor(readonly errno: number, readonly syscall: string, detail?: string) {
    super(`${syscall} failed: ${errnoName(errno)}${detail ? ` (${detail})` : ''}`);
  }
}

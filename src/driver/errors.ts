// Layer: driver. Errors the guest-side driver raises, shaped like Node's fs
// errors (`code` 'ENOENT', `errno`, `syscall`, `path`) so code written for
// node:fs/promises handles them unchanged. Imports nothing outside node:os.
import { constants } from 'node:os';

const NAMES = new Map<number, string>(Object.entries(constants.errno).map(([k, v]) => [v as number, k]));

export function errnoName(errno: number): string {
  return NAMES.get(errno) ?? `E${errno}`;
}

/** A failed call. `errno` is positive (as in FsError/SysError); `code` is its name. */
export class DriverError extends Error {
  override readonly name = 'DriverError';
  readonly errno: number;
  constructor(
    readonly code: string,
    message: string,
    readonly syscall?: string,
    readonly path?: string,
  ) {
    super(`${code}: ${message}${syscall ? `, ${syscall}` : ''}${path !== undefined ? ` '${path}'` : ''}`);
    this.errno = (constants.errno as Record<string, number>)[code] ?? 0;
  }

  static fromErrno(errno: number, syscall: string, path?: string): DriverError {
    const code = errnoName(errno);
    return new DriverError(code, `${code} from the virtio-fs backend`, syscall, path);
  }
}

// Layer: fuse (pure). Two tiers of errors, as in virtiofsd:
// - FsError: a file-system op failed; the server answers -errno.
// - ProtocolError: the message itself is broken; the request is dropped (or the
//   connection closed), never answered with an errno made up for it.
import { constants } from 'node:os';

const E = constants.errno;

export class FsError extends Error {
  override readonly name = 'FsError';
  constructor(readonly errno: number, message?: string) {
    super(message ?? `file-system error ${errno}`);
  }
}

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** Anything carrying a positive numeric errno (FsError, sys/ SysError). */
export function errnoOf(err: unknown): number | undefined {
  if (err && typeof err === 'object' && 'errno' in err) {
    const n = (err as { errno: unknown }).errno;
    if (typeof n === 'number' && n > 0) return n;
  }
  return undefined;
}

export const enoent = (m?: string) => new FsError(E.ENOENT, m);
export const ebadf = (m?: string) => new FsError(E.EBADF, m);
export const einval = (m?: string) => new FsError(E.EINVAL, m);
export const enosys = (m?: string) => new FsError(E.ENOSYS, m);
export const eexist = (m?: string) => new FsError(E.EEXIST, m);
export const enotdir = (m?: string) => new FsError(E.ENOTDIR, m);
export const eisdir = (m?: string) => new FsError(E.EISDIR, m);
export const enotempty = (m?: string) => new FsError(E.ENOTEMPTY, m);
export const eacces = (m?: string) => new FsError(E.EACCES, m);
export const eperm = (m?: string) => new FsError(E.EPERM, m);
export const erofs = (m?: string) => new FsError(E.EROFS, m);
export const enametoolong = (m?: string) => new FsError(E.ENAMETOOLONG, m);
export const enodata = (m?: string) => new FsError(E.ENODATA, m);
export const erange = (m?: string) => new FsError(E.ERANGE, m);
export const eio = (m?: string) => new FsError(E.EIO, m);

// Layer: sys (libc through ffi.ts). mount(2) and umount2(2) for the /dev/fuse
// transport. Imports only ./ffi.ts and ./errors.ts.
import { libc, lastErrno } from './ffi.ts';
import { SysError } from './errors.ts';

// <sys/mount.h>
export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MNT_FORCE = 0x1;
export const MNT_DETACH = 0x2;
export const UMOUNT_NOFOLLOW = 0x8;

const mountFn = libc.func(
  'int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)',
);
const umount2Fn = libc.func('int umount2(const char *target, int flags)');

/** mount(2). `data` is the fs-specific option string (for fuse: "fd=N,rootmode=..."). */
export function mount(source: string, target: string, fstype: string, flags: number, data: string): void {
  // SAFETY: koffi copies each JS string into a NUL-terminated temporary that
  // lives for the duration of the call; the kernel copies them before returning.
  const rc = mountFn(source, target, fstype, flags, data) as number;
  if (rc !== 0) throw new SysError(lastErrno(), 'mount', target);
}

/** umount2(2). flags: MNT_DETACH, MNT_FORCE, UMOUNT_NOFOLLOW. */
export function umount2(target: string, flags: number): void {
  // SAFETY: as for mount: a temporary C string valid for the call.
  const rc = umount2Fn(target, flags) as number;
  if (rc !== 0) throw new SysError(lastErrno(), 'umount2', target);
}

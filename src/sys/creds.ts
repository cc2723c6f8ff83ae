// Layer: sys. Per-thread credentials, so a root daemon creates files as the
// FUSE caller. Imports only ./ffi.ts and ./errors.ts.
//
// Linux keeps fsuid/fsgid, supplementary groups (when changed with the raw
// syscall) and, after unshare(CLONE_FS), the umask per thread. glibc's
// setgroups()/setuid() would broadcast to every thread, so the raw syscall is
// used where only the data-plane thread must change.
import { arch } from 'node:process';
import { SysError } from './errors.ts';
import { lastErrno, libc } from './ffi.ts';

const setfsuidFn = libc.func('int setfsuid(uint32_t uid)');
const setfsgidFn = libc.func('int setfsgid(uint32_t gid)');
const unshareFn = libc.func('int unshare(int flags)');
const umaskFn = libc.func('uint32_t umask(uint32_t mask)');
const geteuidFn = libc.func('uint32_t geteuid()');
const getegidFn = libc.func('uint32_t getegid()');
const syscallFn = libc.func('long syscall(long nr, ...)');

const CLONE_FS = 0x200;
// SYS_setgroups differs per architecture (asm/unistd_64.h vs the generic table).
const SYS_SETGROUPS: number | undefined = ({ x64: 116, arm64: 159, riscv64: 159, loong64: 159 } as Record<string, number>)[arch];

export interface ThreadCredsState {
  /** True when the thread can switch fs ids (the daemon runs as root). */
  canSwitch: boolean;
  euid: number;
  egid: number;
}

let prepared: ThreadCredsState | undefined;

/**
 * Makes the calling thread fit to create files on behalf of others. Idempotent
 * per thread (module state is per isolate, and an isolate runs on one thread):
 * - unshare(CLONE_FS) then umask(0): the kernel already applied the caller's
 *   umask (FUSE sends it masked unless FUSE_DONT_MASK), so ours must not bite
 *   again; only this thread's umask changes.
 * - drop every supplementary group of this thread (raw setgroups(0, NULL)): a
 *   caller's new file must never be setgid to a group the daemon happens to be
 *   in (CVE-2022-0358). Only done when running as root.
 */
export function prepareThread(): ThreadCredsState {
  if (prepared) return prepared;
  const euid: number = geteuidFn();
  const egid: number = getegidFn();
  if (unshareFn(CLONE_FS) < 0) throw new SysError(lastErrno(), 'unshare');
  umaskFn(0);
  const canSwitch = euid === 0;
  if (canSwitch) {
    if (SYS_SETGROUPS === undefined) throw new Error(`creds: no setgroups syscall number for ${arch}`);
    // SAFETY: setgroups(0, NULL) reads no memory.
    if (syscallFn(SYS_SETGROUPS, 'size_t', 0, 'void *', null) < 0) throw new SysError(lastErrno(), 'setgroups');
  }
  prepared = { canSwitch, euid, egid };
  return prepared;
}

/**
 * Runs `fn` with this thread's fsuid/fsgid set to uid/gid, restoring the
 * daemon's ids afterwards even when fn throws. A no-op switch when the ids are
 * already the daemon's, or when the daemon is not root (then files belong to
 * the daemon: nothing else is possible unprivileged).
 */
export function withFsCreds<T>(uid: number, gid: number, fn: () => T): T {
  const st = prepared ?? prepareThread();
  if (!st.canSwitch || (uid === st.euid && gid === st.egid)) return fn();
  // Group first: setfsgid needs CAP_SETGID, which setfsuid to a non-root uid
  // keeps (only the file-system capabilities drop with fsuid != 0).
  setfsgidFn(gid);
  setfsuidFn(uid);
  try {
    return fn();
  } finally {
    setfsuidFn(st.euid);
    setfsgidFn(st.egid);
  }
}

/** The current fsuid/fsgid of this thread (setfsuid(-1) changes nothing and returns the current id). */
export function currentFsIds(): { fsuid: number; fsgid: number } {
  return { fsuid: setfsuidFn(0xffffffff), fsgid: setfsgidFn(0xffffffff) };
}

/** The umask of this thread (read by setting and restoring it). */
export function threadUmask(): number {
  const old: number = umaskFn(0);
  umaskFn(old);
  return old;
}

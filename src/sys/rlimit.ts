// Layer: sys. The open-file limit (RLIMIT_NOFILE): read it and raise it.
// Imports only ./ffi.ts, ./errors.ts and node built-ins.
//
// Why raise it: the passthrough backend holds one O_PATH fd per inode the
// client knows (bounded by an LRU, see fs/passthrough/inode-store.ts). With
// the usual hard limit of a few thousand, a directory of 10,000 files walked
// in order misses that LRU on every entry (a reopen by file handle plus an
// eviction: four syscalls instead of none). QEMU's C virtiofsd raises the
// limit at start for the same reason (its default: about a million fds).
import { readFileSync } from 'node:fs';
import { SysError } from './errors.ts';
import { lastErrno, libc } from './ffi.ts';

const getrlimitFn = libc.func('int getrlimit(int resource, void *rlim)');
const setrlimitFn = libc.func('int setrlimit(int resource, const void *rlim)');

const RLIMIT_NOFILE = 7; // the same on every Linux architecture
const INFINITY = 0xffffffffffffffffn;

export interface Limit {
  soft: number;
  hard: number;
}

function toNumber(v: bigint): number {
  return v >= 0x7fffffffn ? 0x7fffffff : Number(v);
}

/** RLIMIT_NOFILE of this process (soft and hard, clamped to 2^31-1). */
export function openFileLimits(): Limit {
  const b = Buffer.alloc(16);
  // SAFETY: struct rlimit is two 64-bit words (16 bytes).
  if (getrlimitFn(RLIMIT_NOFILE, b) < 0) throw new SysError(lastErrno(), 'getrlimit');
  const soft = b.readBigUInt64LE(0);
  const hard = b.readBigUInt64LE(8);
  return { soft: soft === INFINITY ? 0x7fffffff : toNumber(soft), hard: hard === INFINITY ? 0x7fffffff : toNumber(hard) };
}

function set(soft: number, hard: number): boolean {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(soft), 0);
  b.writeBigUInt64LE(BigInt(hard), 8);
  // SAFETY: struct rlimit is two 64-bit words (16 bytes).
  return setrlimitFn(RLIMIT_NOFILE, b) === 0;
}

/** fs.nr_open: the ceiling of any RLIMIT_NOFILE (1048576 unless tuned). */
function nrOpen(): number {
  try {
    const n = Number(readFileSync('/proc/sys/fs/nr_open', 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : 1048576;
  } catch {
    return 1048576;
  }
}

/**
 * Raises the soft RLIMIT_NOFILE to `want` (capped at fs.nr_open) when it is
 * lower: with CAP_SYS_RESOURCE the hard limit is raised too, otherwise the
 * soft limit goes as far as the hard one allows. Never lowers anything.
 * Returns the soft limit in force afterwards.
 */
export function raiseOpenFileLimit(want: number): number {
  const cur = openFileLimits();
  const target = Math.min(want, nrOpen());
  if (cur.soft >= target) return cur.soft;
  if (set(target, Math.max(target, cur.hard))) return target;
  // Unprivileged (EPERM): up to the hard limit only.
  if (cur.hard > cur.soft && set(Math.min(target, cur.hard), cur.hard)) return Math.min(target, cur.hard);
  return cur.soft;
}

/**
 * Sets the soft RLIMIT_NOFILE (at most the hard one; lowering needs no
 * privilege). For tests that run a backend out of fds. Returns the old soft limit.
 */
export function setOpenFileSoftLimit(soft: number): number {
  const cur = openFileLimits();
  if (!set(Math.min(soft, cur.hard), cur.hard)) throw new SysError(lastErrno(), 'setrlimit');
  return cur.soft;
}

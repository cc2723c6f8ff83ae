// Layer: fuse (pure: Buffer only; imports nothing but ./errors.ts). The FUSE
// wire ABI of /usr/include/linux/fuse.h, protocol 7.38: opcodes, notification
// codes, every flag, and every struct as a machine-checkable layout table
// (STRUCTS) from which the per-struct decodeX/encodeX functions are derived.
//
// Naming follows the header so code greps against it: opcodes keep their spec
// spelling without the FUSE_ prefix (Opcode.LOOKUP), flags keep it whole
// (FUSE_ASYNC_READ, FATTR_MODE), structs lose the `fuse_` prefix and become
// CamelCase (fuse_in_header -> InHeader, IN_HEADER_SIZE, decodeInHeader,
// encodeInHeader) and field names stay verbatim (nodeid, unique, entry_valid_nsec).
//
// Number representation:
// - u16/u32/i32 fields are numbers.
// - u64/i64 fields are numbers read as lo + hi * 2^32: exact below 2^53, which
//   covers every node id, file handle, offset and size this stack hands out.
//   Writers take any integer in [-2^63, 2^64) and store its two's complement.
// - Fields whose full 64 bits are opaque identity are bigint ('b64' in the
//   table): unique, lock_owner, lk owner, poll kh, notify_unique. Hot paths in
//   the server never decode these (it copies `unique` as raw bytes).
// - INIT flags are bigint constants over the 64-bit flags | flags2 << 32 space;
//   they are only combined at INIT time, never per request.
//
// Decoders check bounds and throw ProtocolError('SHORT_BUFFER') on a short
// buffer; nothing else can escape them. Encoders return the offset just past
// the struct. Reserved fields (padding, dummy, unused, spare...) are optional
// when encoding and written as zero.
import { ProtocolError } from './errors.ts';

/** FUSE_KERNEL_VERSION / FUSE_KERNEL_MINOR_VERSION of the header we speak. */
export const FUSE_KERNEL_VERSION = 7;
export const FUSE_KERNEL_MINOR_VERSION = 38;
export const FUSE_ROOT_ID = 1;
/** The /dev/fuse read buffer must be at least this large. */
export const FUSE_MIN_READ_BUFFER = 8192;

// Older minors use shorter structs (the header's FUSE_COMPAT_* sizes).
export const FUSE_COMPAT_ENTRY_OUT_SIZE = 120; // minor < 9
export const FUSE_COMPAT_ATTR_OUT_SIZE = 96; // minor < 9
export const FUSE_COMPAT_MKNOD_IN_SIZE = 8; // minor < 12
export const FUSE_COMPAT_WRITE_IN_SIZE = 24; // minor < 9
export const FUSE_COMPAT_STATFS_SIZE = 48; // minor < 4
export const FUSE_COMPAT_SETXATTR_IN_SIZE = 8; // without FUSE_SETXATTR_EXT
export const FUSE_COMPAT_INIT_OUT_SIZE = 8; // minor < 5
export const FUSE_COMPAT_22_INIT_OUT_SIZE = 24; // minor < 23
export const CUSE_INIT_INFO_MAX = 4096;
export const FUSE_IOCTL_MAX_IOV = 256;
/** PAGE_SIZE / sizeof(struct fuse_removemapping_one) on 4 KiB-page hosts. */
export const FUSE_REMOVEMAPPING_MAX_ENTRY = 4096 / 16;
export const FUSE_DEV_IOC_MAGIC = 229;
/** _IOR(229, 0, uint32_t) */
export const FUSE_DEV_IOC_CLONE = 0x8004e500;

/** enum fuse_opcode (7.38), spec spellings without the FUSE_ prefix. */
export enum Opcode {
  LOOKUP = 1,
  FORGET = 2, // no reply
  GETATTR = 3,
  SETATTR = 4,
  READLINK = 5,
  SYMLINK = 6,
  MKNOD = 8,
  MKDIR = 9,
  UNLINK = 10,
  RMDIR = 11,
  RENAME = 12,
  LINK = 13,
  OPEN = 14,
  READ = 15,
  WRITE = 16,
  STATFS = 17,
  RELEASE = 18,
  FSYNC = 20,
  SETXATTR = 21,
  GETXATTR = 22,
  LISTXATTR = 23,
  REMOVEXATTR = 24,
  FLUSH = 25,
  INIT = 26,
  OPENDIR = 27,
  READDIR = 28,
  RELEASEDIR = 29,
  FSYNCDIR = 30,
  GETLK = 31,
  SETLK = 32,
  SETLKW = 33,
  ACCESS = 34,
  CREATE = 35,
  INTERRUPT = 36, // no reply
  BMAP = 37,
  DESTROY = 38,
  IOCTL = 39,
  POLL = 40,
  NOTIFY_REPLY = 41, // no reply
  BATCH_FORGET = 42, // no reply
  FALLOCATE = 43,
  READDIRPLUS = 44,
  RENAME2 = 45,
  LSEEK = 46,
  COPY_FILE_RANGE = 47,
  SETUPMAPPING = 48,
  REMOVEMAPPING = 49,
  SYNCFS = 50,
  TMPFILE = 51,
  /** Not in the 7.38 header: 7.39 added it. Newer kernels may send it; we answer ENOSYS. */
  STATX = 52,
  CUSE_INIT = 4096,
  /** Reserved opcodes: a byte-swapped INIT/CUSE_INIT betrays a peer of the other endianness. */
  CUSE_INIT_BSWAP_RESERVED = 1048576,
  INIT_BSWAP_RESERVED = 436207616,
}

/** "LOOKUP" for 1, or "opcode 99" for a number we do not know (for logs). */
export function opcodeName(opcode: number): string {
  const n = (Opcode as unknown as Record<number, string | undefined>)[opcode];
  return n ?? `opcode ${opcode}`;
}

/** enum fuse_notify_code: the `error` field of an unsolicited (unique 0) message. */
export enum NotifyCode {
  POLL = 1,
  INVAL_INODE = 2,
  INVAL_ENTRY = 3,
  STORE = 4,
  RETRIEVE = 5,
  DELETE = 6,
}
export const FUSE_NOTIFY_CODE_MAX = 7;

/** enum fuse_ext_type: types 0..31 are reserved for fuse_secctx_header. */
export const FUSE_MAX_NR_SECCTX = 31;

// INIT flags (fuse_init_in/out.flags, and flags2 shifted up by 32 when
// FUSE_INIT_EXT is set). bigint: the space is 64 bits wide.
export const FUSE_ASYNC_READ = 1n << 0n;
export const FUSE_POSIX_LOCKS = 1n << 1n;
export const FUSE_FILE_OPS = 1n << 2n;
export const FUSE_ATOMIC_O_TRUNC = 1n << 3n;
export const FUSE_EXPORT_SUPPORT = 1n << 4n;
export const FUSE_BIG_WRITES = 1n << 5n;
export const FUSE_DONT_MASK = 1n << 6n;
export const FUSE_SPLICE_WRITE = 1n << 7n;
export const FUSE_SPLICE_MOVE = 1n << 8n;
export const FUSE_SPLICE_READ = 1n << 9n;
export const FUSE_FLOCK_LOCKS = 1n << 10n;
export const FUSE_HAS_IOCTL_DIR = 1n << 11n;
export const FUSE_AUTO_INVAL_DATA = 1n << 12n;
export const FUSE_DO_READDIRPLUS = 1n << 13n;
export const FUSE_READDIRPLUS_AUTO = 1n << 14n;
export const FUSE_ASYNC_DIO = 1n << 15n;
export const FUSE_WRITEBACK_CACHE = 1n << 16n;
export const FUSE_NO_OPEN_SUPPORT = 1n << 17n;
export const FUSE_PARALLEL_DIROPS = 1n << 18n;
export const FUSE_HANDLE_KILLPRIV = 1n << 19n;
export const FUSE_POSIX_ACL = 1n << 20n;
export const FUSE_ABORT_ERROR = 1n << 21n;
export const FUSE_MAX_PAGES = 1n << 22n;
export const FUSE_CACHE_SYMLINKS = 1n << 23n;
export const FUSE_NO_OPENDIR_SUPPORT = 1n << 24n;
export const FUSE_EXPLICIT_INVAL_DATA = 1n << 25n;
export const FUSE_MAP_ALIGNMENT = 1n << 26n;
export const FUSE_SUBMOUNTS = 1n << 27n;
export const FUSE_HANDLE_KILLPRIV_V2 = 1n << 28n;
export const FUSE_SETXATTR_EXT = 1n << 29n;
export const FUSE_INIT_EXT = 1n << 30n;
export const FUSE_INIT_RESERVED = 1n << 31n;
export const FUSE_SECURITY_CTX = 1n << 32n;
export const FUSE_HAS_INODE_DAX = 1n << 33n;
export const FUSE_HAS_EXPIRE_ONLY = 1n << 35n;

/** Every INIT flag by name (for logs and for `describeInitFlags`). */
export const INIT_FLAG_NAMES: ReadonlyArray<readonly [string, bigint]> = [
  ['ASYNC_READ', FUSE_ASYNC_READ], ['POSIX_LOCKS', FUSE_POSIX_LOCKS], ['FILE_OPS', FUSE_FILE_OPS],
  ['ATOMIC_O_TRUNC', FUSE_ATOMIC_O_TRUNC], ['EXPORT_SUPPORT', FUSE_EXPORT_SUPPORT], ['BIG_WRITES', FUSE_BIG_WRITES],
  ['DONT_MASK', FUSE_DONT_MASK], ['SPLICE_WRITE', FUSE_SPLICE_WRITE], ['SPLICE_MOVE', FUSE_SPLICE_MOVE],
  ['SPLICE_READ', FUSE_SPLICE_READ], ['FLOCK_LOCKS', FUSE_FLOCK_LOCKS], ['HAS_IOCTL_DIR', FUSE_HAS_IOCTL_DIR],
  ['AUTO_INVAL_DATA', FUSE_AUTO_INVAL_DATA], ['DO_READDIRPLUS', FUSE_DO_READDIRPLUS],
  ['READDIRPLUS_AUTO', FUSE_READDIRPLUS_AUTO], ['ASYNC_DIO', FUSE_ASYNC_DIO], ['WRITEBACK_CACHE', FUSE_WRITEBACK_CACHE],
  ['NO_OPEN_SUPPORT', FUSE_NO_OPEN_SUPPORT], ['PARALLEL_DIROPS', FUSE_PARALLEL_DIROPS],
  ['HANDLE_KILLPRIV', FUSE_HANDLE_KILLPRIV], ['POSIX_ACL', FUSE_POSIX_ACL], ['ABORT_ERROR', FUSE_ABORT_ERROR],
  ['MAX_PAGES', FUSE_MAX_PAGES], ['CACHE_SYMLINKS', FUSE_CACHE_SYMLINKS], ['NO_OPENDIR_SUPPORT', FUSE_NO_OPENDIR_SUPPORT],
  ['EXPLICIT_INVAL_DATA', FUSE_EXPLICIT_INVAL_DATA], ['MAP_ALIGNMENT', FUSE_MAP_ALIGNMENT], ['SUBMOUNTS', FUSE_SUBMOUNTS],
  ['HANDLE_KILLPRIV_V2', FUSE_HANDLE_KILLPRIV_V2], ['SETXATTR_EXT', FUSE_SETXATTR_EXT], ['INIT_EXT', FUSE_INIT_EXT],
  ['INIT_RESERVED', FUSE_INIT_RESERVED], ['SECURITY_CTX', FUSE_SECURITY_CTX], ['HAS_INODE_DAX', FUSE_HAS_INODE_DAX],
  ['HAS_EXPIRE_ONLY', FUSE_HAS_EXPIRE_ONLY],
];

/** "ASYNC_READ|BIG_WRITES|bit40" for logs. */
export function describeInitFlags(flags: bigint): string {
  const parts: string[] = [];
  let rest = flags;
  for (const [name, bit] of INIT_FLAG_NAMES) {
    if (flags & bit) { parts.push(name); rest &= ~bit; }
  }
  for (let i = 0n; rest; i++) if (rest & (1n << i)) { parts.push(`bit${i}`); rest &= ~(1n << i); }
  return parts.join('|') || '0';
}

/** Splits the 64-bit INIT flag space into the wire's flags / flags2 u32 pair. */
export function splitInitFlags(flags: bigint): { flags: number; flags2: number } {
  return { flags: Number(flags & 0xffffffffn), flags2: Number((flags >> 32n) & 0xffffffffn) };
}
/** flags | flags2 << 32; flags2 counts only when flags has FUSE_INIT_EXT (as the kernel reads it). */
export function joinInitFlags(flags: number, flags2: number): bigint {
  const lo = BigInt(flags >>> 0);
  return (lo & FUSE_INIT_EXT) ? lo | (BigInt(flags2 >>> 0) << 32n) : lo;
}

// CUSE INIT flags.
export const CUSE_UNRESTRICTED_IOCTL = 1 << 0;

// fuse_setattr_in.valid
export const FATTR_MODE = 1 << 0;
export const FATTR_UID = 1 << 1;
export const FATTR_GID = 1 << 2;
export const FATTR_SIZE = 1 << 3;
export const FATTR_ATIME = 1 << 4;
export const FATTR_MTIME = 1 << 5;
export const FATTR_FH = 1 << 6;
export const FATTR_ATIME_NOW = 1 << 7;
export const FATTR_MTIME_NOW = 1 << 8;
export const FATTR_LOCKOWNER = 1 << 9;
export const FATTR_CTIME = 1 << 10;
export const FATTR_KILL_SUIDGID = 1 << 11;

// fuse_open_out.open_flags
export const FOPEN_DIRECT_IO = 1 << 0;
export const FOPEN_KEEP_CACHE = 1 << 1;
export const FOPEN_NONSEEKABLE = 1 << 2;
export const FOPEN_CACHE_DIR = 1 << 3;
export const FOPEN_STREAM = 1 << 4;
export const FOPEN_NOFLUSH = 1 << 5;
export const FOPEN_PARALLEL_DIRECT_WRITES = 1 << 6;

// fuse_release_in.release_flags
export const FUSE_RELEASE_FLUSH = 1 << 0;
export const FUSE_RELEASE_FLOCK_UNLOCK = 1 << 1;
// fuse_getattr_in.getattr_flags
export const FUSE_GETATTR_FH = 1 << 0;
// fuse_lk_in.lk_flags
export const FUSE_LK_FLOCK = 1 << 0;
// fuse_write_in.write_flags
export const FUSE_WRITE_CACHE = 1 << 0;
export const FUSE_WRITE_LOCKOWNER = 1 << 1;
export const FUSE_WRITE_KILL_SUIDGID = 1 << 2;
/** Obsolete alias of FUSE_WRITE_KILL_SUIDGID. */
export const FUSE_WRITE_KILL_PRIV = FUSE_WRITE_KILL_SUIDGID;
// fuse_read_in.read_flags
export const FUSE_READ_LOCKOWNER = 1 << 1;
// fuse_ioctl_in.flags
export const FUSE_IOCTL_COMPAT = 1 << 0;
export const FUSE_IOCTL_UNRESTRICTED = 1 << 1;
export const FUSE_IOCTL_RETRY = 1 << 2;
export const FUSE_IOCTL_32BIT = 1 << 3;
export const FUSE_IOCTL_DIR = 1 << 4;
export const FUSE_IOCTL_COMPAT_X32 = 1 << 5;
// fuse_poll_in.flags
export const FUSE_POLL_SCHEDULE_NOTIFY = 1 << 0;
// fuse_fsync_in.fsync_flags
export const FUSE_FSYNC_FDATASYNC = 1 << 0;
// fuse_attr.flags
export const FUSE_ATTR_SUBMOUNT = 1 << 0;
export const FUSE_ATTR_DAX = 1 << 1;
// fuse_open_in / fuse_create_in .open_flags
export const FUSE_OPEN_KILL_SUIDGID = 1 << 0;
// fuse_setxattr_in.setxattr_flags
export const FUSE_SETXATTR_ACL_KILL_SGID = 1 << 0;
// fuse_notify_inval_entry_out.flags
export const FUSE_EXPIRE_ONLY = 1 << 0;
// fuse_setupmapping_in.flags (u64 on the wire; the defined bits fit a number)
export const FUSE_SETUPMAPPING_FLAG_WRITE = 1 << 0;
export const FUSE_SETUPMAPPING_FLAG_READ = 1 << 1;

// ---------------------------------------------------------------------------
// Struct layout table. One entry per struct of the header: the C name, its
// sizeof, and every field as [name, offsetof, type]. Types: u16 u32 i32 u64
// i64 (numbers), b64 (bigint u64), u32[N] (number[]), char[] (a flexible name
// array: width 0, handled by the dirent helpers), or another entry's key (a
// nested struct). test/golden/abi-layout.test.ts compiles a C program against
// the real header and checks every size, offset and width here.
// ---------------------------------------------------------------------------

interface StructSpec {
  readonly c: string;
  readonly size: number;
  readonly fields: ReadonlyArray<readonly [name: string, offset: number, type: string]>;
}

export const STRUCTS = {
  Attr: { c: 'fuse_attr', size: 88, fields: [
    ['ino', 0, 'u64'],
    ['size', 8, 'u64'],
    ['blocks', 16, 'u64'],
    ['atime', 24, 'u64'],
    ['mtime', 32, 'u64'],
    ['ctime', 40, 'u64'],
    ['atimensec', 48, 'u32'],
    ['mtimensec', 52, 'u32'],
    ['ctimensec', 56, 'u32'],
    ['mode', 60, 'u32'],
    ['nlink', 64, 'u32'],
    ['uid', 68, 'u32'],
    ['gid', 72, 'u32'],
    ['rdev', 76, 'u32'],
    ['blksize', 80, 'u32'],
    ['flags', 84, 'u32'],
  ] },
  Kstatfs: { c: 'fuse_kstatfs', size: 80, fields: [
    ['blocks', 0, 'u64'],
    ['bfree', 8, 'u64'],
    ['bavail', 16, 'u64'],
    ['files', 24, 'u64'],
    ['ffree', 32, 'u64'],
    ['bsize', 40, 'u32'],
    ['namelen', 44, 'u32'],
    ['frsize', 48, 'u32'],
    ['padding', 52, 'u32'],
    ['spare', 56, 'u32[6]'],
  ] },
  FileLock: { c: 'fuse_file_lock', size: 24, fields: [
    ['start', 0, 'u64'],
    ['end', 8, 'u64'],
    ['type', 16, 'u32'],
    ['pid', 20, 'u32'],
  ] },
  EntryOut: { c: 'fuse_entry_out', size: 128, fields: [
    ['nodeid', 0, 'u64'],
    ['generation', 8, 'u64'],
    ['entry_valid', 16, 'u64'],
    ['attr_valid', 24, 'u64'],
    ['entry_valid_nsec', 32, 'u32'],
    ['attr_valid_nsec', 36, 'u32'],
    ['attr', 40, 'Attr'],
  ] },
  ForgetIn: { c: 'fuse_forget_in', size: 8, fields: [
    ['nlookup', 0, 'u64'],
  ] },
  ForgetOne: { c: 'fuse_forget_one', size: 16, fields: [
    ['nodeid', 0, 'u64'],
    ['nlookup', 8, 'u64'],
  ] },
  BatchForgetIn: { c: 'fuse_batch_forget_in', size: 8, fields: [
    ['count', 0, 'u32'],
    ['dummy', 4, 'u32'],
  ] },
  GetattrIn: { c: 'fuse_getattr_in', size: 16, fields: [
    ['getattr_flags', 0, 'u32'],
    ['dummy', 4, 'u32'],
    ['fh', 8, 'u64'],
  ] },
  AttrOut: { c: 'fuse_attr_out', size: 104, fields: [
    ['attr_valid', 0, 'u64'],
    ['attr_valid_nsec', 8, 'u32'],
    ['dummy', 12, 'u32'],
    ['attr', 16, 'Attr'],
  ] },
  MknodIn: { c: 'fuse_mknod_in', size: 16, fields: [
    ['mode', 0, 'u32'],
    ['rdev', 4, 'u32'],
    ['umask', 8, 'u32'],
    ['padding', 12, 'u32'],
  ] },
  MkdirIn: { c: 'fuse_mkdir_in', size: 8, fields: [
    ['mode', 0, 'u32'],
    ['umask', 4, 'u32'],
  ] },
  RenameIn: { c: 'fuse_rename_in', size: 8, fields: [
    ['newdir', 0, 'u64'],
  ] },
  Rename2In: { c: 'fuse_rename2_in', size: 16, fields: [
    ['newdir', 0, 'u64'],
    ['flags', 8, 'u32'],
    ['padding', 12, 'u32'],
  ] },
  LinkIn: { c: 'fuse_link_in', size: 8, fields: [
    ['oldnodeid', 0, 'u64'],
  ] },
  SetattrIn: { c: 'fuse_setattr_in', size: 88, fields: [
    ['valid', 0, 'u32'],
    ['padding', 4, 'u32'],
    ['fh', 8, 'u64'],
    ['size', 16, 'u64'],
    ['lock_owner', 24, 'b64'],
    ['atime', 32, 'u64'],
    ['mtime', 40, 'u64'],
    ['ctime', 48, 'u64'],
    ['atimensec', 56, 'u32'],
    ['mtimensec', 60, 'u32'],
    ['ctimensec', 64, 'u32'],
    ['mode', 68, 'u32'],
    ['unused4', 72, 'u32'],
    ['uid', 76, 'u32'],
    ['gid', 80, 'u32'],
    ['unused5', 84, 'u32'],
  ] },
  OpenIn: { c: 'fuse_open_in', size: 8, fields: [
    ['flags', 0, 'u32'],
    ['open_flags', 4, 'u32'],
  ] },
  CreateIn: { c: 'fuse_create_in', size: 16, fields: [
    ['flags', 0, 'u32'],
    ['mode', 4, 'u32'],
    ['umask', 8, 'u32'],
    ['open_flags', 12, 'u32'],
  ] },
  OpenOut: { c: 'fuse_open_out', size: 16, fields: [
    ['fh', 0, 'u64'],
    ['open_flags', 8, 'u32'],
    ['padding', 12, 'u32'],
  ] },
  ReleaseIn: { c: 'fuse_release_in', size: 24, fields: [
    ['fh', 0, 'u64'],
    ['flags', 8, 'u32'],
    ['release_flags', 12, 'u32'],
    ['lock_owner', 16, 'b64'],
  ] },
  FlushIn: { c: 'fuse_flush_in', size: 24, fields: [
    ['fh', 0, 'u64'],
    ['unused', 8, 'u32'],
    ['padding', 12, 'u32'],
    ['lock_owner', 16, 'b64'],
  ] },
  ReadIn: { c: 'fuse_read_in', size: 40, fields: [
    ['fh', 0, 'u64'],
    ['offset', 8, 'u64'],
    ['size', 16, 'u32'],
    ['read_flags', 20, 'u32'],
    ['lock_owner', 24, 'b64'],
    ['flags', 32, 'u32'],
    ['padding', 36, 'u32'],
  ] },
  WriteIn: { c: 'fuse_write_in', size: 40, fields: [
    ['fh', 0, 'u64'],
    ['offset', 8, 'u64'],
    ['size', 16, 'u32'],
    ['write_flags', 20, 'u32'],
    ['lock_owner', 24, 'b64'],
    ['flags', 32, 'u32'],
    ['padding', 36, 'u32'],
  ] },
  WriteOut: { c: 'fuse_write_out', size: 8, fields: [
    ['size', 0, 'u32'],
    ['padding', 4, 'u32'],
  ] },
  StatfsOut: { c: 'fuse_statfs_out', size: 80, fields: [
    ['st', 0, 'Kstatfs'],
  ] },
  FsyncIn: { c: 'fuse_fsync_in', size: 16, fields: [
    ['fh', 0, 'u64'],
    ['fsync_flags', 8, 'u32'],
    ['padding', 12, 'u32'],
  ] },
  SetxattrIn: { c: 'fuse_setxattr_in', size: 16, fields: [
    ['size', 0, 'u32'],
    ['flags', 4, 'u32'],
    ['setxattr_flags', 8, 'u32'],
    ['padding', 12, 'u32'],
  ] },
  GetxattrIn: { c: 'fuse_getxattr_in', size: 8, fields: [
    ['size', 0, 'u32'],
    ['padding', 4, 'u32'],
  ] },
  GetxattrOut: { c: 'fuse_getxattr_out', size: 8, fields: [
    ['size', 0, 'u32'],
    ['padding', 4, 'u32'],
  ] },
  LkIn: { c: 'fuse_lk_in', size: 48, fields: [
    ['fh', 0, 'u64'],
    ['owner', 8, 'b64'],
    ['lk', 16, 'FileLock'],
    ['lk_flags', 40, 'u32'],
    ['padding', 44, 'u32'],
  ] },
  LkOut: { c: 'fuse_lk_out', size: 24, fields: [
    ['lk', 0, 'FileLock'],
  ] },
  AccessIn: { c: 'fuse_access_in', size: 8, fields: [
    ['mask', 0, 'u32'],
    ['padding', 4, 'u32'],
  ] },
  InitIn: { c: 'fuse_init_in', size: 64, fields: [
    ['major', 0, 'u32'],
    ['minor', 4, 'u32'],
    ['max_readahead', 8, 'u32'],
    ['flags', 12, 'u32'],
    ['flags2', 16, 'u32'],
    ['unused', 20, 'u32[11]'],
  ] },
  InitOut: { c: 'fuse_init_out', size: 64, fields: [
    ['major', 0, 'u32'],
    ['minor', 4, 'u32'],
    ['max_readahead', 8, 'u32'],
    ['flags', 12, 'u32'],
    ['max_background', 16, 'u16'],
    ['congestion_threshold', 18, 'u16'],
    ['max_write', 20, 'u32'],
    ['time_gran', 24, 'u32'],
    ['max_pages', 28, 'u16'],
    ['map_alignment', 30, 'u16'],
    ['flags2', 32, 'u32'],
    ['unused', 36, 'u32[7]'],
  ] },
  CuseInitIn: { c: 'cuse_init_in', size: 16, fields: [
    ['major', 0, 'u32'],
    ['minor', 4, 'u32'],
    ['unused', 8, 'u32'],
    ['flags', 12, 'u32'],
  ] },
  CuseInitOut: { c: 'cuse_init_out', size: 72, fields: [
    ['major', 0, 'u32'],
    ['minor', 4, 'u32'],
    ['unused', 8, 'u32'],
    ['flags', 12, 'u32'],
    ['max_read', 16, 'u32'],
    ['max_write', 20, 'u32'],
    ['dev_major', 24, 'u32'],
    ['dev_minor', 28, 'u32'],
    ['spare', 32, 'u32[10]'],
  ] },
  InterruptIn: { c: 'fuse_interrupt_in', size: 8, fields: [
    ['unique', 0, 'b64'],
  ] },
  BmapIn: { c: 'fuse_bmap_in', size: 16, fields: [
    ['block', 0, 'u64'],
    ['blocksize', 8, 'u32'],
    ['padding', 12, 'u32'],
  ] },
  BmapOut: { c: 'fuse_bmap_out', size: 8, fields: [
    ['block', 0, 'u64'],
  ] },
  IoctlIn: { c: 'fuse_ioctl_in', size: 32, fields: [
    ['fh', 0, 'u64'],
    ['flags', 8, 'u32'],
    ['cmd', 12, 'u32'],
    ['arg', 16, 'u64'],
    ['in_size', 24, 'u32'],
    ['out_size', 28, 'u32'],
  ] },
  IoctlIovec: { c: 'fuse_ioctl_iovec', size: 16, fields: [
    ['base', 0, 'u64'],
    ['len', 8, 'u64'],
  ] },
  IoctlOut: { c: 'fuse_ioctl_out', size: 16, fields: [
    ['result', 0, 'i32'],
    ['flags', 4, 'u32'],
    ['in_iovs', 8, 'u32'],
    ['out_iovs', 12, 'u32'],
  ] },
  PollIn: { c: 'fuse_poll_in', size: 24, fields: [
    ['fh', 0, 'u64'],
    ['kh', 8, 'b64'],
    ['flags', 16, 'u32'],
    ['events', 20, 'u32'],
  ] },
  PollOut: { c: 'fuse_poll_out', size: 8, fields: [
    ['revents', 0, 'u32'],
    ['padding', 4, 'u32'],
  ] },
  NotifyPollWakeupOut: { c: 'fuse_notify_poll_wakeup_out', size: 8, fields: [
    ['kh', 0, 'b64'],
  ] },
  FallocateIn: { c: 'fuse_fallocate_in', size: 32, fields: [
    ['fh', 0, 'u64'],
    ['offset', 8, 'u64'],
    ['length', 16, 'u64'],
    ['mode', 24, 'u32'],
    ['padding', 28, 'u32'],
  ] },
  InHeader: { c: 'fuse_in_header', size: 40, fields: [
    ['len', 0, 'u32'],
    ['opcode', 4, 'u32'],
    ['unique', 8, 'b64'],
    ['nodeid', 16, 'u64'],
    ['uid', 24, 'u32'],
    ['gid', 28, 'u32'],
    ['pid', 32, 'u32'],
    ['total_extlen', 36, 'u16'],
    ['padding', 38, 'u16'],
  ] },
  OutHeader: { c: 'fuse_out_header', size: 16, fields: [
    ['len', 0, 'u32'],
    ['error', 4, 'i32'],
    ['unique', 8, 'b64'],
  ] },
  Dirent: { c: 'fuse_dirent', size: 24, fields: [
    ['ino', 0, 'u64'],
    ['off', 8, 'u64'],
    ['namelen', 16, 'u32'],
    ['type', 20, 'u32'],
    ['name', 24, 'char[]'],
  ] },
  Direntplus: { c: 'fuse_direntplus', size: 152, fields: [
    ['entry_out', 0, 'EntryOut'],
    ['dirent', 128, 'Dirent'],
  ] },
  NotifyInvalInodeOut: { c: 'fuse_notify_inval_inode_out', size: 24, fields: [
    ['ino', 0, 'u64'],
    ['off', 8, 'i64'],
    ['len', 16, 'i64'],
  ] },
  NotifyInvalEntryOut: { c: 'fuse_notify_inval_entry_out', size: 16, fields: [
    ['parent', 0, 'u64'],
    ['namelen', 8, 'u32'],
    ['flags', 12, 'u32'],
  ] },
  NotifyDeleteOut: { c: 'fuse_notify_delete_out', size: 24, fields: [
    ['parent', 0, 'u64'],
    ['child', 8, 'u64'],
    ['namelen', 16, 'u32'],
    ['padding', 20, 'u32'],
  ] },
  NotifyStoreOut: { c: 'fuse_notify_store_out', size: 24, fields: [
    ['nodeid', 0, 'u64'],
    ['offset', 8, 'u64'],
    ['size', 16, 'u32'],
    ['padding', 20, 'u32'],
  ] },
  NotifyRetrieveOut: { c: 'fuse_notify_retrieve_out', size: 32, fields: [
    ['notify_unique', 0, 'b64'],
    ['nodeid', 8, 'u64'],
    ['offset', 16, 'u64'],
    ['size', 24, 'u32'],
    ['padding', 28, 'u32'],
  ] },
  NotifyRetrieveIn: { c: 'fuse_notify_retrieve_in', size: 40, fields: [
    ['dummy1', 0, 'u64'],
    ['offset', 8, 'u64'],
    ['size', 16, 'u32'],
    ['dummy2', 20, 'u32'],
    ['dummy3', 24, 'u64'],
    ['dummy4', 32, 'u64'],
  ] },
  LseekIn: { c: 'fuse_lseek_in', size: 24, fields: [
    ['fh', 0, 'u64'],
    ['offset', 8, 'u64'],
    ['whence', 16, 'u32'],
    ['padding', 20, 'u32'],
  ] },
  LseekOut: { c: 'fuse_lseek_out', size: 8, fields: [
    ['offset', 0, 'u64'],
  ] },
  CopyFileRangeIn: { c: 'fuse_copy_file_range_in', size: 56, fields: [
    ['fh_in', 0, 'u64'],
    ['off_in', 8, 'u64'],
    ['nodeid_out', 16, 'u64'],
    ['fh_out', 24, 'u64'],
    ['off_out', 32, 'u64'],
    ['len', 40, 'u64'],
    ['flags', 48, 'u64'],
  ] },
  SetupmappingIn: { c: 'fuse_setupmapping_in', size: 40, fields: [
    ['fh', 0, 'u64'],
    ['foffset', 8, 'u64'],
    ['len', 16, 'u64'],
    ['flags', 24, 'u64'],
    ['moffset', 32, 'u64'],
  ] },
  RemovemappingIn: { c: 'fuse_removemapping_in', size: 4, fields: [
    ['count', 0, 'u32'],
  ] },
  RemovemappingOne: { c: 'fuse_removemapping_one', size: 16, fields: [
    ['moffset', 0, 'u64'],
    ['len', 8, 'u64'],
  ] },
  SyncfsIn: { c: 'fuse_syncfs_in', size: 8, fields: [
    ['padding', 0, 'u64'],
  ] },
  Secctx: { c: 'fuse_secctx', size: 8, fields: [
    ['size', 0, 'u32'],
    ['padding', 4, 'u32'],
  ] },
  SecctxHeader: { c: 'fuse_secctx_header', size: 8, fields: [
    ['size', 0, 'u32'],
    ['nr_secctx', 4, 'u32'],
  ] },
  ExtHeader: { c: 'fuse_ext_header', size: 8, fields: [
    ['size', 0, 'u32'],
    ['type', 4, 'u32'],
  ] },
} as const satisfies Record<string, StructSpec>;

type Structs = typeof STRUCTS;
export type StructName = keyof Structs;
type FieldOf<K extends StructName> = Structs[K]['fields'][number];
/** Fields that carry no information; optional when encoding, written as zero. */
type Reserved = 'padding' | 'dummy' | 'unused' | 'spare' | 'unused4' | 'unused5' | 'dummy1' | 'dummy2' | 'dummy3' | 'dummy4';
const RESERVED: ReadonlySet<string> = new Set<Reserved>(['padding', 'dummy', 'unused', 'spare', 'unused4', 'unused5', 'dummy1', 'dummy2', 'dummy3', 'dummy4']);

type Decoded<T> = T extends 'b64' ? bigint
  : T extends `${string}[${number}]` ? number[]
  : T extends StructName ? StructValue<T>
  : number;
type Encoded<T> = T extends 'b64' ? bigint
  : T extends `${string}[${number}]` ? readonly number[]
  : T extends StructName ? StructInput<T>
  : number;

/** The decoded form of a struct: every field by its header name. */
export type StructValue<K extends StructName> = {
  -readonly [F in FieldOf<K> as F[2] extends 'char[]' ? never : F[0]]: Decoded<F[2]>;
};
/** What an encoder takes: like StructValue, with reserved fields optional. */
export type StructInput<K extends StructName> = {
  readonly [F in FieldOf<K> as F[2] extends 'char[]' ? never : F[0] extends Reserved ? never : F[0]]: Encoded<F[2]>;
} & {
  readonly [F in FieldOf<K> as F[2] extends 'char[]' ? never : F[0] extends Reserved ? F[0] : never]?: Encoded<F[2]>;
};

export interface FieldLayout {
  readonly name: string;
  readonly offset: number;
  /** sizeof the member (0 for a flexible array). */
  readonly width: number;
  readonly type: string;
}
export interface StructLayout {
  readonly c: string;
  readonly size: number;
  readonly fields: readonly FieldLayout[];
}

const SCALAR_WIDTH: Readonly<Record<string, number>> = { u8: 1, u16: 2, u32: 4, i32: 4, u64: 8, i64: 8, b64: 8 };

function typeWidth(type: string): number {
  const arr = /^(\w+)\[(\d*)\]$/.exec(type);
  if (arr) return arr[2] === '' ? 0 : Number(arr[2]) * typeWidth(arr[1]!);
  const w = SCALAR_WIDTH[type];
  if (w !== undefined) return w;
  const nested = (STRUCTS as Record<string, StructSpec>)[type];
  if (!nested) throw new Error(`abi: unknown field type ${type}`);
  return nested.size;
}

/** The layout table with field widths made explicit: what the golden test checks. */
export const LAYOUT: Readonly<Record<StructName, StructLayout>> = Object.fromEntries(
  Object.entries(STRUCTS as Record<string, StructSpec>).map(([k, s]) => [k, {
    c: s.c,
    size: s.size,
    fields: s.fields.map(([name, offset, type]) => ({ name, offset, width: typeWidth(type), type })),
  }]),
) as unknown as Record<StructName, StructLayout>;

// ---------------------------------------------------------------------------
// Codec generation. Each struct gets a straight-line decoder and encoder
// generated from the table: no per-field loop or switch at run time, one
// object literal of fixed shape per decode (V8 keeps it monomorphic). The
// table is the single source of truth, checked against the C header by the
// golden test. A struct's pair is compiled on the first call of either
// (compiling all ~80 pairs at load cost 15-25 ms of every CLI start, and a
// program uses a handful); the exported functions are small trampolines
// that V8 inlines.
// ---------------------------------------------------------------------------

type Decoder<K extends StructName> = (buf: Buffer, offset?: number) => StructValue<K>;
type Encoder<K extends StructName> = (value: StructInput<K>, buf: Buffer, offset?: number) => number;

const DECODERS: Record<string, (b: Buffer, o?: number) => unknown> = {};
const ENCODERS: Record<string, (v: unknown, b: Buffer, o?: number) => number> = {};

function shortBuffer(struct: string, size: number, len: number, offset: number): ProtocolError {
  return new ProtocolError('SHORT_BUFFER', `Cannot decode ${struct} (${size} bytes) at offset ${offset}: buffer holds ${len}`);
}
function shortTarget(struct: string, size: number, len: number, offset: number): RangeError {
  return new RangeError(`Cannot encode ${struct} (${size} bytes) at offset ${offset}: buffer holds ${len}`);
}

// Byte-level loads and stores: after the one bounds check per struct these are
// plain typed-array accesses, which V8 compiles to single instructions, where
// Buffer#writeUInt32LE re-validates its arguments on every call.

/** Writes an integer in [-2^63, 2^64) as 64-bit little-endian two's complement (no bounds check). */
export function writeU64(buf: Buffer, offset: number, value: number): void {
  const hi = Math.floor(value / 4294967296) >>> 0;
  const lo = value >>> 0;
  buf[offset] = lo;
  buf[offset + 1] = lo >>> 8;
  buf[offset + 2] = lo >>> 16;
  buf[offset + 3] = lo >>> 24;
  buf[offset + 4] = hi;
  buf[offset + 5] = hi >>> 8;
  buf[offset + 6] = hi >>> 16;
  buf[offset + 7] = hi >>> 24;
}
/** Writes a u32 (wrapped modulo 2^32; no bounds check). */
export function writeU32(buf: Buffer, offset: number, value: number): void {
  buf[offset] = value;
  buf[offset + 1] = value >>> 8;
  buf[offset + 2] = value >>> 16;
  buf[offset + 3] = value >>> 24;
}
/** Reads a u32 (no bounds check: undefined bytes read as 0 only past the end, so check first). */
export function readU32(buf: Buffer, offset: number): number {
  return (buf[offset]! | (buf[offset + 1]! << 8) | (buf[offset + 2]! << 16)) + buf[offset + 3]! * 16777216;
}
/** Reads an unsigned 64-bit field as a number (exact below 2^53). */
export function readU64(buf: Buffer, offset: number): number {
  return buf.readUInt32LE(offset) + buf.readUInt32LE(offset + 4) * 4294967296;
}
/** Reads a signed 64-bit field as a number (exact within +-2^53). */
export function readI64(buf: Buffer, offset: number): number {
  return buf.readUInt32LE(offset) + buf.readInt32LE(offset + 4) * 4294967296;
}
function writeB64(buf: Buffer, offset: number, value: bigint | undefined): void {
  buf.writeBigUInt64LE(BigInt.asUintN(64, value ?? 0n), offset);
}

// Source snippets for the generated codecs (`b` the buffer, `o` the base offset,
// `t`/`h` scratch variables).
const B = (k: number) => `b[o + ${k}]`;
const rd16 = (k: number) => `(${B(k)} | (${B(k + 1)} << 8))`;
const rd32 = (k: number) => `((${B(k)} | (${B(k + 1)} << 8) | (${B(k + 2)} << 16)) + ${B(k + 3)} * 16777216)`;
const rdi32 = (k: number) => `(${B(k)} | (${B(k + 1)} << 8) | (${B(k + 2)} << 16) | (${B(k + 3)} << 24))`;
/** Stores the low `n` bytes of `t` little-endian at o + k. */
const st = (k: number, n: number) => Array.from({ length: n }, (_, i) => `${B(k + i)} = ${i ? `t >>> ${8 * i}` : 't'};`).join(' ');
/** Stores a number as 64-bit two's complement at o + k. */
const st64 = (v: string, k: number) =>
  `t = +${v}; h = Math.floor(t / 4294967296) >>> 0; t = t >>> 0; ${st(k, 4)} ${st(k + 4, 4).replace(/\bt\b/g, 'h')}`;

type RawDecoder = (b: Buffer, o?: number) => unknown;
type RawEncoder = (v: unknown, b: Buffer, o?: number) => number;

function compileStruct(key: string, s: StructSpec): [RawDecoder, RawEncoder] {
  const dec: string[] = [];
  const enc: string[] = [];
  for (const [name, off, type] of s.fields) {
    const at = `o + ${off}`;
    const v = RESERVED.has(name) ? `(v.${name} ?? 0)` : `v.${name}`;
    const arr = /^(\w+)\[(\d*)\]$/.exec(type);
    if (arr) {
      if (arr[2] === '') continue; // flexible name[]: variable part, see the dirent helpers
      if (arr[1] !== 'u32') throw new Error(`abi: unsupported array ${type}`);
      const n = Number(arr[2]);
      const items: string[] = [];
      for (let i = 0; i < n; i++) {
        items.push(`b.readUInt32LE(${at} + ${4 * i})`);
        enc.push(`b.writeUInt32LE((v.${name} === undefined ? 0 : (v.${name}[${i}] ?? 0)) >>> 0, ${at} + ${4 * i});`);
      }
      dec.push(`${name}: [${items.join(', ')}]`);
      continue;
    }
    switch (type) {
      case 'u8': dec.push(`${name}: b[${at}]`); enc.push(`b[${at}] = ${v};`); break;
      case 'u16': dec.push(`${name}: ${rd16(off)}`); enc.push(`t = ${v}; ${st(off, 2)}`); break;
      case 'u32': dec.push(`${name}: ${rd32(off)}`); enc.push(`t = ${v} >>> 0; ${st(off, 4)}`); break;
      case 'i32': dec.push(`${name}: ${rdi32(off)}`); enc.push(`t = ${v} | 0; ${st(off, 4)}`); break;
      case 'u64': dec.push(`${name}: (${rd32(off)} + ${rd32(off + 4)} * 4294967296)`); enc.push(st64(v, off)); break;
      case 'i64': dec.push(`${name}: (${rd32(off)} + ${rdi32(off + 4)} * 4294967296)`); enc.push(st64(v, off)); break;
      case 'b64': dec.push(`${name}: b.readBigUInt64LE(${at})`); enc.push(`writeB64(b, ${at}, v.${name});`); break;
      default:
        if (!(type in STRUCTS)) throw new Error(`abi: unknown field type ${type}`);
        dec.push(`${name}: D.${type}(b, ${at})`);
        enc.push(`E.${type}(v.${name}, b, ${at});`);
    }
  }
  const check = (err: string) => `if (!(o >= 0 && o === Math.floor(o) && o + ${s.size} <= b.length)) throw ${err}(${JSON.stringify(s.c)}, ${s.size}, b.length, o);`;
  const helpers = ['D', 'E', 'readU64', 'readI64', 'writeU64', 'writeB64', 'shortBuffer', 'shortTarget'];
  const args = [DECODERS, ENCODERS, readU64, readI64, writeU64, writeB64, shortBuffer, shortTarget];
  // Generated from the static table above only (no outside input reaches this source text).
  // One Function for the pair: half the compile calls.
  return new Function(...helpers,
    `return [function decode${key}(b, o = 0) {\n  ${check('shortBuffer')}\n  return { ${dec.join(', ')} };\n}, ` +
    `function encode${key}(v, b, o = 0) {\n  ${check('shortTarget')}\n  let t, h;\n  ${enc.join('\n  ')}\n  return o + ${s.size};\n}];`)(...args) as [RawDecoder, RawEncoder];
}

/** Installs decodeX/encodeX trampolines that compile the real pair on first use. */
function lazyCodecs(key: string, s: StructSpec): void {
  let dec: RawDecoder | null = null;
  let enc: RawEncoder | null = null;
  const build = (): void => {
    [dec, enc] = compileStruct(key, s);
  };
  const d = (b: Buffer, o?: number): unknown => {
    if (dec === null) build();
    return dec!(b, o);
  };
  const e = (v: unknown, b: Buffer, o?: number): number => {
    if (enc === null) build();
    return enc!(v, b, o);
  };
  // Keep the name and arity the generated functions have (stack traces, debuggers).
  Object.defineProperty(d, 'name', { value: `decode${key}` });
  Object.defineProperty(d, 'length', { value: 1 });
  Object.defineProperty(e, 'name', { value: `encode${key}` });
  Object.defineProperty(e, 'length', { value: 2 });
  DECODERS[key] = d;
  ENCODERS[key] = e;
}

for (const [key, s] of Object.entries(STRUCTS as Record<string, StructSpec>)) lazyCodecs(key, s);

function decoder<K extends StructName>(key: K): Decoder<K> {
  return DECODERS[key] as unknown as Decoder<K>;
}
function encoder<K extends StructName>(key: K): Encoder<K> {
  return ENCODERS[key] as unknown as Encoder<K>;
}

// ---------------------------------------------------------------------------
// Per-struct exports: type X, X_SIZE, decodeX(buf, offset = 0), encodeX(value, buf, offset = 0).
// ---------------------------------------------------------------------------

export type Attr = StructValue<'Attr'>;
export const ATTR_SIZE = 88;
export const decodeAttr = decoder('Attr');
export const encodeAttr = encoder('Attr');
export type Kstatfs = StructValue<'Kstatfs'>;
export const KSTATFS_SIZE = 80;
export const decodeKstatfs = decoder('Kstatfs');
export const encodeKstatfs = encoder('Kstatfs');
export type FileLock = StructValue<'FileLock'>;
export const FILE_LOCK_SIZE = 24;
export const decodeFileLock = decoder('FileLock');
export const encodeFileLock = encoder('FileLock');
export type EntryOut = StructValue<'EntryOut'>;
export const ENTRY_OUT_SIZE = 128;
export const decodeEntryOut = decoder('EntryOut');
export const encodeEntryOut = encoder('EntryOut');
export type ForgetIn = StructValue<'ForgetIn'>;
export const FORGET_IN_SIZE = 8;
export const decodeForgetIn = decoder('ForgetIn');
export const encodeForgetIn = encoder('ForgetIn');
export type ForgetOne = StructValue<'ForgetOne'>;
export const FORGET_ONE_SIZE = 16;
export const decodeForgetOne = decoder('ForgetOne');
export const encodeForgetOne = encoder('ForgetOne');
export type BatchForgetIn = StructValue<'BatchForgetIn'>;
export const BATCH_FORGET_IN_SIZE = 8;
export const decodeBatchForgetIn = decoder('BatchForgetIn');
export const encodeBatchForgetIn = encoder('BatchForgetIn');
export type GetattrIn = StructValue<'GetattrIn'>;
export const GETATTR_IN_SIZE = 16;
export const decodeGetattrIn = decoder('GetattrIn');
export const encodeGetattrIn = encoder('GetattrIn');
export type AttrOut = StructValue<'AttrOut'>;
export const ATTR_OUT_SIZE = 104;
export const decodeAttrOut = decoder('AttrOut');
export const encodeAttrOut = encoder('AttrOut');
export type MknodIn = StructValue<'MknodIn'>;
export const MKNOD_IN_SIZE = 16;
export const decodeMknodIn = decoder('MknodIn');
export const encodeMknodIn = encoder('MknodIn');
export type MkdirIn = StructValue<'MkdirIn'>;
export const MKDIR_IN_SIZE = 8;
export const decodeMkdirIn = decoder('MkdirIn');
export const encodeMkdirIn = encoder('MkdirIn');
export type RenameIn = StructValue<'RenameIn'>;
export const RENAME_IN_SIZE = 8;
export const decodeRenameIn = decoder('RenameIn');
export const encodeRenameIn = encoder('RenameIn');
export type Rename2In = StructValue<'Rename2In'>;
export const RENAME2_IN_SIZE = 16;
export const decodeRename2In = decoder('Rename2In');
export const encodeRename2In = encoder('Rename2In');
export type LinkIn = StructValue<'LinkIn'>;
export const LINK_IN_SIZE = 8;
export const decodeLinkIn = decoder('LinkIn');
export const encodeLinkIn = encoder('LinkIn');
export type SetattrIn = StructValue<'SetattrIn'>;
export const SETATTR_IN_SIZE = 88;
export const decodeSetattrIn = decoder('SetattrIn');
export const encodeSetattrIn = encoder('SetattrIn');
export type OpenIn = StructValue<'OpenIn'>;
export const OPEN_IN_SIZE = 8;
export const decodeOpenIn = decoder('OpenIn');
export const encodeOpenIn = encoder('OpenIn');
export type CreateIn = StructValue<'CreateIn'>;
export const CREATE_IN_SIZE = 16;
export const decodeCreateIn = decoder('CreateIn');
export const encodeCreateIn = encoder('CreateIn');
export type OpenOut = StructValue<'OpenOut'>;
export const OPEN_OUT_SIZE = 16;
export const decodeOpenOut = decoder('OpenOut');
export const encodeOpenOut = encoder('OpenOut');
export type ReleaseIn = StructValue<'ReleaseIn'>;
export const RELEASE_IN_SIZE = 24;
export const decodeReleaseIn = decoder('ReleaseIn');
export const encodeReleaseIn = encoder('ReleaseIn');
export type FlushIn = StructValue<'FlushIn'>;
export const FLUSH_IN_SIZE = 24;
export const decodeFlushIn = decoder('FlushIn');
export const encodeFlushIn = encoder('FlushIn');
export type ReadIn = StructValue<'ReadIn'>;
export const READ_IN_SIZE = 40;
export const decodeReadIn = decoder('ReadIn');
export const encodeReadIn = encoder('ReadIn');
export type WriteIn = StructValue<'WriteIn'>;
export const WRITE_IN_SIZE = 40;
export const decodeWriteIn = decoder('WriteIn');
export const encodeWriteIn = encoder('WriteIn');
export type WriteOut = StructValue<'WriteOut'>;
export const WRITE_OUT_SIZE = 8;
export const decodeWriteOut = decoder('WriteOut');
export const encodeWriteOut = encoder('WriteOut');
export type StatfsOut = StructValue<'StatfsOut'>;
export const STATFS_OUT_SIZE = 80;
export const decodeStatfsOut = decoder('StatfsOut');
export const encodeStatfsOut = encoder('StatfsOut');
export type FsyncIn = StructValue<'FsyncIn'>;
export const FSYNC_IN_SIZE = 16;
export const decodeFsyncIn = decoder('FsyncIn');
export const encodeFsyncIn = encoder('FsyncIn');
export type SetxattrIn = StructValue<'SetxattrIn'>;
export const SETXATTR_IN_SIZE = 16;
export const decodeSetxattrIn = decoder('SetxattrIn');
export const encodeSetxattrIn = encoder('SetxattrIn');
export type GetxattrIn = StructValue<'GetxattrIn'>;
export const GETXATTR_IN_SIZE = 8;
export const decodeGetxattrIn = decoder('GetxattrIn');
export const encodeGetxattrIn = encoder('GetxattrIn');
export type GetxattrOut = StructValue<'GetxattrOut'>;
export const GETXATTR_OUT_SIZE = 8;
export const decodeGetxattrOut = decoder('GetxattrOut');
export const encodeGetxattrOut = encoder('GetxattrOut');
export type LkIn = StructValue<'LkIn'>;
export const LK_IN_SIZE = 48;
export const decodeLkIn = decoder('LkIn');
export const encodeLkIn = encoder('LkIn');
export type LkOut = StructValue<'LkOut'>;
export const LK_OUT_SIZE = 24;
export const decodeLkOut = decoder('LkOut');
export const encodeLkOut = encoder('LkOut');
export type AccessIn = StructValue<'AccessIn'>;
export const ACCESS_IN_SIZE = 8;
export const decodeAccessIn = decoder('AccessIn');
export const encodeAccessIn = encoder('AccessIn');
export type InitIn = StructValue<'InitIn'>;
export const INIT_IN_SIZE = 64;
export const decodeInitIn = decoder('InitIn');
export const encodeInitIn = encoder('InitIn');
export type InitOut = StructValue<'InitOut'>;
export const INIT_OUT_SIZE = 64;
export const decodeInitOut = decoder('InitOut');
export const encodeInitOut = encoder('InitOut');
export type CuseInitIn = StructValue<'CuseInitIn'>;
export const CUSE_INIT_IN_SIZE = 16;
export const decodeCuseInitIn = decoder('CuseInitIn');
export const encodeCuseInitIn = encoder('CuseInitIn');
export type CuseInitOut = StructValue<'CuseInitOut'>;
export const CUSE_INIT_OUT_SIZE = 72;
export const decodeCuseInitOut = decoder('CuseInitOut');
export const encodeCuseInitOut = encoder('CuseInitOut');
export type InterruptIn = StructValue<'InterruptIn'>;
export const INTERRUPT_IN_SIZE = 8;
export const decodeInterruptIn = decoder('InterruptIn');
export const encodeInterruptIn = encoder('InterruptIn');
export type BmapIn = StructValue<'BmapIn'>;
export const BMAP_IN_SIZE = 16;
export const decodeBmapIn = decoder('BmapIn');
export const encodeBmapIn = encoder('BmapIn');
export type BmapOut = StructValue<'BmapOut'>;
export const BMAP_OUT_SIZE = 8;
export const decodeBmapOut = decoder('BmapOut');
export const encodeBmapOut = encoder('BmapOut');
export type IoctlIn = StructValue<'IoctlIn'>;
export const IOCTL_IN_SIZE = 32;
export const decodeIoctlIn = decoder('IoctlIn');
export const encodeIoctlIn = encoder('IoctlIn');
export type IoctlIovec = StructValue<'IoctlIovec'>;
export const IOCTL_IOVEC_SIZE = 16;
export const decodeIoctlIovec = decoder('IoctlIovec');
export const encodeIoctlIovec = encoder('IoctlIovec');
export type IoctlOut = StructValue<'IoctlOut'>;
export const IOCTL_OUT_SIZE = 16;
export const decodeIoctlOut = decoder('IoctlOut');
export const encodeIoctlOut = encoder('IoctlOut');
export type PollIn = StructValue<'PollIn'>;
export const POLL_IN_SIZE = 24;
export const decodePollIn = decoder('PollIn');
export const encodePollIn = encoder('PollIn');
export type PollOut = StructValue<'PollOut'>;
export const POLL_OUT_SIZE = 8;
export const decodePollOut = decoder('PollOut');
export const encodePollOut = encoder('PollOut');
export type NotifyPollWakeupOut = StructValue<'NotifyPollWakeupOut'>;
export const NOTIFY_POLL_WAKEUP_OUT_SIZE = 8;
export const decodeNotifyPollWakeupOut = decoder('NotifyPollWakeupOut');
export const encodeNotifyPollWakeupOut = encoder('NotifyPollWakeupOut');
export type FallocateIn = StructValue<'FallocateIn'>;
export const FALLOCATE_IN_SIZE = 32;
export const decodeFallocateIn = decoder('FallocateIn');
export const encodeFallocateIn = encoder('FallocateIn');
export type InHeader = StructValue<'InHeader'>;
export const IN_HEADER_SIZE = 40;
export const decodeInHeader = decoder('InHeader');
export const encodeInHeader = encoder('InHeader');
export type OutHeader = StructValue<'OutHeader'>;
export const OUT_HEADER_SIZE = 16;
export const decodeOutHeader = decoder('OutHeader');
export const encodeOutHeader = encoder('OutHeader');
export type Dirent = StructValue<'Dirent'>;
export const DIRENT_SIZE = 24;
export const decodeDirent = decoder('Dirent');
export const encodeDirent = encoder('Dirent');
export type Direntplus = StructValue<'Direntplus'>;
export const DIRENTPLUS_SIZE = 152;
export const decodeDirentplus = decoder('Direntplus');
export const encodeDirentplus = encoder('Direntplus');
export type NotifyInvalInodeOut = StructValue<'NotifyInvalInodeOut'>;
export const NOTIFY_INVAL_INODE_OUT_SIZE = 24;
export const decodeNotifyInvalInodeOut = decoder('NotifyInvalInodeOut');
export const encodeNotifyInvalInodeOut = encoder('NotifyInvalInodeOut');
export type NotifyInvalEntryOut = StructValue<'NotifyInvalEntryOut'>;
export const NOTIFY_INVAL_ENTRY_OUT_SIZE = 16;
export const decodeNotifyInvalEntryOut = decoder('NotifyInvalEntryOut');
export const encodeNotifyInvalEntryOut = encoder('NotifyInvalEntryOut');
export type NotifyDeleteOut = StructValue<'NotifyDeleteOut'>;
export const NOTIFY_DELETE_OUT_SIZE = 24;
export const decodeNotifyDeleteOut = decoder('NotifyDeleteOut');
export const encodeNotifyDeleteOut = encoder('NotifyDeleteOut');
export type NotifyStoreOut = StructValue<'NotifyStoreOut'>;
export const NOTIFY_STORE_OUT_SIZE = 24;
export const decodeNotifyStoreOut = decoder('NotifyStoreOut');
export const encodeNotifyStoreOut = encoder('NotifyStoreOut');
export type NotifyRetrieveOut = StructValue<'NotifyRetrieveOut'>;
export const NOTIFY_RETRIEVE_OUT_SIZE = 32;
export const decodeNotifyRetrieveOut = decoder('NotifyRetrieveOut');
export const encodeNotifyRetrieveOut = encoder('NotifyRetrieveOut');
export type NotifyRetrieveIn = StructValue<'NotifyRetrieveIn'>;
export const NOTIFY_RETRIEVE_IN_SIZE = 40;
export const decodeNotifyRetrieveIn = decoder('NotifyRetrieveIn');
export const encodeNotifyRetrieveIn = encoder('NotifyRetrieveIn');
export type LseekIn = StructValue<'LseekIn'>;
export const LSEEK_IN_SIZE = 24;
export const decodeLseekIn = decoder('LseekIn');
export const encodeLseekIn = encoder('LseekIn');
export type LseekOut = StructValue<'LseekOut'>;
export const LSEEK_OUT_SIZE = 8;
export const decodeLseekOut = decoder('LseekOut');
export const encodeLseekOut = encoder('LseekOut');
export type CopyFileRangeIn = StructValue<'CopyFileRangeIn'>;
export const COPY_FILE_RANGE_IN_SIZE = 56;
export const decodeCopyFileRangeIn = decoder('CopyFileRangeIn');
export const encodeCopyFileRangeIn = encoder('CopyFileRangeIn');
export type SetupmappingIn = StructValue<'SetupmappingIn'>;
export const SETUPMAPPING_IN_SIZE = 40;
export const decodeSetupmappingIn = decoder('SetupmappingIn');
export const encodeSetupmappingIn = encoder('SetupmappingIn');
export type RemovemappingIn = StructValue<'RemovemappingIn'>;
export const REMOVEMAPPING_IN_SIZE = 4;
export const decodeRemovemappingIn = decoder('RemovemappingIn');
export const encodeRemovemappingIn = encoder('RemovemappingIn');
export type RemovemappingOne = StructValue<'RemovemappingOne'>;
export const REMOVEMAPPING_ONE_SIZE = 16;
export const decodeRemovemappingOne = decoder('RemovemappingOne');
export const encodeRemovemappingOne = encoder('RemovemappingOne');
export type SyncfsIn = StructValue<'SyncfsIn'>;
export const SYNCFS_IN_SIZE = 8;
export const decodeSyncfsIn = decoder('SyncfsIn');
export const encodeSyncfsIn = encoder('SyncfsIn');
export type Secctx = StructValue<'Secctx'>;
export const SECCTX_SIZE = 8;
export const decodeSecctx = decoder('Secctx');
export const encodeSecctx = encoder('Secctx');
export type SecctxHeader = StructValue<'SecctxHeader'>;
export const SECCTX_HEADER_SIZE = 8;
export const decodeSecctxHeader = decoder('SecctxHeader');
export const encodeSecctxHeader = encoder('SecctxHeader');
export type ExtHeader = StructValue<'ExtHeader'>;
export const EXT_HEADER_SIZE = 8;
export const decodeExtHeader = decoder('ExtHeader');
export const encodeExtHeader = encoder('ExtHeader');

// ---------------------------------------------------------------------------
// Variable-length records: fuse_dirent / fuse_direntplus (8-byte aligned).
// ---------------------------------------------------------------------------

/** offsetof(struct fuse_dirent, name) */
export const FUSE_NAME_OFFSET = 24;
/** offsetof(struct fuse_direntplus, dirent.name) */
export const FUSE_NAME_OFFSET_DIRENTPLUS = 152;
/** FUSE_REC_ALIGN: round up to a multiple of 8. */
export function fuseRecAlign(n: number): number {
  return (n + 7) & ~7;
}
/** FUSE_DIRENT_SIZE for a name of `namelen` bytes. */
export function direntSize(namelen: number): number {
  return (FUSE_NAME_OFFSET + namelen + 7) & ~7;
}
/** FUSE_DIRENTPLUS_SIZE for a name of `namelen` bytes. */
export function direntplusSize(namelen: number): number {
  return (FUSE_NAME_OFFSET_DIRENTPLUS + namelen + 7) & ~7;
}

/** A fuse_dirent with its name. */
export interface DirentRecord extends Dirent {
  name: Buffer;
}
/** A fuse_direntplus with its name. */
export interface DirentplusRecord {
  entry_out: EntryOut;
  dirent: DirentRecord;
}

/**
 * Writes one fuse_dirent (header, name, zero padding) at `offset`; returns the
 * offset of the next record. The caller checks room with direntSize().
 */
export function writeDirent(buf: Buffer, offset: number, ino: number, off: number, type: number, name: Buffer): number {
  const end = offset + direntSize(name.length);
  if (end > buf.length) throw shortTarget('fuse_dirent', end - offset, buf.length, offset);
  writeU64(buf, offset, ino);
  writeU64(buf, offset + 8, off);
  buf.writeUInt32LE(name.length, offset + 16);
  buf.writeUInt32LE(type >>> 0, offset + 20);
  name.copy(buf, offset + FUSE_NAME_OFFSET);
  buf.fill(0, offset + FUSE_NAME_OFFSET + name.length, end);
  return end;
}

/** Parses a READDIR reply body. Throws ProtocolError on a record that overruns. */
export function readDirents(buf: Buffer): DirentRecord[] {
  const out: DirentRecord[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const d = decodeDirent(buf, pos);
    const size = direntSize(d.namelen);
    if (pos + FUSE_NAME_OFFSET + d.namelen > buf.length) {
      throw new ProtocolError('SHORT_BUFFER', `Cannot decode fuse_dirent name at ${pos}: namelen ${d.namelen} overruns ${buf.length}`);
    }
    out.push({ ...d, name: Buffer.from(buf.subarray(pos + FUSE_NAME_OFFSET, pos + FUSE_NAME_OFFSET + d.namelen)) });
    pos += size;
  }
  return out;
}

/** Parses a READDIRPLUS reply body. */
export function readDirentplus(buf: Buffer): DirentplusRecord[] {
  const out: DirentplusRecord[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const d = decodeDirentplus(buf, pos);
    const nameAt = pos + FUSE_NAME_OFFSET_DIRENTPLUS;
    if (nameAt + d.dirent.namelen > buf.length) {
      throw new ProtocolError('SHORT_BUFFER', `Cannot decode fuse_direntplus name at ${pos}: namelen ${d.dirent.namelen} overruns ${buf.length}`);
    }
    out.push({ entry_out: d.entry_out, dirent: { ...d.dirent, name: Buffer.from(buf.subarray(nameAt, nameAt + d.dirent.namelen)) } });
    pos += direntplusSize(d.dirent.namelen);
  }
  return out;
}

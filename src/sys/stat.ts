// Layer: sys. Decoding of struct statx (arch-independent layout, see
// include/uapi/linux/stat.h). Pure: imports nothing.

/** sizeof(struct statx). */
export const STATX_SIZE = 256;

/** A decoded statx result. Times are seconds + nanoseconds; ids are numbers (exact below 2^53). */
export interface Stat {
  /** st_dev as one number: major * 2^32 + minor (a key, not a dev_t encoding). */
  dev: number;
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  /** st_rdev in the kernel's new_encode_dev (32-bit) form, as FUSE's fuse_attr.rdev carries it. */
  rdev: number;
  size: number;
  blksize: number;
  blocks: number;
  atime: number;
  atimeNsec: number;
  mtime: number;
  mtimeNsec: number;
  ctime: number;
  ctimeNsec: number;
  /** stx_mnt_id when STATX_MNT_ID was asked for and filled, else 0. */
  mntId: number;
}

// Field offsets in struct statx.
const MASK = 0, BLKSIZE = 4, NLINK = 16, UID = 20, GID = 24, MODE = 28, INO = 32, SIZE = 40, BLOCKS = 48;
const ATIME = 64, CTIME = 96, MTIME = 112, RDEV_MAJOR = 128, RDEV_MINOR = 132, DEV_MAJOR = 136, DEV_MINOR = 140, MNT_ID = 144;
const STATX_MNT_ID = 0x1000;

function u64(b: Buffer, off: number): number {
  return b.readUInt32LE(off) + b.readUInt32LE(off + 4) * 0x100000000;
}
function s64(b: Buffer, off: number): number {
  return b.readUInt32LE(off) + b.readInt32LE(off + 4) * 0x100000000;
}

/** new_encode_dev: the dev_t layout FUSE and mknod's 32-bit values use. */
export function encodeDev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

export function statxDev(b: Buffer): number {
  return b.readUInt32LE(DEV_MAJOR) * 0x100000000 + b.readUInt32LE(DEV_MINOR);
}
export function statxIno(b: Buffer): number {
  return u64(b, INO);
}
export function statxMode(b: Buffer): number {
  return b.readUInt16LE(MODE);
}

export function decodeStatx(b: Buffer): Stat {
  return {
    dev: statxDev(b),
    ino: u64(b, INO),
    mode: b.readUInt16LE(MODE),
    nlink: b.readUInt32LE(NLINK),
    uid: b.readUInt32LE(UID),
    gid: b.readUInt32LE(GID),
    rdev: encodeDev(b.readUInt32LE(RDEV_MAJOR), b.readUInt32LE(RDEV_MINOR)),
    size: u64(b, SIZE),
    blksize: b.readUInt32LE(BLKSIZE),
    blocks: u64(b, BLOCKS),
    atime: s64(b, ATIME),
    atimeNsec: b.readUInt32LE(ATIME + 8),
    mtime: s64(b, MTIME),
    mtimeNsec: b.readUInt32LE(MTIME + 8),
    ctime: s64(b, CTIME),
    ctimeNsec: b.readUInt32LE(CTIME + 8),
    mntId: (b.readUInt32LE(MASK) & STATX_MNT_ID) !== 0 ? u64(b, MNT_ID) : 0,
  };
}

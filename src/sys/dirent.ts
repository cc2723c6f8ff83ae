// Layer: sys. Parsing of the linux_dirent64 records getdents64(2) fills.
// Pure: imports nothing.
//
// struct linux_dirent64 { u64 d_ino; s64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
// d_name is NUL-terminated and the record padded to 8 bytes. d_off is the
// file system's own cookie (ext4 uses 63-bit hashes): we never turn it into a
// JS number; callers count entries instead.

export const DIRENT_NAME_OFFSET = 19;

/** One record's fields; the name is buf[nameStart, nameEnd) (no view is built: copy what you keep). */
export interface RawDirent {
  ino: number;
  type: number;
  nameStart: number;
  nameEnd: number;
  /** Byte offset of the next record in the buffer. */
  next: number;
}

/**
 * Decodes the record at `pos` of buf[0..end). Returns null at the end or for a
 * record that does not fit (a short or corrupt buffer never reads past `end`).
 */
export function parseDirent(buf: Buffer, pos: number, end: number): RawDirent | null {
  const out: RawDirent = { ino: 0, type: 0, nameStart: 0, nameEnd: 0, next: 0 };
  return parseDirentInto(buf, null, pos, end, out) ? out : null;
}

/**
 * parseDirent without allocating: fills `out` and returns false where
 * parseDirent returns null. `words`, when given, is a Uint32Array over buf's
 * own memory (buf.byteOffset a multiple of 4), used to read the fixed fields
 * of a 4-aligned record in two loads (records from the kernel are 8-aligned).
 */
export function parseDirentInto(buf: Buffer, words: Uint32Array | null, pos: number, end: number, out: RawDirent): boolean {
  if (pos + DIRENT_NAME_OFFSET >= end) return false;
  let reclen: number;
  if (words !== null && (pos & 3) === 0) {
    const q = pos >> 2;
    const w = words[q + 4];
    reclen = w & 0xffff;
    out.type = (w >>> 16) & 0xff;
    out.ino = words[q] + words[q + 1] * 0x100000000;
  } else {
    reclen = buf.readUInt16LE(pos + 16);
    out.type = buf[pos + 18];
    out.ino = buf.readUInt32LE(pos) + buf.readUInt32LE(pos + 4) * 0x100000000;
  }
  if (reclen <= DIRENT_NAME_OFFSET || pos + reclen > end) return false;
  const start = pos + DIRENT_NAME_OFFSET;
  const stop = pos + reclen;
  // The record is the name, its NUL and at most 7 bytes of padding, rounded
  // up to 8: the NUL lies in the last 8 bytes, so the scan starts there.
  let nul = stop - 8 > start ? stop - 8 : start;
  while (nul < stop && buf[nul] !== 0) nul++;
  out.nameStart = start;
  out.nameEnd = nul;
  out.next = stop;
  return true;
}

/** A copy of the record's name. */
export function direntName(buf: Buffer, rec: RawDirent): Buffer {
  const start = rec.nameStart;
  const n = rec.nameEnd - start;
  const out = Buffer.allocUnsafe(n);
  // A byte loop: names are short and Buffer#copy's checks cost more than the copy.
  for (let i = 0; i < n; i++) out[i] = buf[start + i];
  return out;
}

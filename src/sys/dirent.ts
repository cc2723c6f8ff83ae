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
  if (pos + DIRENT_NAME_OFFSET >= end) return null;
  const reclen = buf.readUInt16LE(pos + 16);
  if (reclen <= DIRENT_NAME_OFFSET || pos + reclen > end) return null;
  const start = pos + DIRENT_NAME_OFFSET;
  let nul = start;
  const stop = pos + reclen;
  while (nul < stop && buf[nul] !== 0) nul++;
  return {
    ino: buf.readUInt32LE(pos) + buf.readUInt32LE(pos + 4) * 0x100000000,
    type: buf[pos + 18],
    nameStart: start,
    nameEnd: nul,
    next: stop,
  };
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

// Test support: tiny little-endian byte builders, written independently of
// src/fuse/abi.ts so golden vectors do not share the production encoders'
// bugs. Each helper returns a fresh Buffer; `bytes(...)` concatenates.

export function u8(x: number): Buffer {
  return Buffer.from([x & 0xff]);
}
export function u16(x: number): Buffer {
  return Buffer.from([x & 0xff, (x >>> 8) & 0xff]);
}
export function u32(x: number): Buffer {
  const v = x >>> 0;
  return Buffer.from([v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff]);
}
export function i32(x: number): Buffer {
  return u32(x | 0);
}
/** 64-bit little-endian two's complement of a number or bigint. */
export function u64(x: number | bigint): Buffer {
  let v = BigInt.asUintN(64, BigInt(x));
  const out = Buffer.alloc(8);
  for (let i = 0; i < 8; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}
export const i64 = u64;
/** The string's UTF-8 bytes followed by a NUL. */
export function cstr(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
}
/** The string's UTF-8 bytes, no NUL. */
export function str(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}
export function zeros(n: number): Buffer {
  return Buffer.alloc(n);
}
/** Zero bytes that bring `len` up to a multiple of 8. */
export function pad8(len: number): Buffer {
  return Buffer.alloc((8 - (len % 8)) % 8);
}
export function bytes(...parts: Buffer[]): Buffer {
  return Buffer.concat(parts);
}
/** Parses "0a 0b ..." hex with whitespace and `# comments` (to end of line). */
export function hex(text: string): Buffer {
  const clean = text.replace(/#[^\n]*/g, '').replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new Error(`bad hex: ${clean}`);
  return Buffer.from(clean, 'hex');
}

/**
 * A whole FUSE request: fuse_in_header (40 bytes, len filled in) + args.
 * Laid out from the kernel header by hand: len u32, opcode u32, unique u64,
 * nodeid u64, uid u32, gid u32, pid u32, total_extlen u16, padding u16.
 */
export function request(opcode: number, unique: number | bigint, nodeid: number, args: Buffer = Buffer.alloc(0),
  cred: { uid?: number; gid?: number; pid?: number; extlen?: number; len?: number } = {}): Buffer {
  const len = cred.len ?? 40 + args.length;
  return bytes(
    u32(len), u32(opcode), u64(unique), u64(nodeid),
    u32(cred.uid ?? 0), u32(cred.gid ?? 0), u32(cred.pid ?? 1), u16(cred.extlen ?? 0), u16(0),
    args,
  );
}

/** fuse_out_header (16 bytes) + body, len filled in. */
export function reply(error: number, unique: number | bigint, body: Buffer = Buffer.alloc(0)): Buffer {
  return bytes(u32(16 + body.length), i32(error), u64(unique), body);
}

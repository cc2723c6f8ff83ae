// Test support for the FUSE server tests: a tiny client that builds requests
// with test/support/bytes.ts and parses replies by raw offsets (not with the
// production codec), so a codec bug cannot hide on both ends.
import assert from 'node:assert/strict';
import { FuseServer, type FuseServerOptions, type LogLevel } from '../../../src/fuse/server.ts';
import type { FileSystem } from '../../../src/fuse/filesystem.ts';
import { bytes, u32, zeros, request } from '../../support/bytes.ts';

export interface Reply {
  error: number;
  body: Buffer;
}

export interface Cred {
  uid?: number;
  gid?: number;
  pid?: number;
  extlen?: number;
}

export class TestClient {
  readonly server: FuseServer;
  readonly logs: { level: LogLevel; msg: string }[] = [];
  private unique = 2n;

  constructor(readonly fs: FileSystem, options: FuseServerOptions = {}) {
    this.server = new FuseServer(fs, { ...options, log: (level, msg) => this.logs.push({ level, msg }) });
  }

  /** INIT as a 7.38 kernel offering `flags` (and flags2 when given). */
  init(flags = 0x7fffffff, flags2 = 0, minor = 38): Reply {
    const r = this.call(26, 0, bytes(u32(7), u32(minor), u32(0x20000), u32(flags), u32(flags2), zeros(44)));
    assert.equal(r?.error, 0, 'INIT succeeds');
    return r!;
  }

  /** Sends one request; returns the parsed reply, or null when none came back. */
  call(opcode: number, nodeid: number, args: Buffer = Buffer.alloc(0), cred: Cred = {}): Reply | null {
    const unique = this.unique;
    this.unique += 2n;
    return this.raw(request(opcode, unique, nodeid, args, cred), unique);
  }

  /** Feeds raw bytes; checks the reply header against `unique` when one is given. */
  raw(req: Buffer, unique?: bigint): Reply | null {
    const out = this.server.handle(req);
    if (out === null) return null;
    assert.ok(out.length >= 16, 'reply carries a fuse_out_header');
    assert.equal(out.readUInt32LE(0), out.length, 'out header len matches the reply');
    if (unique !== undefined) assert.equal(out.readBigUInt64LE(8), unique, 'reply unique matches');
    const error = out.readInt32LE(4);
    if (error !== 0) assert.equal(out.length, 16, 'an error reply has no body');
    // Copy: the server's reply buffer is reused by the next call.
    return { error, body: Buffer.from(out.subarray(16)) };
  }

  /** Like call(), but requires success and returns the body. */
  ok(opcode: number, nodeid: number, args?: Buffer, cred?: Cred): Buffer {
    const r = this.call(opcode, nodeid, args, cred);
    assert.ok(r, `opcode ${opcode} got a reply`);
    assert.equal(r.error, 0, `opcode ${opcode} succeeds (got ${r.error})`);
    return r.body;
  }

  /** Like call(), but requires the error -errno. */
  fails(errno: number, opcode: number, nodeid: number, args?: Buffer, cred?: Cred): void {
    const r = this.call(opcode, nodeid, args, cred);
    assert.ok(r, `opcode ${opcode} got a reply`);
    assert.equal(r.error, -errno, `opcode ${opcode} answers -${errno} (got ${r.error})`);
  }
}

/** Reads fuse_entry_out by raw offsets. */
export function entryOf(body: Buffer): { nodeid: number; generation: number; ino: number; size: number; mode: number; nlink: number } {
  return {
    nodeid: Number(body.readBigUInt64LE(0)),
    generation: Number(body.readBigUInt64LE(8)),
    ino: Number(body.readBigUInt64LE(40)),
    size: Number(body.readBigUInt64LE(48)),
    mode: body.readUInt32LE(40 + 60),
    nlink: body.readUInt32LE(40 + 64),
  };
}

/** Reads fuse_attr_out by raw offsets. */
export function attrOf(body: Buffer): { ino: number; size: number; mode: number; nlink: number; uid: number; gid: number } {
  return {
    ino: Number(body.readBigUInt64LE(16)),
    size: Number(body.readBigUInt64LE(24)),
    mode: body.readUInt32LE(16 + 60),
    nlink: body.readUInt32LE(16 + 64),
    uid: body.readUInt32LE(16 + 68),
    gid: body.readUInt32LE(16 + 72),
  };
}

/** Walks READDIR (plus = false) or READDIRPLUS records by raw offsets. */
export function direntsOf(body: Buffer, plus: boolean): { name: string; ino: number; off: number; type: number; nodeid: number }[] {
  const out = [];
  let p = 0;
  const head = plus ? 128 : 0;
  while (p < body.length) {
    const d = p + head;
    const namelen = body.readUInt32LE(d + 16);
    out.push({
      nodeid: plus ? Number(body.readBigUInt64LE(p)) : 0,
      ino: Number(body.readBigUInt64LE(d)),
      off: Number(body.readBigUInt64LE(d + 8)),
      type: body.readUInt32LE(d + 20),
      name: body.subarray(d + 24, d + 24 + namelen).toString(),
    });
    const size = head + 24 + namelen;
    // Records are 8-byte aligned and the padding is zero.
    const aligned = (size + 7) & ~7;
    assert.ok(body.subarray(p + size, p + aligned).every((x) => x === 0), 'dirent padding is zero');
    p += aligned;
  }
  return out;
}

// Golden vectors: whole FUSE messages written out field by field with
// test/support/bytes.ts (independent of the production encoders), each field
// annotated. Every vector is checked both ways: decode(bytes) == value and
// encode(value) == bytes. The last group runs request vectors through
// FuseServer and compares its replies byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as abi from '../../src/fuse/abi.ts';
import { Opcode } from '../../src/fuse/abi.ts';
import { FuseServer } from '../../src/fuse/server.ts';
import { encodeNotifyInvalEntry, encodeNotifyInvalInode, encodeNotifyDelete } from '../../src/fuse/notify.ts';
import type { FileSystem, Attr } from '../../src/fuse/filesystem.ts';
import { bytes, u16, u32, i32, u64, cstr, str, zeros, pad8, request, reply } from '../support/bytes.ts';

type Codec = { decode: (b: Buffer, o?: number) => unknown; encode: (v: never, b: Buffer, o?: number) => number; size: number };
const codec = (key: abi.StructName): Codec => ({
  decode: (abi as unknown as Record<string, Codec['decode']>)[`decode${key}`]!,
  encode: (abi as unknown as Record<string, Codec['encode']>)[`encode${key}`]!,
  size: abi.LAYOUT[key].size,
});

/** Checks one struct vector both ways. */
function bothWays(key: abi.StructName, value: object, wire: Buffer): void {
  const c = codec(key);
  assert.equal(wire.length, c.size, `${key} vector length`);
  assert.deepEqual(c.decode(wire), value, `decode${key}`);
  const out = Buffer.alloc(c.size, 0xaa);
  c.encode(value as never, out);
  assert.deepEqual(out, wire, `encode${key}`);
}

const UNIQUE = 0x0000_0001_0000_002an; // > 2^32: exercises the high word

test('INIT request from a 7.45 kernel (fuse_in_header + fuse_init_in)', () => {
  const header = bytes(
    u32(104), //            len: 40 + 64
    u32(26), //             opcode: FUSE_INIT
    u64(UNIQUE), //         unique
    u64(0), //              nodeid
    u32(0), u32(0), //      uid, gid
    u32(0), //              pid
    u16(0), u16(0), //      total_extlen, padding
  );
  const initIn = bytes(
    u32(7), u32(45), //     major, minor
    u32(0x20000), //        max_readahead 128 KiB
    u32(0x73fffffb), //     flags: everything but FILE_OPS / INIT_RESERVED, with INIT_EXT
    u32(0x0000000b), //     flags2: SECURITY_CTX | HAS_INODE_DAX | HAS_EXPIRE_ONLY
    zeros(44), //           unused[11]
  );
  bothWays('InHeader', { len: 104, opcode: 26, unique: UNIQUE, nodeid: 0, uid: 0, gid: 0, pid: 0, total_extlen: 0, padding: 0 }, header);
  bothWays('InitIn', { major: 7, minor: 45, max_readahead: 0x20000, flags: 0x73fffffb, flags2: 0xb, unused: new Array(11).fill(0) }, initIn);
  assert.equal(abi.joinInitFlags(0x73fffffb, 0xb) & abi.FUSE_HAS_INODE_DAX, abi.FUSE_HAS_INODE_DAX);
});

test('INIT reply (fuse_out_header + fuse_init_out)', () => {
  const wire = bytes(
    u32(7), u32(38), //     major, minor: we answer 7.38
    u32(0x20000), //        max_readahead
    u32(0x44400001), //     flags: ASYNC_READ | MAX_PAGES | MAP_ALIGNMENT | INIT_EXT
    u16(0), u16(0), //      max_background, congestion_threshold
    u32(0x100000), //       max_write 1 MiB
    u32(1), //              time_gran 1 ns
    u16(256), u16(21), //   max_pages, map_alignment (log2: 2 MiB)
    u32(0), //              flags2
    zeros(28), //           unused[7]
  );
  bothWays('InitOut', { major: 7, minor: 38, max_readahead: 0x20000, flags: 0x44400001, max_background: 0,
    congestion_threshold: 0, max_write: 0x100000, time_gran: 1, max_pages: 256, map_alignment: 21, flags2: 0,
    unused: new Array(7).fill(0) }, wire);
  bothWays('OutHeader', { len: 80, error: 0, unique: UNIQUE }, bytes(u32(80), i32(0), u64(UNIQUE)));
  bothWays('OutHeader', { len: 16, error: -2, unique: 7n }, bytes(u32(16), i32(-2), u64(7))); // -ENOENT
});

const ATTR: Attr = {
  ino: 0x1_0000_0005, size: 12345, blocks: 32, atime: 1_700_000_000, mtime: 1_700_000_001, ctime: 1_700_000_002,
  atimensec: 111, mtimensec: 222, ctimensec: 333, mode: 0o100644, nlink: 1, uid: 1000, gid: 1000, rdev: 0,
  blksize: 4096, flags: 0,
};
const attrWire = bytes(
  u64(0x1_0000_0005), //   ino
  u64(12345), //           size
  u64(32), //              blocks
  u64(1_700_000_000), u64(1_700_000_001), u64(1_700_000_002), // atime, mtime, ctime
  u32(111), u32(222), u32(333), // atimensec, mtimensec, ctimensec
  u32(0o100644), //        mode: S_IFREG | 0644
  u32(1), //               nlink
  u32(1000), u32(1000), // uid, gid
  u32(0), //               rdev
  u32(4096), //            blksize
  u32(0), //               flags
);
const entryWire = bytes(
  u64(0x1_0000_0005), //   nodeid
  u64(7), //               generation
  u64(1), u64(2), //       entry_valid, attr_valid (s)
  u32(500), u32(600), //   entry_valid_nsec, attr_valid_nsec
  attrWire,
);
const ENTRY = { nodeid: 0x1_0000_0005, generation: 7, entry_valid: 1, attr_valid: 2, entry_valid_nsec: 500, attr_valid_nsec: 600, attr: ATTR };

test('LOOKUP request and its fuse_entry_out reply', () => {
  const req = request(Opcode.LOOKUP, 2, 1, cstr('hello.txt'), { uid: 1000, gid: 1000, pid: 42 });
  assert.equal(req.length, 40 + 10);
  assert.deepEqual(abi.decodeInHeader(req), { len: 50, opcode: 1, unique: 2n, nodeid: 1, uid: 1000, gid: 1000, pid: 42, total_extlen: 0, padding: 0 });
  bothWays('Attr', ATTR, attrWire);
  bothWays('EntryOut', ENTRY, entryWire);
});

test('READ request (fuse_read_in)', () => {
  const wire = bytes(
    u64(3), //               fh
    u64(0x2_0000_1000), //   offset (above 4 GiB)
    u32(131072), //          size
    u32(abi.FUSE_READ_LOCKOWNER), // read_flags
    u64(0xdead_beef_cafe_f00dn), //  lock_owner (all 64 bits matter)
    u32(0o100002), //        flags: O_RDWR | O_LARGEFILE
    u32(0), //               padding
  );
  bothWays('ReadIn', { fh: 3, offset: 0x2_0000_1000, size: 131072, read_flags: 2, lock_owner: 0xdeadbeefcafef00dn, flags: 0o100002, padding: 0 }, wire);
});

test('WRITE request (fuse_write_in + data) and fuse_write_out', () => {
  const data = str('payload!');
  const writeIn = bytes(
    u64(9), //               fh
    u64(4096), //            offset
    u32(data.length), //     size
    u32(abi.FUSE_WRITE_CACHE), // write_flags
    u64(0), //               lock_owner
    u32(1), //               flags: O_WRONLY
    u32(0), //               padding
  );
  bothWays('WriteIn', { fh: 9, offset: 4096, size: 8, write_flags: 1, lock_owner: 0n, flags: 1, padding: 0 }, writeIn);
  const req = request(Opcode.WRITE, 4, 5, bytes(writeIn, data));
  assert.deepEqual(req.subarray(80), data);
  bothWays('WriteOut', { size: 8, padding: 0 }, bytes(u32(8), u32(0)));
});

test('READDIR and READDIRPLUS reply bodies (8-byte aligned records)', () => {
  const dirents = bytes(
    u64(1), u64(1), u32(1), u32(4), str('.'), pad8(24 + 1), //          ino, off, namelen, type DT_DIR, name
    u64(7), u64(2), u32(8), u32(8), str('file.txt'), //                  exactly 32 bytes: no padding
    u64(8), u64(3), u32(9), u32(10), str('link-name'), pad8(24 + 9), // DT_LNK
  );
  assert.equal(dirents.length, 32 + 32 + 40);
  const parsed = abi.readDirents(dirents);
  assert.deepEqual(parsed.map((d) => [d.ino, d.off, d.type, d.name.toString()]), [[1, 1, 4, '.'], [7, 2, 8, 'file.txt'], [8, 3, 10, 'link-name']]);
  const out = Buffer.alloc(dirents.length, 0xaa);
  let p = 0;
  for (const d of parsed) p = abi.writeDirent(out, p, d.ino, d.off, d.type, d.name);
  assert.deepEqual(out, dirents);

  const plus = bytes(entryWire, u64(0x1_0000_0005), u64(1), u32(5), u32(8), str('hello'), pad8(152 + 5));
  assert.equal(plus.length, abi.direntplusSize(5));
  const pp = abi.readDirentplus(plus);
  assert.equal(pp.length, 1);
  assert.deepEqual(pp[0]!.entry_out, ENTRY);
  assert.equal(pp[0]!.dirent.name.toString(), 'hello');
  // A record whose namelen overruns the buffer is a protocol error, not a crash.
  assert.throws(() => abi.readDirents(bytes(u64(1), u64(1), u32(200), u32(8), str('x'))), { name: 'ProtocolError' });
});

test('SETUPMAPPING and REMOVEMAPPING (virtio-fs DAX)', () => {
  bothWays('SetupmappingIn', { fh: 3, foffset: 0x20_0000, len: 0x20_0000, flags: 3, moffset: 0x1_0000_0000 }, bytes(
    u64(3), //               fh
    u64(0x20_0000), //       foffset 2 MiB
    u64(0x20_0000), //       len 2 MiB
    u64(abi.FUSE_SETUPMAPPING_FLAG_READ | abi.FUSE_SETUPMAPPING_FLAG_WRITE), // flags
    u64(0x1_0000_0000), //   moffset 4 GiB into the window
  ));
  bothWays('RemovemappingIn', { count: 2 }, u32(2));
  bothWays('RemovemappingOne', { moffset: 0x40_0000, len: 0x20_0000 }, bytes(u64(0x40_0000), u64(0x20_0000)));
});

test('BATCH_FORGET and FORGET arguments', () => {
  bothWays('BatchForgetIn', { count: 2, dummy: 0 }, bytes(u32(2), u32(0)));
  bothWays('ForgetOne', { nodeid: 12, nlookup: 3 }, bytes(u64(12), u64(3)));
  bothWays('ForgetIn', { nlookup: 0x1_0000_0000 }, u64(0x1_0000_0000));
});

test('SETATTR, CREATE, RENAME2, LSEEK, COPY_FILE_RANGE, STATFS arguments', () => {
  bothWays('SetattrIn', {
    valid: abi.FATTR_SIZE | abi.FATTR_MTIME, padding: 0, fh: 0, size: 100, lock_owner: 0n, atime: 0, mtime: 1234,
    ctime: 0, atimensec: 0, mtimensec: 99, ctimensec: 0, mode: 0, unused4: 0, uid: 0, gid: 0, unused5: 0,
  }, bytes(u32(0x28), u32(0), u64(0), u64(100), u64(0), u64(0), u64(1234), u64(0), u32(0), u32(99), u32(0), u32(0), u32(0), u32(0), u32(0), u32(0)));
  bothWays('CreateIn', { flags: 0o101, mode: 0o100644, umask: 0o022, open_flags: 0 }, bytes(u32(0o101), u32(0o100644), u32(0o022), u32(0)));
  bothWays('Rename2In', { newdir: 5, flags: 2, padding: 0 }, bytes(u64(5), u32(2), u32(0))); // RENAME_EXCHANGE
  bothWays('LseekIn', { fh: 1, offset: 4096, whence: 3, padding: 0 }, bytes(u64(1), u64(4096), u32(3), u32(0))); // SEEK_DATA
  bothWays('CopyFileRangeIn', { fh_in: 1, off_in: 2, nodeid_out: 3, fh_out: 4, off_out: 5, len: 6, flags: 0 },
    bytes(u64(1), u64(2), u64(3), u64(4), u64(5), u64(6), u64(0)));
  bothWays('StatfsOut', { st: { blocks: 1000, bfree: 500, bavail: 400, files: 100, ffree: 50, bsize: 4096, namelen: 255, frsize: 4096, padding: 0, spare: [0, 0, 0, 0, 0, 0] } },
    bytes(u64(1000), u64(500), u64(400), u64(100), u64(50), u32(4096), u32(255), u32(4096), u32(0), zeros(24)));
});

test('notifications: INVAL_INODE, INVAL_ENTRY, DELETE', () => {
  assert.deepEqual(encodeNotifyInvalInode(5, 0, -1), bytes(
    u32(40), i32(2), u64(0), //      out header: len, error = FUSE_NOTIFY_INVAL_INODE, unique 0
    u64(5), u64(0), u64(-1), //      ino, off, len (-1: i64)
  ));
  assert.deepEqual(encodeNotifyInvalEntry(1, str('gone'), abi.FUSE_EXPIRE_ONLY), bytes(
    u32(16 + 16 + 5), i32(3), u64(0),
    u64(1), u32(4), u32(1), //       parent, namelen, flags
    cstr('gone'),
  ));
  assert.deepEqual(encodeNotifyDelete(1, 9, str('x')), bytes(u32(16 + 24 + 2), i32(6), u64(0), u64(1), u64(9), u32(1), u32(0), cstr('x')));
  bothWays('NotifyInvalInodeOut', { ino: 5, off: -1, len: -4096 }, bytes(u64(5), u64(-1), u64(-4096)));
  assert.throws(() => encodeNotifyInvalEntry(1, str('a/b')), RangeError);
});

// ---- the server, byte for byte ---------------------------------------------

/** Test fixture: one file "hello.txt" under the root; nothing else. */
function fixtureFs(): FileSystem {
  return {
    lookup(_ctx, parent, name) {
      if (parent === 1 && name.toString() === 'hello.txt') return ENTRY;
      throw Object.assign(new Error('no such entry'), { errno: 2 });
    },
    read(_ctx, _nodeid, _fh, offset, size, dest) {
      const data = Buffer.from('0123456789');
      const n = Math.max(0, Math.min(size, data.length - offset));
      data.copy(dest, 0, offset, offset + n);
      return n;
    },
  };
}

const INIT_745 = request(Opcode.INIT, UNIQUE, 0, bytes(
  u32(7), u32(45), u32(0x20000),
  u32(0x73fffffb), //          flags the kernel offers
  u32(0xb), //                 flags2
  zeros(44),
));

test('server: INIT from a 7.45 kernel is answered with 7.38, exactly these bytes', () => {
  const server = new FuseServer(fixtureFs(), { mapAlignmentLog2: 21 });
  const got = server.handle(INIT_745);
  // Enabled = offered & (ASYNC_READ | BIG_WRITES | ASYNC_DIO | PARALLEL_DIROPS |
  // MAX_PAGES | INIT_EXT): the fixture has no readdirplus and no init(),
  // flags2 bits are never enabled by default, and /dev/fuse does not offer
  // MAP_ALIGNMENT, so map_alignment stays 0 although the server has one.
  const flags = 0x1 | 0x20 | 0x8000 | 0x40000 | 0x400000 | 0x40000000;
  assert.deepEqual(got, reply(0, UNIQUE, bytes(
    u32(7), u32(38), u32(0x20000), u32(flags),
    u16(0), u16(0), u32(0x100000), u32(1), u16(256), u16(0), u32(0), zeros(28),
  )));
});

test('server: a virtio-fs INIT offering MAP_ALIGNMENT gets map_alignment', () => {
  const server = new FuseServer(fixtureFs(), { mapAlignmentLog2: 21 });
  const offer = request(Opcode.INIT, 1, 0, bytes(u32(7), u32(38), u32(0), u32(0x77fffffb), u32(0), zeros(44)));
  const flags = 0x1 | 0x20 | 0x8000 | 0x40000 | 0x400000 | 0x40000000 | 0x4000000;
  assert.deepEqual(server.handle(offer), reply(0, 1, bytes(
    u32(7), u32(38), u32(0), u32(flags),
    u16(0), u16(0), u32(0x100000), u32(1), u16(256), u16(21), u32(0), zeros(28),
  )));
});

test('server: LOOKUP and READ replies, exactly these bytes', () => {
  const server = new FuseServer(fixtureFs());
  server.handle(INIT_745);
  assert.deepEqual(server.handle(request(Opcode.LOOKUP, 2, 1, cstr('hello.txt'))), reply(0, 2, entryWire));
  assert.deepEqual(server.handle(request(Opcode.LOOKUP, 4, 1, cstr('nope'))), reply(-2, 4));
  const readIn = bytes(u64(1), u64(6), u32(100), u32(0), u64(0), u32(0), u32(0));
  assert.deepEqual(server.handle(request(Opcode.READ, 6, 0x1_0000_0005, readIn)), reply(0, 6, str('6789')));
});

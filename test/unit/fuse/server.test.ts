// FuseServer unit tests: the protocol rules (INIT negotiation, malformed
// input, errno mapping) with small fixtures, and whole request sequences
// against the real in-memory backend (MemoryFs).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { constants } from 'node:os';
import { Opcode } from '../../../src/fuse/abi.ts';
import * as abi from '../../../src/fuse/abi.ts';
import { FsError } from '../../../src/fuse/errors.ts';
import { MemoryFs } from '../../../src/fs/memory/memory-fs.ts';
import type { FileSystem } from '../../../src/fuse/filesystem.ts';
import { bytes, u16, u32, u64, cstr, str, zeros, request } from '../../support/bytes.ts';
import { TestClient, entryOf, attrOf, direntsOf } from './helpers.ts';

const E = constants.errno;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const O_RDWR = 2;
const O_CREAT = 0o100;

const mkdirArgs = (name: string, mode = 0o755) => bytes(u32(mode), u32(0o022), cstr(name));
const createArgs = (name: string, flags = O_RDWR | O_CREAT, mode = S_IFREG | 0o644) => bytes(u32(flags), u32(mode), u32(0o022), u32(0), cstr(name));
const readArgs = (fh: number, offset: number, size: number) => bytes(u64(fh), u64(offset), u32(size), u32(0), u64(0), u32(0), u32(0));
const writeArgs = (fh: number, offset: number, data: Buffer, size = data.length) =>
  bytes(u64(fh), u64(offset), u32(size), u32(0), u64(0), u32(0), u32(0), data);
const openArgs = (flags: number) => bytes(u32(flags), u32(0));
const releaseArgs = (fh: number) => bytes(u64(fh), u32(0), u32(0), u64(0));

describe('INIT negotiation', () => {
  test('requests before INIT get EIO; FORGET before INIT gets nothing', () => {
    const c = new TestClient(new MemoryFs());
    c.fails(E.EIO, Opcode.GETATTR, 1, zeros(16));
    assert.equal(c.call(Opcode.FORGET, 1, u64(1)), null);
    c.init();
    c.ok(Opcode.GETATTR, 1, zeros(16));
  });

  test('a newer kernel (7.45) gets 7.38, full-size init_out; a second INIT gets EIO', () => {
    const c = new TestClient(new MemoryFs());
    const r = c.init(0x7fffffff, 0, 45);
    assert.equal(r.body.length, 64);
    assert.equal(r.body.readUInt32LE(0), 7);
    assert.equal(r.body.readUInt32LE(4), 38);
    assert.equal(c.server.negotiated?.minor, 38);
    c.fails(E.EIO, Opcode.INIT, 0, bytes(u32(7), u32(38), u32(0), u32(0), u32(0), zeros(44)));
  });

  test('major > 7 gets our version only; major < 7 gets EPROTO; both leave the session uninitialized', () => {
    const c = new TestClient(new MemoryFs());
    const r = c.call(Opcode.INIT, 0, bytes(u32(8), u32(0), u32(0), u32(0)));
    assert.equal(r?.error, 0);
    assert.equal(r!.body.readUInt32LE(0), 7);
    assert.equal(r!.body.readUInt32LE(4), 38);
    assert.equal(c.server.negotiated, null);
    c.fails(E.EPROTO, Opcode.INIT, 0, bytes(u32(6), u32(0), u32(0), u32(0)));
    c.fails(E.EIO, Opcode.GETATTR, 1, zeros(16));
  });

  test('older minors get the compat init_out sizes (24 bytes before 7.23, 8 before 7.5)', () => {
    const a = new TestClient(new MemoryFs());
    assert.equal(a.call(Opcode.INIT, 0, bytes(u32(7), u32(22), u32(0), u32(0)))!.body.length, 24);
    assert.equal(a.server.negotiated?.minor, 22);
    const b = new TestClient(new MemoryFs());
    assert.equal(b.call(Opcode.INIT, 0, bytes(u32(7), u32(4), u32(0), u32(0)))!.body.length, 8);
  });

  test('minor 8 gets 120-byte entry_out and 96-byte attr_out; minor 11 sends an 8-byte mknod_in', () => {
    const c = new TestClient(new MemoryFs());
    c.call(Opcode.INIT, 0, bytes(u32(7), u32(8), u32(0), u32(0)));
    assert.equal(c.ok(Opcode.GETATTR, 1).length, abi.FUSE_COMPAT_ATTR_OUT_SIZE); // 7.8 GETATTR has no args
    assert.equal(c.ok(Opcode.MKDIR, 1, mkdirArgs('d')).length, abi.FUSE_COMPAT_ENTRY_OUT_SIZE);
    const d = new TestClient(new MemoryFs());
    d.call(Opcode.INIT, 0, bytes(u32(7), u32(11), u32(0), u32(0)));
    const e = entryOf(d.ok(Opcode.MKNOD, 1, bytes(u32(S_IFREG | 0o600), u32(0), cstr('node'))));
    assert.equal(e.mode, S_IFREG | 0o600);
  });

  test('flags: capable & want; flags2 only with INIT_EXT; locks never; readdirplus only with a backend that has it', () => {
    const c = new TestClient(new MemoryFs());
    c.init(0x7fffffff, 0xffffffff);
    const f = c.server.negotiated!.flags;
    assert.ok(f & abi.FUSE_ASYNC_READ);
    assert.ok(f & abi.FUSE_DO_READDIRPLUS);
    assert.ok(f & abi.FUSE_MAX_PAGES);
    assert.equal(f & (abi.FUSE_POSIX_LOCKS | abi.FUSE_FLOCK_LOCKS), 0n);
    assert.equal(f & abi.FUSE_SECURITY_CTX, 0n);
    const noExt = new TestClient(new MemoryFs(), { extraInitFlags: abi.FUSE_HAS_INODE_DAX });
    const r = noExt.init(0x3fffffff, 0xffffffff); // no FUSE_INIT_EXT: flags2 must be ignored
    assert.equal(r.body.readUInt32LE(32), 0, 'flags2 stays 0');
    assert.equal(noExt.server.negotiated!.flags >> 32n, 0n);
    const ext = new TestClient(new MemoryFs(), { extraInitFlags: abi.FUSE_HAS_INODE_DAX });
    const r2 = ext.init(0x7fffffff, 0xffffffff);
    assert.equal(r2.body.readUInt32LE(32), 2, 'flags2 carries HAS_INODE_DAX');
    const bare = new TestClient({ getattr: () => { throw new FsError(E.EIO); } });
    bare.init();
    assert.equal(bare.server.negotiated!.flags & abi.FUSE_DO_READDIRPLUS, 0n);
  });

  test('the backend sees capable/want and has the last word (it may narrow)', () => {
    let seen: abi.StructName | undefined;
    const fs: FileSystem = {
      init(info) {
        assert.equal(info.minor, 38);
        assert.equal(info.max_readahead, 0x20000);
        assert.ok(info.want & abi.FUSE_ASYNC_READ);
        seen = 'InitIn';
        return (info.want & ~abi.FUSE_ASYNC_READ) | abi.FUSE_WRITEBACK_CACHE | abi.FUSE_POSIX_LOCKS;
      },
    };
    const c = new TestClient(fs);
    c.init();
    assert.equal(seen, 'InitIn');
    const f = c.server.negotiated!.flags;
    assert.equal(f & abi.FUSE_ASYNC_READ, 0n);
    assert.ok(f & abi.FUSE_WRITEBACK_CACHE);
    assert.equal(f & abi.FUSE_POSIX_LOCKS, 0n, 'the server refuses what it cannot serve');
  });

  test('max_write, max_pages, time_gran and max_readahead reach init_out', () => {
    const c = new TestClient(new MemoryFs(), { maxWrite: 128 * 1024, timeGranNs: 1000, maxReadahead: 4096 });
    const r = c.init();
    assert.equal(r.body.readUInt32LE(8), 4096, 'max_readahead capped');
    assert.equal(r.body.readUInt32LE(20), 128 * 1024, 'max_write');
    assert.equal(r.body.readUInt32LE(24), 1000, 'time_gran');
    assert.equal(r.body.readUInt16LE(28), 32, 'max_pages');
    assert.equal(c.server.requestBufferSize >= 128 * 1024 + 80, true);
    assert.ok(new TestClient(new MemoryFs()).server.requestBufferSize >= 1024 * 1024 + 80);
    assert.throws(() => new TestClient(new MemoryFs(), { maxWrite: 100 }), RangeError);
  });

  test('DESTROY calls fs.destroy, answers, and a new INIT starts a new session', () => {
    let destroyed = 0;
    const c = new TestClient({ destroy: () => { destroyed++; }, getattr: () => ({ attr_valid: 0, attr_valid_nsec: 0, attr: new MemoryFs().getattr({ uid: 0, gid: 0, pid: 0 }, 1, undefined).attr }) });
    c.init();
    assert.deepEqual(c.ok(Opcode.DESTROY, 0), Buffer.alloc(0));
    assert.equal(destroyed, 1);
    c.fails(E.EIO, Opcode.GETATTR, 1, zeros(16));
    c.init();
    c.ok(Opcode.GETATTR, 1, zeros(16));
  });
});

describe('malformed input', () => {
  test('short headers and lying header lengths are dropped with a log line', () => {
    const c = new TestClient(new MemoryFs());
    c.init();
    assert.equal(c.raw(Buffer.alloc(39)), null);
    const req = request(Opcode.GETATTR, 9, 1, zeros(16));
    req.writeUInt32LE(req.length + 1, 0);
    assert.equal(c.raw(req), null);
    req.writeUInt32LE(req.length - 1, 0);
    assert.equal(c.raw(req), null);
    assert.equal(c.logs.filter((l) => l.level === 'warn').length, 3);
  });

  test('argument structs that are too short get EINVAL', () => {
    const c = new TestClient(new MemoryFs());
    c.init();
    for (const op of [Opcode.GETATTR, Opcode.SETATTR, Opcode.OPEN, Opcode.READ, Opcode.WRITE, Opcode.RELEASE, Opcode.FSYNC,
      Opcode.FLUSH, Opcode.MKDIR, Opcode.MKNOD, Opcode.CREATE, Opcode.RENAME, Opcode.RENAME2, Opcode.LINK, Opcode.ACCESS,
      Opcode.GETXATTR, Opcode.LISTXATTR, Opcode.SETXATTR, Opcode.READDIR, Opcode.READDIRPLUS, Opcode.FALLOCATE,
      Opcode.LSEEK, Opcode.COPY_FILE_RANGE, Opcode.OPENDIR, Opcode.RELEASEDIR, Opcode.FSYNCDIR]) {
      c.fails(E.EINVAL, op, 1, zeros(3));
    }
    assert.equal(c.call(Opcode.FORGET, 1, zeros(3)), null);
    assert.equal(c.call(Opcode.BATCH_FORGET, 1, zeros(3)), null);
  });

  test('names: missing NUL, empty, slash -> EINVAL; 256 bytes -> ENAMETOOLONG; 255 bytes work', () => {
    const c = new TestClient(new MemoryFs());
    c.init();
    c.fails(E.EINVAL, Opcode.LOOKUP, 1, str('abc'));
    c.fails(E.EINVAL, Opcode.LOOKUP, 1, Buffer.alloc(0));
    c.fails(E.EINVAL, Opcode.LOOKUP, 1, cstr(''));
    c.fails(E.EINVAL, Opcode.LOOKUP, 1, cstr('a/b'));
    c.fails(E.ENAMETOOLONG, Opcode.MKDIR, 1, mkdirArgs('x'.repeat(256)));
    const e = entryOf(c.ok(Opcode.MKDIR, 1, mkdirArgs('y'.repeat(255))));
    assert.equal(e.mode & S_IFDIR, S_IFDIR);
    c.fails(E.EEXIST, Opcode.MKDIR, 1, mkdirArgs('.'));
    c.fails(E.EINVAL, Opcode.RMDIR, 1, cstr('..'));
    c.fails(E.EINVAL, Opcode.RENAME, 1, bytes(u64(1), cstr('a'), str('b'))); // second name without NUL
    c.fails(E.EINVAL, Opcode.SYMLINK, 1, bytes(cstr('l'), cstr(''))); // empty target
  });

  test('a total_extlen that overruns the request gets EINVAL; a real one is skipped', () => {
    const c = new TestClient(new MemoryFs());
    c.init();
    c.fails(E.EINVAL, Opcode.GETATTR, 1, zeros(16), { extlen: 100 });
    // 8 bytes of extension after the args: not part of the name.
    c.fails(E.ENOENT, Opcode.LOOKUP, 1, bytes(cstr('none'), u32(8), u32(0)), { extlen: 1 });
  });

  test('WRITE whose size lies about the payload gets EINVAL', () => {
    const c = new TestClient(new MemoryFs());
    c.init();
    const fh = Number(c.ok(Opcode.CREATE, 1, createArgs('f')).readBigUInt64LE(128));
    c.fails(E.EINVAL, Opcode.WRITE, 2, writeArgs(fh, 0, str('abcd'), 5));
    c.fails(E.EINVAL, Opcode.WRITE, 2, writeArgs(fh, 0, str('abcd'), 3));
    c.fails(E.EINVAL, Opcode.WRITE, 2, writeArgs(fh, 0, str('abcd'), 0xffffffff));
  });
});

describe('errors and missing ops', () => {
  test('missing ops, unknown opcodes and lock ops answer ENOSYS', () => {
    const c = new TestClient({});
    c.init();
    c.fails(E.ENOSYS, Opcode.LOOKUP, 1, cstr('x'));
    c.fails(E.ENOSYS, Opcode.GETATTR, 1, zeros(16));
    c.fails(E.ENOSYS, Opcode.SETUPMAPPING, 1, zeros(40));
    c.fails(E.ENOSYS, Opcode.GETLK, 1, zeros(48));
    c.fails(E.ENOSYS, Opcode.SYNCFS, 1, zeros(8));
    c.fails(E.ENOSYS, Opcode.STATX, 1, zeros(16));
    c.fails(E.ENOSYS, 9999, 1);
    assert.equal(c.call(Opcode.INTERRUPT, 0, u64(2)), null);
  });

  test('errno errors become -errno; anything else EIO and a log line; errno >= 512 is EIO', () => {
    const boom = (e: unknown) => () => { throw e; };
    const c = new TestClient({
      lookup: boom(new FsError(E.ENOTDIR)),
      readlink: boom(new TypeError('backend bug')),
      statfs: boom(Object.assign(new Error('weird'), { errno: 4000 })),
      access: boom('a string'),
    });
    c.init();
    c.fails(E.ENOTDIR, Opcode.LOOKUP, 1, cstr('x'));
    c.fails(E.EIO, Opcode.READLINK, 1);
    c.fails(E.EIO, Opcode.STATFS, 1);
    c.fails(E.EIO, Opcode.ACCESS, 1, bytes(u32(4), u32(0)));
    assert.equal(c.logs.filter((l) => l.level === 'error').length, 3);
    assert.ok(c.logs.some((l) => l.msg.includes('backend bug')));
  });

  test('a backend returning a malformed entry gets EIO, not a crash', () => {
    const c = new TestClient({ lookup: () => ({ nodeid: 2 }) as never });
    c.init();
    c.fails(E.EIO, Opcode.LOOKUP, 1, cstr('x'));
  });
});

describe('against MemoryFs', () => {
  test('create, write, read, getattr, setattr(size), release', () => {
    const c = new TestClient(new MemoryFs());
    c.init();
    const body = c.ok(Opcode.CREATE, 1, createArgs('file'));
    assert.equal(body.length, 128 + 16);
    const e = entryOf(body);
    const fh = Number(body.readBigUInt64LE(128));
    assert.equal(e.mode, S_IFREG | 0o644);
    const w = c.ok(Opcode.WRITE, e.nodeid, writeArgs(fh, 3, str('hello')));
    assert.equal(w.readUInt32LE(0), 5);
    assert.deepEqual(c.ok(Opcode.READ, e.nodeid, readArgs(fh, 0, 100)), bytes(zeros(3), str('hello')));
    assert.deepEqual(c.ok(Opcode.READ, e.nodeid, readArgs(fh, 8, 100)), Buffer.alloc(0));
    assert.equal(attrOf(c.ok(Opcode.GETATTR, e.nodeid, zeros(16))).size, 8);
    const setattr = bytes(u32(abi.FATTR_SIZE), u32(0), u64(0), u64(4), u64(0), u64(0), u64(0), u64(0), zeros(32));
    assert.equal(setattr.length, 88);
    assert.equal(attrOf(c.ok(Opcode.SETATTR, e.nodeid, setattr)).size, 4);
    assert.deepEqual(c.ok(Opcode.READ, e.nodeid, readArgs(fh, 0, 100)), bytes(zeros(3), str('h')));
    c.ok(Opcode.FLUSH, e.nodeid, bytes(u64(fh), u32(0), u32(0), u64(0x1234)));
    c.ok(Opcode.FSYNC, e.nodeid, bytes(u64(fh), u32(1), u32(0)));
    c.ok(Opcode.RELEASE, e.nodeid, releaseArgs(fh));
    c.fails(E.EBADF, Opcode.READ, e.nodeid, readArgs(fh, 0, 1));
  });

  test('READ goes straight into the reply buffer; WRITE data is a view of the request', () => {
    let readDest: Buffer | undefined;
    let writeData: Buffer | undefined;
    const c = new TestClient({
      read: (_c, _n, _f, _o, size, dest) => { readDest = dest; dest.fill(0x61, 0, size); return size; },
      write: (_c, _n, _f, _o, data) => { writeData = data; return data.length; },
    });
    c.init();
    const out = c.server.handle(request(Opcode.READ, 3, 2, readArgs(1, 0, 10)))!;
    assert.equal(readDest!.buffer, out.buffer, 'dest shares the reply buffer');
    assert.equal(readDest!.byteOffset, out.byteOffset + 16);
    const req = request(Opcode.WRITE, 5, 2, writeArgs(1, 0, str('xyz')));
    c.server.handle(req);
    assert.equal(writeData!.buffer, req.buffer, 'data shares the request buffer');
    assert.equal(writeData!.toString(), 'xyz');
  });

  test('READ larger than the negotiated buffers still works (the reply buffer grows), absurd sizes are refused', () => {
    const c = new TestClient({ read: (_c, _n, _f, _o, size, dest) => { dest.fill(1, 0, size); return size; } }, { maxWrite: 4096, maxPages: 1 });
    c.init();
    assert.equal(c.ok(Opcode.READ, 2, readArgs(1, 0, 256 * 1024)).length, 256 * 1024);
    c.fails(E.EINVAL, Opcode.READ, 2, readArgs(1, 0, 0xffffffff));
  });

  test('readdir pages through 1000 entries with every entry exactly once; readdirplus counts lookups', () => {
    const fs = new MemoryFs();
    const c = new TestClient(fs);
    c.init();
    const dir = entryOf(c.ok(Opcode.MKDIR, 1, mkdirArgs('big'))).nodeid;
    for (let i = 0; i < 1000; i++) c.ok(Opcode.MKNOD, dir, bytes(u32(S_IFREG | 0o644), u32(0), u32(0), u32(0), cstr(`entry-${i}`)));
    const fh = Number(c.ok(Opcode.OPENDIR, dir, openArgs(0)).readBigUInt64LE(0));
    const seen: string[] = [];
    let off = 0;
    for (let rounds = 0; rounds < 1000; rounds++) {
      const list = direntsOf(c.ok(Opcode.READDIR, dir, readArgs(fh, off, 4096)), false);
      if (list.length === 0) break;
      seen.push(...list.map((d) => d.name));
      off = list.at(-1)!.off;
    }
    assert.equal(seen.length, 1002);
    assert.equal(new Set(seen).size, 1002);
    // readdirplus with a tiny buffer: exactly the entries that fit, each counted once.
    const plus = direntsOf(c.ok(Opcode.READDIRPLUS, dir, readArgs(fh, 2, 400)), true);
    assert.equal(plus.length, 2, '2 x 160-byte records fit in 400');
    const child = plus[0]!.nodeid;
    assert.equal(fs.lookupCount(child), 2, 'mknod + readdirplus');
    // A size-0 readdir returns nothing and counts nothing.
    assert.equal(c.ok(Opcode.READDIRPLUS, dir, readArgs(fh, 2, 0)).length, 0);
    assert.equal(fs.lookupCount(child), 2);
    c.call(Opcode.BATCH_FORGET, 0, bytes(u32(1), u32(0), u64(child), u64(2)));
    assert.equal(fs.lookupCount(child), 0);
    c.ok(Opcode.RELEASEDIR, dir, releaseArgs(fh));
  });

  test('BATCH_FORGET with a lying count forgets nothing and answers nothing', () => {
    const fs = new MemoryFs();
    const c = new TestClient(fs);
    c.init();
    const id = entryOf(c.ok(Opcode.MKDIR, 1, mkdirArgs('d'))).nodeid;
    assert.equal(c.call(Opcode.BATCH_FORGET, 0, bytes(u32(2), u32(0), u64(id), u64(1))), null);
    assert.equal(c.call(Opcode.BATCH_FORGET, 0, bytes(u32(0xffffffff), u32(0), u64(id), u64(1))), null);
    assert.equal(fs.lookupCount(id), 1);
    assert.equal(c.call(Opcode.FORGET, id, u64(1)), null);
    assert.equal(fs.lookupCount(id), 0);
  });

  test('rename, link, symlink/readlink, unlink, rmdir, statfs, access, lseek, fallocate', () => {
    const c = new TestClient(new MemoryFs());
    c.init();
    const d1 = entryOf(c.ok(Opcode.MKDIR, 1, mkdirArgs('d1'))).nodeid;
    const d2 = entryOf(c.ok(Opcode.MKDIR, 1, mkdirArgs('d2'))).nodeid;
    const body = c.ok(Opcode.CREATE, d1, createArgs('a'));
    const f = entryOf(body).nodeid;
    const fh = Number(body.readBigUInt64LE(128));
    c.ok(Opcode.RENAME, d1, bytes(u64(d2), cstr('a'), cstr('b')));
    c.fails(E.ENOENT, Opcode.LOOKUP, d1, cstr('a'));
    assert.equal(entryOf(c.ok(Opcode.LOOKUP, d2, cstr('b'))).nodeid, f);
    c.ok(Opcode.CREATE, d1, createArgs('c'));
    c.fails(E.EEXIST, Opcode.RENAME2, d1, bytes(u64(d2), u32(1), u32(0), cstr('c'), cstr('b'))); // RENAME_NOREPLACE
    c.ok(Opcode.RENAME2, d1, bytes(u64(d2), u32(2), u32(0), cstr('c'), cstr('b'))); // RENAME_EXCHANGE
    assert.equal(entryOf(c.ok(Opcode.LOOKUP, d1, cstr('c'))).nodeid, f);
    assert.equal(entryOf(c.ok(Opcode.LINK, d2, bytes(u64(f), cstr('hard')))).nlink, 2);
    const l = entryOf(c.ok(Opcode.SYMLINK, d1, bytes(cstr('sl'), cstr('../d2/hard')))).nodeid;
    assert.equal(c.ok(Opcode.READLINK, l).toString(), '../d2/hard');
    c.fails(E.ENOTEMPTY, Opcode.RMDIR, 1, cstr('d1'));
    c.ok(Opcode.UNLINK, d1, cstr('sl'));
    const st = c.ok(Opcode.STATFS, 1);
    assert.equal(st.length, 80);
    assert.ok(st.readUInt32LE(44) >= 255, 'namelen');
    c.ok(Opcode.ACCESS, 1, bytes(u32(7), u32(0)));
    c.ok(Opcode.FALLOCATE, f, bytes(u64(fh), u64(0), u64(65536), u32(0), u32(0)));
    assert.equal(attrOf(c.ok(Opcode.GETATTR, f, zeros(16))).size, 65536);
    // fallocated space is unwritten (a hole to SEEK_HOLE, as on ext4): write it to make it data
    c.ok(Opcode.WRITE, f, writeArgs(fh, 0, Buffer.alloc(65536, 1)));
    const seek = c.ok(Opcode.LSEEK, f, bytes(u64(fh), u64(0), u32(4), u32(0))); // SEEK_HOLE
    assert.equal(seek.length, 8);
    assert.equal(Number(seek.readBigUInt64LE(0)), 65536);
  });

  test('xattrs: size-0 length query, ERANGE, list, remove, name rules', () => {
    const c = new TestClient(new MemoryFs());
    c.init();
    const f = entryOf(c.ok(Opcode.CREATE, 1, createArgs('x'))).nodeid;
    const value = str('some value');
    c.ok(Opcode.SETXATTR, f, bytes(u32(value.length), u32(0), cstr('user.k'), value));
    c.fails(E.EINVAL, Opcode.SETXATTR, f, bytes(u32(value.length + 1), u32(0), cstr('user.k'), value));
    const q = c.ok(Opcode.GETXATTR, f, bytes(u32(0), u32(0), cstr('user.k')));
    assert.deepEqual(q, bytes(u32(10), u32(0)));
    c.fails(E.ERANGE, Opcode.GETXATTR, f, bytes(u32(3), u32(0), cstr('user.k')));
    assert.deepEqual(c.ok(Opcode.GETXATTR, f, bytes(u32(100), u32(0), cstr('user.k'))), value);
    assert.deepEqual(c.ok(Opcode.LISTXATTR, f, bytes(u32(0), u32(0))), bytes(u32(7), u32(0)));
    assert.deepEqual(c.ok(Opcode.LISTXATTR, f, bytes(u32(7), u32(0))), cstr('user.k'));
    c.fails(E.ERANGE, Opcode.LISTXATTR, f, bytes(u32(6), u32(0)));
    c.fails(E.ERANGE, Opcode.GETXATTR, f, bytes(u32(0), u32(0), cstr('user.' + 'n'.repeat(251))));
    c.ok(Opcode.REMOVEXATTR, f, cstr('user.k'));
    c.fails(E.ENODATA, Opcode.GETXATTR, f, bytes(u32(0), u32(0), cstr('user.k')));
  });

  test('requests carry the caller: uid/gid reach the backend', () => {
    const fs = new MemoryFs({ rootMode: 0o777 });
    const c = new TestClient(fs);
    c.init();
    const e = entryOf(c.ok(Opcode.MKDIR, 1, mkdirArgs('mine'), { uid: 1234, gid: 5678 }));
    const a = attrOf(c.ok(Opcode.GETATTR, e.nodeid, zeros(16)));
    assert.deepEqual([a.uid, a.gid], [1234, 5678]);
  });
});

describe('virtio-fs DAX requests', () => {
  test('SETUPMAPPING passes every field; REMOVEMAPPING passes the ranges or EINVAL on a lying count', () => {
    const calls: unknown[] = [];
    const c = new TestClient({
      setupmapping: (_ctx, nodeid, fh, foffset, len, flags, moffset) => { calls.push({ nodeid, fh, foffset, len, flags, moffset }); },
      removemapping: (_ctx, ranges) => { calls.push(ranges); },
    }, { mapAlignmentLog2: 21 });
    c.init();
    c.ok(Opcode.SETUPMAPPING, 7, bytes(u64(3), u64(0x200000), u64(0x200000), u64(1), u64(0x1_0000_0000)));
    c.ok(Opcode.REMOVEMAPPING, 0, bytes(u32(2), u64(0), u64(0x200000), u64(0x400000), u64(0x200000)));
    assert.deepEqual(calls, [
      { nodeid: 7, fh: 3, foffset: 0x200000, len: 0x200000, flags: 1, moffset: 0x1_0000_0000 },
      [{ moffset: 0, len: 0x200000 }, { moffset: 0x400000, len: 0x200000 }],
    ]);
    c.fails(E.EINVAL, Opcode.REMOVEMAPPING, 0, bytes(u32(3), u64(0), u64(0x200000)));
    c.fails(E.EINVAL, Opcode.REMOVEMAPPING, 0, bytes(u32(0x10000000), u64(0), u64(0x200000)));
    c.fails(E.EINVAL, Opcode.SETUPMAPPING, 0, zeros(39));
    assert.equal(calls.length, 2);
  });
});

test('a 16-bit field check: total_extlen and padding in the header do not disturb ordinary requests', () => {
  const c = new TestClient(new MemoryFs());
  c.init();
  const req = request(Opcode.GETATTR, 4, 1, zeros(16));
  req.set(u16(0), 38); // padding stays zero
  assert.equal(c.raw(req, 4n)?.error, 0);
});

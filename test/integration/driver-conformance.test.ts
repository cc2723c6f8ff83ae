// The guest-side driver against real vhost-user-fs backends in one run: our
// daemon (DAX window off, and asked for: it must degrade to FUSE_READ when the
// backend cannot map) and QEMU's C virtiofsd. The same checks on each, with
// the host directory as the oracle.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectVirtioFs, type VirtioFsSession } from '../../src/driver/session.ts';
import { PEERS } from './driver-peers.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

for (const peer of PEERS) {
  describe(`driver conformance: ${peer.name}`, { timeout: 60_000 }, () => {
    let root: string;
    let share: string;
    let kill = () => {};
    let log = () => '';
    let s: VirtioFsSession;

    before(async () => {
      root = mkdtempSync(join(tmpdir(), 'drv-conf-'));
      share = join(root, 'share');
      mkdirSync(share);
      writeFileSync(join(share, 'hello.txt'), 'hello from the host\n');
      mkdirSync(join(share, 'sub'));
      writeFileSync(join(share, 'sub', 'big.bin'), randomBytes(5 * 1024 * 1024 + 123));
      symlinkSync('sub/big.bin', join(share, 'link'));
      const d = await peer.start(join(root, 'vfs.sock'), share);
      kill = d.kill;
      log = d.log;
      s = await connectVirtioFs({ socketPath: join(root, 'vfs.sock'), daxWindowBytes: peer.daxWindowBytes, requestTimeoutMs: 10_000 });
    });
    after(async () => {
      await s?.close().catch(() => {});
      kill();
      rmSync(root, { recursive: true, force: true });
    });

    test('INIT negotiates FUSE 7.x with a usable max_write', () => {
      assert.equal(s.init.major, 7);
      assert.ok(s.init.minor >= 31, `minor ${s.init.minor}`);
      assert.ok(s.init.maxWrite >= 4096);
      if (peer.daxWindowBytes > 0) {
        assert.ok(s.dax?.enabled, `DAX negotiated (${s.dax?.disabledReason})`);
        assert.ok(s.init.mapAlignmentLog2 >= 12, 'FUSE_MAP_ALIGNMENT granted');
      }
    });

    test('readdir, stat and readFile agree with the host', async () => {
      assert.deepEqual(await s.fs.readdir('/'), readdirSync(share).sort());
      const st = await s.fs.stat('/sub/big.bin');
      const h = lstatSync(join(share, 'sub', 'big.bin'));
      assert.equal(st.size, h.size);
      assert.equal(st.ino, h.ino);
      assert.equal(st.mode, h.mode);
      assert.ok(st.isFile());
      assert.ok((await s.fs.stat('/sub')).isDirectory());
      assert.equal(await s.fs.readFile('/hello.txt', 'utf8'), 'hello from the host\n');
      const big = (await s.fs.readFile('/sub/big.bin')) as Buffer;
      assert.equal(sha(big), sha(readFileSync(join(share, 'sub', 'big.bin'))));
      if (peer.daxWindowBytes > 0) {
        const st = s.dax!.stats;
        assert.ok(st.setupmappings > 0 && st.fallbacks === 0, `reads came through the window: ${JSON.stringify(st)}`);
      }
    });

    test('symlinks: lstat sees the link, stat and readFile follow it', async () => {
      assert.ok((await s.fs.lstat('/link')).isSymbolicLink());
      assert.equal(await s.fs.readlink('/link'), 'sub/big.bin');
      assert.equal((await s.fs.stat('/link')).size, 5 * 1024 * 1024 + 123);
      assert.equal(await s.fs.realpath('/link'), '/sub/big.bin');
    });

    test('writeFile, mkdir -p, rename, rm -r land on the host', async () => {
      const data = randomBytes(3 * 1024 * 1024 + 7);
      await s.fs.mkdir('/a/b/c', { recursive: true });
      await s.fs.writeFile('/a/b/c/data.bin', data);
      assert.equal(sha(readFileSync(join(share, 'a/b/c/data.bin'))), sha(data));
      await s.fs.rename('/a/b/c/data.bin', '/a/moved.bin');
      assert.ok(!existsSync(join(share, 'a/b/c/data.bin')));
      assert.equal(sha(readFileSync(join(share, 'a/moved.bin'))), sha(data));
      assert.equal(sha((await s.fs.readFile('/a/moved.bin')) as Buffer), sha(data));
      await s.fs.rm('/a', { recursive: true });
      assert.ok(!existsSync(join(share, 'a')));
      await assert.rejects(s.fs.stat('/a'), { code: 'ENOENT' });
    });

    test('file handles: positioned writes and reads, truncate, fstat, append', async () => {
      const h = await s.fs.open('/h.txt', 'w+');
      await h.write(Buffer.from('0123456789'), 0, 10, 0);
      await h.write(Buffer.from('AB'), 0, 2, 4);
      const buf = Buffer.alloc(10);
      const r = await h.read(buf, 0, 10, 0);
      assert.equal(r.bytesRead, 10);
      assert.equal(buf.toString(), '0123AB6789');
      await h.truncate(6);
      assert.equal((await h.stat()).size, 6);
      await h.close();
      assert.equal(readFileSync(join(share, 'h.txt'), 'utf8'), '0123AB');
      await s.fs.appendFile('/h.txt', '++');
      assert.equal(readFileSync(join(share, 'h.txt'), 'utf8'), '0123AB++');
      await assert.rejects(h.read(Buffer.alloc(1), 0, 1, 0), { code: 'EBADF' });
    });

    test('createReadStream yields the file (with start/end)', async () => {
      const chunks: Buffer[] = [];
      for await (const c of s.fs.createReadStream('/sub/big.bin', { highWaterMark: 256 * 1024 })) chunks.push(c as Buffer);
      assert.equal(sha(Buffer.concat(chunks)), sha(readFileSync(join(share, 'sub', 'big.bin'))));
      const part: Buffer[] = [];
      for await (const c of s.fs.createReadStream('/hello.txt', { start: 6, end: 9 })) part.push(c as Buffer);
      assert.equal(Buffer.concat(part).toString(), 'from');
    });

    test('errors carry node:fs codes', async () => {
      await assert.rejects(s.fs.readFile('/nope'), { code: 'ENOENT', syscall: 'open', path: '/nope' });
      await assert.rejects(s.fs.open('/hello.txt', 'wx'), { code: 'EEXIST' });
      await assert.rejects(s.fs.stat('/hello.txt/x'), { code: 'ENOTDIR' });
      await s.fs.mkdir('/full');
      await s.fs.writeFile('/full/f', 'x');
      await assert.rejects(s.fs.rmdir('/full'), { code: 'ENOTEMPTY' });
      await assert.rejects(s.fs.mkdir('/full'), { code: 'EEXIST' });
      await assert.rejects(s.fs.rm('/full'), { code: 'EISDIR' });
      await s.fs.rm('/full', { recursive: true });
      await s.fs.rm('/full', { force: true });
    });

    test('many requests in flight at once', async () => {
      await s.fs.mkdir('/many');
      await Promise.all(Array.from({ length: 150 }, (_, i) => s.fs.writeFile(`/many/f${i}`, `file ${i}`)));
      const got = await Promise.all(Array.from({ length: 150 }, (_, i) => s.fs.readFile(`/many/f${i}`, 'utf8')));
      got.forEach((g, i) => assert.equal(g, `file ${i}`));
      assert.equal(readdirSync(join(share, 'many')).length, 150);
      await s.fs.rm('/many', { recursive: true });
    });

    test('a change made on the host is seen once the cache times out', async () => {
      writeFileSync(join(share, 'hostside.txt'), 'v1');
      assert.equal(await s.fs.readFile('/hostside.txt', 'utf8'), 'v1');
      writeFileSync(join(share, 'hostside.txt'), 'version 2');
      // cache=auto: attributes are valid for at most ~1 s.
      await new Promise((r) => setTimeout(r, 1200));
      assert.equal(await s.fs.readFile('/hostside.txt', 'utf8'), 'version 2');
    });

    test('lookup counts: forgotten nodes are no longer held', async () => {
      await s.fs.writeFile('/gone.txt', 'x');
      await s.fs.unlink('/gone.txt');
      const h = await s.fs.open('/hello.txt');
      const held = s.fs.lookupCounts;
      assert.ok((held.get(h.nodeid) ?? 0) >= 1, 'an open file keeps its lookup reference');
      await h.close();
      await s.fs.stat('/');
      if (peer.name.includes('cache never')) {
        // Entries are valid for 0 s: once no call is running, every node has been FORGOTten.
        assert.deepEqual([...s.fs.lookupCounts], [], log());
      }
    });
  });
}

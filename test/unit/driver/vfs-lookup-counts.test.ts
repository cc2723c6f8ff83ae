// The driver's VFS and raw client against the project's real FUSE server on
// the in-memory backend, in one process (the transport hands request bytes to
// FuseServer.handle): lookup counts the VFS believes it holds must equal the
// counts the backend keeps, handles must all be released, and with entry
// timeouts of 0 every node must be forgotten once calls finish.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FuseServer } from '../../../src/fuse/server.ts';
import { MemoryFs, type CacheMode } from '../../../src/fs/memory/memory-fs.ts';
import { FuseClient, type FuseTransport, type QueueName } from '../../../src/driver/fuse-client.ts';
import { VirtioFs } from '../../../src/driver/vfs.ts';

/** Bytes in, bytes out: FuseServer as the device (no queue, no copy semantics to hide bugs). */
class ServerTransport implements FuseTransport {
  readonly maxRequestBytes = 8 * 1024 * 1024;
  constructor(private readonly server: FuseServer) {}
  async call(_q: QueueName, parts: readonly Buffer[], replyCap: number): Promise<Buffer> {
    const out = this.server.handle(Buffer.concat(parts));
    if (out === null) return Buffer.alloc(0);
    assert.ok(out.length <= replyCap, `reply of ${out.length} bytes fits the ${replyCap}-byte buffer`);
    return Buffer.from(out);
  }
  close(): void {}
}

async function workload(fs: VirtioFs): Promise<void> {
  await fs.mkdir('/a/b/c', { recursive: true });
  await fs.writeFile('/a/b/c/f1', 'one');
  await fs.writeFile('/a/f2', Buffer.alloc(300_000, 1));
  await fs.link('/a/f2', '/a/b/f2-link');
  await fs.symlink('b/c/f1', '/a/sl');
  assert.equal(await fs.readFile('/a/sl', 'utf8'), 'one');
  await fs.rename('/a/b/c/f1', '/a/moved');
  await fs.rename('/a/moved', '/a/f2'); // replaces f2 (f2-link keeps the inode)
  assert.equal((await fs.stat('/a/b/f2-link')).nlink, 1);
  const h = await fs.open('/a/b/f2-link', 'r+');
  await h.write('xyz', 0);
  await fs.unlink('/a/b/f2-link'); // open-unlinked
  assert.equal((await h.stat()).size, 300_000);
  await h.close();
  assert.deepEqual(await fs.readdir('/a'), ['b', 'f2', 'sl']);
  await fs.rm('/a/b', { recursive: true });
  await Promise.all(Array.from({ length: 20 }, (_, i) => fs.writeFile(`/a/p${i}`, `${i}`)));
  await Promise.all(Array.from({ length: 20 }, (_, i) => fs.stat(`/a/p${i}`)));
}

for (const cache of ['never', 'auto', 'always'] as CacheMode[]) {
  test(`cache ${cache}: the VFS's lookup counts equal the backend's; no handle leaks`, async () => {
    const mem = new MemoryFs({ cache });
    const server = new FuseServer(mem);
    const client = new FuseClient(new ServerTransport(server));
    await client.init();
    const fs = new VirtioFs(client);
    await workload(fs);
    await fs.stat('/'); // one more call so a sweep runs with nothing in flight
    assert.equal(mem.handleCount, 0, 'every open and opendir was released');
    const mine = fs.lookupCounts;
    for (const [nodeid, n] of mine) assert.equal(mem.lookupCount(nodeid), n, `node ${nodeid}`);
    if (cache === 'never') assert.equal(mine.size, 0, 'entry_valid 0: nothing held after the calls');
    else assert.ok(mine.size > 0, 'cached entries keep their nodes');
    await fs.forgetAll();
    for (const [nodeid] of mine) assert.equal(mem.lookupCount(nodeid), 0, `node ${nodeid} forgotten`);
    // Only what is linked in the tree remains: root, /a and its 22 files.
    assert.equal(mem.nodeCount, 1 + 1 + 22);
  });
}

test('raw client: errors come back as DriverError with node:fs codes; FORGET drops the backend count', async () => {
  const mem = new MemoryFs({ seed: { f: 'data' } });
  const server = new FuseServer(mem);
  const client = new FuseClient(new ServerTransport(server));
  await client.init();
  await assert.rejects(client.lookup(1, 'nope'), { code: 'ENOENT', syscall: 'lookup' });
  await assert.rejects(client.getattr(4242), (e: { code: string }) => /^E/.test(e.code));
  const e = await client.lookup(1, 'f');
  const o = await client.open(e.nodeid, 0);
  assert.equal((await client.read(e.nodeid, o.fh, 0, 100)).toString(), 'data');
  await client.release(e.nodeid, o.fh);
  await client.forget(e.nodeid, 1);
  assert.equal(mem.lookupCount(e.nodeid), 0);
});

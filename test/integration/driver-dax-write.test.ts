// Writable DAX mappings, both ends ours: `virtiofs-ts serve --dax-window`
// and the driver. A handle open for writing maps its chunks with
// FUSE_SETUPMAPPING_FLAG_WRITE and stores the part of a write inside the
// file straight into the window (the host file's own pages); the rest goes
// as FUSE_WRITE. Checked byte for byte against the host file:
// - in-place writes (across a chunk boundary, ending at EOF, straddling EOF)
//   are on the host at once, and after fsync and close;
// - a FUSE_WRITE that extends the file shows through the existing mapping
//   (no stale view), a truncate drops the mappings, and later writes are right;
// - chunks first mapped read-only (a read-only handle) are mapped again
//   writable for a writer; a read-only handle never writes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { connectVirtioFs, type VirtioFsSession } from '../../src/driver/session.ts';
import { startServe, type ServeDaemon } from '../support/serve-daemon.ts';

const MiB = 1024 * 1024;
const root = mkdtempSync(join(tmpdir(), 'drv-dax-write-'));
const daemons: ServeDaemon[] = [];
after(() => {
  for (const d of daemons) d.kill();
  rmSync(root, { recursive: true, force: true });
});

let n = 0;
async function withDaemon(files: Record<string, Buffer>): Promise<{ s: VirtioFsSession; dir: string; d: ServeDaemon }> {
  const dir = join(root, `share${n}`);
  mkdirSync(dir);
  for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
  const sock = join(root, `s${n++}.sock`);
  const d = await startServe(['--socket-path', sock, '--shared-dir', dir, '--dax-window', '32M'], sock);
  daemons.push(d);
  const s = await connectVirtioFs({ socketPath: sock, daxWindowBytes: 32 * MiB, requestTimeoutMs: 30_000 });
  assert.ok(s.dax?.enabled, `DAX on (${s.dax?.disabledReason})`);
  return { s, dir, d };
}

test('writes inside the file go through a writable mapping and are on the host at once; fsync and close keep them', { timeout: 90_000 }, async () => {
  const model = randomBytes(5 * MiB + 777);
  const { s, dir, d } = await withDaemon({ 'f.bin': model });
  const host = () => readFileSync(join(dir, 'f.bin'));
  try {
    const h = await s.fs.open('/f.bin', 'r+');
    const writes: [number, number][] = [[0, 4096], [2 * MiB - 100, 300], [123_457, 1_000_000], [model.length - 50, 50], [4 * MiB, 9]];
    for (const [pos, len] of writes) {
      const piece = randomBytes(len);
      const before = s.dax!.stats.windowWrites;
      const r = await h.write(piece, 0, len, pos);
      assert.equal(r.bytesWritten, len);
      piece.copy(model, pos);
      assert.equal(s.dax!.stats.windowWrites, before + 1, `write ${pos}+${len} went through the window: ${JSON.stringify(s.dax!.stats)}`);
      assert.ok(host().equals(model), `host file equals the model right after the store at ${pos}+${len}`);
    }
    // Reads through the same (writable) mapping see the stores.
    const back = Buffer.alloc(300);
    await h.read(back, 0, 300, 2 * MiB - 100);
    assert.ok(back.equals(model.subarray(2 * MiB - 100, 2 * MiB + 200)));
    await h.sync();
    assert.ok(host().equals(model), 'after fsync');
    await h.close();
    assert.ok(host().equals(model), 'after close');
    assert.equal(s.dax!.stats.fallbacks, 0, `no fallback: ${JSON.stringify(s.dax!.stats)}\n${d.log()}`);
    // And read back through the driver once more.
    assert.ok(((await s.fs.readFile('/f.bin')) as Buffer).equals(model), 'read back through the driver');
  } finally {
    await s.close();
  }
  assert.equal(await d.exited, 0, d.log());
});

test('a write straddling EOF stores its inside part and extends with FUSE_WRITE; the mapping shows the new bytes; truncate drops mappings', { timeout: 90_000 }, async () => {
  const model = randomBytes(3 * MiB + 10);
  const { s, dir, d } = await withDaemon({ 'g.bin': model });
  const host = () => readFileSync(join(dir, 'g.bin'));
  try {
    const h = await s.fs.open('/g.bin', 'r+');
    // Map the file (a read), then a write over EOF: 10 bytes inside, the rest past it.
    const probe = Buffer.alloc(4096);
    await h.read(probe, 0, 4096, 3 * MiB - 4096);
    const tail = randomBytes(20_000);
    const ww = s.dax!.stats.windowWrites;
    assert.equal((await h.write(tail, 0, tail.length, 3 * MiB)).bytesWritten, tail.length);
    assert.equal(s.dax!.stats.windowWrites, ww + 1, 'the inside part went through the window');
    let want = Buffer.concat([model.subarray(0, 3 * MiB), tail]);
    assert.ok(host().equals(want), 'host: inside part stored, the file extended');
    // Read the grown range back through the window: the FUSE_WRITE shows (shared page cache).
    const got = Buffer.alloc(tail.length);
    const hits = s.dax!.stats.hits + s.dax!.stats.misses;
    assert.equal((await h.read(got, 0, tail.length, 3 * MiB)).bytesRead, tail.length);
    assert.ok(got.equals(tail), 'no stale view after the extending write');
    assert.ok(s.dax!.stats.hits + s.dax!.stats.misses > hits, 'that read went to the DAX manager');
    // Shrink, then write across the new EOF: no fault (stores stay below the
    // new size), the file grows again by FUSE_WRITE, right bytes.
    await h.truncate(MiB + 5);
    assert.ok(host().equals(want.subarray(0, MiB + 5)), 'after truncate');
    const mid = randomBytes(1000);
    await h.write(mid, 0, mid.length, MiB - 500);
    want = Buffer.concat([want.subarray(0, MiB - 500), mid]);
    assert.ok(host().equals(want), 'after truncate + write');
    await h.close();
    assert.ok(((await s.fs.readFile('/g.bin')) as Buffer).equals(want));
    assert.equal(s.dax!.stats.fallbacks, 0, `no fallback: ${JSON.stringify(s.dax!.stats)}\n${d.log()}`);
  } finally {
    await s.close();
  }
  assert.equal(await d.exited, 0, d.log());
});

test('chunks mapped read-only are mapped again writable for a writer; a read-only handle cannot write', { timeout: 90_000 }, async () => {
  const model = randomBytes(4 * MiB);
  const { s, dir, d } = await withDaemon({ 'h.bin': model });
  try {
    const ro = await s.fs.open('/h.bin', 'r');
    const b = Buffer.alloc(MiB);
    await ro.read(b, 0, MiB, 0);
    assert.ok(b.equals(model.subarray(0, MiB)));
    assert.ok(s.dax!.chunks.stack.every((m) => !m.writable), 'a read-only handle maps read-only');
    await assert.rejects(ro.write(Buffer.from('x'), 0, 1, 0), { code: 'EBADF' });
    const maps = s.dax!.stats.setupmappings;
    const rw = await s.fs.open('/h.bin', 'r+');
    const piece = randomBytes(5000);
    await rw.write(piece, 0, piece.length, 1000);
    piece.copy(model, 1000);
    assert.ok(s.dax!.stats.setupmappings > maps, 'a writable SETUPMAPPING for the writer');
    assert.ok(s.dax!.chunks.stack.some((m) => m.writable), 'a writable mapping exists');
    assert.ok(readFileSync(join(dir, 'h.bin')).equals(model), 'host has the write');
    // The read-only handle reads the new bytes too (same host pages).
    await ro.read(b, 0, MiB, 0);
    assert.ok(b.equals(model.subarray(0, MiB)));
    await rw.close();
    await ro.close();
  } finally {
    await s.close();
  }
  assert.equal(await d.exited, 0, d.log());
});

// DAX with both ends ours: the real `virtiofs-ts serve --dax-window` (a child
// process, passthrough backend) and the TypeScript driver with its own window.
// The daemon answers FUSE_SETUPMAPPING by sending SHMEM_MAP with the file's fd
// on the backend request channel; the driver's frontend maps it into its
// window and reads come from there (not the FUSE_READ fallback).
// - reads through the window equal the file, and SETUPMAPPINGs really happened;
// - a host-side change is seen through the mapping (and after a refresh);
// - many files through a small window: eviction keeps every byte right;
// - no fd leaks in the daemon across hundreds of mappings;
// - without --dax-window the daemon answers ENOSYS and the driver falls back.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { connectVirtioFs, type VirtioFsSession } from '../../src/driver/session.ts';
import { startServe, type ServeDaemon } from '../support/serve-daemon.ts';

const root = mkdtempSync(join(tmpdir(), 'daemon-dax-'));
const daemons: ServeDaemon[] = [];
after(() => {
  for (const d of daemons) d.kill();
  rmSync(root, { recursive: true, force: true });
});

const MiB = 1024 * 1024;
let n = 0;
async function withDaemon(files: Record<string, Buffer>, serveArgs: string[], windowBytes: number): Promise<{ s: VirtioFsSession; dir: string; d: ServeDaemon }> {
  const dir = join(root, `share${n}`);
  mkdirSync(dir);
  for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
  const sock = join(root, `s${n++}.sock`);
  const d = await startServe(['--socket-path', sock, '--shared-dir', dir, '--log-level', 'info', ...serveArgs], sock);
  daemons.push(d);
  const s = await connectVirtioFs({ socketPath: sock, daxWindowBytes: windowBytes, daxMinFileBytes: 0, requestTimeoutMs: 30_000 });
  return { s, dir, d };
}

const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

test('serve --dax-window: reads come through the window, equal the file, and a host change is seen', { timeout: 90_000 }, async () => {
  const data = randomBytes(5 * MiB + 333);
  const { s, dir, d } = await withDaemon({ 'f.bin': data, 'small.txt': Buffer.from('tiny file, smaller than one 2 MiB range\n') }, ['--dax-window', '32M'], 32 * MiB);
  try {
    assert.equal(s.init.mapAlignmentLog2, 12, 'FUSE_MAP_ALIGNMENT 12 announced');
    assert.ok(s.dax?.enabled, `DAX on (${s.dax?.disabledReason})`);
    const got = (await s.fs.readFile('/f.bin')) as Buffer;
    assert.ok(got.equals(data), 'whole file through the window');
    const st = s.dax!.stats;
    assert.ok(st.setupmappings >= 2, `SETUPMAPPINGs happened (each maps a run of 2 MiB chunks): ${JSON.stringify(st)}`);
    assert.equal(st.fallbacks, 0, `no FUSE_READ fallback: ${JSON.stringify(st)}\n${d.log()}`);
    assert.ok(s.transport.frontend.windowMapped(0, 2 * MiB), 'the first range is mapped in the window');
    // A file smaller than a range: mapped past EOF, read exactly.
    assert.equal(((await s.fs.readFile('/small.txt')) as Buffer).toString(), 'tiny file, smaller than one 2 MiB range\n');

    const h = await s.fs.open('/f.bin');
    for (const [pos, len] of [[0, 4096], [2 * MiB - 10, 20], [5 * MiB + 300, 100], [123457, 1_000_000]] as const) {
      const b = Buffer.alloc(len);
      const r = await h.read(b, 0, len, pos);
      const want = data.subarray(pos, pos + len);
      assert.equal(r.bytesRead, want.length);
      assert.ok(b.subarray(0, r.bytesRead).equals(want), `range ${pos}+${len}`);
    }
    const hits = s.dax!.stats.hits;
    // The window maps the host file's own pages: an in-place host write shows at once.
    const fd = openSync(join(dir, 'f.bin'), 'r+');
    writeSync(fd, Buffer.from('CHANGED ON THE HOST'), 0, 19, 4 * MiB + 1000);
    closeSync(fd);
    const b = Buffer.alloc(19);
    await h.read(b, 0, 19, 4 * MiB + 1000);
    assert.equal(b.toString(), 'CHANGED ON THE HOST');
    assert.ok(s.dax!.stats.hits > hits, 'served from the window');
    await h.close();
    // After a refresh (a fresh window: every range mapped again) the change is still there.
    s.dax!.reset();
    const again = (await s.fs.readFile('/f.bin')) as Buffer;
    assert.equal(again.subarray(4 * MiB + 1000, 4 * MiB + 1019).toString(), 'CHANGED ON THE HOST');
  } finally {
    await s.close();
  }
  assert.equal(await d.exited, 0, d.log());
  assert.doesNotMatch(d.log(), /refused/, 'the daemon refused nothing');
});

test('serve --dax-window: many files through an 8 MiB window, eviction keeps every byte right, no fd leak', { timeout: 120_000 }, async () => {
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < 10; i++) files[`f${i}`] = randomBytes(3 * MiB + i * 4099);
  // The daemon's window is larger than the driver's: the driver's own limit decides eviction.
  const { s, d } = await withDaemon(files, ['--dax-window', '64M'], 8 * MiB);
  try {
    const handles = await Promise.all(Object.keys(files).map((f) => s.fs.open(`/${f}`)));
    const fds0 = fdCount(d.child.pid!);
    let seed = 7;
    const rnd = (k: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % k);
    for (let i = 0; i < 300; i++) {
      const k = rnd(10);
      const data = files[`f${k}`]!;
      const pos = rnd(data.length);
      const len = 1 + rnd(256 * 1024);
      const b = Buffer.alloc(len);
      const r = await handles[k]!.read(b, 0, len, pos);
      assert.ok(b.subarray(0, r.bytesRead).equals(data.subarray(pos, pos + len)), `file ${k} at ${pos}+${len}`);
    }
    const st = s.dax!.stats;
    assert.ok(st.evictions > 0 && st.hits > 0 && st.setupmappings > 20, JSON.stringify(st));
    assert.equal(st.fallbacks, 0, `${JSON.stringify(st)}\n${d.log()}`);
    assert.equal(fdCount(d.child.pid!), fds0, `the daemon holds as many fds after ${st.setupmappings} mappings as before`);
    for (const h of handles) await h.close();
  } finally {
    await s.close();
  }
  assert.equal(await d.exited, 0, d.log());
});

test('serve without --dax-window: no SHMEM offered, the driver keeps DAX off and reads via FUSE_READ', { timeout: 60_000 }, async () => {
  const data = randomBytes(3 * MiB);
  const { s, d } = await withDaemon({ 'f.bin': data }, [], 16 * MiB);
  try {
    const got = (await s.fs.readFile('/f.bin')) as Buffer;
    assert.ok(got.equals(data), 'right bytes');
    assert.equal(s.dax!.stats.setupmappings, 0);
    assert.equal(s.dax!.enabled, false);
    assert.match(String(s.dax!.disabledReason), /did not negotiate shared-memory mapping/);
    assert.equal(s.transport.frontend.windowMapped(0, 16 * MiB), false);
  } finally {
    await s.close();
  }
  assert.equal(await d.exited, 0, d.log());
});

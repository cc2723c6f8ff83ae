// DAX through the driver, end to end with a real second process: the peer
// (driver-dax-peer.ts, a scripted backend) answers FUSE_SETUPMAPPING by
// sending VHOST_USER_BACKEND_SHMEM_MAP with the file's fd; our frontend maps
// it into the reserved window; the DAX manager reads from there.
// - data read through the window equals the file; a host-side change shows;
// - many files through a small window: eviction keeps returning right bytes;
// - hostile backends: maps outside the window or without an fd are refused
//   (the read falls back to FUSE_READ and still returns the right bytes), a
//   SETUPMAPPING acked without a map is caught, a reply with the wrong unique
//   or a lying length fails the call with EPROTO; nothing hangs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectVirtioFs, type VirtioFsSession } from '../../src/driver/session.ts';

const PEER = new URL('./driver-dax-peer.ts', import.meta.url).pathname;
const root = mkdtempSync(join(tmpdir(), 'drv-dax-'));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

let n = 0;
async function withPeer(mode: string, files: Record<string, Buffer>, windowBytes: number): Promise<{ s: VirtioFsSession; dir: string; log: () => string }> {
  const dir = join(root, `share${n}`);
  mkdirSync(dir);
  for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
  const sock = join(root, `peer${n++}.sock`);
  const child = spawn(process.execPath, ['--import', 'tsx', PEER, sock, dir, mode], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d));
  const t0 = Date.now();
  while (!existsSync(sock)) {
    if (child.exitCode !== null || Date.now() - t0 > 20_000) throw new Error(`peer did not start: ${log}`);
    await sleep(30);
  }
  const s = await connectVirtioFs({ socketPath: sock, daxWindowBytes: windowBytes, requestTimeoutMs: 30_000 }); // generous: 2 shared cores under load
  return { s, dir, log: () => log };
}

test('reads through the DAX window equal the file; a host-side change is seen through the mapping', { timeout: 60_000 }, async () => {
  const data = randomBytes(5 * 1024 * 1024 + 333);
  const { s, dir, log } = await withPeer('good', { 'f.bin': data }, 32 * 1024 * 1024);
  try {
    assert.equal(s.init.mapAlignmentLog2, 12);
    assert.ok(s.dax?.enabled, `DAX on (${s.dax?.disabledReason})`);
    const got = (await s.fs.readFile('/f.bin')) as Buffer;
    assert.ok(got.equals(data), 'whole file through the window');
    assert.ok(s.dax!.stats.setupmappings > 0 && s.dax!.stats.fallbacks === 0, `${JSON.stringify(s.dax!.stats)} ${log()}`);
    const h = await s.fs.open('/f.bin');
    for (const [pos, len] of [[0, 4096], [2 * 1024 * 1024 - 10, 20], [5 * 1024 * 1024 + 300, 100], [123457, 1_000_000]] as const) {
      const b = Buffer.alloc(len);
      const r = await h.read(b, 0, len, pos);
      const want = data.subarray(pos, pos + len);
      assert.equal(r.bytesRead, want.length);
      assert.ok(b.subarray(0, r.bytesRead).equals(want), `range ${pos}+${len}`);
    }
    const hits = s.dax!.stats.hits;
    // Change bytes on the host in place: the shared mapping shows them without a new SETUPMAPPING.
    const fd = openSync(join(dir, 'f.bin'), 'r+');
    writeSync(fd, Buffer.from('CHANGED ON THE HOST'), 0, 19, 1000);
    closeSync(fd);
    const b = Buffer.alloc(19);
    await h.read(b, 0, 19, 1000);
    assert.equal(b.toString(), 'CHANGED ON THE HOST');
    assert.ok(s.dax!.stats.hits > hits);
    // Zero-copy variant: a view straight into the window.
    const view = await s.dax!.read(h.nodeid, h.fh, 1000, 19, data.length, true);
    assert.equal(view?.toString(), 'CHANGED ON THE HOST');
    await h.close();
  } finally {
    await s.close();
  }
});

test('many files through a small window: LIFO eviction keeps every byte right', { timeout: 60_000 }, async () => {
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < 10; i++) files[`f${i}`] = randomBytes(3 * 1024 * 1024 + i * 4099);
  const { s } = await withPeer('good', files, 8 * 1024 * 1024); // 4 chunks of 2 MiB
  try {
    let seed = 1;
    const rnd = (k: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % k);
    const handles = await Promise.all(Object.keys(files).map((f) => s.fs.open(`/${f}`)));
    for (let i = 0; i < 300; i++) {
      const k = rnd(10);
      const data = files[`f${k}`]!;
      const pos = rnd(data.length);
      const len = 1 + rnd(256 * 1024);
      const b = Buffer.alloc(len);
      const r = await handles[k]!.read(b, 0, len, pos);
      assert.ok(b.subarray(0, r.bytesRead).equals(data.subarray(pos, pos + len)), `file ${k} at ${pos}+${len}`);
    }
    for (const h of handles) await h.close();
    const st = s.dax!.stats;
    assert.ok(st.evictions > 0 && st.hits > 0, JSON.stringify(st));
    assert.equal(st.fallbacks, 0, JSON.stringify(st));
  } finally {
    await s.close();
  }
});

test('hostile maps (outside the window, no fd, an fd that cannot be mapped, acked but never mapped) are refused; reads fall back to FUSE_READ', { timeout: 60_000 }, async () => {
  for (const mode of ['map-outside', 'map-nofd', 'map-eventfd', 'ack-no-map']) {
    const data = randomBytes(3 * 1024 * 1024);
    const { s, log } = await withPeer(mode, { 'f.bin': data }, 16 * 1024 * 1024);
    try {
      const got = (await s.fs.readFile('/f.bin')) as Buffer;
      assert.ok(got.equals(data), `${mode}: right bytes via fallback`);
      assert.ok(s.dax!.stats.fallbacks > 0, `${mode}: ${JSON.stringify(s.dax!.stats)}`);
      assert.equal(s.transport.frontend.windowMapped(0, 16 * 1024 * 1024), false, `${mode}: nothing mapped in the window`);
      if (mode !== 'ack-no-map') assert.match(log(), /status [1-9]/, `${mode}: the frontend refused with an errno`);
    } finally {
      await s.close();
    }
  }
});

test('replies with the wrong unique or a lying length fail the call with EPROTO, and the session goes on', { timeout: 60_000 }, async () => {
  for (const mode of ['lie-unique', 'lie-length']) {
    const { s } = await withPeer(mode, { 'f.bin': Buffer.from('some bytes') }, 0);
    try {
      await assert.rejects(s.fs.readFile('/f.bin'), { code: 'EPROTO' });
      assert.ok((await s.fs.stat('/f.bin')).isFile(), 'other calls still work');
    } finally {
      await s.close();
    }
  }
});

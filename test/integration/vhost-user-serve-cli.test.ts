// `virtiofs-ts serve` as libvirt and users start it: an inherited listening
// fd (--fd), the C virtiofsd's -o form, and clear usage errors.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeSocket, listenUnix } from '../../src/sys/unix-socket.ts';
import { startServe } from '../support/serve-daemon.ts';
import { R, TestFrontend } from '../support/vhost-user-test-frontend.ts';

const dir = mkdtempSync(join(tmpdir(), 'vu-cli-'));
const kills: (() => void)[] = [];
after(() => {
  for (const k of kills) k();
  rmSync(dir, { recursive: true, force: true });
});
const BIN = new URL('../../bin/virtiofs-ts.js', import.meta.url).pathname;
const serve = (...args: string[]) => spawnSync(process.execPath, [BIN, 'serve', ...args], { encoding: 'utf8', timeout: 20_000 });

test('--fd N: serves a frontend that connects to an inherited listening socket, exits 0 when it leaves', { timeout: 30_000 }, async () => {
  const sock = join(dir, 'inherited.sock');
  const lfd = listenUnix(sock);
  const d = await startServe(['--fd', '3', '--shared-dir', dir], undefined, 20_000, lfd);
  kills.push(d.kill);
  closeSocket(lfd); // the child holds its own copy
  const fe = TestFrontend.connect(sock);
  const f = fe.getU64(R.GET_FEATURES);
  assert.ok(f & (1n << 32n), 'VERSION_1 offered');
  fe.close();
  assert.equal(await d.exited, 0, d.log());
});

test('-o source=DIR,cache=none,no_xattr (the C virtiofsd form) serves; the socket file is removed afterwards', { timeout: 30_000 }, async () => {
  const sock = join(dir, 'legacy.sock');
  writeFileSync(join(dir, 'x'), 'x');
  const d = await startServe([`--socket-path=${sock}`, '-o', `source=${dir},cache=none,no_xattr`, '-o', 'flock'], sock);
  kills.push(d.kill);
  const fe = TestFrontend.connect(sock);
  assert.equal(fe.getU64(R.GET_QUEUE_NUM) >= 0n, true);
  fe.close();
  assert.equal(await d.exited, 0, d.log());
  assert.equal(existsSync(sock), false, 'no stale socket file left behind');
});

test('usage errors are one clear line and exit 2; a missing directory exits 1', () => {
  const both = serve('--socket-path', join(dir, 'a.sock'), '--fd', '3', '--shared-dir', dir);
  assert.equal(both.status, 2);
  assert.match(both.stderr, /exactly one of --socket-path PATH or --fd N/);
  const noDir = serve('--socket-path', join(dir, 'b.sock'));
  assert.equal(noDir.status, 2);
  assert.match(noDir.stderr, /--shared-dir DIR \(or -o source=DIR\) is required/);
  const badCache = serve('--socket-path', join(dir, 'c.sock'), '--shared-dir', dir, '--cache', 'sometimes');
  assert.equal(badCache.status, 2);
  assert.match(badCache.stderr, /--cache must be one of never, auto, always/);
  const badO = serve('--socket-path', join(dir, 'd.sock'), '-o', `source=${dir},frobnicate`);
  assert.equal(badO.status, 2);
  assert.match(badO.stderr, /unknown -o option 'frobnicate'/);
  const missing = serve('--socket-path', join(dir, 'e.sock'), '--shared-dir', join(dir, 'nope'));
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /shared directory .*nope: ENOENT/);
  const caps = serve('--print-capabilities');
  assert.equal(caps.status, 0);
  assert.equal(JSON.parse(caps.stdout).type, 'fs');
});

test('--tag: CONFIG is offered only then, and GET_CONFIG returns the virtio-fs config (tag, num_request_queues)', { timeout: 30_000 }, async () => {
  const sock = join(dir, 'tag.sock');
  const d = await startServe(['--socket-path', sock, '--shared-dir', dir, '--tag', 'myfs'], sock);
  kills.push(d.kill);
  const fe = TestFrontend.connect(sock);
  const PF_CONFIG = 1n << 9n;
  assert.ok(fe.getU64(R.GET_PROTOCOL_FEATURES) & PF_CONFIG);
  fe.u64(R.SET_PROTOCOL_FEATURES, PF_CONFIG);
  const req = Buffer.alloc(12 + 44); // u32 offset, u32 size, u32 flags, payload[size]
  req.writeUInt32LE(0, 0);
  req.writeUInt32LE(44, 4);
  fe.send(R.GET_CONFIG, req);
  const r = fe.recv();
  assert.equal(r.request, R.GET_CONFIG);
  assert.equal(r.payload.readUInt32LE(4), 44);
  const cfg = r.payload.subarray(12);
  assert.equal(cfg.subarray(0, 36).toString('utf8').replace(/\0+$/, ''), 'myfs');
  assert.equal(cfg.readUInt32LE(36), 1, 'one request queue');
  fe.close();
  assert.equal(await d.exited, 0, d.log());
});

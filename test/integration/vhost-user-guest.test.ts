// A REAL Linux guest under QEMU (TCG) mounts our `virtiofs-ts serve` through
// vhost-user-fs-pci: list, read, write, and compare bytes both ways with
// sha256. The daemon must exit 0 when the VM goes away.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runInGuest } from '../../src/guest/qemu.ts';
import { startServe, type ServeDaemon } from '../support/serve-daemon.ts';

const dir = mkdtempSync(join(tmpdir(), 'vu-guest-'));
let daemon: ServeDaemon | undefined;
after(() => {
  daemon?.kill();
  rmSync(dir, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('a Linux guest mounts our daemon: ls, cat, write, sha256 both ways; daemon exits 0 on VM exit', { timeout: 180_000 }, async () => {
  const share = join(dir, 'share');
  mkdirSync(join(share, 'sub'), { recursive: true });
  const small = Buffer.from('hello from the host\n');
  // 3 MiB + 5 bytes: many descriptors per READ, a tail that is not page aligned.
  const big = randomBytes(3 * 1024 * 1024 + 5);
  writeFileSync(join(share, 'hello.txt'), small);
  writeFileSync(join(share, 'sub', 'big.bin'), big);
  const sock = join(dir, 'vfs.sock');
  daemon = await startServe(['--socket-path', sock, '--shared-dir', share, '--cache', 'auto', '--log-level', 'info'], sock);

  const script = [
    'ls -1 . sub',
    'cat hello.txt',
    'sha256sum sub/big.bin',
    // Guest-made data: 2 MiB + 7 bytes through WRITE, then read back after dropping caches.
    'dd if=/dev/urandom of=from-guest.bin bs=1024 count=2048 2>/dev/null',
    'printf abcdefg >> from-guest.bin',
    'sync; echo 3 > /proc/sys/vm/drop_caches',
    'sha256sum from-guest.bin',
    'mkdir newdir && echo x > newdir/f && rm newdir/f && rmdir newdir && echo dirs-ok',
    'mv hello.txt renamed.txt && ls renamed.txt',
  ].join('\n');
  const r = await runInGuest({ socketPath: sock, command: script, timeoutMs: 150_000 });
  assert.equal(r.exitCode, 0, `guest script failed:\n${r.output}\n--- daemon ---\n${daemon.log()}`);
  const lines = r.output.split('\n');
  assert.ok(lines.includes('hello.txt') && lines.includes('sub') && lines.includes('big.bin'), r.output);
  assert.ok(r.output.includes(small.toString()), r.output);
  assert.ok(r.output.includes(`${sha(big)}  sub/big.bin`), `guest saw different bytes of big.bin:\n${r.output}`);
  const fromGuest = readFileSync(join(share, 'from-guest.bin'));
  assert.equal(fromGuest.length, 2 * 1024 * 1024 + 7);
  assert.ok(r.output.includes(`${sha(fromGuest)}  from-guest.bin`), `host and guest disagree on from-guest.bin:\n${r.output}`);
  assert.ok(r.output.includes('dirs-ok'), r.output);
  assert.equal(readFileSync(join(share, 'renamed.txt')).toString(), small.toString());
  assert.throws(() => statSync(join(share, 'hello.txt')));

  // QEMU is gone: the daemon sees the disconnect and exits 0 by itself.
  const code = await Promise.race([daemon.exited, new Promise((r) => setTimeout(() => r('still running'), 15_000))]);
  assert.equal(code, 0, `daemon did not exit 0 after the VM left:\n${daemon.log()}`);
  assert.match(daemon.log(), /frontend disconnected/);
});

test('guest fio --verify (crc32c, mixed block sizes, random writes) passes on our daemon', { timeout: 240_000 }, async () => {
  const share = join(dir, 'fio');
  mkdirSync(share);
  const sock = join(dir, 'fio.sock');
  const d = await startServe(['--socket-path', sock, '--shared-dir', share, '--cache', 'never'], sock);
  try {
    const r = await runInGuest({
      socketPath: sock,
      withFio: true,
      timeoutMs: 200_000,
      command:
        'fio --name=verify --filename=fio.dat --size=16M --rw=randwrite --bsrange=4k-128k --ioengine=psync --direct=1 ' +
        '--verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=1 --output-format=terse --terse-version=3\n' +
        'echo "fio-status=$?"',
    });
    assert.equal(r.exitCode, 0, `${r.output}\n--- daemon ---\n${d.log()}`);
    assert.match(r.output, /fio-status=0/);
    const terse = r.output.split('\n').find((l) => l.startsWith('3;fio-'));
    assert.ok(terse, `no terse line in:\n${r.output}`);
    assert.equal(terse.split(';')[4], '0', 'fio reported no error');
    assert.equal(statSync(join(share, 'fio.dat')).size, 16 * 1024 * 1024);
    assert.equal(await d.exited, 0);
  } finally {
    d.kill();
  }
});

test('an 8 GiB guest (a 5 GiB region above 4 GiB, mapped as several views) reads and writes correctly', { timeout: 240_000 }, async () => {
  const share = join(dir, 'big');
  mkdirSync(share);
  const data = randomBytes(32 << 20);
  writeFileSync(join(share, 'd.bin'), data);
  const sock = join(dir, 'big.sock');
  const d = await startServe(['--socket-path', sock, '--shared-dir', share, '--log-level', 'info'], sock);
  try {
    const r = await runInGuest({
      socketPath: sock,
      memoryMiB: 8192,
      timeoutMs: 200_000,
      // The guest allocates page cache from high memory first: buffers land above 4 GiB.
      command: 'sha256sum d.bin\ndd if=/dev/urandom of=g.bin bs=1M count=32 2>/dev/null\nsync; echo 3 > /proc/sys/vm/drop_caches\nsha256sum g.bin',
    });
    assert.equal(r.exitCode, 0, `${r.output}\n--- daemon ---\n${d.log()}`);
    assert.ok(r.output.includes(`${sha(data)}  d.bin`), r.output);
    assert.ok(r.output.includes(`${sha(readFileSync(join(share, 'g.bin')))}  g.bin`), r.output);
    assert.match(d.log(), /0x100000000\+0x140000000/, 'the 5 GiB high region was mapped');
    assert.equal(await d.exited, 0);
  } finally {
    d.kill();
  }
});

test('--readonly --cache always: the guest reads, every change fails with EROFS, the host tree is untouched', { timeout: 240_000 }, async () => {
  const share = join(dir, 'ro');
  mkdirSync(share);
  writeFileSync(join(share, 'keep.txt'), 'read me\n');
  const sock = join(dir, 'ro.sock');
  const d = await startServe(['--socket-path', sock, '--shared-dir', share, '--readonly', '--cache', 'always'], sock);
  try {
    const r = await runInGuest({
      socketPath: sock,
      timeoutMs: 200_000,
      command: [
        'mkdir -p /tmp; cat keep.txt',
        'for op in "touch new" "mkdir d" "rm keep.txt" "mv keep.txt x" "sh -c \'echo x >> keep.txt\'"; do',
        '  if eval "$op" 2>/tmp/err; then echo "ALLOWED: $op"; else echo "refused: $op: $(cat /tmp/err)"; fi',
        'done',
      ].join('\n'),
    });
    assert.equal(r.exitCode, 0, `${r.output}\n--- daemon ---\n${d.log()}`);
    assert.match(r.output, /read me/);
    assert.doesNotMatch(r.output, /ALLOWED/, r.output);
    assert.equal((r.output.match(/refused: .*Read-only file system/g) ?? []).length, 5, r.output);
    assert.deepEqual(readdirSync(share), ['keep.txt']);
    assert.equal(readFileSync(join(share, 'keep.txt'), 'utf8'), 'read me\n');
    assert.equal(await d.exited, 0);
  } finally {
    d.kill();
  }
});

test('a guest reboot (device reset, INIT again) gets a fresh FUSE session on the same daemon', { timeout: 240_000 }, async () => {
  const share = join(dir, 'reboot');
  mkdirSync(share);
  writeFileSync(join(share, 'a'), 'content-a\n');
  const sock = join(dir, 'reboot.sock');
  const d = await startServe(['--socket-path', sock, '--shared-dir', share, '--log-level', 'info'], sock);
  try {
    const r = await runInGuest({
      socketPath: sock,
      timeoutMs: 200_000,
      // Let the guest's reboot reset the machine instead of ending QEMU; the
      // script runs again on the second boot and finds its marker.
      extraQemuArgs: ['-action', 'reboot=reset'],
      command: 'if [ -f booted-once ]; then echo second-boot; cat a; echo after > b; else echo first > booted-once; sync; reboot -f; fi',
    });
    assert.equal(r.exitCode, 0, `${r.output}\n--- daemon ---\n${d.log()}`);
    assert.match(r.output, /second-boot\ncontent-a/);
    assert.equal(readFileSync(join(share, 'b'), 'utf8'), 'after\n');
    assert.match(d.log(), /new FUSE session/);
    assert.equal(await d.exited, 0);
  } finally {
    d.kill();
  }
});

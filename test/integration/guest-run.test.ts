// `virtiofs-ts run` end to end, as a user runs it: the CLI boots a real Linux
// guest under QEMU whose root file system is a host directory served over
// virtio-fs, and we check what CMD printed, its exit status, and the files it
// left on the host. Two boots (~5-10 s each).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findBusybox } from '../../src/guest/assets.ts';
import { ensureDefaultRootfs } from '../../src/guest/rootfs.ts';

const CLI = fileURLToPath(new URL('../../bin/virtiofs-ts.js', import.meta.url));

function cli(args: string[], env: Record<string, string> = {}, timeoutMs = 300_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('virtiofs-ts run', { timeout: 900_000 }, () => {
  let work: string;
  const cleanup: string[] = [];
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'vfts-run-test-'));
  });
  after(() => {
    for (const p of cleanup) rmSync(p, { force: true });
    rmSync(work, { recursive: true, force: true });
  });

  test('without --root, with our daemon (the default): the embedded busybox root; a host change is seen and a guest write shows up on the host', async () => {
    const rootfs = ensureDefaultRootfs(() => {});
    const id = randomBytes(6).toString('hex');
    const hostFile = join(rootfs, 'tmp', `host-${id}.txt`);
    const guestFile = join(rootfs, 'root', `guest-${id}.txt`);
    cleanup.push(hostFile, guestFile);
    // Written after the root fs exists: nothing is rebuilt, the guest reads it live.
    writeFileSync(hostFile, `from the host ${id}\n`);
    const r = await cli(['run', '--', 'sh', '-c', `cat /tmp/host-${id}.txt; echo "from the guest ${id}" > /root/guest-${id}.txt; grep -c virtiofs /proc/mounts`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `from the host ${id}\n1\n`);
    assert.equal(readFileSync(guestFile, 'utf8'), `from the guest ${id}\n`);
  });

  test('--root DIR with the C virtiofsd: CMD runs with DIR as /, its arguments arrive intact, and its exit status is ours', async () => {
    const root = join(work, 'root');
    for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp']) mkdirSync(join(root, d), { recursive: true });
    copyFileSync(findBusybox(), join(root, 'bin', 'busybox'));
    symlinkSync('busybox', join(root, 'bin', 'sh'));
    writeFileSync(join(root, 'etc', 'greeting'), 'hello from a custom root\n');
    const tricky = `it's "quoted" $HOME \\ *`;
    const r = await cli([
      'run', '--root', root, '--memory', '256M', '--daemon', 'virtiofsd', '--',
      '/bin/sh', '-c', 'busybox cat /etc/greeting; busybox printf "%s\\n" "$1"; busybox ls /proc/self >/dev/null && echo proc-ok; echo done > /written; exit 3', 'sh', tricky,
    ]);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, `hello from a custom root\n${tricky}\nproc-ok\n`);
    assert.equal(readFileSync(join(root, 'written'), 'utf8'), 'done\n');
  });

  test('--readonly: the guest cannot change the root, and the host tree is untouched', async () => {
    const rootfs = ensureDefaultRootfs(() => {});
    const id = randomBytes(6).toString('hex');
    const r = await cli(['run', '--readonly', '--', 'sh', '-c', `echo x > /tmp/ro-${id} || echo refused; grep -c ' / virtiofs ro,' /proc/mounts`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Read-only file system\nrefused\n1\n$/);
    assert.equal(existsSync(join(rootfs, 'tmp', `ro-${id}`)), false);
  });

  test('on a terminal, CMD gets the serial console as its controlling tty, sized like ours', async () => {
    // util-linux script(1) gives the CLI a pseudo-terminal, as a user's shell would.
    const inner = `stty rows 33 cols 99; exec ${process.execPath} ${CLI} run -- sh -c 'tty; stty size; exit 4'`;
    const r = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const child = spawn('script', ['-qec', inner, '/dev/null'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, out }));
    });
    assert.equal(r.code, 4);
    const lines = r.out.replace(/\r/g, '').split('\n');
    assert.ok(lines.includes('/dev/ttyS0'), r.out);
    assert.ok(lines.includes('33 99'), r.out);
  });

  test('a reader that goes away (run ... | head) stops the VM: exit 141, nothing left running', async () => {
    const child = spawn(process.execPath, [CLI, 'run', '--', 'sh', '-c', 'while :; do echo line; done'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), 300_000);
      child.on('close', (c) => {
        clearTimeout(t);
        resolve(c);
      });
    });
    assert.equal(code, 141, stderr);
  });

  test('bad options and missing host pieces are refused with what to do; --timeout ends the VM with 124', async () => {
    const r = await cli(['run', '--memory', '12Q', '--', 'true']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--memory must look like 512M or 1G/);
    const r2 = await cli(['run', '--root', join(work, 'nope'), '--', 'true']);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /root .*nope: ENOENT/);
    const r5 = await cli(['run', '--timeout', '2', '--', 'sleep', '100']);
    assert.equal(r5.code, 124, r5.stderr);
    assert.match(r5.stderr, /did not finish within 2000 ms .*QEMU killed/);
    const r3 = await cli(['run', '--', 'true'], { VIRTIOFS_TS_QEMU: join(work, 'no-qemu') });
    assert.equal(r3.code, 1);
    assert.match(r3.stderr, /qemu-system-x86_64 not found: install it with `apt-get install qemu-system-x86`/);
    const r4 = await cli(['run', '--', 'true'], { VIRTIOFS_TS_BUSYBOX: process.execPath });
    assert.equal(r4.code, 1);
    assert.match(r4.stderr, /is dynamically linked .* `apt-get install busybox-static`/);
  });
});

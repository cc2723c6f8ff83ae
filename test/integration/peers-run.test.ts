// `virtiofs-ts run --qemu 11.1` end to end through the real bin: the microVM
// boots on the QEMU fetched by src/guest/peers.ts (its SMBIOS machine type says
// so) with our daemon on the generic vhost-user device, root fs on virtio-fs.
// A bad --qemu value is a usage error (exit 2) before anything is fetched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { ensureNewQemu } from '../../src/guest/peers.ts';

const BIN = new URL('../../bin/virtiofs-ts.js', import.meta.url).pathname;

function runCli(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

test('run --qemu 11.1: the microVM boots on QEMU 11.1 with our daemon on the generic device', { timeout: 15 * 60_000 }, async () => {
  const q = await ensureNewQemu(); // fetch outside the CLI's own time budget
  const [major, minor] = q.version.split('.');
  const r = await runCli(['--qemu', '11.1', '--no-tty', '--verbose', '--', 'sh', '-c', 'cat /sys/class/dmi/id/product_version; grep " / " /proc/mounts'], 300_000);
  assert.equal(r.code, 0, `run failed:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, new RegExp(`^pc-i440fx-${major}\\.${minor}$`, 'm'), `not booted on QEMU ${q.version}:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /^rootfs \/ virtiofs /m, r.stdout);
  assert.match(r.stderr, /generic vhost-user device/, r.stderr);
});

test('run --qemu with an unknown choice is a usage error', { timeout: 60_000 }, async () => {
  const r = await runCli(['--qemu', '9.9', '--', 'true'], 50_000);
  assert.equal(r.code, 2, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /--qemu/, r.stderr);
});

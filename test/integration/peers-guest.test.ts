// A REAL Linux guest on QEMU 11.1 (fetched by src/guest/peers.ts) with Rust
// virtiofsd 1.14 as the daemon: first through vhost-user-fs-pci, then through
// the generic vhost-user-test-device-pci (the device line that can carry a
// DAX window), where the tag comes from the daemon's config space (--tag).
// Bytes are compared both ways with sha256. Rust virtiofsd offers no SHMEM
// region, so on the generic device a `dax=always` mount must be refused: the
// guest kernel sees no cache capability.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureNewQemu, genericFsDevice, qemuCommandOf, startRustVirtiofsd, type RustVirtiofsd } from '../../src/guest/peers.ts';
import { runInGuest } from '../../src/guest/qemu.ts';

const dir = mkdtempSync(join(tmpdir(), 'peers-guest-'));
const daemons: RustVirtiofsd[] = [];
after(async () => {
  for (const d of daemons) await d.stop();
  rmSync(dir, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const FETCH_AND_BOOT = 15 * 60_000;


function share(name: string) {
  const root = join(dir, name);
  mkdirSync(join(root, 'sub'), { recursive: true });
  // 1 MiB + 3: several descriptors per READ and a tail that is not page aligned.
  const big = randomBytes(1024 * 1024 + 3);
  writeFileSync(join(root, 'sub', 'big.bin'), big);
  return { root, big };
}

// Guest-made data through WRITE, read back after dropping the guest's caches.
const SCRIPT = [
  // QEMU names its machine type in SMBIOS: proof the guest runs on the fetched QEMU, not the system's 7.2.
  'echo machine=$(cat /sys/class/dmi/id/product_version)',
  'sha256sum sub/big.bin',
  'dd if=/dev/urandom of=from-guest.bin bs=1024 count=512 2>/dev/null',
  'printf xyz >> from-guest.bin',
  'sync; echo 3 > /proc/sys/vm/drop_caches',
  'sha256sum from-guest.bin',
];

async function rustDaemon(name: string, root: string, tag?: string): Promise<RustVirtiofsd> {
  const sock = join(dir, `${name}.sock`);
  // --sandbox none: the namespace sandbox is no part of what we compare, and needs privileges CI may lack.
  const d = await startRustVirtiofsd({ socketPath: sock, sharedDir: root, cache: 'auto', ...(tag ? { tag } : {}), extraArgs: ['--sandbox=none'] });
  daemons.push(d);
  return d;
}

function checkBytes(output: string, root: string, big: Buffer, log: string, qemuVersion: string) {
  const [major, minor] = qemuVersion.split('.');
  assert.match(output, new RegExp(`^machine=pc-i440fx-${major}\\.${minor}$`, 'm'), `the guest is not on QEMU ${qemuVersion}:\n${output}`);
  assert.ok(output.includes(`${sha(big)}  sub/big.bin`), `guest read different bytes of big.bin:\n${output}`);
  const fromGuest = readFileSync(join(root, 'from-guest.bin'));
  assert.equal(fromGuest.length, 512 * 1024 + 3, log);
  assert.ok(output.includes(`${sha(fromGuest)}  from-guest.bin`), `host and guest disagree on from-guest.bin:\n${output}`);
}

test('QEMU 11.1 + Rust virtiofsd 1.14 on vhost-user-fs-pci: a guest reads and writes byte for byte', { timeout: FETCH_AND_BOOT }, async () => {
  const qemu = await ensureNewQemu();
  const { root, big } = share('fs-pci');
  const d = await rustDaemon('fs-pci', root);
  const r = await runInGuest({ socketPath: d.socketPath, qemu: qemuCommandOf(qemu), command: SCRIPT.join('\n'), timeoutMs: 180_000 });
  assert.equal(r.exitCode, 0, `guest script failed:\n${r.output}\n--- virtiofsd ${d.version} ---\n${d.log()}`);
  checkBytes(r.output, root, big, d.log(), qemu.version);
  const code = await Promise.race([d.exited, new Promise((res) => setTimeout(() => res('still running'), 15_000))]);
  assert.equal(code, 0, `virtiofsd did not exit 0 after the VM left:\n${d.log()}`);
});

test('QEMU 11.1 generic vhost-user device + Rust virtiofsd --tag: the guest mounts by the config-space tag; dax=always is refused (no SHMEM)', { timeout: FETCH_AND_BOOT }, async () => {
  const qemu = await ensureNewQemu();
  const { root, big } = share('generic');
  const tag = 'peerfs';
  const d = await rustDaemon('generic', root, tag);
  const script = SCRIPT.join('\n');
  const r = await runInGuest({ socketPath: d.socketPath, tag, qemu: qemuCommandOf(qemu), fsDevice: genericFsDevice(), command: script, timeoutMs: 180_000 });
  assert.equal(r.exitCode, 0, `guest script failed:\n${r.output}\n--- boot ---\n${r.bootLog.slice(-3000)}\n--- virtiofsd ${d.version} ---\n${d.log()}`);
  checkBytes(r.output, root, big, d.log(), qemu.version);

  // A second VM (Rust virtiofsd serves one VM per process) asks for DAX at mount time.
  const d2 = await rustDaemon('generic-dax', root, tag);
  const refused = await runInGuest({
    socketPath: d2.socketPath,
    tag,
    qemu: qemuCommandOf(qemu),
    fsDevice: genericFsDevice(),
    mountOptions: 'dax=always',
    // Notices on the console: the virtiofs driver says why it has no window.
    extraKernelArgs: 'loglevel=6',
    command: 'echo dax-mount=ok',
    timeoutMs: 180_000,
  }).then(
    (res) => assert.fail(`Rust virtiofsd offers no SHMEM region, yet a dax=always mount succeeded (exit ${res.exitCode}):\n${res.output}`),
    (e: unknown) => e as Error,
  );
  assert.match(refused.message, /mount -t virtiofs -o dax=always peerfs failed/, refused.message);
  assert.match(refused.message, /No cache capability/, `the guest should say why there is no DAX window:\n${refused.message}`);
});

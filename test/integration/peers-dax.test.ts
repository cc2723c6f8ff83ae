// The guest-side DAX checks (peers-dax-checks.ts: read through DAX and
// compare sha256, read through mmap, write through MAP_SHARED mmap and
// pwrite+fsync, shrink/extend, a file several times the window, a host-side
// rewrite seen by the guest) on QEMU 11.1's generic vhost-user device: without
// a window against our daemon (`serve --tag`) and Rust virtiofsd 1.14, and with
// `serve --dax-window` where every file must be a DAX inode.
import { test, after } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureNewQemu, genericFsDevice, qemuCommandOf, startRustVirtiofsd, type RustVirtiofsd } from '../../src/guest/peers.ts';
import { runInGuest } from '../../src/guest/qemu.ts';
import { startServe, type ServeDaemon } from '../support/serve-daemon.ts';
import { checkDaxRun, daxProbe, daxScript, hostChangeHook, prepareDaxShare, PROBE_GUEST_PATH, type DaxShare } from './peers-dax-checks.ts';

const dir = mkdtempSync(join(tmpdir(), 'peers-dax-'));
const ours: ServeDaemon[] = [];
const rust: RustVirtiofsd[] = [];
after(async () => {
  for (const d of ours) d.kill();
  for (const d of rust) await d.stop();
  rmSync(dir, { recursive: true, force: true });
});

const TAG = 'daxfs';
const TIMEOUT = 15 * 60_000;
// Much smaller than big.bin (24 MiB): reading it must make the guest reclaim ranges.
const WINDOW = '8M';
// Without a window there is nothing to exhaust: a smaller file keeps these runs short under TCG.
const NO_WINDOW_BIG = 4 * 1024 * 1024;

async function guest(share: DaxShare, socketPath: string, mountOptions?: string) {
  const [qemu, probe] = await Promise.all([ensureNewQemu(), daxProbe()]);
  return runInGuest({
    socketPath,
    tag: TAG,
    qemu: qemuCommandOf(qemu),
    fsDevice: genericFsDevice(),
    ...(mountOptions ? { mountOptions } : {}),
    files: [{ path: PROBE_GUEST_PATH, data: probe, mode: 0o755 }],
    command: daxScript(),
    onOutput: hostChangeHook(share),
    timeoutMs: 300_000,
  });
}

test('no window, our daemon (serve --tag) on the generic device: the DAX script passes the non-DAX way', { timeout: TIMEOUT }, async () => {
  const share = prepareDaxShare(join(dir, 'ours-nodax'), NO_WINDOW_BIG);
  const sock = join(dir, 'ours-nodax.sock');
  const d = await startServe(['--socket-path', sock, '--shared-dir', share.dir, '--tag', TAG, '--cache', 'auto'], sock);
  ours.push(d);
  const r = await guest(share, sock);
  checkDaxRun(share, r.output, false, `exit ${r.exitCode}\n--- daemon ---\n${d.log()}`);
});

test('no window, Rust virtiofsd 1.14 --tag on the generic device: the same script passes', { timeout: TIMEOUT }, async () => {
  const share = prepareDaxShare(join(dir, 'rust-nodax'), NO_WINDOW_BIG);
  const d = await startRustVirtiofsd({ socketPath: join(dir, 'rust.sock'), sharedDir: share.dir, tag: TAG, cache: 'auto', extraArgs: ['--sandbox=none'] });
  rust.push(d);
  const r = await guest(share, d.socketPath);
  checkDaxRun(share, r.output, false, `exit ${r.exitCode}\n--- virtiofsd ${d.version} ---\n${d.log()}`);
});

// checkDaxRun's host-side rewrite grows hc.txt from 17 to 5052 bytes while
// the guest has its first 2 MiB mapped (on QEMU 11.1 as a copied EOF page,
// since QEMU refuses a map straddling EOF): the guest must read the new bytes
// past the old EOF page too, which the mapper gets right by cutting the
// mapping again for the new size (dax-mapper.ts, regrow()).
test(`DAX window ${WINDOW}, our daemon (serve --tag --dax-window): dax=always, every check through the window`, { timeout: TIMEOUT }, async () => {
  const share = prepareDaxShare(join(dir, 'ours-dax'));
  const sock = join(dir, 'ours-dax.sock');
  const d = await startServe(['--socket-path', sock, '--shared-dir', share.dir, '--tag', TAG, '--dax-window', WINDOW, '--cache', 'auto'], sock);
  ours.push(d);
  const r = await guest(share, sock, 'dax=always');
  checkDaxRun(share, r.output, true, `exit ${r.exitCode}\n--- daemon ---\n${d.log()}`);
});

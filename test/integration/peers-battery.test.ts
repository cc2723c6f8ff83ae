// The guest POSIX battery (test/support/posix-battery.c) on QEMU 11.1's
// generic vhost-user device, in one test run: our daemon without a window,
// our daemon with a DAX window (guest mounts dax=always), and Rust virtiofsd
// 1.14. DAX must give the results of no DAX (one kernel-made exception, listed);
// Rust virtiofsd must give
// ours except where listed with the reason. Host-side trees must match too.
// The battery binary runs from the share, so under DAX its code is executed
// straight out of the window (with a window large enough that the guest never
// reuses a range: see the small-window test for why).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureNewQemu, genericFsDevice, qemuCommandOf, startRustVirtiofsd } from '../../src/guest/peers.ts';
import { runInGuest } from '../../src/guest/qemu.ts';
import { batteryArgs, compareBatteries, compileBattery, diffTrees, treeManifest, type AllowedDifference, batteryLinesFromConsole, guestBatteryCommand, prepareBatteryShare, GUEST_BATTERY_MARK } from '../support/posix-battery.ts';
import { startServe } from '../support/serve-daemon.ts';

const work = mkdtempSync(join(tmpdir(), 'peers-battery-'));
const stops: (() => unknown)[] = [];
after(async () => {
  for (const s of stops) await s();
  rmSync(work, { recursive: true, force: true });
});

const READDIR_COUNT = 2000;
const TAG = 'battery';

/** Differences between ours without DAX (first) and with DAX (second), each with its reason. */
const ALLOW_DAX: Record<string, AllowedDifference> = {
  'attr.mtime_updates': {
    reason:
      "Linux's FUSE DAX write path does not update mtime/ctime (fs/fuse/dax.c, fuse_dax_write_iter: 'TODO file_update_time() but we don't want metadata I/O'); " +
      'a write inside EOF goes through the window, no FUSE_WRITE reaches any daemon, so neither the guest nor the daemon bumps the times. Extending writes (FUSE_WRITE) and truncate still do',
    other: 'ok write=same after_close=same truncate=changed dir_create=changed dir_unlink=changed',
  },
};

/** Differences between ours without DAX (first) and Rust virtiofsd (second), each with its reason. */
const ALLOW_RUST: Record<string, AllowedDifference> = {};

/** fromGuestRam: copy the battery out of the share into the guest's /tmp and run that copy. */
async function batteryInGuest(socketPath: string, mountOptions?: string, fromGuestRam = false): Promise<string[]> {
  const qemu = await ensureNewQemu();
  const args = batteryArgs('/mnt/work', { readdirCount: READDIR_COUNT }).join(' ');
  const prelude = 'grep " /mnt " /proc/mounts; ';
  const m = GUEST_BATTERY_MARK;
  const r = await runInGuest({
    socketPath,
    tag: TAG,
    qemu: qemuCommandOf(qemu),
    fsDevice: genericFsDevice(),
    ...(mountOptions ? { mountOptions } : {}),
    timeoutMs: 600_000,
    command: fromGuestRam
      ? `${prelude}cp battery /tmp/battery && mkdir -p work && echo ${m} && /tmp/battery ${args}; echo "${m} exit=$?"`
      : guestBatteryCommand(args, prelude),
  });
  const { lines, before } = batteryLinesFromConsole(r.output);
  if (mountOptions) assert.match(before.join('\n'), new RegExp(mountOptions), `not mounted with ${mountOptions}:\n${before.join('\n')}`);
  return lines;
}

async function ours(name: string, binary: string, extra: string[] = []) {
  const share = prepareBatteryShare(work, name, binary);
  const sock = join(work, `${name}.sock`);
  const d = await startServe(['--socket-path', sock, '--shared-dir', share, '--cache', 'auto', '--xattr', '--tag', TAG, ...extra], sock);
  stops.push(() => d.kill());
  return { share, sock, d };
}

// 'apc' holds two processes' concurrent appends: their interleaving (so its hash) differs from run to run.
const tree = (p: string) => treeManifest(p).map((l) => (l.startsWith('apc ') ? l.replace(/sha=\w+/, 'sha=(interleaved)') : l));

test('guest POSIX battery on QEMU 11.1: our daemon with a DAX window = without; Rust virtiofsd 1.14 = ours', { timeout: 1_800_000 }, async () => {
  const binary = await compileBattery();

  const plain = await ours('plain', binary);
  const plainLines = await batteryInGuest(plain.sock);
  assert.ok(plainLines.length > 50, `the battery printed only ${plainLines.length} lines`);

  // A window larger than all the battery touches: no reclaim (the small-window case is below).
  const dax = await ours('dax', binary, ['--dax-window', '1G']);
  const daxLines = await batteryInGuest(dax.sock, 'dax=always');
  const cmpDax = compareBatteries(plainLines, daxLines, ALLOW_DAX, ['no DAX', 'DAX']);
  assert.ok(cmpDax.equal, `DAX changes the battery's results:\n${cmpDax.diff}\n--- daemon ---\n${dax.d.log().slice(-3000)}`);
  assert.deepEqual(cmpDax.allowedUnused, [], 'a declared DAX difference no longer occurs: remove it');
  const dDax = diffTrees(tree(join(plain.share, 'work')), tree(join(dax.share, 'work')), ['no DAX', 'DAX']);
  assert.equal(dDax, '', `host-side trees differ:\n${dDax}`);

  const rustShare = prepareBatteryShare(work, 'rust', binary);
  const rust = await startRustVirtiofsd({ socketPath: join(work, 'rust.sock'), sharedDir: rustShare, tag: TAG, cache: 'auto', extraArgs: ['--xattr', '--sandbox=none'] });
  stops.push(() => rust.stop());
  const rustLines = await batteryInGuest(rust.socketPath);
  const cmpRust = compareBatteries(plainLines, rustLines, ALLOW_RUST, ['ours', `Rust virtiofsd ${rust.version}`]);
  assert.ok(cmpRust.equal, `Rust virtiofsd differs from ours in the guest:\n${cmpRust.diff}\n--- virtiofsd ---\n${rust.log().slice(-3000)}`);
  assert.deepEqual(cmpRust.allowedUnused, [], 'a declared difference no longer occurs: remove it');
  const dRust = diffTrees(tree(join(plain.share, 'work')), tree(join(rustShare, 'work')), ['ours', 'Rust virtiofsd']);
  assert.equal(dRust, '', `host-side trees differ:\n${dRust}`);
});

// The battery's files go through a 64 MiB window, so the guest reclaims and
// reuses ranges while it runs. The battery itself runs from a copy in the
// guest's RAM: executing code from a window range the guest has reused hits a
// QEMU TCG bug (translated code is cached by RAM address, and QEMU gives a new
// mapping the address of the one just removed without dropping the old
// translations: the guest runs the OLD file's code; dax-tcg-stale-code.test.ts
// shows it on one page, with the data read right). Copying it reads it through
// the window too.
test('guest POSIX battery on QEMU 11.1 through a 64 MiB DAX window: the guest reclaims ranges while the battery works', { timeout: 900_000 }, async () => {
  const binary = await compileBattery();
  const small = await ours('dax-small', binary, ['--dax-window', '64M']);
  const lines = await batteryInGuest(small.sock, 'dax=always', true);
  assert.ok(lines.length > 50, `the battery printed only ${lines.length} lines`);
});

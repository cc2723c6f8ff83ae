// The POSIX battery (test/support/posix-battery.c, one static binary) inside
// a REAL Linux guest, once against QEMU's C virtiofsd and once against our
// `virtiofs-ts serve`, in the same test run: the results must match check for
// check, except where listed below with who is right and why. The files the
// guest wrote must land on the host byte for byte the same under both daemons.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runInGuest } from '../../src/guest/qemu.ts';
import { startCVirtiofsd } from '../../src/guest/virtiofsd.ts';
import { batteryArgs, compareBatteries, compileBattery, diffTrees, treeManifest, type AllowedDifference, batteryLinesFromConsole, guestBatteryCommand, prepareBatteryShare } from '../support/posix-battery.ts';
import { startServe, type ServeDaemon } from '../support/serve-daemon.ts';

const work = mkdtempSync(join(tmpdir(), 'vu-battery-'));
const stops: (() => unknown)[] = [];
after(async () => {
  for (const s of stops) await s();
  rmSync(work, { recursive: true, force: true });
});

const READDIR_COUNT = 2000;

/** Differences between the C daemon (first) and ours (second), each with its reason. */
const ALLOW: Record<string, AllowedDifference> = {};

async function batteryInGuest(share: string, socketPath: string): Promise<string[]> {
  const args = batteryArgs('/mnt/work', { readdirCount: READDIR_COUNT }).join(' ');
  const r = await runInGuest({
    socketPath,
    timeoutMs: 400_000,
    command: guestBatteryCommand(args),
  });
  return batteryLinesFromConsole(r.output).lines;
}

test('guest POSIX battery: our daemon gives the same results as QEMU\'s C virtiofsd', { timeout: 900_000 }, async () => {
  const binary = await compileBattery();

  const cShare = prepareBatteryShare(work, 'c', binary);
  const c = await startCVirtiofsd({ socketPath: join(work, 'c.sock'), sharedDir: cShare, cache: 'auto', options: ['xattr'] });
  stops.push(() => c.stop());
  const cLines = await batteryInGuest(cShare, c.socketPath);

  const oShare = prepareBatteryShare(work, 'ours', binary);
  const sock = join(work, 'ours.sock');
  const ours: ServeDaemon = await startServe(['--socket-path', sock, '--shared-dir', oShare, '--cache', 'auto', '--xattr'], sock);
  stops.push(() => ours.kill());
  const oLines = await batteryInGuest(oShare, sock);

  assert.ok(cLines.length > 50, `the battery printed only ${cLines.length} lines`);
  const cmp = compareBatteries(cLines, oLines, ALLOW, ['virtiofsd', 'ours']);
  assert.ok(cmp.equal, `our daemon differs from the C virtiofsd in the guest:\n${cmp.diff}\n--- our daemon ---\n${ours.log().slice(-3000)}`);
  assert.deepEqual(cmp.allowedUnused, [], 'a declared difference no longer occurs: remove it');
  // What the guest wrote landed on the host the same way under both daemons.
  // 'apc' holds two processes' concurrent appends: their interleaving (so its
  // hash) differs from run to run on any fs; the battery checks its records.
  const tree = (p: string) => treeManifest(p).map((l) => (l.startsWith('apc ') ? l.replace(/sha=\w+/, 'sha=(interleaved)') : l));
  const d = diffTrees(tree(join(cShare, 'work')), tree(join(oShare, 'work')), ['virtiofsd', 'ours']);
  assert.equal(d, '', `host-side trees differ:\n${d}`);
  assert.equal(await ours.exited, 0, `our daemon must exit 0 after the VM:\n${ours.log()}`);
});

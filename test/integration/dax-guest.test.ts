// A real Linux guest on QEMU 11.1 (the generic vhost-user device, fetched into
// the private peers cache) against our `serve --tag --dax-window`: issue 5.
// (The byte-for-byte reads, mmap/pwrite writes, truncate/extend and window
// exhaustion checks are in peers-dax.test.ts; this file adds:)
// - the guest POSIX battery under dax=always gives the same results as our
//   daemon without a window on the same QEMU, and leaves the same host tree;
// - a host-side change to a file the guest has mapped is seen by the guest
//   (in place, and in the last page of a file whose size is not page aligned,
//   the page QEMU cannot map from the file and we serve from a synced copy).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureNewQemu, genericFsDevice, qemuCommandOf } from '../../src/guest/peers.ts';
import { runInGuest } from '../../src/guest/qemu.ts';
import { batteryArgs, compareBatteries, compileBattery, diffTrees, treeManifest } from '../support/posix-battery.ts';
import { startServe, type ServeDaemon } from '../support/serve-daemon.ts';

const work = mkdtempSync(join(tmpdir(), 'dax-guest-'));
const daemons: ServeDaemon[] = [];
after(() => {
  for (const d of daemons) d.kill();
  rmSync(work, { recursive: true, force: true });
});

const TAG = 'daxfs';

/** Where dax=always legitimately differs from no DAX, and why. */
const DAX_ALLOW = {
  'attr.mtime_updates': {
    reason: "the Linux client's DAX write path stores through the window with no FUSE_WRITE and does not update the file time " +
      '(fs/fuse/dax.c: "TODO file_update_time() but we don\'t want metadata I/O"); the guest keeps its cached mtime until the attributes expire',
    other: 'ok write=same after_close=same truncate=changed dir_create=changed dir_unlink=changed',
  },
};
const MARK = '@@battery@@';

async function serve(share: string, name: string, dax: boolean): Promise<{ sock: string; d: ServeDaemon }> {
  const sock = join(work, `${name}.sock`);
  const d = await startServe(['--socket-path', sock, '--shared-dir', share, '--tag', TAG, '--cache', 'auto', '--xattr', '--log-level', 'info', ...(dax ? ['--dax-window', '64M'] : [])], sock);
  daemons.push(d);
  return { sock, d };
}

async function guest(sock: string, dax: boolean, command: string, onOutput?: (b: Buffer) => void, files?: { path: string; data: Uint8Array; mode: number }[]) {
  const qemu = await ensureNewQemu();
  return runInGuest({
    socketPath: sock,
    tag: TAG,
    qemu: qemuCommandOf(qemu),
    fsDevice: genericFsDevice(),
    ...(dax ? { mountOptions: 'dax=always' } : {}),
    command,
    timeoutMs: 500_000,
    ...(onOutput ? { onOutput } : {}),
    ...(files ? { files } : {}),
  });
}

/** Runs the battery (from the guest's initramfs) in a guest on our daemon. */
async function runBattery(name: string, dax: boolean) {
  const binary = await compileBattery();
  {
    const share = join(work, name);
    mkdirSync(share);
    const { sock, d } = await serve(share, name, dax);
    const args = batteryArgs('/mnt/work', { readdirCount: 1000 }).join(' ');
    const r = await guest(sock, dax, `grep " /mnt " /proc/mounts; mkdir -p work && echo ${MARK} && /bin/vfts-battery ${args}; echo "${MARK} exit=$?"`, undefined,
      [{ path: '/bin/vfts-battery', data: readFileSync(binary), mode: 0o755 }]);
    const out = r.output.split('\n');
    const start = out.indexOf(MARK);
    const end = out.findIndex((l) => l.startsWith(`${MARK} exit=`));
    assert.ok(start >= 0 && end > start, `${name}: the battery did not run:\n${r.output.slice(-3000)}\n${d.log().slice(-2000)}`);
    assert.equal(out[end], `${MARK} exit=0`, `${name}: battery failed:\n${out.slice(Math.max(0, end - 10), end + 1).join('\n')}\n--- daemon ---\n${d.log().split('\n').filter((l) => !l.includes('guest memory')).slice(-40).join('\n')}\n--- qemu ---\n${r.bootLog.split('\n').filter((l) => l.includes('qemu')).slice(-20).join('\n')}`);
    if (dax) assert.match(r.output, /dax=always/, 'mounted with dax=always');
    assert.equal(await d.exited, 0, `${name}: daemon exit\n${d.log()}`);
    return { lines: out.slice(start + 1, end).filter((l) => l.length > 0), share, log: d.log() };
  }
}

test('guest POSIX battery on QEMU 11.1: dax=always gives the same results and host tree as no DAX', { timeout: 1_200_000 }, async () => {
  const plain = await runBattery('plain', false);
  const dax = await runBattery('dax', true);
  assert.ok(plain.lines.length > 50, `the battery printed only ${plain.lines.length} lines`);
  const cmp = compareBatteries(plain.lines, dax.lines, DAX_ALLOW, ['no DAX', 'DAX']);
  assert.ok(cmp.equal, `DAX differs from no DAX in the guest:\n${cmp.diff}\n--- daemon (DAX) ---\n${dax.log.slice(-3000)}`);
  const tree = (p: string) => treeManifest(p).map((l) => (l.startsWith('apc ') ? l.replace(/sha=\w+/, 'sha=(interleaved)') : l));
  const d = diffTrees(tree(join(plain.share, 'work')), tree(join(dax.share, 'work')), ['no DAX', 'DAX']);
  assert.equal(d, '', `host-side trees differ:\n${d}`);
});

// The battery executed FROM the dax=always share (its code pages in the
// window) is peers-battery.test.ts's DAX run, with a window the guest never
// reuses: under TCG, code run from a reused window range can be a stale
// translation of what was mapped there before (a QEMU bug, shown by
// dax-tcg-stale-code.test.ts), which is why the battery here runs from the
// initramfs with a 64 MiB window.

test('a host change to a mapped file is seen by the dax=always guest, in place and in the last (copied) page', { timeout: 600_000 }, async () => {
  const share = join(work, 'change');
  mkdirSync(share);
  const big = Buffer.alloc(3 * 1024 * 1024 + 777, 'a');
  writeFileSync(join(share, 'big.txt'), big);
  writeFileSync(join(share, 'small.txt'), 'before the host changed me\n');
  const { sock, d } = await serve(share, 'change', true);
  let seen = '';
  let changed = false;
  const onOutput = (b: Buffer) => {
    seen += b.toString();
    if (!changed && seen.includes('READY')) {
      changed = true;
      // Same sizes: only the bytes change (in the mapped middle, and in the EOF pages).
      const fd = openSync(join(share, 'big.txt'), 'r+');
      writeSync(fd, 'MIDDLE', 1024 * 1024);
      writeSync(fd, 'TAILTAIL', big.length - 8);
      closeSync(fd);
      writeFileSync(join(share, 'small.txt'), 'AFTER  the host changed me\n');
      writeFileSync(join(share, 'go'), '');
    }
  };
  const script = [
    'grep " /mnt " /proc/mounts',
    'dd if=big.txt bs=1 skip=1048576 count=6 2>/dev/null; echo',
    'tail -c 8 big.txt; echo',
    'cat small.txt',
    'echo READY',
    // Whole seconds (busybox sleep); the guest may cache the negative lookup of
    // 'go' for a while. Each line out also flushes READY to the host (the
    // harness holds back a last line that has no successor yet).
    'i=0; while [ ! -e go ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); echo waiting; done',
    // cache=auto: attributes and entries are good for 1 s.
    'sleep 2',
    'dd if=big.txt bs=1 skip=1048576 count=6 2>/dev/null; echo',
    'tail -c 8 big.txt; echo',
    'cat small.txt',
    'echo DONE',
  ].join('\n');
  const r = await guest(sock, true, script, onOutput);
  assert.ok(existsSync(join(share, 'go')), `the guest never got READY out:\n${r.output}`);
  const out = r.output.split('\n').map((l) => l.trim()).filter((l) => l !== 'waiting');
  assert.match(r.output, /dax=always/);
  const i = out.indexOf('READY');
  assert.deepEqual(out.slice(i - 3, i), ['aaaaaa', 'aaaaaaaa', 'before the host changed me'], r.output);
  assert.deepEqual(out.slice(i + 1, i + 4), ['MIDDLE', 'TAILTAIL', 'AFTER  the host changed me'], `${r.output}\n--- daemon ---\n${d.log()}`);
});

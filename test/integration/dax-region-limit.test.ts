// QEMU 11.1 aborts the whole VM once its vhost memory table for our device
// would hold more than 512 regions (VHOST_USER_MAX_RAM_SLOTS), and every
// SHMEM_MAP we send is one such region. A Linux guest maps 2 MiB ranges and
// a small file whose size is past one page but not page aligned takes two
// regions (the file pages + the copied EOF page, dax-mapper.ts), so a 1 GiB
// window filled with such files would kill the VM at the 256th file. Our
// mapper keeps a budget of 480 live regions and refuses the map past it with
// ENOSPC. A real guest on QEMU 11.1 (`serve --dax-window 1G`):
// - reads 250 such files: QEMU lives; 240 read right, the rest fail with
//   ENOSPC (cat: No space left on device), the daemon says so in one line
//   and warned at start that the window can run out;
// - once the guest drops its mappings (drop_caches), the refused files read
//   right: nothing was lost or left half mapped.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { ensureNewQemu, genericFsDevice, qemuCommandOf } from '../../src/guest/peers.ts';
import { runInGuest } from '../../src/guest/qemu.ts';
import { startServe, type ServeDaemon } from '../support/serve-daemon.ts';

const work = mkdtempSync(join(tmpdir(), 'dax-region-limit-'));
const daemons: ServeDaemon[] = [];
after(() => {
  for (const d of daemons) d.kill();
  rmSync(work, { recursive: true, force: true });
});

const TAG = 'daxfs';
const FILES = 250;
/** 480 live regions / 2 per file. */
const FIT = 240;

test('a 1 GiB window on QEMU 11.1 filled with small files: maps past the region budget are refused (ENOSPC), QEMU lives, nothing is lost', { timeout: 600_000 }, async () => {
  const share = join(work, 'share');
  mkdirSync(share);
  const sums = new Map<string, string>();
  for (let i = 0; i < FILES; i++) {
    const name = `f${String(i).padStart(4, '0')}`;
    // 4 KiB < size < 8 KiB, not page aligned: a file page + the EOF copy.
    const data = Buffer.alloc(5000 + (i % 13) * 150, `${name}:`);
    writeFileSync(join(share, name), data);
    sums.set(name, createHash('md5').update(data).digest('hex'));
  }
  const sock = join(work, 's.sock');
  const d = await startServe(['--socket-path', sock, '--shared-dir', share, '--tag', TAG, '--cache', 'always', '--dax-window', '1G', '--log-level', 'warn'], sock);
  daemons.push(d);
  const script = [
    'grep " /mnt " /proc/mounts',
    'n=0; bad=0; : > /tmp/failed',
    'for f in f*; do if cat $f > /dev/null 2>>/tmp/err; then n=$((n+1)); else bad=$((bad+1)); echo $f >> /tmp/failed; fi; done',
    'echo "PASS1 ok=$n failed=$bad"',
    'sed "s/f[0-9]*: //" /tmp/err | sort | uniq -c',
    // Drop the guest's mappings (REMOVEMAPPING as the inodes go), then the refused files.
    'sync; echo 3 > /proc/sys/vm/drop_caches',
    'for f in $(cat /tmp/failed); do md5sum $f || echo "FAILED AGAIN $f"; done',
    'echo DONE',
  ].join('\n');
  const qemu = await ensureNewQemu();
  const r = await runInGuest({ socketPath: sock, tag: TAG, qemu: qemuCommandOf(qemu), fsDevice: genericFsDevice(), mountOptions: 'dax=always', command: script, timeoutMs: 500_000 });
  const log = d.log();
  const ctx = `\n--- guest ---\n${r.output.slice(-3000)}\n--- daemon ---\n${log.slice(-3000)}\n--- qemu ---\n${r.bootLog.split('\n').filter((l) => l.includes('qemu')).slice(-10).join('\n')}`;
  assert.match(r.output, /dax=always/, ctx);
  assert.match(r.output, /DONE/, `the guest did not finish (QEMU died?)${ctx}`);
  assert.doesNotMatch(r.bootLog, /Assertion|nregions/, ctx);
  assert.match(r.output, new RegExp(`PASS1 ok=${FIT} failed=${FILES - FIT}`), ctx);
  assert.match(r.output, new RegExp(`${FILES - FIT} cat: read error: No space left on device`), ctx);
  const again = [...r.output.matchAll(/^([0-9a-f]{32})\s+(f\d{4})\s*$/gm)];
  assert.equal(again.length, FILES - FIT, `every refused file reads once the guest dropped its mappings${ctx}`);
  for (const [, sum, name] of again) assert.equal(sum, sums.get(name!), `${name} read through DAX matches the host`);
  assert.doesNotMatch(r.output, /FAILED AGAIN/, ctx);
  assert.match(log, /warn: DAX: the 1024 MiB window .* A window of at most 480 MiB/, 'the start-up warning');
  assert.equal(log.match(/no room for \d more mapped region/g)?.length, 1, `one log line for all the refusals${ctx}`);
  assert.equal(await d.exited, 0, `daemon exit${ctx}`);
});

// fio inside a real guest, on a virtio-fs mount: Debian's fio comes in on the
// harness's read-only tools disk, writes with a checksum in every block and
// reads everything back to verify it (`--verify=crc32c`). Then the host checks
// the file fio left behind. One boot.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runInGuest } from '../../src/guest/qemu.ts';
import { startCVirtiofsd, type CVirtiofsd } from '../../src/guest/virtiofsd.ts';

describe('guest fio --verify over virtio-fs (C virtiofsd)', { timeout: 600_000 }, () => {
  let work: string;
  let daemon: CVirtiofsd | undefined;
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'vfts-guest-fio-'));
  });
  after(async () => {
    await daemon?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('random writes with crc32c verify pass, and the file is complete on the host', async () => {
    daemon = await startCVirtiofsd({ socketPath: join(work, 'c.sock'), sharedDir: work, cache: 'auto' });
    const r = await runInGuest({
      socketPath: daemon.socketPath,
      withFio: true,
      // Mixed block sizes so requests straddle pages; verify reads back every block.
      command:
        'fio --name=verify --filename=fio.dat --size=16M --rw=randwrite --bsrange=4k-64k --ioengine=psync ' +
        '--verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=1 --output-format=terse --terse-version=3\n' +
        'echo "fio-status=$?"',
    });
    assert.equal(r.exitCode, 0, r.output);
    assert.match(r.output, /fio-status=0/, r.output);
    // Terse v3: field 5 is the error code of the job.
    const terse = r.output.split('\n').find((l) => l.startsWith('3;fio-'));
    assert.ok(terse, `no terse line in:\n${r.output}`);
    assert.equal(terse.split(';')[4], '0', 'fio reported no error');
    assert.equal(statSync(join(work, 'fio.dat')).size, 16 * 1024 * 1024);
  });
});

// The guest harness against the real peer: QEMU 7.2's C virtiofsd serves a
// temp dir, a real Linux guest under QEMU (TCG) mounts it with
// `mount -t virtiofs`, and what the guest sees and writes is checked on the
// host. Two boots in all (~5-10 s each).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestError, GuestTimeoutError, runInGuest } from '../../src/guest/qemu.ts';
import { startCVirtiofsd, type CVirtiofsd } from '../../src/guest/virtiofsd.ts';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Splits "==NAME==\n...": the guest script labels each section of its output. */
function sections(output: string): Map<string, string> {
  const parts = output.split(/^==(\w+)==\n/m);
  const out = new Map<string, string>();
  for (let i = 1; i + 1 < parts.length; i += 2) out.set(parts[i]!, parts[i + 1]!);
  return out;
}

describe('guest harness against the C virtiofsd', { timeout: 600_000 }, () => {
  let work: string;
  let share: string;
  const daemons: CVirtiofsd[] = [];
  const startDaemon = async (name: string) => {
    const d = await startCVirtiofsd({ socketPath: join(work, `${name}.sock`), sharedDir: share, cache: 'auto' });
    daemons.push(d);
    return d;
  };

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'vfts-guest-harness-'));
    share = join(work, 'share');
    mkdirSync(share);
  });
  after(async () => {
    for (const d of daemons) await d.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('a guest lists, reads byte for byte, writes, streams binary output, and its exit status comes back', async () => {
    const blob = randomBytes(3 * 1024 * 1024 + 123); // not a page multiple: the tail matters
    writeFileSync(join(share, 'blob.bin'), blob);
    writeFileSync(join(share, 'hello.txt'), 'hello from the host\n');
    mkdirSync(join(share, 'sub dir'));
    writeFileSync(join(share, 'sub dir', 'nested'), 'x');
    const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    writeFileSync(join(share, 'bytes.bin'), allBytes);

    const daemon = await startDaemon('c1');
    const streamed: Buffer[] = [];
    const r = await runInGuest({
      socketPath: daemon.socketPath,
      onOutput: (b) => streamed.push(b),
      command: [
        'echo ==LIST==; ls -1A',
        'echo ==SUB==; ls -1A "sub dir"',
        'echo ==SHA==; sha256sum blob.bin | cut -d" " -f1',
        'echo ==CAT==; cat hello.txt',
        'printf "written by the guest\\n" > from-guest.txt',
        'dd if=/dev/urandom of=guest-blob.bin bs=65536 count=20 2>/dev/null',
        'echo ==GSHA==; sha256sum guest-blob.bin | cut -d" " -f1',
        'echo ==BYTES==; cat bytes.bin; echo',
        'echo ==END==',
        'exit 7',
      ].join('\n'),
    });

    assert.equal(r.exitCode, 7, 'the script exit status comes back');
    assert.ok(r.bootMs > 0 && r.firstOutputMs !== undefined && r.bootMs <= r.firstOutputMs && r.firstOutputMs < r.totalMs, `${r.bootMs} ${r.firstOutputMs} ${r.totalMs}`);
    assert.deepEqual(Buffer.concat(streamed), r.outputBytes, 'onOutput saw exactly the command output');
    const s = sections(r.output);
    assert.deepEqual(s.get('LIST')!.trim().split('\n').sort(), readdirSync(share).filter((n) => !['from-guest.txt', 'guest-blob.bin'].includes(n)).sort());
    assert.equal(s.get('SUB'), 'nested\n');
    assert.equal(s.get('SHA')!.trim(), sha256(blob), 'guest read the host file byte for byte');
    assert.equal(s.get('CAT'), 'hello from the host\n');
    assert.equal(readFileSync(join(share, 'from-guest.txt'), 'utf8'), 'written by the guest\n');
    const guestBlob = readFileSync(join(share, 'guest-blob.bin'));
    assert.equal(guestBlob.length, 20 * 65536);
    assert.equal(sha256(guestBlob), s.get('GSHA')!.trim(), 'host sees the guest-written file byte for byte');
    // The console carries output verbatim (no \n -> \r\n, all 256 byte values).
    const start = r.outputBytes.indexOf('==BYTES==\n') + '==BYTES==\n'.length;
    assert.deepEqual(r.outputBytes.subarray(start, start + 256), allBytes);
    assert.equal(await daemon.exited, 0, 'virtiofsd exits cleanly when the guest powers off');
  });

  test('a guest whose virtio-fs mount fails reports it with a clear error and the console tail', async () => {
    const daemon = await startDaemon('c2');
    await assert.rejects(
      runInGuest({ socketPath: daemon.socketPath, tag: 'vfts', mountOptions: 'no_such_option_xyz', command: 'exit 0' }),
      (e: unknown) => {
        assert.ok(e instanceof GuestError, String(e));
        assert.match(e.message, /guest setup failed: mount -t virtiofs -o no_such_option_xyz vfts failed/);
        assert.match(e.consoleTail, /ERROR mount/);
        return true;
      },
    );
  });

  test('a guest that overruns its time is killed with a clear error', async () => {
    const daemon = await startDaemon('c3');
    const t0 = performance.now();
    await assert.rejects(runInGuest({ socketPath: daemon.socketPath, command: 'sleep 600', timeoutMs: 1500 }), (e: unknown) => {
      assert.ok(e instanceof GuestTimeoutError, String(e));
      assert.match(e.message, /did not finish within 1500 ms \(phase: booting\); QEMU killed/);
      return true;
    });
    // runInGuest settles only once the QEMU process has exited.
    assert.ok(performance.now() - t0 < 10_000, 'QEMU was killed promptly');
  });
});

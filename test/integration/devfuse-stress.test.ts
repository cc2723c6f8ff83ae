// Integration: Debian's stress-ng file-system stressors, run for a bounded
// time against a real /dev/fuse mount (passthrough, with xattrs), must finish
// clean (exit 0, no failed or untrustworthy stressor, --verify on), and the
// server must then unmount and exit 0.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, mountOurs, removeTempDir, requireFuse } from '../support/mount-helpers.ts';

// Named, not `--class filesystem`: that class includes stressors that need
// things a FUSE mount does not offer by design (fanotify/dnotify marks on the
// host, binderfs, bind-mount, verity, inode-flags ioctls, iomix's
// FS_IOC_* ioctls). These cover the POSIX surface the issue lists.
const STRESSORS = [
  'dir', 'dentry', 'link', 'symlink', 'rename', 'fallocate', 'hdd', 'chmod', 'chown', 'utime',
  'seek', 'getdent', 'open', 'fstat', 'touch', 'xattr', 'flock', 'lockf', 'fpunch',
  'filename', 'mknod', 'fsize', 'sync-file',
];
const SECONDS = 20;

describe('stress-ng filesystem stressors through /dev/fuse', () => {
  let base: string;
  before(() => {
    requireFuse();
    base = makeTempDir('vfs-stress-');
  });
  after(() => removeTempDir(base));

  test(`${STRESSORS.length} stressors for ${SECONDS} s run clean`, { timeout: (SECONDS + 90) * 1000 }, async () => {
    const share = join(base, 'share');
    mkdirSync(share);
    const m = await mountOurs({ sharedDir: share, xattr: true, cache: 'auto' });
    let r;
    try {
      const args = ['--temp-path', m.mountpoint, '--timeout', `${SECONDS}s`, '--verify', '--metrics-brief'];
      for (const s of STRESSORS) args.push(`--${s}`, '1');
      // Keep the data stressors small: the 2-core box is shared.
      args.push('--hdd-bytes', '16m', '--seek-size', '16m', '--fallocate-bytes', '16m', '--open-max', '4096');
      r = spawnSync('stress-ng', args, { encoding: 'utf8', timeout: (SECONDS + 60) * 1000, maxBuffer: 16 << 20 });
    } finally {
      await m.stop();
    }
    if (r.error) throw new Error(`stress-ng could not run: ${r.error.message} (apt-get install stress-ng; see .ci/run)`);
    const log = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, `stress-ng exited ${r.status}:\n${log.slice(-6000)}`);
    assert.match(log, /successful run completed/, log.slice(-3000));
    assert.doesNotMatch(log, /\bfail(ed)?:|untrustworthy|metrics-check: .* failed/i, log.slice(-6000));
    // Every stressor reported bogo ops (it did run on the mount).
    for (const s of STRESSORS) assert.match(log, new RegExp(`metrc: \\[\\d+\\] ${s}\\s+\\d+`), `no metrics for ${s}`);
    // stress-ng cleans its temp dirs; nothing left over means every unlink/rmdir worked.
    assert.deepEqual(readdirSync(share), []);
  });
});

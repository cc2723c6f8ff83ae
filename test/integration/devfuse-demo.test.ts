// Integration: the main job (README's first command) works: `virtiofs-ts demo`
// mounts the shipped sample tree through /dev/fuse, reads and writes through
// it with ordinary tools, unmounts, and exits 0 leaving no mount behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { BIN, REPO_ROOT, mountedFsType, requireFuse } from '../support/mount-helpers.ts';

for (const fs of ['passthrough', 'memory'] as const) {
  test(`virtiofs-ts demo --fs ${fs}`, { timeout: 90_000 }, () => {
    requireFuse();
    const r = spawnSync(process.execPath, [BIN, 'demo', '--fs', fs], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 80_000, env: { ...process.env, NO_COLOR: '1' } });
    assert.equal(r.status, 0, `demo failed:\n${r.stdout}\n${r.stderr}`);
    assert.equal(r.stderr, '', 'the demo wrote to stderr');
    const out = r.stdout;
    const base = /Working in (\S+)/.exec(out)?.[1];
    assert.ok(base, out);
    assert.match(out, /1\. Mounted share at mnt \(fuse\.virtiofs-ts/);
    // What the tools printed came through the mount: the sample's real contents.
    assert.ok(out.includes(readFileSync(new URL('../../examples/sample-share/hello.txt', import.meta.url), 'utf8').split('\n')[0]!));
    assert.match(out, /sum of squares 1\.\.20 = 2870/);
    assert.match(out, /\$ cat (share|mnt)\/greeting\.txt\n  written through FUSE at /);
    if (fs === 'passthrough') {
      const sums = [...out.matchAll(/^ {2}([0-9a-f]{64}) {2}(share|mnt)\/new-dir\/sub\/copy\.csv$/gm)];
      assert.equal(sums.length, 2, JSON.stringify(out));
      assert.equal(sums[0]![1], sums[1]![1], 'host and mount copies differ');
    }
    assert.match(out, /5\. Unmounted mnt; the server answered \d+ requests/);
    assert.equal(mountedFsType(`${base}/mnt`), undefined);
  });
}

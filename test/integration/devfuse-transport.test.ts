// Integration: transport/devfuse.ts used directly (no CLI): a session's
// life from mount(2) to the kernel ending the connection, and the clean-up
// when setting up fails (no fd, worker or mount left behind).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DevFuseError, startDevFuse, FUSE_FSTYPE } from '../../src/transport/devfuse.ts';
import type { BackendSpec } from '../../src/fs/backend-spec.ts';
import { forceUnmount, makeTempDir, mountedFsType, removeTempDir, requireFuse } from '../support/mount-helpers.ts';

const openFds = () => readdirSync('/proc/self/fd').length;
const memory = (over: Partial<BackendSpec> = {}): BackendSpec => ({ kind: 'memory', readonly: false, cache: 'auto', xattr: false, writeback: false, ...over });

let base: string;
before(() => {
  requireFuse();
  base = makeTempDir('vfs-transport-');
});
after(() => removeTempDir(base));

test('a session: mount, INIT, serve, unmount() -> done with the request count; no fd left', async () => {
  const mnt = join(base, 'mnt');
  mkdirSync(mnt);
  const fdsBefore = openFds();
  const session = await startDevFuse({ mountpoint: mnt, backend: memory() });
  try {
    assert.equal(mountedFsType(mnt), FUSE_FSTYPE);
    statSync(mnt); // runs on this thread: served by the worker meanwhile
    await session.initialized;
    writeFileSync(join(mnt, 'f'), 'data');
    assert.equal(readFileSync(join(mnt, 'f'), 'utf8'), 'data');
    session.unmount();
    const result = await session.done;
    assert.equal(result.reason, 'unmounted');
    assert.ok(result.requests >= 5, `only ${result.requests} requests`);
  } finally {
    forceUnmount(mnt);
  }
  assert.equal(mountedFsType(mnt), undefined);
  assert.equal(openFds(), fdsBefore, 'the /dev/fuse fd leaked');
});

test('mount(2) failing (missing mountpoint): DevFuseError naming the errno, worker and fd cleaned up', async () => {
  const fdsBefore = openFds();
  await assert.rejects(startDevFuse({ mountpoint: join(base, 'no-such-dir'), backend: memory() }), (e: unknown) => {
    assert.ok(e instanceof DevFuseError);
    assert.match(e.message, /mount\(2\) on .*no-such-dir failed: ENOENT/);
    return true;
  });
  assert.equal(openFds(), fdsBefore);
});

test('a backend that cannot start: DevFuseError, nothing mounted, fd cleaned up', async () => {
  const mnt = join(base, 'mnt2');
  mkdirSync(mnt);
  const fdsBefore = openFds();
  await assert.rejects(
    startDevFuse({ mountpoint: mnt, backend: { ...memory(), kind: 'passthrough', sharedDir: join(base, 'missing-share') } }),
    (e: unknown) => e instanceof DevFuseError && /cannot start the passthrough backend/.test(e.message),
  );
  assert.equal(mountedFsType(mnt), undefined);
  assert.equal(openFds(), fdsBefore);
});

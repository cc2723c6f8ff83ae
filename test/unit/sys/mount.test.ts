// sys/mount.ts against the real kernel: a tmpfs mounted and unmounted on a
// temp dir, and failures as SysError carrying errno and the syscall's name.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { MNT_DETACH, MS_NODEV, MS_NOSUID, MS_RDONLY, mount, umount2 } from '../../../src/sys/mount.ts';
import { SysError } from '../../../src/sys/errors.ts';

const E = constants.errno;
let dir: string;

function mountLine(path: string): string | undefined {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === path);
}

before(() => {
  if (process.getuid?.() !== 0) throw new Error('sys/mount tests call mount(2) and must run as root');
  dir = mkdtempSync(join(tmpdir(), 'vfs-sysmount-'));
});
after(() => {
  if (mountLine(dir)) umount2(dir, MNT_DETACH);
  rmSync(dir, { recursive: true, force: true });
});

test('mount(2) a tmpfs with flags and data, then umount2(2) it', () => {
  mount('vfs-test', dir, 'tmpfs', MS_NODEV | MS_NOSUID | MS_RDONLY, 'size=1m,mode=0750');
  const line = mountLine(dir);
  assert.ok(line, 'not in mountinfo');
  assert.match(line!, / - tmpfs vfs-test /);
  assert.match(line!, /\bro\b.*\bnosuid\b.*\bnodev\b/);
  assert.match(line!, /size=1024k,mode=750/);
  assert.throws(() => writeFileSync(join(dir, 'x'), ''), (e: NodeJS.ErrnoException) => e.code === 'EROFS');
  umount2(dir, 0);
  assert.equal(mountLine(dir), undefined);
});

test('failures are SysError with errno and syscall name', () => {
  assert.throws(() => mount('none', dir, 'no-such-fstype-vfs', 0, ''), (e: unknown) => e instanceof SysError && e.errno === E.ENODEV && e.syscall === 'mount');
  assert.throws(() => mount('none', join(dir, 'missing'), 'tmpfs', 0, ''), (e: unknown) => e instanceof SysError && e.errno === E.ENOENT);
  assert.throws(() => umount2(dir, 0), (e: unknown) => e instanceof SysError && e.errno === E.EINVAL && e.syscall === 'umount2');
  assert.throws(() => umount2(join(dir, 'missing'), MNT_DETACH), (e: unknown) => e instanceof SysError && e.errno === E.ENOENT);
});

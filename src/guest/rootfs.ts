// Layer: guest tooling (host side). Imports node:* and src/guest/* only.
// The embedded default root file system of `virtiofs-ts run`: a directory in
// the guest cache holding a static busybox, its applet links and a minimal
// /etc. It is served live over virtio-fs, so what a guest writes there lands
// in it, and a host-side change is seen by the next boot with no rebuild.

import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { findBusybox, GuestSetupError, guestCacheDir, stderrProgress, type Progress } from './assets.ts';

const STAMP = '.virtiofs-ts-rootfs';
const LAYOUT_VERSION = '1';

export function defaultRootfsDir(): string {
  return join(guestCacheDir(), 'rootfs');
}

/** The default root fs, built on first use. Returns its directory. */
export function ensureDefaultRootfs(progress: Progress = stderrProgress): string {
  const dir = defaultRootfsDir();
  if (existsSync(join(dir, STAMP))) {
    if (!existsSync(join(dir, 'bin', 'busybox'))) {
      throw new GuestSetupError(`the default root fs at ${dir} has no bin/busybox (a guest removed it?); delete ${dir} to rebuild it`);
    }
    return dir;
  }
  const busybox = findBusybox();
  progress(`building the default busybox root fs in ${dir}`);
  mkdirSync(guestCacheDir(), { recursive: true });
  const tmp = mkdtempSync(join(guestCacheDir(), '.tmp-rootfs-'));
  try {
    for (const d of ['bin', 'dev', 'etc', 'home', 'mnt', 'proc', 'root', 'run', 'sys', 'tmp', 'usr', 'var', 'var/tmp']) mkdirSync(join(tmp, d));
    chmodSync(join(tmp, 'tmp'), 0o1777);
    chmodSync(join(tmp, 'var', 'tmp'), 0o1777);
    chmodSync(join(tmp, 'root'), 0o700);
    copyFileSync(busybox, join(tmp, 'bin', 'busybox'));
    chmodSync(join(tmp, 'bin', 'busybox'), 0o755);
    // One directory of applets; the usual other bin dirs point at it.
    const applets = execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => /^[\w.[-]+$/.test(a) && a !== 'busybox');
    for (const a of applets) symlinkSync('busybox', join(tmp, 'bin', a));
    symlinkSync('bin', join(tmp, 'sbin'));
    symlinkSync('../bin', join(tmp, 'usr', 'bin'));
    symlinkSync('../bin', join(tmp, 'usr', 'sbin'));
    writeFileSync(join(tmp, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
    writeFileSync(join(tmp, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
    writeFileSync(join(tmp, 'etc', 'hostname'), 'virtiofs-ts\n');
    writeFileSync(join(tmp, 'etc', 'profile'), 'export PATH=/bin:/sbin:/usr/bin:/usr/sbin\nexport PS1=\'\\u@virtiofs-ts:\\w\\$ \'\n');
    writeFileSync(
      join(tmp, 'etc', 'motd'),
      'This root file system is a directory on the host, served over virtio-fs by virtiofs-ts.\n',
    );
    writeFileSync(join(tmp, STAMP), `${LAYOUT_VERSION}\n`);
    try {
      renameSync(tmp, dir);
    } catch (e) {
      // Someone else built it meanwhile; theirs will do.
      if (!existsSync(join(dir, STAMP))) throw e;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}

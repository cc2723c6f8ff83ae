// Integration: the POSIX battery with the kernel as the FUSE client. The oracle
// is the same battery on a native directory in the same run: every mount must
// print the same lines, except for differences declared below, each with the
// reason and the exact result the mount must then show. A declared difference
// that no longer shows up fails the test too, so the list stays minimal.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { forceUnmount, makeTempDir, mountOurs, removeTempDir, requireFuse, type MountOursOptions } from '../support/mount-helpers.ts';
import { compareBatteries, compileBattery, diffTrees, runBatteryOk, treeManifest, type AllowedDifference } from '../support/posix-battery.ts';

const temps: string[] = [];
const mounts: string[] = [];
function temp(prefix: string): string {
  const d = realpathSync(makeTempDir(prefix));
  temps.push(d);
  return d;
}

/*
 * Declared differences of our mounts from a native ext4 directory.
 *
 * Passthrough over ext4 has almost none: every op reaches ext4 itself.
 * With --cache never the server opens files with FOPEN_DIRECT_IO, where the
 * kernel refuses MAP_SHARED (ENODEV) unless the server negotiates
 * FUSE_DIRECT_IO_ALLOW_MMAP (Linux 6.6+); ours does, so mmap.* must match
 * (QEMU's C virtiofsd with cache=none gives ENODEV there).
 *
 * The memory backend has none either: it tracks holes per 4 KiB page like
 * ext4, implements every fallocate mode ext4 does, and enforces the same
 * permission and rename rules.
 */

/*
 * passthrough --writeback, sparse.exact: under writeback caching the kernel
 * holds written pages (and the size) the server has not seen, and it does not
 * flush them before sending FUSE_LSEEK, so a host lseek(SEEK_DATA) answered
 * ENXIO for data the program had just written. The server therefore declines
 * LSEEK (ENOSYS) in this mode and the kernel's generic fallback reports the
 * whole file as data: SEEK_HOLE gives EOF, SEEK_DATA gives the offset itself.
 * POSIX allows that (a hole may be reported as data), the logical sparse.seek
 * line still matches, and native ext4's exact extents are the better answer.
 */
const WRITEBACK_ALLOW: Record<string, AllowedDifference> = {
  'sparse.exact': { reason: 'no FUSE_LSEEK under writeback caching: the kernel reports all data', other: 'ok hole0=4198400 data_mid=1048576' },
};

interface Case {
  label: string;
  mount: Omit<MountOursOptions, 'sharedDir'>;
  allow?: Record<string, AllowedDifference>;
  /** Compare the host-side tree the mount wrote with the native one. */
  hostSide?: boolean;
  /**
   * Entries in readdir.big. The full 10,000 for each backend where no kernel
   * cache can hide a lost entry (passthrough --cache never: every getdents is
   * a READDIR; the memory backend's own cookies); 2,000 elsewhere keeps the
   * file's run time down on 2 shared cores.
   */
  readdirCount: number;
  /** Run the whole battery as this non-root uid (the shared dir is handed to it). */
  asUid?: number;
}

const CASES: Case[] = [
  { label: 'passthrough --cache never', mount: { fs: 'passthrough', cache: 'never', xattr: true }, hostSide: true, readdirCount: 10_000 },
  { label: 'passthrough --cache auto', mount: { fs: 'passthrough', cache: 'auto', xattr: true }, hostSide: true, readdirCount: 2_000 },
  { label: 'passthrough --cache always', mount: { fs: 'passthrough', cache: 'always', xattr: true }, hostSide: true, readdirCount: 2_000 },
  {
    label: 'passthrough --writeback',
    mount: { fs: 'passthrough', cache: 'auto', xattr: true, writeback: true },
    allow: WRITEBACK_ALLOW,
    hostSide: true,
    readdirCount: 2_000,
  },
  { label: 'memory', mount: { fs: 'memory', xattr: true }, readdirCount: 10_000 },
  // The non-root view: every check as uid 1000, so permission checks, new
  // owners and EPERM/EACCES answers run through the kernel and the server.
  { label: 'passthrough as uid 1000', mount: { fs: 'passthrough', cache: 'auto', xattr: true }, hostSide: true, readdirCount: 2_000, asUid: 1000 },
  { label: 'memory as uid 1000', mount: { fs: 'memory', xattr: true }, readdirCount: 2_000, asUid: 1000 },
];

describe('POSIX battery: native directory vs FUSE mounts (kernel as client)', { concurrency: false }, () => {
  // One native oracle run per (readdir count, uid), made on first use.
  const natives = new Map<string, Promise<{ lines: string[]; tree: string[] }>>();
  const nativeFor = (readdirCount: number, asUid?: number) => {
    const key = `${readdirCount}/${asUid ?? 0}`;
    let n = natives.get(key);
    if (!n) {
      const dir = temp('battery-native-');
      n = runBatteryOk(dir, { readdirCount, asUid }).then((lines) => ({ lines, tree: treeManifest(dir) }));
      natives.set(key, n);
    }
    return n;
  };
  /** A populated tree and the battery's answers on a native read-only bind mount of it. */
  const nativeReadonly = async (): Promise<{ source: string; lines: string[] }> => {
    const source = temp('battery-ro-src-');
    await runBatteryOk(source, { mode: 'populate-readonly' });
    const roNative = temp('battery-ro-native-');
    for (const args of [['--bind', source, roNative], ['-o', 'remount,bind,ro', roNative]]) {
      const m = spawnSync('mount', args, { encoding: 'utf8' });
      assert.equal(m.status, 0, `mount ${args.join(' ')}: ${m.stderr}`);
    }
    mounts.push(roNative);
    try {
      return { source, lines: await runBatteryOk(roNative, { mode: 'expect-readonly' }) };
    } finally {
      forceUnmount(roNative);
    }
  };

  before(async () => {
    requireFuse();
    await compileBattery();
  });

  after(() => {
    for (const m of mounts) forceUnmount(m);
    for (const d of temps) removeTempDir(d);
  });

  for (const c of CASES) {
    it(`${c.label}: same results as the native directory`, { timeout: 240_000 }, async () => {
      const native = await nativeFor(c.readdirCount, c.asUid);
      const shared = temp('battery-shared-');
      const m = await mountOurs({ sharedDir: shared, ...c.mount });
      mounts.push(m.mountpoint);
      let lines: string[];
      try {
        lines = await runBatteryOk(m.mountpoint, { readdirCount: c.readdirCount, asUid: c.asUid });
      } finally {
        await m.stop();
      }
      const cmp = compareBatteries(native.lines, lines, c.allow ?? {}, ['native', 'mount']);
      assert.ok(cmp.equal, `${c.label} differs from the native directory:\n${cmp.diff}\n--- server output ---\n${m.output().slice(-3000)}`);
      assert.deepEqual(cmp.allowedUnused, [], 'a declared difference no longer occurs: remove it from the allow list');
      if (c.hostSide) {
        // What went through the mount landed on the host exactly as natively.
        const d = diffTrees(native.tree, treeManifest(shared));
        assert.equal(d, '', `host-side tree written through ${c.label} differs from the native tree:\n${d}`);
      }
    });
  }

  // The memory backend copies the host tree (names, modes, owners, xattrs) at start-up.
  for (const fs of ['passthrough', 'memory'] as const) {
    const title = fs === 'memory' ? 'memory --readonly (seeded from a host tree)' : 'passthrough --readonly';
    it(`${title}: EROFS exactly where a native read-only mount gives it`, { timeout: 120_000 }, async () => {
      const oracle = await nativeReadonly();
      const before = treeManifest(oracle.source);
      const m = await mountOurs({ sharedDir: oracle.source, fs, readonly: true, xattr: true });
      mounts.push(m.mountpoint);
      let lines: string[];
      try {
        lines = await runBatteryOk(m.mountpoint, { mode: 'expect-readonly' });
      } finally {
        await m.stop();
      }
      const cmp = compareBatteries(oracle.lines, lines, {}, ['native-ro', 'mount']);
      assert.ok(cmp.equal, cmp.diff);
      assert.deepEqual(treeManifest(oracle.source), before, `a read-only ${fs} mount changed the shared directory`);
    });
  }

  /*
   * The same battery through Debian's bindfs (libfuse's high-level API over a
   * passthrough) shows that the comparison catches real FUSE bugs. bindfs 1.17
   * differs from the kernel's native answers in exactly these checks, and in
   * each case the native result is the right one.
   */
  it('bindfs (a mature C FUSE passthrough): the oracle catches its known gaps and nothing else', { timeout: 240_000 }, async () => {
    const which = spawnSync('bindfs', ['--version'], { encoding: 'utf8' });
    assert.equal(which.error, undefined, 'bindfs is not installed (apt-get install bindfs)');
    const shared = temp('battery-bindfs-src-');
    const mnt = temp('battery-bindfs-mnt-');
    const r = spawnSync('bindfs', [shared, mnt], { encoding: 'utf8' });
    assert.equal(r.status, 0, `bindfs: ${r.stderr}`);
    mounts.push(mnt);
    const native = await nativeFor(2_000);
    let lines: string[];
    try {
      lines = await runBatteryOk(mnt, { readdirCount: 2_000 });
    } finally {
      forceUnmount(mnt);
    }
    const noFallocate = 'bindfs implements no fallocate: libfuse answers ENOSYS and the kernel turns it into EOPNOTSUPP';
    const cmp = compareBatteries(
      native.lines,
      lines,
      {
        'fallocate.mode0': { reason: noFallocate, other: 'EOPNOTSUPP at=fallocate' },
        'fallocate.keep_size': { reason: noFallocate, other: 'EOPNOTSUPP at=fallocate' },
        'fallocate.punch_hole': { reason: noFallocate, other: 'EOPNOTSUPP at=punch' },
        'fallocate.zero_range': { reason: noFallocate, other: 'EOPNOTSUPP at=zero_range' },
        'sparse.exact': {
          reason: 'no FUSE_LSEEK in bindfs: the kernel falls back to "all data", which the logical sparse.seek line accepts',
          other: 'ok hole0=4198400 data_mid=1048576',
        },
        'rename.noreplace': {
          reason: 'bindfs refuses every renameat2 flag with EINVAL (libfuse high-level rename with flags)',
          other: /onto_new=EINVAL/,
        },
        'rename.exchange': { reason: 'same: RENAME_EXCHANGE refused', other: 'EINVAL at=exchange' },
        'rename.whiteout': { reason: 'same: RENAME_WHITEOUT refused', other: 'EINVAL at=whiteout' },
        'link.hard': {
          reason:
            'libfuse high-level gives each path its own node id, so the kernel caches a stale size for the other link: ' +
            'reading "a" after writing 6 bytes through "b" returns the old 5 bytes. Native (and an inode-based server) is right.',
          other: /a_after_write_b=secon /,
        },
        'readdir.removed_dir': {
          reason: 'libfuse high-level resolves by path, so fstat of an open but removed directory fails; the kernel gives nlink 0',
          other: 'ENOENT at=fstat',
        },
        'attr.umask': {
          reason: 'bindfs creates directories with mode & 0777, dropping the sticky bit mkdir(2) keeps',
          other: /mkdir_07777=0777$/,
        },
        'attr.utimens': {
          reason: 'bindfs drops UTIME_NOW when the other time is UTIME_OMIT; utimensat(2) says the NOW side must move',
          other: /now_omit=a:same,m:same omit_now=a:same,m:same/,
        },
      },
      ['native', 'bindfs'],
    );
    assert.ok(cmp.equal, `bindfs differs beyond its known gaps:\n${cmp.diff}`);
    assert.deepEqual(cmp.allowedUnused, [], 'bindfs no longer shows a known gap: update the list');
  });
});

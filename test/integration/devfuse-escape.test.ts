// Integration: escape attempts through a real /dev/fuse mount of the
// passthrough backend never expose or change a host file outside the shared
// directory. Layout (the mountpoint sits deeper than the share, so a relative
// symlink resolved by the CLIENT lands somewhere harmless, while the same link
// resolved by the SERVER on the host would reach `outside/`):
//
//   base/share/            the shared directory
//   base/outside/secret    must never be read, changed or linked through the mount
//   base/deep/er/mnt/      the mountpoint
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  linkSync,
  lchownSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, mountOurs, removeTempDir, requireFuse, type OurMount } from '../support/mount-helpers.ts';

const SECRET = 'host secret: must stay unread and unchanged\n';

const code = (c: string) => (e: NodeJS.ErrnoException) => e.code === c;

describe('escape attempts through /dev/fuse (passthrough)', () => {
  let base: string;
  let share: string;
  let outside: string;
  let mnt: string;
  let m: OurMount | undefined;
  let outsideBefore: { listing: string[]; mtimeMs: number; uid: number; mode: number; dirMtimeMs: number };

  function snapshotOutside() {
    const st = statSync(join(outside, 'secret'));
    return {
      listing: readdirSync(outside).sort(),
      mtimeMs: st.mtimeMs,
      uid: st.uid,
      mode: st.mode,
      dirMtimeMs: statSync(outside).mtimeMs,
    };
  }

  function assertOutsideUntouched(): void {
    assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), SECRET);
    assert.deepEqual(snapshotOutside(), outsideBefore, 'something outside the shared directory changed');
  }

  before(() => {
    requireFuse();
    base = makeTempDir('vfs-esc-');
  });
  after(() => removeTempDir(base));

  for (const cache of ['never', 'always'] as const) {
    describe(`cache=${cache}`, () => {
      // One mount per cache mode; every test uses names of its own.
      before(async () => {
        const root = join(base, cache);
        share = join(root, 'share');
        outside = join(root, 'outside');
        mnt = join(root, 'deep', 'er', 'mnt');
        mkdirSync(join(share, 'sub'), { recursive: true });
        mkdirSync(join(outside, 'dir'), { recursive: true });
        mkdirSync(mnt, { recursive: true });
        writeFileSync(join(outside, 'secret'), SECRET, { mode: 0o600 });
        writeFileSync(join(share, 'file'), 'inside\n');
        symlinkSync('/', join(share, 'root'));
        symlinkSync('../outside', join(share, 'out'));
        symlinkSync('../../outside/secret', join(share, 'sub', 'secret-link'));
        outsideBefore = snapshotOutside();
        m = await mountOurs({ sharedDir: share, mountpoint: mnt, cache });
      });
      afterEach(() => assertOutsideUntouched());
      after(async () => {
        await m?.stop();
        m = undefined;
        assertOutsideUntouched();
      });

      test('symlinks to / and to ../outside are symlinks, not doors', () => {
        assert.ok(lstatSync(join(mnt, 'root')).isSymbolicLink());
        assert.equal(readlinkSync(join(mnt, 'root')), '/');
        assert.equal(readlinkSync(join(mnt, 'out')), '../outside');
        // The client resolves the link from the mountpoint: deep/er/outside does not exist.
        assert.throws(() => readdirSync(join(mnt, 'out')), code('ENOENT'));
        assert.throws(() => readFileSync(join(mnt, 'sub', 'secret-link')), code('ENOENT'));
        assert.throws(() => writeFileSync(join(mnt, 'out', 'secret'), 'pwned'), code('ENOENT'));
        assert.throws(() => writeFileSync(join(mnt, 'sub', 'secret-link'), 'pwned'), code('ENOENT'));
      });

      test('.. chains resolve in the client, never above the shared root on the host', () => {
        assert.equal(realpathSync(join(mnt, 'sub', '..', '..')), join(base, cache, 'deep', 'er'));
        assert.equal(statSync(join(mnt, '..')).ino, statSync(join(base, cache, 'deep', 'er')).ino);
        const listing = readdirSync(join(mnt, 'sub', '..'));
        for (const name of ['file', 'out', 'root', 'sub']) assert.ok(listing.includes(name), `${name} missing from ${listing}`);
        assert.ok(!listing.includes('secret') && !listing.includes('share'), 'listed something above the shared root');
      });

      test('rename out of (or into) the mount is EXDEV', () => {
        assert.throws(() => renameSync(join(mnt, 'file'), join(outside, 'file')), code('EXDEV'));
        assert.throws(() => renameSync(join(outside, 'secret'), join(mnt, 'stolen')), code('EXDEV'));
        assert.ok(existsSync(join(share, 'file')));
        assert.ok(!existsSync(join(share, 'stolen')));
      });

      test('hard links across the mount boundary are EXDEV; linking a symlink links the symlink', () => {
        assert.throws(() => linkSync(join(outside, 'secret'), join(mnt, 'hl')), code('EXDEV'));
        assert.throws(() => linkSync(join(mnt, 'file'), join(outside, 'hl')), code('EXDEV'));
        // link(2) does not follow: the server must link the symlink inode itself.
        linkSync(join(mnt, 'out'), join(mnt, 'out-hardlink'));
        assert.ok(lstatSync(join(share, 'out-hardlink')).isSymbolicLink());
        assert.equal(lstatSync(join(share, 'out-hardlink')).ino, lstatSync(join(share, 'out')).ino);
        assert.equal(statSync(join(outside, 'secret')).nlink, 1);
      });

      test('lutimes/lchown on a symlink change the symlink, never its target', () => {
        lutimesSync(join(mnt, 'sub', 'secret-link'), 1_000_000, 1_000_000);
        assert.equal(lstatSync(join(share, 'sub', 'secret-link')).mtimeMs, 1_000_000_000);
        lchownSync(join(mnt, 'sub', 'secret-link'), 4321, 4321);
        assert.equal(lstatSync(join(share, 'sub', 'secret-link')).uid, 4321);
        symlinkSync('../outside', join(share, 'out-2'));
        lutimesSync(join(mnt, 'out-2'), 2_000_000, 2_000_000);
        lchownSync(join(mnt, 'out-2'), 4321, 4321);
        assert.equal(lstatSync(join(share, 'out-2')).uid, 4321);
      });

      test('a symlink made through the mount is stored as a symlink on the host', () => {
        symlinkSync(join(outside, 'secret'), join(mnt, 'abs-link'));
        const st = lstatSync(join(share, 'abs-link'));
        assert.ok(st.isSymbolicLink());
        assert.equal(readlinkSync(join(share, 'abs-link')), join(outside, 'secret'));
        renameSync(join(mnt, 'abs-link'), join(mnt, 'sub', 'moved-link'));
        assert.ok(lstatSync(join(share, 'sub', 'moved-link')).isSymbolicLink());
      });

      test('a directory swapped for a symlink on the host side: known inodes stay inside', () => {
        mkdirSync(join(mnt, 'dir'));
        writeFileSync(join(mnt, 'dir', 'a'), 'a\n');
        assert.deepEqual(readdirSync(join(mnt, 'dir')), ['a']);
        // Behind the client's back: dir -> dir.old, and dir becomes a link to outside.
        renameSync(join(share, 'dir'), join(share, 'dir.old'));
        symlinkSync('../outside', join(share, 'dir'));
        if (cache === 'never') {
          // Every lookup goes to the server: it answers "symlink", and the
          // client resolves it from the mountpoint, where no outside/ exists.
          assert.throws(() => writeFileSync(join(mnt, 'dir', 'b'), 'b\n'), code('ENOENT'));
        } else {
          // The kernel still trusts its cached dentry for dir: the server must
          // use the inode it holds (now dir.old), not re-resolve "dir" on the host.
          writeFileSync(join(mnt, 'dir', 'b'), 'b\n');
          assert.equal(readFileSync(join(share, 'dir.old', 'b'), 'utf8'), 'b\n');
        }
        assert.ok(!existsSync(join(outside, 'b')), 'the write escaped to outside/');
        let listing: string[] = [];
        try {
          listing = readdirSync(join(mnt, 'dir'));
        } catch (err) {
          assert.equal((err as NodeJS.ErrnoException).code, 'ENOENT');
        }
        assert.ok(!listing.includes('secret'), 'outside/ was listed through the mount');
      });
    });
  }
});

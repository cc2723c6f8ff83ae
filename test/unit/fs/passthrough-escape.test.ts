// Attacks on the passthrough backend, called directly (no FUSE): nothing may
// reach or change a host file outside the shared directory, special files are
// never opened, new files never get a group the caller is not in through the
// daemon's groups (CVE-2022-0358), and fd use stays bounded on big trees.
//
// Layout per test: <tmp>/outside/secret (must stay untouched) and
// <tmp>/share (the shared directory).
import { after, afterEach, before, describe, test } from 'node:test';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import * as nfs from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassthroughFs, type PassthroughOptions } from '../../../src/fs/passthrough/passthrough-fs.ts';
import type { RequestContext } from '../../../src/fuse/filesystem.ts';
import { FATTR_ATIME, FATTR_MODE, FATTR_MTIME, FATTR_SIZE, FATTR_UID } from '../../../src/fuse/abi.ts';

const E = constants.errno;
const { O_RDONLY, O_RDWR, O_WRONLY, O_CREAT, O_TRUNC } = nfs.constants;
const ROOT: RequestContext = { uid: 0, gid: 0, pid: 1 };
const B = (s: string) => Buffer.from(s);
// A group the daemon is a member of but the callers below are not.
const DAEMON_GROUP = 4242;

before(() => {
  assert.equal(process.getuid?.(), 0, 'these tests need root (the daemon runs as root)');
  // Give the daemon a supplementary group before any backend op runs: the
  // backend must drop it on its data-plane thread (CVE-2022-0358).
  process.setgroups!([0, DAEMON_GROUP]);
});

let base = '';
let share = '';
let outside = '';
let secret = '';
let secretStat: nfs.BigIntStats;
const live: PassthroughFs[] = [];

function snapshotOutside(): string {
  const s = nfs.lstatSync(secret, { bigint: true });
  return JSON.stringify([nfs.readdirSync(outside).sort(), nfs.readFileSync(secret, 'latin1'), String(s.mode), String(s.uid),
    String(s.gid), String(s.mtimeNs), String(s.nlink), String(s.size), nfs.readdirSync(base).sort()]);
}
let outsideBefore = '';

function mkfs(opts: Partial<PassthroughOptions> = {}): PassthroughFs {
  const fs = new PassthroughFs(share, { readonly: false, cache: 'auto', xattr: true, writeback: false, ...opts });
  live.push(fs);
  return fs;
}

function errnoIn(fn: () => unknown, allowed: number[], what: string): void {
  assert.throws(fn, (err: unknown) => {
    const got = (err as { errno?: number }).errno;
    assert.ok(got !== undefined && allowed.includes(got), `${what}: errno ${got} (${String(err)}), wanted one of ${allowed}`);
    return true;
  });
}

afterEach(() => {
  while (live.length) live.pop()!.destroy();
  assert.equal(snapshotOutside(), outsideBefore, 'the host outside the shared directory changed');
  nfs.rmSync(share, { recursive: true, force: true });
  nfs.mkdirSync(share, { mode: 0o777 });
  nfs.chmodSync(share, 0o777);
});

before(() => {
  base = nfs.mkdtempSync(join(tmpdir(), 'vfs-escape-'));
  outside = join(base, 'outside');
  share = join(base, 'share');
  nfs.mkdirSync(outside, { mode: 0o777 });
  nfs.mkdirSync(share, { mode: 0o777 });
  nfs.chmodSync(share, 0o777);
  secret = join(outside, 'secret');
  nfs.writeFileSync(secret, 'top secret', { mode: 0o644 });
  nfs.chmodSync(secret, 0o644);
  secretStat = nfs.lstatSync(secret, { bigint: true });
  outsideBefore = snapshotOutside();
});
after(() => {
  nfs.rmSync(base, { recursive: true, force: true });
});

describe('names cannot climb', () => {
  test("'..', '.', names with '/' or NUL are refused by every name-taking op", () => {
    const fs = mkfs();
    const sub = fs.mkdir(ROOT, 1, B('sub'), 0o755, 0);
    for (const bad of ['..', '.', '../outside', '../outside/secret', 'a/b', '/etc', 'x\0y', '']) {
      const n = B(bad);
      errnoIn(() => fs.lookup(ROOT, 1, n), [E.ENOENT, E.EINVAL], `lookup ${JSON.stringify(bad)}`);
      errnoIn(() => fs.lookup(ROOT, sub.nodeid, n), [E.ENOENT, E.EINVAL], `lookup in sub ${JSON.stringify(bad)}`);
      errnoIn(() => fs.mkdir(ROOT, 1, n, 0o755, 0), [E.EINVAL], `mkdir ${JSON.stringify(bad)}`);
      errnoIn(() => fs.create(ROOT, 1, n, 0o100644, O_RDWR | O_CREAT, 0), [E.EINVAL], `create ${JSON.stringify(bad)}`);
      errnoIn(() => fs.mknod(ROOT, 1, n, 0o100644, 0, 0), [E.EINVAL], `mknod ${JSON.stringify(bad)}`);
      errnoIn(() => fs.symlink(ROOT, 1, n, B('x')), [E.EINVAL], `symlink ${JSON.stringify(bad)}`);
      errnoIn(() => fs.unlink(ROOT, sub.nodeid, n), [E.EINVAL], `unlink ${JSON.stringify(bad)}`);
      errnoIn(() => fs.rmdir(ROOT, sub.nodeid, n), [E.EINVAL], `rmdir ${JSON.stringify(bad)}`);
      errnoIn(() => fs.rename(ROOT, 1, B('sub'), 1, n, 0), [E.EINVAL], `rename to ${JSON.stringify(bad)}`);
      errnoIn(() => fs.rename(ROOT, sub.nodeid, n, 1, B('stolen'), 0), [E.EINVAL], `rename from ${JSON.stringify(bad)}`);
      errnoIn(() => fs.link(ROOT, sub.nodeid, 1, n), [E.EINVAL, E.EPERM], `link ${JSON.stringify(bad)}`);
    }
    assert.deepEqual(nfs.readdirSync(share), ['sub']);
  });

  test('unknown or forged node ids and file handles reach nothing', () => {
    const fs = mkfs();
    for (const id of [0, 2, 999, 2 ** 52, -1]) {
      errnoIn(() => fs.lookup(ROOT, id, B('secret')), [E.ENOENT], `lookup under ${id}`);
      errnoIn(() => fs.getattr(ROOT, id, undefined), [E.ENOENT], `getattr ${id}`);
      errnoIn(() => fs.open(ROOT, id, O_RDONLY), [E.ENOENT], `open ${id}`);
      errnoIn(() => fs.rename(ROOT, 1, B('x'), id, B('y'), 0), [E.ENOENT], `rename into ${id}`);
    }
    const buf = Buffer.alloc(16);
    for (const fh of [0, 1, 77, 2 ** 40]) {
      errnoIn(() => fs.read(ROOT, 1, fh, 0, 16, buf), [E.EBADF], `read fh ${fh}`);
      errnoIn(() => fs.write(ROOT, 1, fh, 0, buf, 0), [E.EBADF], `write fh ${fh}`);
      errnoIn(() => fs.readdir(ROOT, 1, fh, 0, { add: () => true }), [E.EBADF], `readdir fh ${fh}`);
    }
    // A file handle used as a directory handle and the other way round.
    nfs.writeFileSync(join(share, 'f'), 'x');
    const f = fs.lookup(ROOT, 1, B('f'));
    const o = fs.open(ROOT, f.nodeid, O_RDONLY);
    errnoIn(() => fs.readdir(ROOT, 1, o.fh, 0, { add: () => true }), [E.EBADF], 'readdir on a file handle');
  });
});

describe('symlinks are never followed by the daemon', () => {
  test("a symlink to '/' and to a file outside: lookups through it, opens, setattr, xattrs, create over it", () => {
    nfs.symlinkSync('/', join(share, 'root'));
    nfs.symlinkSync(secret, join(share, 'secretlink'));
    nfs.symlinkSync('../outside/secret', join(share, 'rel'));
    const fs = mkfs();
    const r = fs.lookup(ROOT, 1, B('root'));
    assert.equal(r.attr.mode & 0o170000, 0o120000, 'the symlink itself, not /');
    assert.deepEqual(fs.readlink(ROOT, r.nodeid), B('/'), 'target verbatim');
    errnoIn(() => fs.lookup(ROOT, r.nodeid, B('etc')), [E.ENOTDIR], 'lookup through a symlink');
    errnoIn(() => fs.opendir(ROOT, r.nodeid, O_RDONLY), [E.ENOTDIR], 'opendir a symlink');
    for (const name of ['secretlink', 'rel']) {
      const s = fs.lookup(ROOT, 1, B(name));
      assert.notEqual(s.attr.ino, Number(secretStat.ino));
      errnoIn(() => fs.open(ROOT, s.nodeid, O_RDWR), [E.ELOOP], `open ${name}`);
      errnoIn(() => fs.open(ROOT, s.nodeid, O_RDONLY | O_TRUNC), [E.ELOOP], `open trunc ${name}`);
      errnoIn(() => fs.setattr(ROOT, s.nodeid, { valid: FATTR_SIZE, size: 0 }), [E.EINVAL], `truncate ${name}`);
      errnoIn(() => fs.setattr(ROOT, s.nodeid, { valid: FATTR_MODE, mode: 0o777 }), [E.EOPNOTSUPP], `chmod ${name}`);
      // chown and utimens apply to the link itself (as lchown/lutimes do).
      fs.setattr(ROOT, s.nodeid, { valid: FATTR_UID, uid: 4321 });
      fs.setattr(ROOT, s.nodeid, { valid: FATTR_ATIME | FATTR_MTIME, atime: 5, atimensec: 0, mtime: 5, mtimensec: 0 });
      assert.equal(nfs.lstatSync(join(share, name)).uid, 4321);
      fs.setxattr(ROOT, s.nodeid, B('trusted.x'), B('1'), 0);
      errnoIn(() => fs.getxattr(ROOT, s.nodeid, B('user.none')), [E.ENODATA], `getxattr ${name}`);
      // create() over the name never follows it.
      errnoIn(() => fs.create(ROOT, 1, B(name), 0o100644, O_WRONLY | O_CREAT | O_TRUNC, 0), [E.ELOOP], `create over ${name}`);
      // A hard link of the symlink is a symlink, not a link to the secret.
      const l = fs.link(ROOT, s.nodeid, 1, B(`${name}-hard`));
      assert.equal(l.nodeid, s.nodeid);
      assert.ok(nfs.lstatSync(join(share, `${name}-hard`)).isSymbolicLink());
    }
  });

  test('a directory symlink swapped in after a lookup: names resolve under the held inode, not the new path', () => {
    const fs = mkfs();
    const d = fs.mkdir(ROOT, 1, B('d'), 0o755, 0);
    nfs.writeFileSync(join(share, 'd', 'inner'), 'in');
    // An attacker on the host replaces d by a symlink to the outside dir.
    nfs.renameSync(join(share, 'd'), join(share, 'moved'));
    nfs.symlinkSync(outside, join(share, 'd'));
    errnoIn(() => fs.lookup(ROOT, d.nodeid, B('secret')), [E.ENOENT], 'the held dir has no secret');
    const inner = fs.lookup(ROOT, d.nodeid, B('inner'));
    const o = fs.open(ROOT, inner.nodeid, O_RDONLY);
    const buf = Buffer.alloc(8);
    assert.equal(fs.read(ROOT, inner.nodeid, o.fh, 0, 8, buf), 2);
    fs.create(ROOT, d.nodeid, B('new'), 0o100644, O_RDWR | O_CREAT, 0);
    assert.ok(nfs.existsSync(join(share, 'moved', 'new')), 'created in the held directory');
    // And a fresh lookup of 'd' sees the symlink, which the daemon does not follow.
    const again = fs.lookup(ROOT, 1, B('d'));
    assert.equal(again.attr.mode & 0o170000, 0o120000);
    errnoIn(() => fs.lookup(ROOT, again.nodeid, B('secret')), [E.ENOTDIR], 'through the swapped-in symlink');
  });

  test('rename cannot move anything out: every name is relative to a held directory', () => {
    nfs.writeFileSync(join(share, 'f'), 'mine');
    const fs = mkfs();
    errnoIn(() => fs.rename(ROOT, 1, B('f'), 1, B('../outside/f'), 0), [E.EINVAL], 'rename to ../');
    errnoIn(() => fs.rename(ROOT, 1, B('f'), 1, B('..'), 0), [E.EINVAL], "rename to '..'");
    nfs.symlinkSync(outside, join(share, 'out'));
    const out = fs.lookup(ROOT, 1, B('out'));
    errnoIn(() => fs.rename(ROOT, 1, B('f'), out.nodeid, B('f'), 0), [E.ENOTDIR], 'rename into a symlinked dir');
    errnoIn(() => fs.symlink(ROOT, out.nodeid, B('x'), B('y')), [E.ENOTDIR], 'symlink into a symlinked dir');
    errnoIn(() => fs.mkdir(ROOT, out.nodeid, B('x'), 0o755, 0), [E.ENOTDIR], 'mkdir into a symlinked dir');
    assert.equal(nfs.readFileSync(join(share, 'f'), 'utf8'), 'mine');
  });
});

describe('special files are never opened', () => {
  test('FIFO, socket and a /dev/null-like device node: open answers EBADF without blocking; attrs and xattrs work', () => {
    const fs = mkfs();
    const fifo = fs.mknod(ROOT, 1, B('fifo'), 0o010666, 0, 0);
    const sock = fs.mknod(ROOT, 1, B('sock'), 0o140666, 0, 0);
    const dev = fs.mknod(ROOT, 1, B('null'), 0o020666, (1 << 8) | 3, 0);
    assert.equal(dev.attr.rdev, (1 << 8) | 3);
    assert.ok(nfs.lstatSync(join(share, 'null')).isCharacterDevice());
    for (const [name, e] of [['fifo', fifo], ['sock', sock], ['null', dev]] as const) {
      // Opening the FIFO for real would block this (only) thread forever: the
      // test finishing at all shows it was not opened.
      for (const flags of [O_RDONLY, O_WRONLY, O_RDWR, O_RDONLY | O_TRUNC]) {
        errnoIn(() => fs.open(ROOT, e.nodeid, flags), [E.EBADF], `open ${name} flags ${flags}`);
      }
      errnoIn(() => fs.opendir(ROOT, e.nodeid, O_RDONLY), [E.ENOTDIR], `opendir ${name}`);
      errnoIn(() => fs.setattr(ROOT, e.nodeid, { valid: FATTR_SIZE, size: 0 }), [E.EINVAL], `truncate ${name}`);
      fs.setattr(ROOT, e.nodeid, { valid: FATTR_MODE, mode: 0o600 });
      assert.equal(fs.getattr(ROOT, e.nodeid, undefined).attr.mode & 0o777, 0o600);
      fs.setxattr(ROOT, e.nodeid, B('trusted.k'), B(name), 0);
      assert.deepEqual(fs.getxattr(ROOT, e.nodeid, B('trusted.k')), B(name));
    }
    // The same for entries found by lookup and readdirplus rather than created here.
    nfs.rmSync(join(share, 'fifo'));
    assert.equal(spawnSync('mkfifo', [join(share, 'fifo2')]).status, 0);
    const { fh } = fs.opendir(ROOT, 1, O_RDONLY);
    const found: number[] = [];
    fs.readdirplus(ROOT, 1, fh, 0, { add: (d, p) => (d.name.toString() === 'fifo2' && found.push(p.nodeid), true) });
    assert.equal(found.length, 1);
    errnoIn(() => fs.open(ROOT, found[0], O_RDONLY), [E.EBADF], 'open a FIFO found by readdirplus');
  });

  test('create() on the name of an existing FIFO or device node never opens it', () => {
    const fs = mkfs();
    fs.mknod(ROOT, 1, B('zero'), 0o020666, (1 << 8) | 5, 0);
    fs.mknod(ROOT, 1, B('pipe'), 0o010666, 0, 0);
    for (const name of ['zero', 'pipe']) {
      // Without O_EXCL the host open would have opened (or, for the FIFO, hung on) it.
      errnoIn(() => fs.create(ROOT, 1, B(name), 0o100644, O_RDWR | O_CREAT, 0), [E.EBADF], `create over ${name}`);
      errnoIn(() => fs.create(ROOT, 1, B(name), 0o100644, O_RDWR | O_CREAT | nfs.constants.O_EXCL, 0), [E.EEXIST], `O_EXCL ${name}`);
    }
    // A regular file that already exists is opened (O_CREAT without O_EXCL semantics).
    nfs.writeFileSync(join(share, 'reg'), 'old');
    const c = fs.create(ROOT, 1, B('reg'), 0o100644, O_RDWR | O_CREAT, 0);
    const buf = Buffer.alloc(3);
    assert.equal(fs.read(ROOT, c.entry.nodeid, c.open.fh, 0, 3, buf), 3);
    assert.equal(buf.toString(), 'old');
    assert.equal(fs.stats.handles, 1);
  });
});

describe('ownership of new files (CVE-2022-0358)', () => {
  test('a caller outside the setgid directory group gets no S_ISGID; group members and root keep it', () => {
    const fs = mkfs();
    const sg = join(share, 'sgid');
    nfs.mkdirSync(sg);
    nfs.chownSync(sg, 0, DAEMON_GROUP);
    nfs.chmodSync(sg, 0o2777);
    const d = fs.lookup(ROOT, 1, B('sgid'));
    const stranger: RequestContext = { uid: 1000, gid: 1000, pid: 9 };
    const c = fs.create(stranger, d.nodeid, B('f'), 0o102755, O_RDWR | O_CREAT, 0);
    let st = nfs.statSync(join(sg, 'f'));
    assert.equal(st.gid, DAEMON_GROUP, 'group inherited from the setgid directory');
    assert.equal(st.uid, 1000);
    assert.equal(st.mode & 0o2000, 0, 'S_ISGID stripped: the caller is not in the group, whatever the daemon is in');
    assert.equal(c.entry.attr.mode & 0o2000, 0);
    fs.mknod(stranger, d.nodeid, B('n'), 0o102755, 0, 0);
    assert.equal(nfs.statSync(join(sg, 'n')).mode & 0o2000, 0, 'mknod too');
    const sub = fs.mkdir(stranger, d.nodeid, B('sub'), 0o2755, 0);
    assert.equal(sub.attr.gid, DAEMON_GROUP);
    // Directories in a setgid directory inherit S_ISGID by design (not a privilege).
    assert.equal(nfs.statSync(join(sg, 'sub')).mode & 0o2000, 0o2000);
    // A member of the group keeps the bit; so does root.
    fs.create({ uid: 1000, gid: DAEMON_GROUP, pid: 9 }, d.nodeid, B('member'), 0o102755, O_RDWR | O_CREAT, 0);
    assert.equal(nfs.statSync(join(sg, 'member')).mode & 0o2000, 0o2000);
    fs.create(ROOT, d.nodeid, B('root'), 0o102755, O_RDWR | O_CREAT, 0);
    st = nfs.statSync(join(sg, 'root'));
    assert.equal(st.mode & 0o2000, 0o2000);
  });
});

describe('bounded fd use', () => {
  test('5000 files looked up, stat-ed and listed with maxOpenPathFds=64 keep the process fd count bounded', (t) => {
    const n = 5000;
    // On tmpfs: creating 5000 files on a busy disk can take a minute; tmpfs has
    // file handles too (and keeps every inode in memory, so they always open).
    assert.ok(nfs.existsSync('/dev/shm'), 'this test needs a tmpfs at /dev/shm');
    const bigShare = nfs.mkdtempSync('/dev/shm/vfs-escape-big-');
    t.after(() => nfs.rmSync(bigShare, { recursive: true, force: true }));
    nfs.mkdirSync(join(bigShare, 'big'));
    for (let i = 0; i < n; i++) nfs.writeFileSync(join(bigShare, 'big', `f${i}`), String(i));
    const fdsBefore = nfs.readdirSync('/proc/self/fd').length;
    const fs = new PassthroughFs(bigShare, { readonly: false, cache: 'auto', xattr: true, writeback: false, maxOpenPathFds: 64 });
    live.push(fs);
    assert.equal(fs.usesFileHandles, true, 'the shared directory must support file handles for this test');
    const big = fs.lookup(ROOT, 1, B('big'));
    const ids: number[] = [];
    let peak = 0;
    const sample = () => {
      peak = Math.max(peak, nfs.readdirSync('/proc/self/fd').length - fdsBefore);
    };
    for (let i = 0; i < n; i++) {
      ids.push(fs.lookup(ROOT, big.nodeid, B(`f${i}`)).nodeid);
      if (i % 500 === 0) sample();
    }
    sample();
    assert.equal(new Set(ids).size, n, 'one node id per file');
    // Every node stays usable: evicted ones are reopened from their handles.
    for (let i = 0; i < n; i += 7) {
      const a = fs.getattr(ROOT, ids[i], undefined).attr;
      assert.equal(a.size, String(i).length, `f${i}`);
    }
    sample();
    const { fh } = fs.opendir(ROOT, big.nodeid, O_RDONLY);
    let listed = 0;
    fs.readdirplus(ROOT, big.nodeid, fh, 0, { add: (_d, p) => (p.nodeid !== 0 && listed++, true) });
    fs.releasedir(ROOT, big.nodeid, fh);
    sample();
    assert.equal(listed, n);
    assert.ok(fs.stats.liveFds <= 64, `live O_PATH fds ${fs.stats.liveFds}`);
    // 64 evictable + root + /proc/self/fd + one mount fd + slack for the test's own readdir.
    assert.ok(peak <= 64 + 8, `fd peak ${peak} above the budget`);
    // Identity survives eviction: the same file still maps to the same id.
    assert.equal(fs.lookup(ROOT, big.nodeid, B('f3')).nodeid, ids[3]);
  });
});

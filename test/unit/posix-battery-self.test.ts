// Tests of the POSIX battery itself, on native file systems only: it must be
// deterministic (two runs, ext4 vs tmpfs), its errno lines must say what
// Linux says, and the comparison must catch a difference. A battery that
// printed the same thing everywhere would make every oracle test pass.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasInterpreter } from '../../src/guest/elf.ts';
import { compareBatteries, compileBattery, diffTrees, escapeName, runBattery, runBatteryOk, splitLine, treeManifest } from '../support/posix-battery.ts';

const TMPFS_MAGIC = 0x01021994;
const temps: string[] = [];
function temp(base = tmpdir()): string {
  const d = mkdtempSync(join(base, 'battery-self-'));
  temps.push(d);
  return d;
}
const results = (lines: string[]) => new Map(lines.map(splitLine));

describe('POSIX battery on native directories', () => {
  let first: string[];
  let firstDir: string;
  before(async () => {
    await compileBattery();
    firstDir = temp();
    first = await runBatteryOk(firstDir);
  });
  after(() => {
    for (const d of temps) {
      spawnSync('umount', ['-l', d], { stdio: 'ignore' });
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('prints one well-formed line per check and nothing that reads as a failure of its own', () => {
    assert.ok(first.length > 100, `only ${first.length} lines`);
    const names = first.map((l) => splitLine(l)[0]);
    assert.equal(new Set(names).size, names.length, 'check names must be unique');
    for (const line of first) {
      const [, result] = splitLine(line);
      assert.match(result, /^(ok\b|E[A-Z0-9]+( at=\S+)?$)/, line);
      assert.doesNotMatch(result, /MISMATCH|INVALID|differs|skipped/, line);
    }
  });

  it('is deterministic: a second run on another directory prints the same and leaves the same tree', async () => {
    const dir = temp();
    const second = await runBatteryOk(dir);
    const cmp = compareBatteries(first, second, {}, ['run1', 'run2']);
    assert.ok(cmp.equal, cmp.diff);
    const m1 = treeManifest(firstDir);
    assert.ok(m1.length > 10_000, `manifest has only ${m1.length} entries`);
    assert.equal(diffTrees(m1, treeManifest(dir), ['run1', 'run2']), '');
    // The manifest sees what the checks leave behind: owners, odd names, symlinks.
    assert.ok(m1.some((l) => /^perm\/open\/mine mode=100600 owner=65534:65534 size=4 nlink=1 /.test(l)), 'owner of perm/open/mine');
    assert.ok(m1.includes('un/\\xff\\xfe-not-utf8 mode=100644 owner=0:0 size=1 nlink=1 sha=' + m1.find((l) => l.startsWith('un/\\xff'))!.split('sha=')[1]));
    assert.ok(m1.some((l) => l.startsWith('sl/l mode=120777 owner=0:0 -> target-file')));
    assert.equal(escapeName(Buffer.from('a b\n\\')), 'a\\x20b\\x0a\\x5c');
  });

  it('does not depend on the file system: tmpfs matches ext4 except where tmpfs lacks a feature', async (t) => {
    const shm = '/dev/shm';
    if (statfsSync(shm).type !== TMPFS_MAGIC) {
      t.skip('/dev/shm is not tmpfs on this machine');
      return;
    }
    const other = await runBatteryOk(temp(shm));
    const cmp = compareBatteries(first, other, {
      // tmpfs implements no FALLOC_FL_ZERO_RANGE (mm/shmem.c accepts only KEEP_SIZE and PUNCH_HOLE).
      'fallocate.zero_range': { reason: 'tmpfs has no ZERO_RANGE', other: 'EOPNOTSUPP at=zero_range' },
    }, ['ext4', 'tmpfs']);
    assert.ok(cmp.equal, cmp.diff);
  });

  it('--as-uid runs every check as a non-root user, the same on ext4 and tmpfs', async (t) => {
    const a = await runBatteryOk(temp(), { asUid: 1000, readdirCount: 500 });
    const r = results(a);
    assert.equal(r.get('perm'), 'skipped-not-root');
    assert.equal(r.get('attr.chown'), 'EPERM at=chown');
    assert.equal(r.get('special.nodes'), 'EPERM at=mknod_chr');
    assert.match(r.get('misc.access')!, /root_r_on_0000=EACCES/);
    assert.match(r.get('rw.basic')!, /^ok /);
    if (statfsSync('/dev/shm').type !== TMPFS_MAGIC) {
      t.skip('/dev/shm is not tmpfs on this machine');
      return;
    }
    const b = await runBatteryOk(temp('/dev/shm'), { asUid: 1000, readdirCount: 500 });
    const cmp = compareBatteries(a, b, { 'fallocate.zero_range': { reason: 'tmpfs has no ZERO_RANGE', other: 'EOPNOTSUPP at=zero_range' } }, ['ext4', 'tmpfs']);
    assert.ok(cmp.equal, cmp.diff);
  });

  it('reports the errno Linux gives for every failure case', () => {
    for (const line of first) {
      const [name, result] = splitLine(line);
      const m = /^errno\.([a-z0-9]+)\./.exec(name);
      if (m) assert.equal(result, m[1]!.toUpperCase(), line);
    }
    const r = results(first);
    // The non-root caller: the battery drops to uid/gid 65534 in a child.
    const perm: Record<string, string> = {
      'perm.read_0600_root_file': 'EACCES',
      'perm.read_0644_root_file': 'ok',
      'perm.write_0644_root_file': 'EACCES',
      'perm.create_in_0755_root_dir': 'EACCES',
      'perm.mkdir_in_0755_root_dir': 'EACCES',
      'perm.unlink_in_0755_root_dir': 'EACCES',
      'perm.chmod_root_file': 'EPERM',
      'perm.chown_root_file': 'EPERM',
      'perm.stat_in_0700_root_dir': 'EACCES',
      'perm.unlink_in_sticky_dir': 'EPERM',
      'perm.create_in_0777_dir': 'ok owner_is_caller=1 mode=0640 wrote=4',
      'perm.owner_seen_by_root': 'ok uid_is_caller=1 gid_is_caller=1',
    };
    for (const [k, v] of Object.entries(perm)) assert.equal(r.get(k), v, k);
    // A few data checks whose values follow from the program alone.
    assert.equal(r.get('statfs'), 'ok namelen=255 sane=1');
    assert.match(r.get('readdir.big')!, /^ok count=10000 dots=2 dups=0 missing=0 extra=0 /);
    assert.equal(r.get('readdir.concurrent_unlink'), 'ok kept=1333 kept_missing=0 dups=0 unknown=0');
    assert.equal(r.get('append.two_procs'), 'ok size=64000 torn=0 dup=0 lost=0 writer_failures=0');
    assert.equal(r.get('mmap.shared_write'), 'ok read=12388 match=1');
    assert.equal(r.get('lock.flock'), 'ok second_ex=EAGAIN second_sh=EAGAIN after_unlock=ok both_shared=ok ofd_overlap=EAGAIN ofd_disjoint=ok');
    assert.match(r.get('names.long')!, /create255=ok .*create256=ENAMETOOLONG/);
  });

  it('expects EROFS for every mutating call on a read-only bind mount', async () => {
    const src = temp();
    const ro = temp();
    await runBatteryOk(src, { mode: 'populate-readonly' });
    // A native read-only mount of the same tree is the oracle for --readonly.
    for (const args of [['--bind', src, ro], ['-o', 'remount,bind,ro', ro]]) {
      const m = spawnSync('mount', args, { encoding: 'utf8' });
      assert.equal(m.status, 0, `mount ${args.join(' ')}: ${m.stderr}`);
    }
    const lines = await runBatteryOk(ro, { mode: 'expect-readonly' });
    const r = results(lines);
    assert.equal(r.get('ro.read'), 'ok content=match');
    assert.equal(r.get('ro.readdir'), 'ok entries=dir,file,full,link');
    assert.equal(r.get('ro.getxattr'), 'ok yes');
    assert.equal(r.get('ro.tree_intact'), 'ok');
    const mutating = lines.filter((l) => !/^ro\.(read|readdir|readlink|getxattr|tree_intact) /.test(l));
    assert.ok(mutating.length >= 18, `only ${mutating.length} mutating checks`);
    for (const l of mutating) assert.equal(splitLine(l)[1], 'EROFS', l);
  });

  it('is a static binary, and a missing compiler gives one clear error', async () => {
    const bin = await compileBattery();
    const elf = readFileSync(bin);
    // No PT_INTERP program header means no dynamic loader: runs in a busybox guest.
    assert.equal(hasInterpreter(elf, bin), false, 'the battery must be linked statically');
    await assert.rejects(compileBattery({ cacheDir: temp(), gcc: '/nonexistent/gcc' }), /\/nonexistent\/gcc is not installed.*apt-get install gcc/);
  });

  it('refuses a non-empty directory and a missing one with status 2', async () => {
    const d = temp();
    mkdirSync(join(d, 'x'));
    const r = await runBattery(d);
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /must be an empty directory/);
    const m = await runBattery(join(d, 'missing'));
    assert.equal(m.exitCode, 2);
    assert.match(m.stderr, /cannot enter/);
  });
});

describe('compareBatteries', () => {
  const base = ['a ok size=1', 'b ENOENT', 'c ok x=2'];
  it('accepts identical output', () => {
    assert.ok(compareBatteries(base, [...base]).equal);
  });
  it('reports a changed, a missing and an extra check, readably', () => {
    const cmp = compareBatteries(base, ['a ok size=2', 'c ok x=2', 'd ok']);
    assert.equal(cmp.equal, false);
    assert.match(cmp.diff, /^a\n  native\s+ok size=1\n  other\s+ok size=2$/m);
    assert.match(cmp.diff, /^b\n  native\s+ENOENT\n  other\s+\(missing\)$/m);
    assert.match(cmp.diff, /^d\n  native\s+\(missing\)\n  other\s+ok$/m);
  });
  it('allows a declared difference only in its declared form', () => {
    const allow = { b: { reason: 'test', other: 'EACCES' } };
    const ok = compareBatteries(base, ['a ok size=1', 'b EACCES', 'c ok x=2'], allow);
    assert.ok(ok.equal, ok.diff);
    assert.deepEqual(ok.allowedSeen, ['b']);
    const bad = compareBatteries(base, ['a ok size=1', 'b EPERM', 'c ok x=2'], allow);
    assert.equal(bad.equal, false);
    assert.match(bad.diff, /allowed only as EACCES: test/);
  });
  it('flags a check printed twice', () => {
    const cmp = compareBatteries(base, [...base, 'a ok size=1']);
    assert.equal(cmp.equal, false);
    assert.match(cmp.diff, /check a printed twice/);
  });
});

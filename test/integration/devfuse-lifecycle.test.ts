// Integration: the `virtiofs-ts mount` command end to end, with the kernel as
// the FUSE client. Mount, use with ordinary tools, SIGTERM -> exit 0 and the
// mount gone; every setup error is one line on stderr, no stack trace.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  BIN,
  cliArgv,
  isMounted,
  makeTempDir,
  mountOurs,
  mountedFsType,
  removeTempDir,
  REPO_ROOT,
  requireFuse,
  runCli,
  FSTYPE,
} from '../support/mount-helpers.ts';

/** Polls `cond` (the machine may be loaded: no fixed sleeps). */
async function until(cond: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** One line of stderr, no stack frames: the CLI's promise for every failure. */
function assertOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${stderr}`);
  assert.doesNotMatch(stderr, /^\s+at /m, 'stack trace on stderr');
  assert.match(lines[0]!, pattern);
}

describe('virtiofs-ts mount: lifecycle', () => {
  let base: string;
  before(() => {
    requireFuse();
    base = makeTempDir('vfs-life-');
  });
  after(() => removeTempDir(base));

  for (const fs of ['passthrough', 'memory'] as const) {
    test(`${fs}: mount, ls, cat, write, SIGTERM -> exit 0 and unmounted`, async () => {
      const share = join(base, `share-${fs}`);
      mkdirSync(join(share, 'sub'), { recursive: true });
      writeFileSync(join(share, 'hello.txt'), 'hello through the kernel\n');
      writeFileSync(join(share, 'sub', 'deep.txt'), 'deep\n');
      const m = await mountOurs({ sharedDir: share, fs });
      try {
        assert.equal(mountedFsType(m.mountpoint), FSTYPE);
        const ls = spawnSync('ls', ['-1A', m.mountpoint], { encoding: 'utf8' });
        assert.equal(ls.status, 0, ls.stderr);
        assert.deepEqual(ls.stdout.trim().split('\n').sort(), ['hello.txt', 'sub']);
        const cat = spawnSync('cat', [join(m.mountpoint, 'hello.txt'), join(m.mountpoint, 'sub/deep.txt')], { encoding: 'utf8' });
        assert.equal(cat.status, 0, cat.stderr);
        assert.equal(cat.stdout, 'hello through the kernel\ndeep\n');
        const sh = spawnSync('sh', ['-c', 'echo written > "$1/new.txt" && echo more >> "$1/new.txt"', 'sh', m.mountpoint], { encoding: 'utf8' });
        assert.equal(sh.status, 0, sh.stderr);
        assert.equal(readFileSync(join(m.mountpoint, 'new.txt'), 'utf8'), 'written\nmore\n');
        if (fs === 'passthrough') assert.equal(readFileSync(join(share, 'new.txt'), 'utf8'), 'written\nmore\n');
        else assert.equal(existsSync(join(share, 'new.txt')), false, 'memory fs must not write to the seed directory');
      } finally {
        await m.stop(); // asserts exit 0 and that the mount is gone
      }
      assert.equal(isMounted(m.mountpoint), false);
    });
  }

  test('SIGINT also unmounts and exits 0; an outside umount ends the server with 0 (memory, empty)', async () => {
    const share = join(base, 'share-sig');
    mkdirSync(share);
    const m = await mountOurs({ sharedDir: share, fs: 'memory' });
    m.child.kill('SIGINT');
    assert.equal(await m.waitExit(), 0, m.output());
    assert.equal(isMounted(m.mountpoint), false);
    await m.stop();

    // '-' as the shared dir: an empty in-memory fs.
    const m2 = await mountOurs({ sharedDir: '-', fs: 'memory' });
    assert.deepEqual(readdirSync(m2.mountpoint), []);
    const um = spawnSync('umount', [m2.mountpoint], { encoding: 'utf8' });
    assert.equal(um.status, 0, um.stderr);
    assert.equal(await m2.waitExit(), 0, m2.output());
    await m2.stop();
  });

  test('a busy mount is detached on SIGTERM and served until its last user leaves', async () => {
    const share = join(base, 'share-busy');
    mkdirSync(share);
    writeFileSync(join(share, 'f'), 'still here\n');
    const m = await mountOurs({ sharedDir: share });
    // A process whose cwd is inside the mount keeps it busy.
    const holder = spawn('sh', ['-c', 'read line; cat f'], { cwd: m.mountpoint, stdio: ['pipe', 'pipe', 'pipe'] });
    let held = '';
    holder.stdout.setEncoding('utf8').on('data', (d: string) => (held += d));
    m.child.kill('SIGTERM');
    await until(() => !isMounted(m.mountpoint), 'the busy mount to be detached from the namespace');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(m.child.exitCode, null, 'still serving the busy mount');
    holder.stdin.end('go\n');
    await new Promise((r) => holder.on('exit', r));
    assert.equal(held, 'still here\n', 'the holder could still read after the detach');
    assert.equal(await m.waitExit(), 0, m.output());
    await m.stop();
  });

  test('a second signal aborts a busy mount: exit 1, its users get ENOTCONN', async () => {
    const share = join(base, 'share-abort');
    mkdirSync(share);
    writeFileSync(join(share, 'f'), 'x\n');
    const m = await mountOurs({ sharedDir: share });
    const holder = spawn('sh', ['-c', 'read line; cat f; echo "status $?"'], { cwd: m.mountpoint, stdio: ['pipe', 'pipe', 'pipe'] });
    let held = '';
    holder.stdout.setEncoding('utf8').on('data', (d: string) => (held += d));
    holder.stderr.setEncoding('utf8').on('data', (d: string) => (held += d));
    m.child.kill('SIGTERM');
    await until(() => !isMounted(m.mountpoint), 'the busy mount to be detached after the first signal');
    assert.equal(m.child.exitCode, null, 'still serving the busy mount after one signal');
    m.child.kill('SIGTERM');
    assert.equal(await m.waitExit(), 1, m.output());
    assert.match(m.output(), /aborting the connection/);
    holder.stdin.end('go\n');
    await new Promise((r) => holder.on('exit', r));
    assert.match(held, /Transport endpoint is not connected/);
    assert.match(held, /status 1/);
    await m.stop().catch(() => {}); // exit 1 was expected; stop() only cleans up here
  });

  test('bin/virtiofs-ts.js runs the CLI (what npx virtiofs-ts runs)', () => {
    const r = spawnSync(process.execPath, [BIN, '--help'], { cwd: REPO_ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Usage: virtiofs-ts <command>/);
    assert.match(r.stdout, /mount\s+mount a directory/);
    const h = spawnSync(process.execPath, [BIN, 'mount', '--help'], { cwd: '/', encoding: 'utf8' });
    assert.equal(h.status, 0, h.stderr);
    assert.match(h.stdout, /Usage: virtiofs-ts mount <shared-dir> <mountpoint>/);
    // npx resolves the package's own bin in the checkout (--no-install: never the registry).
    const n = spawnSync('npx', ['--no-install', 'virtiofs-ts', 'mount', '--help'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
    assert.equal(n.status, 0, n.stderr);
    assert.match(n.stdout, /Usage: virtiofs-ts mount <shared-dir> <mountpoint>/);
  });
});

describe('virtiofs-ts mount: errors are one clear line, never a stack trace', () => {
  let base: string;
  let share: string;
  let mnt: string;
  before(() => {
    requireFuse();
    base = makeTempDir('vfs-err-');
    share = join(base, 'share');
    mnt = join(base, 'mnt');
    mkdirSync(share);
    mkdirSync(mnt);
  });
  after(() => removeTempDir(base));

  test('missing mountpoint: exit 1', () => {
    const r = runCli(['mount', share, join(base, 'no-such-dir')]);
    assert.equal(r.status, 1);
    assertOneLine(r.stderr, /mountpoint .*no-such-dir does not exist/);
  });

  test('missing shared dir, or a file instead of a dir: exit 1', () => {
    const r = runCli(['mount', join(base, 'nope'), mnt]);
    assert.equal(r.status, 1);
    assertOneLine(r.stderr, /shared directory .*nope does not exist/);
    writeFileSync(join(base, 'file'), '');
    const r2 = runCli(['mount', join(base, 'file'), mnt]);
    assert.equal(r2.status, 1);
    assertOneLine(r2.stderr, /shared directory .*file is not a directory/);
  });

  test('unreadable shared dir (root without CAP_DAC_*): exit 1', () => {
    const locked = join(base, 'locked');
    mkdirSync(locked);
    chmodSync(locked, 0o000);
    // Root reads anything through CAP_DAC_OVERRIDE/READ_SEARCH; drop them (keep
    // CAP_SYS_ADMIN, so only the unreadable dir can be the failure).
    const r = spawnSync(
      'setpriv',
      ['--bounding-set', '-dac_override,-dac_read_search', '--inh-caps', '-dac_override,-dac_read_search', process.execPath, ...cliArgv(['mount', locked, mnt])],
      { cwd: REPO_ROOT, encoding: 'utf8', timeout: 30_000 },
    );
    assert.equal(r.status, 1, r.stderr);
    assertOneLine(r.stderr, /cannot read shared directory .*locked: EACCES/);
    assert.equal(isMounted(mnt), false);
  });

  test('bad --cache value, unknown option, wrong arity: usage error, exit 2', () => {
    const r = runCli(['mount', share, mnt, '--cache', 'sometimes']);
    assert.equal(r.status, 2);
    assertOneLine(r.stderr, /--cache must be one of never, auto, always \(got 'sometimes'\).*mount --help/);
    const r2 = runCli(['mount', share, mnt, '--frobnicate']);
    assert.equal(r2.status, 2);
    assertOneLine(r2.stderr, /Unknown option '--frobnicate'.*mount --help/);
    const r3 = runCli(['mount', share]);
    assert.equal(r3.status, 2);
    assertOneLine(r3.stderr, /expected <shared-dir> <mountpoint>/);
    const r5 = runCli(['no-such-command']);
    assert.equal(r5.status, 2);
    assertOneLine(r5.stderr, /unknown command 'no-such-command'/);
  });

  test('not root: exit 1', () => {
    const r = spawnSync(
      'setpriv',
      ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, ...cliArgv(['mount', share, mnt])],
      { cwd: REPO_ROOT, encoding: 'utf8', timeout: 30_000, env: { ...process.env, HOME: '/tmp' } },
    );
    assert.equal(r.status, 1, r.stderr);
    assertOneLine(r.stderr, /needs root/);
  });

  test('/dev/fuse missing: exit 1', () => {
    // A private mount namespace with an empty /dev: the host's /dev is untouched.
    const script = 'mount -t tmpfs none /dev && mknod -m 666 /dev/null c 1 3 && exec "$@"';
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', process.execPath, ...cliArgv(['mount', share, mnt])], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.status, 1, r.stderr);
    assertOneLine(r.stderr, /\/dev\/fuse is missing/);
  });

  test('mountpoint inside the shared dir is refused', () => {
    const inner = join(share, 'inner');
    mkdirSync(inner);
    const r = runCli(['mount', share, inner]);
    assert.equal(r.status, 1);
    assertOneLine(r.stderr, /inside the shared directory/);
  });
});

describe('--readonly', () => {
  let base: string;
  before(() => {
    requireFuse();
    base = makeTempDir('vfs-ro-');
  });
  after(() => removeTempDir(base));

  for (const fs of ['passthrough', 'memory'] as const) {
    test(`${fs}: reads work, every change fails with EROFS, host untouched`, async () => {
      const share = join(base, `share-${fs}`);
      mkdirSync(join(share, 'd'), { recursive: true });
      writeFileSync(join(share, 'f'), 'original\n');
      const before = statSync(join(share, 'f'));
      const m = await mountOurs({ sharedDir: share, fs, readonly: true });
      try {
        assert.equal(readFileSync(join(m.mountpoint, 'f'), 'utf8'), 'original\n');
        assert.deepEqual(readdirSync(m.mountpoint).sort(), ['d', 'f']);
        const attempts: [string, () => void][] = [
          ['create', () => writeFileSync(join(m.mountpoint, 'new'), 'x')],
          ['overwrite', () => writeFileSync(join(m.mountpoint, 'f'), 'changed')],
          ['mkdir', () => mkdirSync(join(m.mountpoint, 'd2'))],
          ['chmod', () => chmodSync(join(m.mountpoint, 'f'), 0o600)],
        ];
        for (const [what, op] of attempts) {
          assert.throws(op, (e: NodeJS.ErrnoException) => e.code === 'EROFS', `${what} should fail with EROFS`);
        }
        for (const [what, argv] of [
          ['rm', ['rm', join(m.mountpoint, 'f')]],
          ['mv', ['mv', join(m.mountpoint, 'f'), join(m.mountpoint, 'g')]],
          ['rmdir', ['rmdir', join(m.mountpoint, 'd')]],
          ['touch', ['touch', join(m.mountpoint, 'f')]],
        ] as const) {
          const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
          assert.notEqual(r.status, 0, `${what} succeeded on a read-only mount`);
          assert.match(r.stderr, /Read-only file system/, `${what}: ${r.stderr}`);
        }
      } finally {
        await m.stop();
      }
      const afterSt = statSync(join(share, 'f'));
      assert.equal(readFileSync(join(share, 'f'), 'utf8'), 'original\n');
      assert.equal(afterSt.mode, before.mode);
      assert.equal(afterSt.mtimeMs, before.mtimeMs);
      assert.deepEqual(readdirSync(share).sort(), ['d', 'f']);
    });
  }
});

// Integration: data integrity through a real /dev/fuse mount (mostly the passthrough
// backend, one memory-backend case). Random files (1 MiB .. 64 MiB, and one 1 GiB) written through the
// mount must match by sha256 on the host and, after a remount (cold kernel
// cache, so the bytes come from our READ path), through the mount; a tar of a
// real tree extracted into the mount compares equal; git works inside it; fio's
// own verifier passes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, mountOurs, removeTempDir, requireFuse, type OurMount } from '../support/mount-helpers.ts';

const MiB = 1024 * 1024;

function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * MiB, timeout: opts.timeout ?? 120_000, ...opts });
  if (r.error) throw new Error(`${cmd} could not run: ${r.error.message} (is it installed? see .ci/run)`);
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} exited ${r.status}:\n${r.stderr}\n${r.stdout.slice(-2000)}`);
  return r.stdout;
}

/** Writes `size` random bytes in `chunk`-sized writes; returns the sha256 of what was written. */
function writeRandomFile(path: string, size: number, chunk = MiB): string {
  const hash = createHash('sha256');
  const buf = Buffer.alloc(chunk);
  const fd = openSync(path, 'w');
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(chunk, size - done);
      const view = buf.subarray(0, n);
      randomFillSync(view);
      hash.update(view);
      let off = 0;
      while (off < n) off += writeSync(fd, view, off, n - off);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

function sha256File(path: string, chunk = MiB): { sha: string; size: number } {
  const hash = createHash('sha256');
  const buf = Buffer.alloc(chunk);
  const fd = openSync(path, 'r');
  let size = 0;
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, chunk, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      size += n;
    }
  } finally {
    closeSync(fd);
  }
  return { sha: hash.digest('hex'), size };
}

/** Mounts, runs fn, always stops the mount (stop() asserts a clean exit 0). */
async function withMount<T>(opts: Parameters<typeof mountOurs>[0], fn: (m: OurMount) => Promise<T> | T): Promise<T> {
  const m = await mountOurs(opts);
  let result: T;
  try {
    result = await fn(m);
  } catch (err) {
    await m.stop().catch(() => {});
    throw err;
  }
  await m.stop();
  return result;
}

describe('data integrity through /dev/fuse', () => {
  let base: string;
  let share: string;
  before(() => {
    requireFuse();
    base = makeTempDir('vfs-int-');
    share = join(base, 'share');
    mkdirSync(share);
  });
  after(() => removeTempDir(base));

  test('random files 1 MiB .. 64 MiB: sha256 equal on the host and through a fresh mount', async () => {
    // Odd sizes and odd write sizes so requests straddle pages and the 1 MiB max_write.
    const files = [
      { name: 'a-1MiB', size: MiB, chunk: MiB },
      { name: 'b-odd', size: 3 * MiB + 12345, chunk: 65536 + 7 },
      { name: 'c-16MiB', size: 16 * MiB - 1, chunk: 4096 },
      { name: 'd-64MiB', size: 64 * MiB, chunk: 4 * MiB },
    ];
    const expected = new Map<string, string>();
    await withMount({ sharedDir: share, cache: 'auto' }, (m) => {
      for (const f of files) expected.set(f.name, writeRandomFile(join(m.mountpoint, f.name), f.size, f.chunk));
    });
    for (const f of files) {
      const host = sha256File(join(share, f.name));
      assert.equal(host.size, f.size, `${f.name}: size on the host`);
      assert.equal(host.sha, expected.get(f.name), `${f.name}: sha256 on the host`);
    }
    // A new mount has a cold page cache: these reads are served by our READ path.
    for (const cache of ['never', 'always'] as const) {
      await withMount({ sharedDir: share, cache }, (m) => {
        for (const f of files) {
          const through = sha256File(join(m.mountpoint, f.name), 128 * 1024 + 3);
          assert.equal(through.size, f.size, `${f.name}: size through the mount (cache ${cache})`);
          assert.equal(through.sha, expected.get(f.name), `${f.name}: sha256 through the mount (cache ${cache})`);
        }
      });
    }
  });

  test('--writeback: written files, appends and a truncate land intact on the host', async () => {
    const files = [
      { name: 'wb-a', size: 5 * MiB + 333, chunk: 4096 + 17 },
      { name: 'wb-b', size: 24 * MiB, chunk: MiB },
    ];
    const expected = new Map<string, string>();
    await withMount({ sharedDir: share, cache: 'auto', writeback: true }, (m) => {
      for (const f of files) expected.set(f.name, writeRandomFile(join(m.mountpoint, f.name), f.size, f.chunk));
      // O_APPEND with the writeback cache: the kernel computes the offsets.
      const fd = openSync(join(m.mountpoint, 'wb-log'), 'a');
      for (let i = 0; i < 1000; i++) writeSync(fd, `line ${i}\n`);
      closeSync(fd);
      const tfd = openSync(join(m.mountpoint, 'wb-b'), 'r+');
      writeSync(tfd, Buffer.from('HEAD'), 0, 4, 0);
      closeSync(tfd);
      sh('truncate', ['-s', `${3 * MiB}`, join(m.mountpoint, 'wb-b')]);
    });
    const a = sha256File(join(share, 'wb-a'));
    assert.equal(a.size, files[0]!.size);
    assert.equal(a.sha, expected.get('wb-a'));
    const b = sha256File(join(share, 'wb-b'));
    assert.equal(b.size, 3 * MiB, 'truncate through the writeback cache');
    const head = Buffer.alloc(4);
    const bfd = openSync(join(share, 'wb-b'), 'r');
    readSync(bfd, head, 0, 4, 0);
    closeSync(bfd);
    assert.equal(head.toString(), 'HEAD');
    const lines = sh('cat', [join(share, 'wb-log')]).split('\n').filter(Boolean);
    assert.equal(lines.length, 1000);
    assert.equal(lines[999], 'line 999');
  });

  test('memory backend: random files (read back through the page cache and with O_DIRECT) and fio --verify', async () => {
    const files = [
      { name: 'm-odd', size: 3 * MiB + 4321, chunk: 65536 + 3 },
      { name: 'm-32MiB', size: 32 * MiB, chunk: MiB },
    ];
    await withMount({ sharedDir: '-', fs: 'memory', cache: 'never' }, (m) => {
      for (const f of files) {
        const written = writeRandomFile(join(m.mountpoint, f.name), f.size, f.chunk);
        const back = sha256File(join(m.mountpoint, f.name), 128 * 1024 + 5);
        assert.equal(back.size, f.size, `${f.name}: size`);
        assert.equal(back.sha, written, `${f.name}: sha256 read back through the mount`);
        // O_DIRECT bypasses the kernel's page cache: these bytes come from the server.
        const direct = sh('sh', ['-c', 'dd if="$1" iflag=direct bs=1M status=none | sha256sum', 'sh', join(m.mountpoint, f.name)]);
        assert.equal(direct.split(' ')[0], written, `${f.name}: sha256 read with O_DIRECT from the memory fs`);
      }
      const out = sh('fio', ['--name=mem-verify', `--directory=${m.mountpoint}`, '--rw=randwrite', '--bs=4k', '--size=16m', '--ioengine=psync', '--verify=crc32c', '--do_verify=1', '--verify_fatal=1', '--verify_state_save=0', '--output-format=json'], { cwd: base });
      const job = (JSON.parse(out.slice(out.indexOf('{'))) as { jobs: { error: number; read: { io_bytes: number } }[] }).jobs[0]!;
      assert.equal(job.error, 0);
      assert.equal(job.read.io_bytes, 16 * MiB);
    });
  });

  test('one 1 GiB file: sha256 equal on the host and read back through the mount', { timeout: 240_000 }, async () => {
    const size = 1024 * MiB;
    const name = 'big-1GiB';
    const { written, through } = await withMount({ sharedDir: share, cache: 'never' }, (m) => {
      const written = writeRandomFile(join(m.mountpoint, name), size, MiB);
      return { written, through: sha256File(join(m.mountpoint, name)) };
    });
    const host = sha256File(join(share, name));
    rmSync(join(share, name));
    assert.equal(host.size, size);
    assert.equal(host.sha, written, 'host copy differs from what was written through the mount');
    assert.equal(through.size, size);
    assert.equal(through.sha, written, 'read back through the mount differs');
  });

  test('tar of /usr/include/linux extracted into the mount compares equal (diff -r, tar --compare)', async () => {
    const src = '/usr/include/linux';
    assert.ok(existsSync(src), `${src} is missing: install linux-libc-dev (pulled in by gcc)`);
    const archive = join(base, 'linux-headers.tar');
    sh('tar', ['-C', '/usr/include', '-cf', archive, 'linux']);
    await withMount({ sharedDir: share, cache: 'auto' }, (m) => {
      const dest = join(m.mountpoint, 'tree');
      mkdirSync(dest);
      sh('tar', ['-C', dest, '-xpf', archive]);
      sh('diff', ['-r', '--no-dereference', src, join(dest, 'linux')]);
      // --compare also checks mode, owner, mtime and size of every member.
      sh('tar', ['-C', dest, '--compare', '-f', archive]);
    });
    // And the host copy is the same tree.
    sh('diff', ['-r', '--no-dereference', src, join(share, 'tree', 'linux')]);
  });

  test('git init / add / commit / log / fsck inside the mount', async () => {
    const env = {
      ...process.env,
      HOME: base,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_AUTHOR_NAME: 'Test',
      GIT_AUTHOR_EMAIL: 'test@example.invalid',
      GIT_COMMITTER_NAME: 'Test',
      GIT_COMMITTER_EMAIL: 'test@example.invalid',
    };
    const log = await withMount({ sharedDir: share, cache: 'auto' }, (m) => {
      const repo = join(m.mountpoint, 'repo');
      mkdirSync(repo);
      const git = (...args: string[]) => sh('git', ['-c', 'init.defaultBranch=main', '-c', 'safe.directory=*', ...args], { cwd: repo, env, timeout: 60_000 });
      git('init', '-q');
      sh('cp', ['-r', '/usr/include/linux/netfilter', join(repo, 'netfilter')]);
      git('add', '-A');
      git('commit', '-q', '-m', 'first: a copy of linux/netfilter headers');
      sh('sh', ['-c', 'echo change >> netfilter/x_tables.h && git mv netfilter/xt_set.h netfilter/xt_set_renamed.h'], { cwd: repo, env, timeout: 60_000 });
      git('commit', '-q', '-am', 'second: edit and rename');
      const log = git('log', '--format=%s');
      assert.equal(log, 'second: edit and rename\nfirst: a copy of linux/netfilter headers\n');
      git('fsck', '--full', '--strict');
      assert.equal(git('status', '--porcelain'), '');
      return log;
    });
    // The repository is a valid git repository on the host side too.
    const hostLog = sh('git', ['-c', 'safe.directory=*', 'log', '--format=%s'], { cwd: join(share, 'repo'), env });
    assert.equal(hostLog, log);
  });

  test('fio --verify=crc32c: sequential and random writes verified by fio', async () => {
    await withMount({ sharedDir: share, cache: 'auto' }, (m) => {
      const dir = join(m.mountpoint, 'fio');
      mkdirSync(dir);
      for (const [rw, bs] of [
        ['write', '128k'],
        ['randwrite', '4k'],
      ] as const) {
        const out = sh(
          'fio',
          [
            `--name=verify-${rw}`,
            `--directory=${dir}`,
            `--rw=${rw}`,
            `--bs=${bs}`,
            '--size=32m',
            '--ioengine=psync',
            '--verify=crc32c',
            '--do_verify=1',
            '--verify_fatal=1',
            '--verify_state_save=0',
            '--output-format=json',
          ],
          { timeout: 180_000, cwd: base },
        );
        const job = (JSON.parse(out.slice(out.indexOf('{'))) as { jobs: { error: number; write: { io_bytes: number }; read: { io_bytes: number } }[] }).jobs[0]!;
        assert.equal(job.error, 0, `fio ${rw} reported error ${job.error}`);
        assert.equal(job.write.io_bytes, 32 * MiB, `fio ${rw} wrote everything`);
        assert.equal(job.read.io_bytes, 32 * MiB, `fio ${rw} read everything back to verify`);
      }
    });
  });
});

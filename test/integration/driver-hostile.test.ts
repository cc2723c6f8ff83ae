// Failure and hostility around the driver, with real peers:
// - a backend killed in the middle of requests: every pending call rejects
//   (ENOTCONN), nothing hangs, later calls fail at once;
// - a backend that stops answering (SIGSTOP): calls time out with ETIMEDOUT;
// - a hostile guest seen from our daemon, through the raw client: '..' from
//   the root, '/' and NUL inside names, names over 255 bytes, lookups under a
//   file or a symlink's node, nodeids and fhs never handed out: an errno each,
//   and nothing outside the shared directory is ever reached.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { connectVirtioFs } from '../../src/driver/session.ts';
import { startServe } from '../support/serve-daemon.ts';

const root = mkdtempSync(join(tmpdir(), 'drv-hostile-'));
const kills: (() => void)[] = [];
after(() => {
  for (const k of kills) k();
  rmSync(root, { recursive: true, force: true });
});

/** True when every thread of `pid` is in the stopped state (T). */
function isStopped(pid: number): boolean {
  const tasks = readdirSync(`/proc/${pid}/task`);
  return tasks.every((t) => readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8').split(') ')[1]!.startsWith('T'));
}

function share(name: string): string {
  const d = join(root, name);
  mkdirSync(d);
  writeFileSync(join(d, 'big.bin'), randomBytes(8 * 1024 * 1024));
  writeFileSync(join(d, 'a.txt'), 'inside');
  return d;
}

test('a backend killed mid-request rejects every pending call, and later calls at once', { timeout: 30_000 }, async () => {
  const dir = share('killed');
  const sock = join(root, 'killed.sock');
  const d = await startServe(['--socket-path', sock, '--shared-dir', dir], sock);
  kills.push(d.kill);
  const s = await connectVirtioFs({ socketPath: sock, requestTimeoutMs: 60_000 });
  const calls = Array.from({ length: 40 }, () => s.fs.readFile('/big.bin'));
  setTimeout(() => d.child.kill('SIGKILL'), 30);
  const t0 = Date.now();
  const results = await Promise.allSettled(calls);
  assert.ok(Date.now() - t0 < 10_000, 'pending calls settled promptly, not at their 60 s timeout');
  const rejected = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
  assert.ok(rejected.length > 0, 'the kill happened while calls were pending');
  for (const r of rejected) assert.equal((r.reason as { code?: string }).code, 'ENOTCONN', String(r.reason));
  for (const r of results) if (r.status === 'fulfilled') assert.equal((r.value as Buffer).length, 8 * 1024 * 1024);
  await assert.rejects(s.fs.stat('/a.txt'), { code: 'ENOTCONN' });
  await s.close();
});

test('a backend that stops answering: calls fail with ETIMEDOUT, not hang', { timeout: 30_000 }, async () => {
  const dir = share('stopped');
  const sock = join(root, 'stopped.sock');
  const d = await startServe(['--socket-path', sock, '--shared-dir', dir], sock);
  kills.push(d.kill);
  const s = await connectVirtioFs({ socketPath: sock, requestTimeoutMs: 500 });
  assert.equal(await s.fs.readFile('/a.txt', 'utf8'), 'inside');
  d.child.kill('SIGSTOP');
  // kill(2) returns before every thread of the daemon has stopped: a worker
  // that is already running could still answer. Wait for the group stop.
  for (let i = 0; i < 200 && !isStopped(d.child.pid!); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(isStopped(d.child.pid!), 'the daemon is stopped');
  try {
    const t0 = Date.now();
    await assert.rejects(s.client.getattr(1), { code: 'ETIMEDOUT' });
    assert.ok(Date.now() - t0 < 3000);
  } finally {
    d.child.kill('SIGCONT');
  }
  // The late reply is dropped; the session keeps working.
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(await s.fs.readFile('/a.txt', 'utf8'), 'inside');
  await s.close();
});

test('hostile guest through the raw client: each attempt gets an errno, nothing outside is reached', { timeout: 30_000 }, async () => {
  const dir = share('guest');
  writeFileSync(join(root, 'outside.txt'), 'OUTSIDE');
  symlinkSync('/', join(dir, 'to-root'));
  symlinkSync('../outside.txt', join(dir, 'to-outside'));
  const sock = join(root, 'guest.sock');
  const d = await startServe(['--socket-path', sock, '--shared-dir', dir], sock);
  kills.push(d.kill);
  const s = await connectVirtioFs({ socketPath: sock, requestTimeoutMs: 5000 });
  const c = s.client;
  const code = async (p: Promise<unknown>) => {
    try {
      return { ok: await p };
    } catch (err) {
      return { err: (err as { code: string }).code };
    }
  };
  const rootIno = lstatSync(dir).ino;

  // '..' and '.' from the root must not climb out (an errno, or at most the root itself).
  for (const n of ['..', '.']) {
    const r = await code(c.lookup(1, n));
    if ('ok' in r) assert.equal((r.ok as { attr: { ino: number } }).attr.ino, rootIno, `${n} from the root left the share`);
    else assert.match(r.err, /^E/);
  }
  // A name with '/' is not a path.
  assert.deepEqual(await code(c.lookup(1, '../outside.txt')), { err: 'EINVAL' });
  assert.deepEqual(await code(c.lookup(1, 'to-root/etc')), { err: 'EINVAL' });
  // Over 255 bytes.
  assert.deepEqual(await code(c.lookup(1, 'x'.repeat(256))), { err: 'ENAMETOOLONG' });
  // A NUL inside a name: the name ends there (C string), so at most the prefix's own node.
  const nul = await code(c.lookup(1, Buffer.from('a.txt\0../outside.txt')));
  if ('ok' in nul) assert.equal((nul.ok as { attr: { ino: number } }).attr.ino, lstatSync(join(dir, 'a.txt')).ino);
  else assert.match(nul.err, /^E/);
  // Lookups under a file and under a symlink's own node.
  const file = await c.lookup(1, 'a.txt');
  assert.deepEqual(await code(c.lookup(file.nodeid, 'x')), { err: 'ENOTDIR' });
  const link = await c.lookup(1, 'to-root');
  const under = await code(c.lookup(link.nodeid, 'etc'));
  assert.ok('err' in under, `lookup under a symlink node must fail, got ${JSON.stringify(under)}`);
  const outLink = await c.lookup(1, 'to-outside');
  assert.ok('err' in (await code(c.open(outLink.nodeid, 0))), 'opening a symlink node must fail (no following on the host)');
  // Nodeids and fhs never handed out.
  assert.ok('err' in (await code(c.getattr(987_654_321))));
  assert.ok('err' in (await code(c.lookup(987_654_321, 'a.txt'))));
  assert.deepEqual(await code(c.read(file.nodeid, 4242, 0, 10)), { err: 'EBADF' });
  assert.deepEqual(await code(c.write(file.nodeid, 4242, 0, Buffer.from('x'))), { err: 'EBADF' });
  assert.ok('err' in (await code(c.readdir(1, 777, 0))));
  // Still alive and still serving the right bytes; outside untouched.
  const o = await c.open(file.nodeid, 0);
  assert.equal((await c.read(file.nodeid, o.fh, 0, 100)).toString(), 'inside');
  await c.release(file.nodeid, o.fh);
  assert.equal(d.child.exitCode, null, 'daemon still running');
  await s.close();
});

test('a program that never closes its session exits once its work is done (idle watches do not hold the loop)', { timeout: 30_000 }, async () => {
  const dir = share('idle');
  const sock = join(root, 'idle.sock');
  const d = await startServe(['--socket-path', sock, '--shared-dir', dir], sock);
  kills.push(d.kill);
  const script = join(root, 'idle-client.mts'); // .mts: ESM outside the package
  const session = new URL('../../src/driver/session.ts', import.meta.url).pathname;
  writeFileSync(script, `import { connectVirtioFs } from '${session}';\nconst s = await connectVirtioFs({ socketPath: process.argv[2] });\nsetTimeout(async () => console.log(await s.fs.readFile('/a.txt', 'utf8')), 200);\n`);
  const { spawn } = await import('node:child_process');
  const c = spawn(process.execPath, ['--import', 'tsx', script, sock], { cwd: new URL('../..', import.meta.url).pathname, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  c.stdout.on('data', (b: Buffer) => (out += b));
  c.stderr.on('data', (b: Buffer) => (out += b));
  const code = await new Promise<number | null>((r) => {
    const t = setTimeout(() => { c.kill('SIGKILL'); r(-1); }, 20_000);
    c.on('exit', (x) => { clearTimeout(t); r(x); });
  });
  assert.equal(code, 0, `the client should exit by itself: ${out}`);
  assert.equal(out.trim(), 'inside');
  assert.equal(await d.exited, 0, 'the daemon saw the frontend leave');
});

// listenUnix against the real kernel: the socket path must never exist while
// it does not accept (a frontend polling for the file would get
// ECONNREFUSED), a stale socket is replaced, a non-socket is left alone.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as nfs from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeSocket, connectUnix, listenUnix } from '../../../src/sys/unix-socket.ts';
import { SysError } from '../../../src/sys/errors.ts';

const E = constants.errno;
let dir = '';
before(() => {
  dir = nfs.mkdtempSync(join(tmpdir(), 'vfs-unix-'));
});
after(() => nfs.rmSync(dir, { recursive: true, force: true }));

const LISTENER = new URL('./unix-socket-listener.ts', import.meta.url).pathname;

test('the socket path appears only once it accepts: a client polling it never sees ECONNREFUSED (listen() delayed 1 s by strace)', { timeout: 60_000 }, async () => {
  const strace = spawnSync('strace', ['-V'], { encoding: 'utf8' });
  assert.equal(strace.status, 0, 'strace is needed for this test (apt-get install strace; it is in .ci/run)');
  const sock = join(dir, 'race.sock');
  const log = join(dir, 'strace.log');
  // strace holds every listen() for 1 s (delay in microseconds): without the
  // bind-to-a-temporary-name-then-rename order the path would exist, refusing, all that time.
  const child = spawn('strace', ['-f', '-qq', '-o', log, '-e', 'trace=listen', '-e', 'inject=listen:delay_enter=1000000',
    process.execPath, '--import', 'tsx', LISTENER, sock], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const seen = new Map<string, number>();
  let connected = false;
  const deadline = Date.now() + 30_000;
  try {
    while (Date.now() < deadline && child.exitCode === null) {
      try {
        const fd = connectUnix(sock);
        closeSocket(fd);
        connected = true;
        break;
      } catch (e) {
        assert.ok(e instanceof SysError, String(e));
        const name = Object.entries(E).find(([, v]) => v === e.errno)?.[0] ?? String(e.errno);
        seen.set(name, (seen.get(name) ?? 0) + 1);
      }
      await sleep(1);
    }
  } finally {
    if (!connected) child.kill();
  }
  const code = await exited;
  assert.ok(connected, `never connected; errors ${JSON.stringify([...seen])}; child stdout ${out} stderr ${err}`);
  assert.equal(code, 0, err);
  assert.match(nfs.readFileSync(log, 'utf8'), /listen\([^]*DELAYED/, 'strace delayed listen()');
  assert.equal(seen.get('ECONNREFUSED'), undefined, `connect attempts while the path existed but did not listen: ${JSON.stringify([...seen])}`);
  assert.ok((seen.get('ENOENT') ?? 0) > 0, 'the client polled before the socket was there');
  assert.deepEqual(nfs.readdirSync(dir).filter((n) => n.startsWith('.')), [], 'no temporary socket name left behind');
});

test('a stale socket file at the path is replaced; the new socket accepts; nothing else is left in the directory', () => {
  const sock = join(dir, 'stale.sock');
  const first = listenUnix(sock);
  closeSocket(first); // the file stays, nothing listens: a stale socket
  assert.ok(nfs.lstatSync(sock).isSocket());
  assert.throws(() => connectUnix(sock), (e: unknown) => e instanceof SysError && e.errno === E.ECONNREFUSED);
  const fd = listenUnix(sock);
  const c = connectUnix(sock);
  closeSocket(c);
  closeSocket(fd);
  assert.deepEqual(nfs.readdirSync(dir).filter((n) => n.startsWith('.vu')), []);
  nfs.unlinkSync(sock);
});

test('a regular file or a directory at the path is refused with EEXIST and left as it was', () => {
  const file = join(dir, 'not-a-socket');
  nfs.writeFileSync(file, 'precious');
  assert.throws(() => listenUnix(file), (e: unknown) => e instanceof SysError && e.errno === E.EEXIST);
  assert.equal(nfs.readFileSync(file, 'utf8'), 'precious');
  const sub = join(dir, 'a-dir');
  nfs.mkdirSync(sub);
  assert.throws(() => listenUnix(sub), (e: unknown) => e instanceof SysError && e.errno === E.EEXIST);
  assert.ok(nfs.statSync(sub).isDirectory());
  assert.deepEqual(nfs.readdirSync(dir).filter((n) => n.startsWith('.vu')), [], 'no temporary socket left behind');
});

test('a missing directory fails with ENOENT, a too-long path with ENAMETOOLONG; no fd leaks', () => {
  const before = nfs.readdirSync('/proc/self/fd').length;
  assert.throws(() => listenUnix(join(dir, 'no', 'such', 'x.sock')), (e: unknown) => e instanceof SysError && e.errno === E.ENOENT);
  assert.throws(() => listenUnix(join(dir, 'x'.repeat(120))), (e: unknown) => e instanceof SysError && e.errno === E.ENAMETOOLONG);
  assert.equal(nfs.readdirSync('/proc/self/fd').length, before);
});

test('a relative path and a path too close to the 107-byte limit for a temporary name both work', () => {
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    const fd = listenUnix('rel.sock');
    closeSocket(connectUnix(join(dir, 'rel.sock')));
    closeSocket(fd);
  } finally {
    process.chdir(cwd);
  }
  // dir + '/' + name = 107 bytes: the temporary name would not fit, bind() happens in place.
  const long = join(dir, 'y'.repeat(Math.max(1, 107 - dir.length - 1)));
  assert.equal(Buffer.byteLength(long), 107);
  const fd = listenUnix(long);
  closeSocket(connectUnix(long));
  closeSocket(fd);
});

// `virtiofs-ts client` and `virtiofs-ts boot` as a user runs them (the real
// bin, a real `virtiofs-ts serve` backend per run, since a backend serves one
// frontend like one VM).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startServe } from '../support/serve-daemon.ts';

const BIN = new URL('../../bin/virtiofs-ts.js', import.meta.url).pathname;
const EXAMPLE = new URL('../../examples/static-server', import.meta.url).pathname;
const root = mkdtempSync(join(tmpdir(), 'drv-cli-'));
const kills: (() => void)[] = [];
after(() => {
  for (const k of kills) k();
  rmSync(root, { recursive: true, force: true });
});

function cli(args: string[]): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    c.stdout.on('data', (d: Buffer) => out.push(d));
    c.stderr.on('data', (d: Buffer) => (err += d));
    c.on('exit', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
  });
}

let n = 0;
async function client(share: string, ...args: string[]) {
  const sock = join(root, `c${n++}.sock`);
  const d = await startServe(['--socket-path', sock, '--shared-dir', share], sock);
  kills.push(d.kill);
  const r = await cli(['client', '--socket', sock, ...args]);
  d.kill();
  return r;
}

test('client: put, ls, stat, cat through the driver; clear errors', { timeout: 60_000 }, async () => {
  const share = mkdtempSync(join(root, 'share-'));
  const local = join(root, 'local.bin');
  const data = randomBytes(2 * 1024 * 1024 + 5);
  writeFileSync(local, data);
  let r = await client(share, 'put', local, '/up.bin');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readFileSync(join(share, 'up.bin')), data);
  r = await client(share, 'ls', '/');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout.toString(), /^-0644\s+2097157 up\.bin$/m);
  r = await client(share, 'stat', '/up.bin');
  assert.equal(JSON.parse(r.stdout.toString()).size, data.length);
  r = await client(share, 'cat', '/up.bin');
  assert.deepEqual(r.stdout, data);
  r = await client(share, 'cat', '/missing');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /ENOENT.*'\/missing'/);
  r = await cli(['client', '--socket', join(root, 'x.sock'), 'frob']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown client command 'frob'/);
  r = await cli(['client', '--socket', join(root, 'nobody.sock'), 'ls']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot connect to .*nobody\.sock/);
});

test('boot: the example static server runs from the virtio-fs root and serves files through the driver', { timeout: 60_000 }, async () => {
  const share = join(root, 'app');
  cpSync(EXAMPLE, share, { recursive: true });
  const big = randomBytes(3 * 1024 * 1024 + 11);
  writeFileSync(join(share, 'public', 'big.bin'), big);
  const sock = join(root, 'boot.sock');
  const d = await startServe(['--socket-path', sock, '--shared-dir', share], sock);
  kills.push(d.kill);
  const app = spawn(process.execPath, [BIN, 'boot', '--socket', sock, '--entry', '/main.js'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PORT: '0' } });
  kills.push(() => app.kill('SIGKILL'));
  let out = '';
  let err = '';
  app.stderr.on('data', (b: Buffer) => (err += b));
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`app did not start: ${out}${err}`)), 30_000);
    app.stdout.on('data', (b: Buffer) => {
      out += b;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    app.on('exit', () => reject(new Error(`app exited: ${out}${err}`)));
  });
  // config.json (a JSON module) and lib/mime.js came through the driver too.
  const index = await fetch(`${url}/`);
  assert.equal(index.status, 200);
  assert.equal(index.headers.get('server'), 'virtiofs-ts-static');
  assert.equal(await index.text(), readFileSync(join(share, 'public', 'index.html'), 'utf8'));
  const b = await fetch(`${url}/big.bin`);
  assert.equal(b.headers.get('content-type'), 'application/octet-stream');
  assert.deepEqual(Buffer.from(await b.arrayBuffer()), big);
  assert.equal((await fetch(`${url}/nope.txt`)).status, 404);
  // A file changed on the host is served changed (no rebuild, no restart).
  writeFileSync(join(share, 'public', 'new.txt'), 'added on the host');
  assert.equal(await (await fetch(`${url}/new.txt`)).text(), 'added on the host');
  app.kill('SIGTERM');
  const code = await new Promise<number | null>((r) => app.on('exit', (c) => r(c)));
  assert.equal(code, 143);
  assert.equal(await d.exited, 0, d.log());
});

test('boot: a missing entry is a clear error', { timeout: 30_000 }, async () => {
  const share = mkdtempSync(join(root, 'empty-'));
  const sock = join(root, 'boot2.sock');
  const d = await startServe(['--socket-path', sock, '--shared-dir', share], sock);
  kills.push(d.kill);
  const r = await cli(['boot', '--socket', sock, '--entry', '/main.js']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /booting \/main\.js failed: .*ENOENT/);
  const u = await cli(['boot', '--socket', sock, '--entry', 'main.js']);
  assert.equal(u.code, 2);
});

test('boot: an app that finishes ends the process with its exit code, as `node main.js` would; the trace names each start-up phase', { timeout: 60_000 }, async () => {
  const share = mkdtempSync(join(root, 'oneshot-'));
  writeFileSync(join(share, 'main.js'), 'import data from "./lib/data.json" with { type: "json" };\nconsole.log(`one-shot ${data.v}`);\nprocess.exitCode = 3;\n');
  mkdirSync(join(share, 'lib'));
  writeFileSync(join(share, 'lib', 'data.json'), '{"v":42}\n');
  const sock = join(root, 'boot3.sock');
  const d = await startServe(['--socket-path', sock, '--shared-dir', share], sock);
  kills.push(d.kill);
  const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const c = spawn(process.execPath, [BIN, 'boot', '--socket', sock, '--entry', '/main.js'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VIRTIOFS_TS_BOOT_TRACE: '1' } });
    let out = '';
    let err = '';
    c.stdout.on('data', (b: Buffer) => (out += b));
    c.stderr.on('data', (b: Buffer) => (err += b));
    c.on('exit', (code) => resolve({ code, stdout: out, stderr: err }));
  });
  assert.equal(r.stdout, 'one-shot 42\n');
  assert.equal(r.code, 3, r.stderr);
  for (const phase of ['CLI loaded', 'connected', 'module hooks registered', 'app imported']) assert.match(r.stderr, new RegExp(`boot: [\\d.]+ ms ${phase}`), r.stderr);
  assert.equal(await d.exited, 0, d.log());
});

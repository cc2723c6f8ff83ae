// The newer peers (src/guest/peers.ts) fetched for real from the Debian
// archive the system's apt uses: QEMU 11.1 and Rust virtiofsd 1.14 start
// through their private loader and report the versions their packages carry;
// the system's apt and dpkg state are left alone; a second call is instant;
// a fetch that cannot work fails with a message naming the step. The first
// run on a fresh machine downloads ~45 MB (about 2.5 minutes here).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureNewQemu, ensureRustVirtiofsd, findDebianArchive, parseAptSources, PeerFetchError, type PeerLaunch } from '../../src/guest/peers.ts';

const dir = mkdtempSync(join(tmpdir(), 'peers-fetch-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const FETCH_TIMEOUT = 15 * 60_000;
const lines: string[] = [];
const progress = (l: string) => {
  lines.push(l);
  process.stderr.write(`[peers] ${l}\n`);
};

function versionOf(p: PeerLaunch): string {
  const r = spawnSync(p.argvPrefix[0]!, [...p.argvPrefix.slice(1), '--version'], { env: { ...process.env, ...p.env }, encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, `--version through the private loader failed:\n${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}

const atLeast = (v: string, major: number, minor: number) => {
  const [a, b] = v.split('.').map(Number);
  return a! > major || (a === major && b! >= minor);
};

// What the system had before: the tests below must leave it exactly so.
const aptFiles = () =>
  ['/etc/apt/sources.list', ...readdirSafe('/etc/apt/sources.list.d').map((f) => join('/etc/apt/sources.list.d', f))]
    .map((f) => {
      try {
        return `${f}\n${readFileSync(f, 'utf8')}`;
      } catch {
        return `${f} (none)`;
      }
    })
    .join('\n');
function readdirSafe(d: string): string[] {
  try {
    return readdirSync(d).sort();
  } catch {
    return [];
  }
}
const systemQemu = () => execFileSync('dpkg-query', ['-W', '-f=${Version}', 'qemu-system-x86'], { encoding: 'utf8' });
const aptBefore = aptFiles();
const qemuBefore = systemQemu();

test('QEMU from trixie-backports runs through its own loader and says 11.1 or newer (the version its package carries)', { timeout: FETCH_TIMEOUT }, async () => {
  const q = await ensureNewQemu({ progress });
  const out = versionOf(q);
  const m = /QEMU emulator version (\d+\.\d+\.\d+) \(Debian ([^)]+)\)/.exec(out);
  assert.ok(m, `unexpected --version output:\n${out}`);
  assert.equal(m[1], q.version);
  // The private binary, not the system's 7.2: its banner names the backports package version.
  assert.equal(m[2], q.debianVersion);
  assert.ok(atLeast(q.version, 11, 1), `QEMU ${q.version} from ${q.suite}: the DAX window needs 11.1 or newer`);
  assert.ok(q.env.QEMU_MODULE_DIR?.startsWith(q.root), 'QEMU must load its own modules, not the system\'s');
  process.stderr.write(`[peers] QEMU ${q.version} (${q.debianVersion}): ${q.packages} packages, ${(q.debBytes / 1e6).toFixed(1)} MB, cold fetch took ${(q.fetchMs / 1000).toFixed(1)} s\n`);
});

test('Rust virtiofsd from sid runs through its own loader and says 1.14 or newer', { timeout: FETCH_TIMEOUT }, async () => {
  const v = await ensureRustVirtiofsd({ progress });
  const out = versionOf(v);
  const m = /virtiofsd (\d+\.\d+\.\d+)/.exec(out);
  assert.ok(m, `unexpected --version output:\n${out}`);
  assert.equal(m[1], v.version);
  assert.ok(v.debianVersion.startsWith(v.version), `package ${v.debianVersion} but binary says ${v.version}`);
  assert.ok(atLeast(v.version, 1, 14), `Rust virtiofsd ${v.version} from ${v.suite}: expected 1.14 or newer`);
  process.stderr.write(`[peers] virtiofsd ${v.version} (${v.debianVersion}): ${v.packages} packages, ${(v.debBytes / 1e6).toFixed(1)} MB, cold fetch took ${(v.fetchMs / 1000).toFixed(1)} s\n`);
});

test('a second call is served from the stamp: instant, no apt', { timeout: FETCH_TIMEOUT }, async () => {
  await ensureNewQemu({ progress });
  await ensureRustVirtiofsd({ progress });
  const before = lines.length;
  const t = performance.now();
  const q = await ensureNewQemu({ progress });
  const v = await ensureRustVirtiofsd({ progress });
  const ms = performance.now() - t;
  assert.equal(lines.length, before, `warm calls did apt work:\n${lines.slice(before).join('\n')}`);
  assert.ok(ms < 500, `warm calls took ${ms.toFixed(0)} ms`);
  assert.ok(q.version && v.version);
  process.stderr.write(`[peers] warm: both peers resolved in ${ms.toFixed(1)} ms\n`);
});

test('the system apt sources and dpkg state are untouched', () => {
  assert.equal(aptFiles(), aptBefore);
  assert.equal(systemQemu(), qemuBefore);
  assert.doesNotMatch(aptFiles(), /\b(trixie|sid)\b/, 'the newer suites must never be added to the system\'s apt');
});

test('an archive that cannot be reached fails with the apt step and the reason, and stamps nothing', { timeout: 120_000 }, async () => {
  const saved = { cache: process.env.VIRTIOFS_TS_PEERS_CACHE, archive: process.env.VIRTIOFS_TS_DEBIAN_ARCHIVE };
  const cache = join(dir, 'cache');
  process.env.VIRTIOFS_TS_PEERS_CACHE = cache;
  // A local path with no archive in it: apt fails at once, offline.
  process.env.VIRTIOFS_TS_DEBIAN_ARCHIVE = `file://${join(dir, 'no-archive-here')}`;
  try {
    await assert.rejects(ensureRustVirtiofsd({ progress: () => {} }), (e: unknown) => {
      assert.ok(e instanceof PeerFetchError, String(e));
      assert.match(e.message, /apt-get update of the private peer lists failed/);
      assert.match(e.message, /no-archive-here/);
      return true;
    });
    assert.deepEqual(readdirSafe(cache).filter((f) => f.endsWith('.json') || f.startsWith('virtiofsd-')), [], 'a failed fetch must leave no stamp or root');
    assert.deepEqual(readdirSafe(cache).filter((f) => f.startsWith('.')), [], 'no lock or temp dir left behind');
  } finally {
    for (const [k, v] of [['VIRTIOFS_TS_PEERS_CACHE', saved.cache], ['VIRTIOFS_TS_DEBIAN_ARCHIVE', saved.archive]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});

test('the archive is read from the system\'s apt sources, both formats', () => {
  const deb822 = [
    'Types: deb',
    '# a comment',
    'URIs: http://mirror.example/debian',
    'Suites: bookworm bookworm-updates',
    'Components: main contrib',
    'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg',
    '',
    'Types: deb',
    'URIs: http://mirror.example/debian-security',
    'Suites: bookworm-security',
    'Components: main',
    'Enabled: no',
  ].join('\n');
  const e = parseAptSources(deb822, 'x.sources');
  assert.equal(e.length, 1, 'Enabled: no must be dropped');
  assert.deepEqual(e[0]!.suites, ['bookworm', 'bookworm-updates']);
  assert.equal(e[0]!.uris[0], 'http://mirror.example/debian');
  assert.equal(e[0]!.signedBy, '/usr/share/keyrings/debian-archive-keyring.gpg');
  const oneLine = parseAptSources('# x\ndeb-src http://a/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://b/debian bookworm main\n', 'x.list');
  assert.deepEqual(oneLine.map((x) => [x.types[0], x.uris[0], x.signedBy]), [['deb-src', 'http://a/debian', undefined], ['deb', 'http://b/debian', '/k.gpg']]);

  // A tree with no Debian entry: a clear error naming the way out.
  const etc = join(dir, 'etc-apt');
  mkdirSync(join(etc, 'sources.list.d'), { recursive: true });
  writeFileSync(join(etc, 'sources.list.d', 'other.list'), 'deb https://packages.example/apt stable main\n');
  const saved = process.env.VIRTIOFS_TS_DEBIAN_ARCHIVE;
  delete process.env.VIRTIOFS_TS_DEBIAN_ARCHIVE;
  try {
    assert.throws(() => findDebianArchive(etc), (err: unknown) => err instanceof PeerFetchError && /VIRTIOFS_TS_DEBIAN_ARCHIVE/.test(err.message));
    // The real system: its archive is the one the peers come from.
    const real = findDebianArchive();
    assert.match(real.uri, /^(https?|file):/);
  } finally {
    if (saved !== undefined) process.env.VIRTIOFS_TS_DEBIAN_ARCHIVE = saved;
  }
});

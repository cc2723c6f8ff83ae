// Layer: guest tooling (host side). Imports node:* and src/guest/* only.
// Fetches the newer peers our daemon is tested against and that bookworm does
// not ship: QEMU 11.1 (trixie-backports: the first QEMU whose generic
// vhost-user device gives a guest a DAX window) and Rust virtiofsd 1.14 (sid:
// the daemon people deploy). Everything comes from the Debian archive the
// system's apt already uses (read from /etc/apt/sources.list* at run time),
// through a PRIVATE apt state (lists, status, cache, sources, preferences
// under the cache dir), so the system's apt sources and dpkg state are never
// touched. Each peer's dependency closure is unpacked with `dpkg-deb -x` into
// its own root and started through that root's own dynamic loader (the
// binaries need a newer glibc than bookworm's).
//
// Cache: `.cache/peers/` at the project root (override VIRTIOFS_TS_PEERS_CACHE).
// A JSON stamp per peer makes later calls instant and offline. Suites can be
// changed with VIRTIOFS_TS_QEMU_SUITE / VIRTIOFS_TS_VIRTIOFSD_SUITE, the
// archive with VIRTIOFS_TS_DEBIAN_ARCHIVE ("URI" or "URI signed-by=KEYRING").
//
// CLI: `node --import tsx src/guest/peers.ts [qemu] [virtiofsd]` fetches and
// prints how to launch each one.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { findExecutable, GuestSetupError, type Progress } from './assets.ts';
import type { QemuCommand } from './qemu.ts';
import { spawnSocketDaemon, type SocketDaemon } from './virtiofsd.ts';

/** A peer could not be fetched or started. The message says which step failed and why. */
export class PeerFetchError extends GuestSetupError {
  override name = 'PeerFetchError';
}

/** Default progress sink: one line per step on stderr. */
export const peersProgress: Progress = (line) => process.stderr.write(`[peers] ${line}\n`);

/** How to start a fetched peer: `argvPrefix[0]` is the loader, the rest go before the caller's own arguments. */
export interface PeerLaunch {
  /** Upstream version the binary itself reports with --version, e.g. "11.1.3" or "1.14.0". */
  version: string;
  /** Debian package version, e.g. "1:11.1.3+ds-1~bpo13+1". */
  debianVersion: string;
  /** The suite it came from, e.g. "trixie-backports". */
  suite: string;
  /** The private root everything was unpacked into. */
  root: string;
  /** The program inside root (what the loader runs). */
  binary: string;
  /** [loader, --argv0, NAME, --library-path, DIRS, binary, ...fixed args]: append your own arguments. */
  argvPrefix: string[];
  /** Environment the peer needs on top of process.env (QEMU_MODULE_DIR for QEMU). */
  env: Record<string, string>;
  /** How long the cold fetch took when it happened (recorded in the stamp). */
  fetchMs: number;
  /** How many Debian packages the root holds, and their total .deb size. */
  packages: number;
  debBytes: number;
}

interface PeerSpec {
  key: 'qemu' | 'virtiofsd';
  /** The package to resolve the closure of. */
  package: string;
  suiteEnv: string;
  defaultSuite: string;
  /** Where the program lives inside root (first existing wins). */
  binaries: string[];
  argv0: string;
  /** Parses the upstream version out of `--version` output. */
  versionPattern: RegExp;
  fixedArgs(root: string): string[];
  env(root: string): Record<string, string>;
}

const MULTIARCH = 'usr/lib/x86_64-linux-gnu';

const QEMU: PeerSpec = {
  key: 'qemu',
  package: 'qemu-system-x86',
  suiteEnv: 'VIRTIOFS_TS_QEMU_SUITE',
  defaultSuite: 'trixie-backports',
  binaries: ['usr/bin/qemu-system-x86_64'],
  argv0: 'qemu-system-x86_64',
  versionPattern: /QEMU emulator version (\d+\.\d+\.\d+)/,
  // Run through the loader, QEMU's exec dir is the loader's, so its relative
  // data dirs are wrong: name them (firmware and option ROMs).
  fixedArgs: (root) => ['-L', join(root, 'usr/share/qemu'), '-L', join(root, 'usr/share/seabios'), '-L', join(root, 'usr/lib/ipxe/qemu')],
  // Without it the new binary loads the system QEMU's modules and asserts.
  env: (root) => ({ QEMU_MODULE_DIR: join(root, MULTIARCH, 'qemu') }),
};

const VIRTIOFSD: PeerSpec = {
  key: 'virtiofsd',
  package: 'virtiofsd',
  suiteEnv: 'VIRTIOFS_TS_VIRTIOFSD_SUITE',
  defaultSuite: 'sid',
  binaries: ['usr/libexec/virtiofsd', 'usr/lib/qemu/virtiofsd', 'usr/bin/virtiofsd'],
  argv0: 'virtiofsd',
  versionPattern: /virtiofsd (\d+\.\d+\.\d+)/,
  fixedArgs: () => [],
  env: () => ({}),
};

/** The newest QEMU Debian has (11.1 from trixie-backports), fetched on first use. */
export function ensureNewQemu(options: { progress?: Progress } = {}): Promise<PeerLaunch> {
  return ensurePeer(QEMU, options.progress ?? peersProgress);
}

/** Rust virtiofsd (1.14 from sid), fetched on first use. */
export function ensureRustVirtiofsd(options: { progress?: Progress } = {}): Promise<PeerLaunch> {
  return ensurePeer(VIRTIOFSD, options.progress ?? peersProgress);
}

/** A fetched QEMU in the shape runInGuest's `qemu` option takes. */
export function qemuCommandOf(p: PeerLaunch): QemuCommand {
  const [file, ...prefixArgs] = p.argvPrefix;
  return { file: file!, prefixArgs, env: p.env };
}

/**
 * The `-device` value for QEMU 11.1's generic vhost-user device acting as
 * virtio-fs (virtio id 26): hiprio + one request queue, and the 40-byte fs
 * config (tag[36] + le32 num_request_queues) that the BACKEND serves, so the
 * daemon must be given the tag (e.g. Rust virtiofsd --tag). With a backend
 * that offers SHMEM this device carries the DAX window.
 */
export function genericFsDevice(chardev = 'vfts0', queueSize = 1024): string {
  return `vhost-user-test-device-pci,virtio-id=26,num_vqs=2,vq_size=${queueSize},config_size=40,chardev=${chardev}`;
}

export function peersCacheDir(): string {
  return process.env.VIRTIOFS_TS_PEERS_CACHE || fileURLToPath(new URL('../../.cache/peers/', import.meta.url));
}

// ---------------------------------------------------------------------------
// Which archive: the one the system's apt already uses.

export interface AptSourceEntry {
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  signedBy?: string;
  file: string;
}

/** Parses one-line (`deb [opts] URI SUITE COMP...`) and deb822 (`.sources`) entries. */
export function parseAptSources(text: string, file: string): AptSourceEntry[] {
  const out: AptSourceEntry[] = [];
  if (file.endsWith('.sources')) {
    for (const stanza of text.split(/\n\s*\n/)) {
      const fields = new Map<string, string>();
      let last: string | undefined;
      for (const raw of stanza.split('\n')) {
        if (raw.startsWith('#')) continue;
        if (/^\s/.test(raw) && last) {
          fields.set(last, `${fields.get(last)}\n${raw.trim()}`);
          continue;
        }
        const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(raw);
        if (!m) continue;
        last = m[1]!.toLowerCase();
        fields.set(last, m[2]!.trim());
      }
      if ((fields.get('enabled') ?? 'yes').toLowerCase() === 'no') continue;
      const words = (k: string) => (fields.get(k) ?? '').split(/\s+/).filter(Boolean);
      if (!fields.has('uris')) continue;
      const signedBy = fields.get('signed-by');
      out.push({
        types: words('types'),
        uris: words('uris'),
        suites: words('suites'),
        components: words('components'),
        // An inline key block cannot be named on our one-line entry; only paths are kept.
        ...(signedBy && !signedBy.includes('\n') ? { signedBy } : {}),
        file,
      });
    }
    return out;
  }
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const m = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const opts = new Map((m[2] ?? '').split(/\s+/).filter(Boolean).map((o) => o.split('=') as [string, string]));
    const signedBy = opts.get('signed-by');
    out.push({ types: [m[1]!], uris: [m[3]!], suites: [m[4]!], components: (m[5] ?? '').split(/\s+/).filter(Boolean), ...(signedBy ? { signedBy } : {}), file });
  }
  return out;
}

const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
const SUITE_NAME = /^[a-z0-9][a-z0-9.-]*$/;

function systemCodename(): string | undefined {
  try {
    return /^VERSION_CODENAME=(.*)$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1]?.replace(/"/g, '').trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The Debian archive to fetch from: VIRTIOFS_TS_DEBIAN_ARCHIVE, else the
 * `deb` entry of the system's apt sources that serves the system's own
 * release (main component), else one signed by Debian's archive keyring.
 */
export function findDebianArchive(etcApt = '/etc/apt'): { uri: string; signedBy: string } {
  const env = process.env.VIRTIOFS_TS_DEBIAN_ARCHIVE;
  if (env) {
    const [uri, ...opts] = env.trim().split(/\s+/);
    const sb = opts.find((o) => o.startsWith('signed-by='))?.slice('signed-by='.length);
    return { uri: uri!, signedBy: sb ?? DEBIAN_KEYRING };
  }
  const files: string[] = [];
  if (existsSync(join(etcApt, 'sources.list'))) files.push(join(etcApt, 'sources.list'));
  const dir = join(etcApt, 'sources.list.d');
  if (existsSync(dir)) for (const f of readdirSync(dir).sort()) if (f.endsWith('.list') || f.endsWith('.sources')) files.push(join(dir, f));
  const entries = files.flatMap((f) => {
    try {
      return parseAptSources(readFileSync(f, 'utf8'), f);
    } catch {
      return [];
    }
  }).filter((e) => e.types.includes('deb') && e.uris.length > 0);
  const codename = systemCodename();
  const pick =
    (codename && entries.find((e) => e.suites.includes(codename) && e.components.includes('main'))) ||
    entries.find((e) => e.signedBy?.includes('debian-archive-keyring') && !e.suites.some((s) => s.endsWith('-security')));
  if (!pick) {
    throw new PeerFetchError(
      `no Debian archive found in ${etcApt}/sources.list* (looked for a 'deb' entry of ${codename ?? 'this release'} with 'main', or one signed by ${DEBIAN_KEYRING}); set VIRTIOFS_TS_DEBIAN_ARCHIVE="URI [signed-by=KEYRING]"`,
    );
  }
  return { uri: pick.uris[0]!, signedBy: pick.signedBy ?? DEBIAN_KEYRING };
}

// ---------------------------------------------------------------------------
// Private apt.

interface PrivateApt {
  dir: string;
  options: string[];
  archive: { uri: string; signedBy: string };
}

function privateApt(cache: string, suites: string[]): PrivateApt {
  const archive = findDebianArchive();
  if (!existsSync(archive.signedBy)) {
    throw new PeerFetchError(`keyring ${archive.signedBy} is missing: install it with \`apt-get install debian-archive-keyring\``);
  }
  const dir = join(cache, 'apt');
  for (const d of ['etc/sources.list.d', 'etc/preferences.d', 'state/lists/partial', 'cache/archives/partial']) mkdirSync(join(dir, d), { recursive: true });
  const status = join(dir, 'state/status');
  // An empty dpkg status: apt resolves the full closure as for an empty system.
  if (!existsSync(status)) writeFileSync(status, '');
  const all = [...new Set(['trixie', ...suites])];
  const bad = all.find((s) => !SUITE_NAME.test(s));
  if (bad !== undefined) throw new PeerFetchError(`'${bad}' is not a Debian suite name (check VIRTIOFS_TS_QEMU_SUITE / VIRTIOFS_TS_VIRTIOFSD_SUITE)`);
  const sources = all.map((s) => `deb [signed-by=${archive.signedBy}] ${archive.uri} ${s} main\n`).join('');
  const sourcesFile = join(dir, 'etc/sources.list');
  const old = existsSync(sourcesFile) ? readFileSync(sourcesFile, 'utf8') : '';
  if (old !== sources) {
    writeFileSync(sourcesFile, sources);
    rmSync(join(dir, 'updated'), { force: true });
  }
  // Everything but trixie only when asked for with -t, so a peer's closure
  // comes from its own suite where it must and from trixie elsewhere.
  writeFileSync(
    join(dir, 'etc/preferences'),
    all.filter((s) => s !== 'trixie' && !s.endsWith('-backports')).map((s) => `Package: *\nPin: release n=${s}\nPin-Priority: 50\n\n`).join(''),
  );
  const options = [
    `Dir::State=${join(dir, 'state')}`,
    `Dir::State::Lists=${join(dir, 'state/lists')}`,
    `Dir::State::status=${status}`,
    `Dir::Cache=${join(dir, 'cache')}`,
    // Container images often turn apt's binary cache off (docker-clean); with
    // it, each apt call after update skips re-parsing ~20 MB of lists.
    'Dir::Cache::pkgcache=pkgcache.bin',
    'Dir::Cache::srcpkgcache=srcpkgcache.bin',
    `Dir::Etc::SourceList=${sourcesFile}`,
    `Dir::Etc::SourceParts=${join(dir, 'etc/sources.list.d')}`,
    `Dir::Etc::Preferences=${join(dir, 'etc/preferences')}`,
    `Dir::Etc::PreferencesParts=${join(dir, 'etc/preferences.d')}`,
    'Acquire::Languages=none',
    'APT::Install-Recommends=false',
    // Our private dirs are not readable by the _apt sandbox user; we are the only reader anyway.
    ...(process.getuid?.() === 0 ? ['APT::Sandbox::User=root'] : []),
  ].flatMap((o) => ['-o', o]);
  return { dir, options, archive };
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(file, args, { cwd: opts.cwd, env: { ...process.env, LC_ALL: 'C', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      resolve({ code: null, stdout: '', stderr: (e as Error).message });
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 15 * 60_000);
    child.on('error', (e) => err.push(Buffer.from(`\n${e.message}`)));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/** The lines apt flags as errors or warnings, else the tail: what a person needs to see. */
function aptComplaint(r: RunResult): string {
  const text = `${r.stdout}\n${r.stderr}`;
  const flagged = text.split('\n').filter((l) => /^(E|W|Err):|unmet|Depends:|Unable|not found/i.test(l.trim()));
  return (flagged.length ? flagged : text.trim().split('\n').slice(-8)).join('\n').trim();
}

const LISTS_FRESH_MS = 6 * 3600_000;

async function aptUpdate(apt: PrivateApt, progress: Progress, force: boolean): Promise<void> {
  const stamp = join(apt.dir, 'updated');
  if (!force && existsSync(stamp) && Date.now() - statSync(stamp).mtimeMs < LISTS_FRESH_MS) return;
  const aptGet = requireTool('apt-get');
  progress(`apt-get update (private lists in ${apt.dir}, archive ${apt.archive.uri})`);
  const t = performance.now();
  const r = await run(aptGet, [...apt.options, 'update']);
  // apt-get update exits 0 even when a suite's index could not be fetched; it says so with W:/E: lines.
  const failed = r.code !== 0 || /^(E:|Err:)/m.test(r.stdout + r.stderr);
  if (failed) throw new PeerFetchError(`apt-get update of the private peer lists failed (archive ${apt.archive.uri}):\n${aptComplaint(r)}`);
  writeFileSync(stamp, `${new Date().toISOString()}\n`);
  progress(`  lists updated in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}

interface Resolved {
  name: string;
  version: string;
}

/** The packages an empty system would install for `pkg` from `suite`, without recommends. */
async function resolveClosure(apt: PrivateApt, spec: PeerSpec, suite: string): Promise<Resolved[]> {
  const r = await run(requireTool('apt-get'), [...apt.options, '-s', '-t', suite, 'install', spec.package]);
  const list: Resolved[] = [];
  for (const m of r.stdout.matchAll(/^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) /gm)) list.push({ name: m[1]!, version: m[2]! });
  if (r.code !== 0 || !list.some((p) => p.name === spec.package)) {
    throw new PeerFetchError(`cannot resolve ${spec.package} from ${suite} on ${apt.archive.uri} (set ${spec.suiteEnv} to use another suite):\n${aptComplaint(r)}`);
  }
  return list;
}

function requireTool(name: string): string {
  const p = findExecutable(name);
  if (!p) throw new PeerFetchError(`${name} not found: the peers are fetched with Debian's apt and dpkg (apt-get, dpkg-deb)`);
  return p;
}

// ---------------------------------------------------------------------------
// Fetch, unpack, stamp.

interface Stamp {
  package: string;
  debianVersion: string;
  version: string;
  suite: string;
  /** Relative to the cache dir, so the cache can move. */
  root: string;
  binary: string;
  packages: string[];
  debBytes: number;
  fetchMs: number;
  fetchedAt: string;
  archive: string;
}

function stampPath(cache: string, spec: PeerSpec): string {
  return join(cache, `${spec.key}.json`);
}

function readStamp(cache: string, spec: PeerSpec, suite: string): Stamp | undefined {
  try {
    const s = JSON.parse(readFileSync(stampPath(cache, spec), 'utf8')) as Stamp;
    if (s.suite !== suite || !existsSync(join(cache, s.root, s.binary))) return undefined;
    return s;
  } catch {
    return undefined;
  }
}

function launchOf(cache: string, spec: PeerSpec, s: Stamp): PeerLaunch {
  const root = join(cache, s.root);
  const libDirs = libraryDirs(root);
  return {
    version: s.version,
    debianVersion: s.debianVersion,
    suite: s.suite,
    root,
    binary: join(root, s.binary),
    argvPrefix: [join(root, MULTIARCH, 'ld-linux-x86-64.so.2'), '--argv0', spec.argv0, '--library-path', libDirs.join(':'), join(root, s.binary), ...spec.fixedArgs(root)],
    env: spec.env(root),
    fetchMs: s.fetchMs,
    packages: s.packages.length,
    debBytes: s.debBytes,
  };
}

/** The multiarch lib dir plus its subdirs that hold shared libraries (e.g. pulseaudio/). */
function libraryDirs(root: string): string[] {
  const base = join(root, MULTIARCH);
  const dirs = [base];
  for (const e of readdirSync(base, { withFileTypes: true })) {
    // qemu/ holds modules QEMU loads by path; gconv/ etc. hold plug-ins, not libraries.
    if (!e.isDirectory() || e.name === 'qemu' || e.name === 'gconv') continue;
    const d = join(base, e.name);
    if (readdirSync(d).some((f) => /^lib.*\.so(\.\d+)*$/.test(f))) dirs.push(d);
  }
  return dirs;
}

async function ensurePeer(spec: PeerSpec, progress: Progress): Promise<PeerLaunch> {
  const cache = peersCacheDir();
  const suite = process.env[spec.suiteEnv] || spec.defaultSuite;
  const cached = readStamp(cache, spec, suite);
  if (cached) return launchOf(cache, spec, cached);
  if (cache.includes(':')) throw new PeerFetchError(`the peers cache dir ${cache} contains ':', which the loader's --library-path cannot carry; set VIRTIOFS_TS_PEERS_CACHE`);
  mkdirSync(cache, { recursive: true });
  if (!SUITE_NAME.test(suite)) throw new PeerFetchError(`${spec.suiteEnv}='${suite}' is not a Debian suite name`);
  const release = await lock(cache, progress);
  try {
    const again = readStamp(cache, spec, suite); // someone else may have fetched it while we waited
    if (again) return launchOf(cache, spec, again);
    // Holding the lock, any temp dir is a leftover of a fetch that was killed.
    for (const f of readdirSync(cache)) if (f.startsWith('.tmp-')) rmSync(join(cache, f), { recursive: true, force: true });
    return launchOf(cache, spec, await fetchPeer(cache, spec, suite, progress));
  } finally {
    release();
  }
}

async function fetchPeer(cache: string, spec: PeerSpec, suite: string, progress: Progress): Promise<Stamp> {
  const t0 = performance.now();
  const apt = privateApt(cache, [QEMU, VIRTIOFSD].map((s) => process.env[s.suiteEnv] || s.defaultSuite));
  progress(`fetching ${spec.package} from ${suite} into ${cache} (first use; later calls reuse it)`);
  await aptUpdate(apt, progress, false);
  const tmp = mkdtempSync(join(cache, `.tmp-${spec.key}-`));
  try {
    let closure: Resolved[];
    const debs = join(tmp, 'debs');
    mkdirSync(debs);
    try {
      closure = await resolveAndDownload(apt, spec, suite, debs, progress);
    } catch (e) {
      // Stale lists name versions the archive has since dropped: refresh once and retry.
      if (!(e instanceof PeerFetchError)) throw e;
      progress(`${(e.message.split('\n')[0] ?? '').slice(0, 160)}; refreshing the private lists and retrying`);
      await aptUpdate(apt, progress, true);
      rmSync(debs, { recursive: true, force: true });
      mkdirSync(debs);
      closure = await resolveAndDownload(apt, spec, suite, debs, progress);
    }
    const files = readdirSync(debs).filter((f) => f.endsWith('.deb'));
    const debBytes = files.reduce((n, f) => n + statSync(join(debs, f)).size, 0);
    const main = closure.find((p) => p.name === spec.package)!;
    const rootName = `${spec.key}-${main.version.replace(/[^A-Za-z0-9.+~-]/g, '_')}`;
    const root = join(tmp, rootName);
    progress(`unpacking ${files.length} packages (dpkg-deb -x)`);
    const dpkgDeb = requireTool('dpkg-deb');
    const queue = [...files];
    // Two at a time: the machine has two cores and others use them.
    await Promise.all([0, 1].map(async () => {
      for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
        const r = await run(dpkgDeb, ['-x', join(debs, f), root]);
        if (r.code !== 0) throw new PeerFetchError(`dpkg-deb -x ${f} failed:\n${r.stderr.trim()}`);
      }
    }));
    rmSync(debs, { recursive: true, force: true });
    confineSymlinks(root);
    const binary = spec.binaries.find((b) => existsSync(join(root, b)));
    if (!binary) throw new PeerFetchError(`${spec.package} ${main.version} has none of ${spec.binaries.join(', ')}`);
    if (!existsSync(join(root, MULTIARCH, 'ld-linux-x86-64.so.2'))) throw new PeerFetchError(`the closure of ${spec.package} has no ${MULTIARCH}/ld-linux-x86-64.so.2 (libc6 missing?)`);

    const final = join(cache, rootName);
    rmSync(final, { recursive: true, force: true });
    renameSync(root, final);
    const stamp: Stamp = {
      package: spec.package,
      debianVersion: main.version,
      version: '',
      suite,
      root: rootName,
      binary,
      packages: closure.map((p) => `${p.name}=${p.version}`),
      debBytes,
      fetchMs: 0,
      fetchedAt: new Date().toISOString(),
      archive: apt.archive.uri,
    };
    // Prove it runs before stamping it: --version through the private loader.
    const launch = launchOf(cache, spec, stamp);
    const v = await run(launch.argvPrefix[0]!, [...launch.argvPrefix.slice(1), '--version'], { env: launch.env, timeoutMs: 30_000 });
    const m = spec.versionPattern.exec(v.stdout + v.stderr);
    if (v.code !== 0 || !m) {
      throw new PeerFetchError(`${spec.package} ${main.version} was unpacked into ${final} but \`--version\` through its loader failed (status ${v.code}):\n${(v.stdout + v.stderr).trim().slice(-2000)}`);
    }
    stamp.version = m[1]!;
    stamp.fetchMs = Math.round(performance.now() - t0);
    writeFileSync(stampPath(cache, spec), `${JSON.stringify(stamp, null, 2)}\n`);
    // apt's binary cache (~150 MB) only speeds up the next fetch: drop it once every peer is here.
    if ([QEMU, VIRTIOFSD].every((p) => readStamp(cache, p, process.env[p.suiteEnv] || p.defaultSuite))) {
      for (const f of ['pkgcache.bin', 'srcpkgcache.bin']) rmSync(join(apt.dir, 'cache', f), { force: true });
    }
    progress(`${spec.package} ${stamp.version} (${main.version}) ready in ${final}: ${closure.length} packages, ${(debBytes / 1e6).toFixed(1)} MB of .debs, ${(stamp.fetchMs / 1000).toFixed(1)} s`);
    return stamp;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function resolveAndDownload(apt: PrivateApt, spec: PeerSpec, suite: string, debs: string, progress: Progress): Promise<Resolved[]> {
  const closure = await resolveClosure(apt, spec, suite);
  const main = closure.find((p) => p.name === spec.package)!;
  progress(`${spec.package} ${main.version}: ${closure.length} packages in its closure; downloading (apt-get download)`);
  const t = performance.now();
  const r = await run(requireTool('apt-get'), [...apt.options, 'download', ...closure.map((p) => `${p.name}=${p.version}`)], { cwd: debs });
  const got = readdirSync(debs).filter((f) => f.endsWith('.deb')).length;
  if (r.code !== 0 || got !== closure.length) {
    throw new PeerFetchError(`apt-get download of ${spec.package}'s closure failed (${got} of ${closure.length} packages):\n${aptComplaint(r)}`);
  }
  progress(`  downloaded in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  return closure;
}

/**
 * Absolute symlinks in the packages point at the system's files (e.g. a
 * firmware link to /usr/share/seabios/...): re-point them inside root so the
 * peer never picks up the system's older copies.
 */
function confineSymlinks(root: string): void {
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isSymbolicLink()) {
        const target = readlinkSync(p);
        if (!target.startsWith('/')) continue;
        unlinkSync(p);
        symlinkSync(relative(dirname(p), join(root, target)) || '.', p);
      }
    }
  };
  walk(root);
}

/** One fetch at a time per cache dir (test files run two at a time). A lock left by a dead process is taken over. */
async function lock(cache: string, progress: Progress): Promise<() => void> {
  const dir = join(cache, '.lock');
  let told = false;
  for (;;) {
    try {
      mkdirSync(dir);
      writeFileSync(join(dir, 'pid'), `${process.pid}\n`);
      return () => rmSync(dir, { recursive: true, force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let holder = NaN;
    try {
      holder = Number(readFileSync(join(dir, 'pid'), 'utf8'));
    } catch {
      // Just created by someone else, pid not written yet.
    }
    if (Number.isInteger(holder) && !alive(holder)) {
      rmSync(dir, { recursive: true, force: true });
      continue;
    }
    if (!Number.isInteger(holder) && existsSync(dir) && Date.now() - lstatSync(dir).mtimeMs > 10_000) {
      rmSync(dir, { recursive: true, force: true });
      continue;
    }
    if (!told) progress(`waiting for process ${holder} to finish fetching into ${cache}`);
    told = true;
    await sleep(500);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// ---------------------------------------------------------------------------
// Rust virtiofsd as a running peer.

export interface RustVirtiofsdOptions {
  socketPath: string;
  sharedDir: string;
  cache?: 'never' | 'auto' | 'always';
  /** Serve the tag in the device's config space (what the generic vhost-user device needs). */
  tag?: string;
  /** More arguments, e.g. ["--xattr"]. */
  extraArgs?: string[];
  /** How long to wait for the socket to appear; default 10 s. */
  startTimeoutMs?: number;
  progress?: Progress;
}

export interface RustVirtiofsd extends SocketDaemon {
  version: string;
}

/** Starts Rust virtiofsd (fetching it first if needed) and waits until it listens. One VM connection, then it exits. */
export async function startRustVirtiofsd(o: RustVirtiofsdOptions): Promise<RustVirtiofsd> {
  const peer = await ensureRustVirtiofsd({ progress: o.progress ?? peersProgress });
  const args = [...peer.argvPrefix.slice(1), `--socket-path=${o.socketPath}`, `--shared-dir=${o.sharedDir}`, `--cache=${o.cache ?? 'auto'}`];
  if (o.tag !== undefined) args.push(`--tag=${o.tag}`);
  args.push(...(o.extraArgs ?? []));
  const daemon = await spawnSocketDaemon({
    file: peer.argvPrefix[0]!,
    args,
    env: { ...process.env, ...peer.env },
    socketPath: o.socketPath,
    startTimeoutMs: o.startTimeoutMs,
    name: `Rust virtiofsd ${peer.version}`,
    fail: (m) => new PeerFetchError(m),
  });
  return { ...daemon, version: peer.version };
}

// ---------------------------------------------------------------------------

const shellWord = (s: string) => (/^[A-Za-z0-9_./:=,+@%-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** A copy-pasteable command line for a fetched peer. */
export function peerCommandLine(p: PeerLaunch, args: string[] = []): string {
  return [...Object.entries(p.env).map(([k, v]) => `${k}=${shellWord(v)}`), ...[...p.argvPrefix, ...args].map(shellWord)].join(' ');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const which = process.argv.slice(2);
  const want = which.length ? which : ['qemu', 'virtiofsd'];
  try {
    for (const w of want) {
      if (w !== 'qemu' && w !== 'virtiofsd') throw new PeerFetchError(`unknown peer '${w}' (qemu, virtiofsd)`);
      const p = await (w === 'qemu' ? ensureNewQemu() : ensureRustVirtiofsd());
      process.stdout.write(`${w} ${p.version} (${p.debianVersion}, ${p.suite}): ${p.packages} packages, ${(p.debBytes / 1e6).toFixed(1)} MB, fetched in ${(p.fetchMs / 1000).toFixed(1)} s\n  ${peerCommandLine(p, ['--version'])}\n`);
    }
  } catch (e) {
    process.stderr.write(`${e instanceof GuestSetupError ? '' : 'internal error: '}${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}

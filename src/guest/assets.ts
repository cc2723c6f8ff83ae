// Layer: guest tooling (host side). Imports node:* and src/guest/* only.
// Fetches and caches what a test guest needs, from Debian packages only: the
// cloud kernel (vmlinuz + the virtio/fuse/virtiofs modules, via
// `apt-get download` + `dpkg-deb -x`) and a static busybox (the host's
// busybox-static). The cache is keyed by kernel package, lives in
// `.cache/guest/` at the project root (override: VIRTIOFS_TS_GUEST_CACHE) and
// is filled atomically (unpack to a temp dir, then rename), so two test files
// racing to fill it both end up with a complete copy.

import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasInterpreter, readModinfo } from './elf.ts';

/** A missing host prerequisite. The message says what to install or run. */
export class GuestSetupError extends Error {
  override name = 'GuestSetupError';
}

export type Progress = (line: string) => void;

/** Default progress sink: one line per step on stderr. */
export const stderrProgress: Progress = (line) => process.stderr.write(`[guest] ${line}\n`);

/** The modules a guest needs to mount virtio-fs (closure computed from depends=). */
export const DEFAULT_MODULES = ['virtio_pci', 'virtiofs'] as const;

const META_PACKAGE = 'linux-image-cloud-amd64';

export function guestCacheDir(): string {
  const env = process.env.VIRTIOFS_TS_GUEST_CACHE;
  if (env) return env;
  return fileURLToPath(new URL('../../.cache/guest/', import.meta.url));
}

/** Looks a program up on PATH (plus the sbin dirs, which a non-root PATH may lack). */
export function findExecutable(name: string): string | undefined {
  if (name.includes('/')) return isExecutable(name) ? name : undefined;
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin']);
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function requireTool(name: string, pkg: string): string {
  const p = findExecutable(name);
  if (!p) throw new GuestSetupError(`${name} not found: install it with \`apt-get install ${pkg}\``);
  return p;
}

export interface KernelModule {
  name: string;
  path: string;
}

export interface GuestKernel {
  /** Debian package name, e.g. linux-image-6.1.0-56-cloud-amd64. */
  packageName: string;
  /** `uname -r` of the guest, e.g. 6.1.0-56-cloud-amd64. */
  release: string;
  vmlinuz: string;
  /** Unpacked package root (lib/modules/<release>/kernel/...). */
  root: string;
}

/** The kernel package the cache should hold: VIRTIOFS_TS_KERNEL_PACKAGE, else what the meta package depends on. */
export function resolveKernelPackage(): string {
  const env = process.env.VIRTIOFS_TS_KERNEL_PACKAGE;
  if (env) return env;
  const aptCache = requireTool('apt-cache', 'apt');
  let out: string;
  try {
    out = execFileSync(aptCache, ['depends', META_PACKAGE], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new GuestSetupError(`\`apt-cache depends ${META_PACKAGE}\` failed (${(e as Error).message.trim()}); run \`apt-get update\` first, or set VIRTIOFS_TS_KERNEL_PACKAGE`);
  }
  const m = /Depends:\s*(linux-image-\S+)/.exec(out);
  if (!m?.[1]) throw new GuestSetupError(`\`apt-cache depends ${META_PACKAGE}\` names no kernel package; run \`apt-get update\` first`);
  return m[1];
}

function kernelFromDir(packageName: string, root: string): GuestKernel | undefined {
  if (!existsSync(join(root, '.complete'))) return undefined;
  const boot = join(root, 'boot');
  const vmlinuz = readdirSync(boot).find((f) => f.startsWith('vmlinuz-'));
  if (!vmlinuz) return undefined;
  return { packageName, release: vmlinuz.slice('vmlinuz-'.length), vmlinuz: join(boot, vmlinuz), root };
}

let aptUpdated = false;

/**
 * Runs an apt step; if it fails and we are root, refreshes the package lists
 * once and tries again. Stale lists are the usual cause on a fresh machine:
 * none at all, or a kernel version a security update has since replaced.
 */
function withAptUpdateRetry<T>(step: () => T, progress: Progress): T {
  try {
    return step();
  } catch (e) {
    if (!(e instanceof GuestSetupError) || aptUpdated || process.getuid?.() !== 0) throw e;
    aptUpdated = true;
    progress('apt step failed; refreshing package lists (apt-get update) and retrying');
    try {
      execFileSync(requireTool('apt-get', 'apt'), ['update'], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (u) {
      throw new GuestSetupError(`${e.message}; \`apt-get update\` failed too: ${String((u as { stderr?: Buffer }).stderr ?? (u as Error).message).trim()}`);
    }
    return step();
  }
}

/**
 * The guest kernel, downloading and unpacking it the first time. Once a kernel
 * is cached it is reused without asking apt (offline runs keep working);
 * delete the cache dir or set VIRTIOFS_TS_KERNEL_PACKAGE to change it.
 */
export function ensureKernel(progress: Progress = stderrProgress): GuestKernel {
  const cache = guestCacheDir();
  const kernels = join(cache, 'kernels');
  mkdirSync(kernels, { recursive: true });
  const currentFile = join(cache, 'current-kernel');
  const wanted = process.env.VIRTIOFS_TS_KERNEL_PACKAGE ?? (existsSync(currentFile) ? readFileSync(currentFile, 'utf8').trim() : undefined);
  if (wanted) {
    const k = kernelFromDir(wanted, join(kernels, wanted));
    if (k) return k;
  }
  const pkg = wanted ?? withAptUpdateRetry(resolveKernelPackage, progress);
  const final = join(kernels, pkg);
  const cached = kernelFromDir(pkg, final);
  if (cached) {
    writeFileSync(currentFile, `${pkg}\n`);
    return cached;
  }
  const aptGet = requireTool('apt-get', 'apt');
  const dpkgDeb = requireTool('dpkg-deb', 'dpkg');
  const tmp = mkdtempSync(join(kernels, `.tmp-${pkg}-`));
  try {
    progress(`downloading ${pkg} (apt-get download)`);
    withAptUpdateRetry(() => {
      try {
        execFileSync(aptGet, ['download', pkg], { cwd: tmp, stdio: ['ignore', 'ignore', 'pipe'] });
      } catch (e) {
        const stderr = String((e as { stderr?: Buffer }).stderr ?? '').trim();
        throw new GuestSetupError(`\`apt-get download ${pkg}\` failed: ${stderr || (e as Error).message}; check apt sources and run \`apt-get update\``);
      }
    }, progress);
    const deb = readdirSync(tmp).find((f) => f.endsWith('.deb'));
    if (!deb) throw new GuestSetupError(`\`apt-get download ${pkg}\` produced no .deb`);
    progress(`unpacking ${deb}`);
    const root = join(tmp, 'root');
    execFileSync(dpkgDeb, ['-x', join(tmp, deb), root], { stdio: ['ignore', 'ignore', 'pipe'] });
    rmSync(join(tmp, deb));
    writeFileSync(join(root, '.complete'), `${deb}\n`);
    try {
      renameSync(root, final);
    } catch (e) {
      // Another process won the race; its copy is as good as ours.
      if (!kernelFromDir(pkg, final)) throw e;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const k = kernelFromDir(pkg, final);
  if (!k) throw new GuestSetupError(`kernel package ${pkg} has no boot/vmlinuz-*`);
  writeFileSync(currentFile, `${pkg}\n`);
  progress(`kernel ${k.release} cached in ${final}`);
  return k;
}

function moduleIndex(kernel: GuestKernel): Map<string, string> {
  const index = new Map<string, string>();
  const walk = (dir: string) => {
    for (const ent of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, ent.name);
      if (ent.isDirectory()) walk(p);
      else if (ent.name.endsWith('.ko')) index.set(ent.name.slice(0, -3).replace(/-/g, '_'), p);
      else if (/\.ko\.(xz|gz|zst)$/.test(ent.name)) {
        // Newer Debian kernels compress modules; busybox insmod here loads only plain .ko.
        index.set(ent.name.replace(/\.ko\..*$/, '').replace(/-/g, '_'), p);
      }
    }
  };
  walk(join(kernel.root, 'lib', 'modules', kernel.release, 'kernel'));
  return index;
}

/**
 * The modules to insmod, dependencies first, for the given names. Modules
 * built into the kernel (modules.builtin) are dropped silently.
 */
export function resolveModules(kernel: GuestKernel, names: readonly string[]): KernelModule[] {
  const index = moduleIndex(kernel);
  const builtinFile = join(kernel.root, 'lib', 'modules', kernel.release, 'modules.builtin');
  const builtin = new Set(
    existsSync(builtinFile)
      ? readFileSync(builtinFile, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => (l.split('/').pop() ?? '').replace(/\.ko$/, '').replace(/-/g, '_'))
      : [],
  );
  const order: KernelModule[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (raw: string, chain: string[]) => {
    const name = raw.replace(/-/g, '_');
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') throw new Error(`module dependency cycle: ${[...chain, name].join(' -> ')}`);
    const path = index.get(name);
    if (!path) {
      if (builtin.has(name)) return;
      throw new GuestSetupError(`kernel ${kernel.release} has no module ${name}`);
    }
    if (!path.endsWith('.ko')) throw new GuestSetupError(`module ${name} is compressed (${path}); the harness loads plain .ko files only`);
    state.set(name, 'visiting');
    const deps = readModinfo(readFileSync(path), path).get('depends')?.[0] ?? '';
    for (const d of deps.split(',').filter(Boolean)) visit(d, [...chain, name]);
    state.set(name, 'done');
    order.push({ name, path });
  };
  for (const n of names) visit(n, []);
  return order;
}

/** A static busybox (VIRTIOFS_TS_BUSYBOX, else the host's busybox-static). */
export function findBusybox(): string {
  const candidates = process.env.VIRTIOFS_TS_BUSYBOX ? [process.env.VIRTIOFS_TS_BUSYBOX] : ['/bin/busybox', '/usr/bin/busybox'];
  for (const p of candidates) {
    if (!isExecutable(p)) continue;
    if (hasInterpreter(readFileSync(p), p)) {
      throw new GuestSetupError(`${p} is dynamically linked and cannot run in the guest initramfs: install \`apt-get install busybox-static\``);
    }
    return p;
  }
  throw new GuestSetupError('busybox not found: install it with `apt-get install busybox-static`');
}

/** QEMU for x86_64 guests (VIRTIOFS_TS_QEMU, else qemu-system-x86_64 on PATH). */
export function findQemu(): string {
  const p = findExecutable(process.env.VIRTIOFS_TS_QEMU ?? 'qemu-system-x86_64');
  if (!p) throw new GuestSetupError('qemu-system-x86_64 not found: install it with `apt-get install qemu-system-x86` (or set VIRTIOFS_TS_QEMU)');
  return p;
}

/** QEMU's C virtiofsd, our peer in tests and benchmarks (VIRTIOFS_TS_VIRTIOFSD overrides). */
export function findCVirtiofsd(): string {
  const candidates = process.env.VIRTIOFS_TS_VIRTIOFSD ? [process.env.VIRTIOFS_TS_VIRTIOFSD] : ['/usr/lib/qemu/virtiofsd'];
  for (const p of candidates) if (isExecutable(p)) return p;
  throw new GuestSetupError('QEMU\'s C virtiofsd not found at /usr/lib/qemu/virtiofsd: install it with `apt-get install qemu-system-common` (or set VIRTIOFS_TS_VIRTIOFSD)');
}

// bench/lib: the systems the guest benchmark compares: which QEMU boots the
// guest, which vhost-user-fs daemon serves it and how (may import node:*,
// bench/lib and src/guest, the host-side guest tooling).
// A system = a QEMU choice + a daemon launcher + a cache mode. Issue 5's rows
// (QEMU 11.1 with our DAX daemon, Rust virtiofsd 1.14) are entries here too,
// off by default: `--systems` turns them on.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findCVirtiofsd } from '../../src/guest/assets.ts';
import { ensureNewQemu, ensureRustVirtiofsd, genericFsDevice, qemuCommandOf } from '../../src/guest/peers.ts';
import type { QemuCommand } from '../../src/guest/qemu.ts';
import { Daemon, sleep } from './proc.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = join(REPO, 'bin/virtiofs-ts.js');

/** The virtio-fs tag the guest mounts as its root (runInGuestRoot's default). */
export const ROOT_TAG = 'rootfs';

export type CacheMode = 'never' | 'auto' | 'always';
export type QemuChoice = 'system' | 'new';

/** What boots the guest: the system QEMU 7.2 with vhost-user-fs-pci, or the private 11.1 with the generic device. */
export interface GuestQemu {
  choice: QemuChoice;
  /** Undefined: the system qemu-system-x86_64 (runInGuest's default lookup). */
  command?: QemuCommand;
  /** Undefined: vhost-user-fs-pci (QEMU 7.2). */
  fsDevice?: string;
  version: string;
}

export interface GuestSystem {
  id: string;
  label: string;
  daemon: 'ours' | 'c' | 'rust';
  cache: CacheMode;
  qemu: QemuChoice;
  /** DAX window size (e.g. "1G"); the guest then mounts with dax=always. */
  daxWindow?: string;
  /** The reference this system's ratios are taken against (ours/reference). */
  versus?: string;
  /** Per-row targets for ours ÷ versus that differ from the row's own (issue 5: DAX ≥ 6× no-DAX on random reads). */
  rowTargets?: Record<string, number>;
  /** Part of a run without --systems. */
  byDefault: boolean;
  /** The daemon's argv (program first) serving `dir` on `socket`. */
  argv(dir: string, socket: string): Promise<{ argv: string[]; env?: Record<string, string> }>;
}

const ours = (cache: CacheMode, extra: string[] = []) => async (dir: string, socket: string) => ({
  argv: [process.execPath, BIN, 'serve', '--socket-path', socket, '--shared-dir', dir, '--cache', cache, ...extra],
});

const cDaemon = (cache: CacheMode) => async (dir: string, socket: string) => ({
  // The C daemon says "none" for what we and Rust virtiofsd call "never".
  argv: [findCVirtiofsd(), `--socket-path=${socket}`, '-o', `source=${dir}`, '-o', `cache=${cache === 'never' ? 'none' : cache}`],
});

const rust = (cache: CacheMode) => async (dir: string, socket: string) => {
  const p = await ensureRustVirtiofsd({ progress: () => {} });
  return { argv: [...p.argvPrefix, `--socket-path=${socket}`, `--shared-dir=${dir}`, `--cache=${cache}`, `--tag=${ROOT_TAG}`], env: p.env };
};

export const SYSTEMS: GuestSystem[] = [
  ...(['never', 'auto', 'always'] as const).flatMap((cache): GuestSystem[] => [
    { id: `vts-${cache}`, label: `ours (virtiofs-ts serve --cache ${cache}), QEMU 7.2`, daemon: 'ours', cache, qemu: 'system', versus: `c-${cache}`, byDefault: true, argv: ours(cache) },
    { id: `c-${cache}`, label: `QEMU's C virtiofsd 7.2 (-o cache=${cache === 'never' ? 'none' : cache}), QEMU 7.2`, daemon: 'c', cache, qemu: 'system', byDefault: true, argv: cDaemon(cache) },
  ]),
  // Issue 5: QEMU 11.1's generic vhost-user device (the backend serves the tag).
  { id: 'vts11-auto', label: 'ours --cache auto, QEMU 11.1', daemon: 'ours', cache: 'auto', qemu: 'new', versus: 'rust-auto', byDefault: false, argv: ours('auto', ['--tag', ROOT_TAG]) },
  // A power of two (a PCI BAR), at most 512 ranges of 2 MiB: QEMU 11.1 aborts
  // past 512 vhost memory regions (guest RAM + live SHMEM_MAPs); with 1G the
  // guest's reclaim (from 80% full) keeps the live mappings below that.
  daxSystem('1G'),
  { id: 'rust-auto', label: 'Rust virtiofsd 1.14 --cache auto, QEMU 11.1', daemon: 'rust', cache: 'auto', qemu: 'new', byDefault: false, argv: rust('auto') },
];

/**
 * Ours on QEMU 11.1 with a DAX window of `window` (a power of two, at most "1G": QEMU 11.1 aborts past 512 live mappings); the guest
 * mounts its root dax=always. Compared with our own no-DAX (vts11-auto).
 */
export function daxSystem(window: string): GuestSystem {
  return {
    id: 'vts11-dax',
    label: `ours --cache auto --dax-window ${window}, QEMU 11.1, dax=always`,
    daemon: 'ours',
    cache: 'auto',
    qemu: 'new',
    daxWindow: window,
    versus: 'vts11-auto',
    rowTargets: { 'randread-4k': 6, 'randread-1m': 6 },
    byDefault: false,
    argv: ours('auto', ['--tag', ROOT_TAG, '--dax-window', window]),
  };
}

export function systemById(id: string): GuestSystem | undefined {
  return SYSTEMS.find((s) => s.id === id);
}

/** Resolves a QEMU choice once per run (the 11.1 fetch is cached by src/guest/peers.ts). */
export async function resolveQemu(choice: QemuChoice): Promise<GuestQemu> {
  if (choice === 'system') return { choice, version: 'system qemu-system-x86_64' };
  const p = await ensureNewQemu({ progress: () => {} });
  return { choice, command: qemuCommandOf(p), fsDevice: genericFsDevice(), version: `QEMU ${p.version} (${p.debianVersion})` };
}

/** A started daemon with its socket listening. */
export interface RunningBackend {
  daemon: Daemon;
  argv: string[];
  stop(): Promise<void>;
}

/** Starts the system's daemon on `dir` and waits (up to timeoutMs) for its socket. */
export async function startBackend(system: GuestSystem, dir: string, socket: string, timeoutMs = 60_000): Promise<RunningBackend> {
  rmSync(socket, { force: true });
  const { argv, env } = await system.argv(dir, socket);
  // env(1) execs the daemon, so the pid (for CPU figures) stays the daemon's.
  const full = env && Object.keys(env).length > 0 ? ['env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv] : argv;
  const daemon = new Daemon(full[0]!, full.slice(1));
  const t0 = Date.now();
  while (!existsSync(socket)) {
    if (!daemon.running) throw new Error(`${system.id}: daemon exited (${daemon.exitCode ?? daemon.exitSignal}) before listening: ${daemon.output(400)}`);
    if (Date.now() - t0 > timeoutMs) {
      await daemon.stop(1000);
      throw new Error(`${system.id}: no socket at ${socket} after ${timeoutMs / 1000} s: ${daemon.output(400)}`);
    }
    await sleep(25);
  }
  return { daemon, argv: full, stop: () => daemon.stop(5000) };
}

/**
 * user+system CPU seconds of a process and all its live descendants: the C
 * virtiofsd forks its sandboxed worker, which does the serving.
 */
export function treeCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  const procs = new Map<number, { ppid: number; cpu: number }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces): state ppid ... utime(14) stime(15).
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      procs.set(Number(name), { ppid: Number(rest[1]), cpu: (Number(rest[11]) + Number(rest[12])) / 100 });
    } catch {
      // gone meanwhile
    }
  }
  if (!procs.has(pid)) return undefined;
  let total = 0;
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    total += procs.get(p)?.cpu ?? 0;
    for (const [c, v] of procs) if (v.ppid === p) todo.push(c);
  }
  return total;
}

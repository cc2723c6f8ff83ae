// Test support: real /dev/fuse mounts served by our CLI in a child process.
// The kernel is the client; nothing here fakes a mount. Every mount this module
// makes is also lazily unmounted when the test process exits, so a failing test
// never leaves a dead FUSE mount behind.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, mkdtempSync, readFileSync, realpathSync, rmdirSync, rmSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI_MAIN = join(REPO_ROOT, 'src/cli/main.ts');
export const BIN = join(REPO_ROOT, 'bin/virtiofs-ts.js');
export const FSTYPE = 'fuse.virtiofs-ts';

export interface MountOursOptions {
  /** Host directory to share (passthrough) or to seed the memory fs from (memory). */
  sharedDir: string;
  fs?: 'passthrough' | 'memory';
  readonly?: boolean;
  cache?: 'never' | 'auto' | 'always';
  xattr?: boolean;
  writeback?: boolean;
  /** Where to mount; a fresh temp dir when absent (removed again by stop()). */
  mountpoint?: string;
  /** More CLI arguments, appended after the options above. */
  extraArgs?: string[];
  /** How long to wait for the mount to answer (default 45 s: start-up is CPU bound and the suite loads 2 cores). */
  timeoutMs?: number;
}

export interface OurMount {
  mountpoint: string;
  child: ChildProcess;
  /** Everything the server wrote to stdout/stderr so far. */
  output(): string;
  /** Waits for the server to exit by itself; resolves with its exit code (null: killed by a signal). */
  waitExit(timeoutMs?: number): Promise<number | null>;
  /** SIGTERM, wait for exit; rejects unless the server exited 0 and the mount is gone. */
  stop(): Promise<void>;
}

/** A fresh temp dir under os.tmpdir(). */
export function makeTempDir(prefix = 'vfs-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Throws a clear error when this test cannot mount (not root, no /dev/fuse). */
export function requireFuse(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error('these tests mount FUSE file systems and must run as root');
  }
  try {
    accessSync('/dev/fuse', fsConstants.R_OK | fsConstants.W_OK);
  } catch {
    throw new Error('/dev/fuse is missing or not accessible: load the fuse module (modprobe fuse)');
  }
}

/** The mountinfo mountpoint field escapes space, tab, newline and backslash as octal. */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** fstype of whatever is mounted exactly at `path` (the topmost mount), or undefined. */
export function mountedFsType(path: string): string | undefined {
  let found: string | undefined;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (!line) continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    if (sep < 0) continue;
    if (unescapeMountinfo(fields[4]!) === path) found = fields[sep + 1];
  }
  return found;
}

export function isMounted(path: string): boolean {
  return mountedFsType(path) !== undefined;
}

/** umount -l, ignoring "not mounted". For `after` hooks and crash cleanup. */
export function forceUnmount(path: string): void {
  if (isMounted(path)) spawnSync('umount', ['-l', path], { stdio: 'ignore' });
}

const live = new Set<string>();
process.on('exit', () => {
  for (const m of live) forceUnmount(m);
});

/** argv for running our CLI: node --import tsx src/cli/main.ts ... */
export function cliArgv(args: string[]): string[] {
  return ['--import', 'tsx', CLI_MAIN, ...args];
}

/** Runs the CLI to completion (for error-case tests). */
export function runCli(args: string[], timeoutMs = 30_000): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, cliArgv(args), { cwd: REPO_ROOT, encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Mounts `sharedDir` through `virtiofs-ts mount` in a child process and
 * resolves once the kernel sees the mount and the root answers a stat
 * (which proves INIT and GETATTR went through our server).
 */
export async function mountOurs(opts: MountOursOptions): Promise<OurMount> {
  requireFuse();
  const ownMountpoint = opts.mountpoint === undefined;
  const mountpoint = realpathSync(opts.mountpoint ?? makeTempDir('vfs-mnt-'));
  const args = ['mount', opts.sharedDir, mountpoint, '--fs', opts.fs ?? 'passthrough'];
  if (opts.readonly) args.push('--readonly');
  if (opts.cache) args.push('--cache', opts.cache);
  if (opts.xattr) args.push('--xattr');
  if (opts.writeback) args.push('--writeback');
  if (opts.extraArgs) args.push(...opts.extraArgs);

  const child = spawn(process.execPath, cliArgv(args), { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  let exitCode: number | null | undefined;
  let exitSignal: NodeJS.Signals | null = null;
  const exited = new Promise<void>((resolve) =>
    child.on('exit', (code, signal) => {
      exitCode = code;
      exitSignal = signal;
      resolve();
    }),
  );
  live.add(mountpoint);
  // A server a failing test forgot to stop must not keep the test process
  // alive: it is unmounted (and so ends) by the exit hook above. Waiting on it
  // goes through waitExit()/stop(), whose timers keep the loop alive.
  child.unref();
  (child.stdout as unknown as { unref?: () => void }).unref?.();
  (child.stderr as unknown as { unref?: () => void }).unref?.();

  const timeoutMs = opts.timeoutMs ?? 45_000;
  const deadline = Date.now() + timeoutMs;
  const fail = async (why: string): Promise<never> => {
    child.kill('SIGKILL');
    forceUnmount(mountpoint);
    live.delete(mountpoint);
    await Promise.race([exited, sleep(2000)]);
    throw new Error(`${why}\n--- virtiofs-ts ${args.join(' ')} output ---\n${out}`);
  };
  for (;;) {
    if (exitCode !== undefined) return fail(`server exited (code ${exitCode}, signal ${exitSignal}) before the mount came up`);
    if (mountedFsType(mountpoint) === FSTYPE) break;
    if (Date.now() > deadline) return fail(`mount did not appear in /proc/self/mountinfo within ${timeoutMs} ms`);
    await sleep(20);
  }
  // stat runs on the libuv pool, so a server that never answers cannot hang us.
  const statOk = await Promise.race([stat(mountpoint).then(() => true, (e: Error) => e), sleep(Math.max(0, deadline - Date.now())).then(() => false)]);
  if (statOk !== true) return fail(`stat of the mount root failed: ${statOk === false ? 'timed out' : statOk.message}`);

  let stopped = false;
  return {
    mountpoint,
    child,
    output: () => out,
    async waitExit(waitMs = 15_000) {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        exited.then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), waitMs))),
      ]);
      clearTimeout(timer);
      if (timedOut) throw new Error(`server did not exit within ${waitMs} ms\n${out}`);
      return exitCode ?? null;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (exitCode === undefined) child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        exited.then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), 30_000))),
      ]);
      clearTimeout(timer);
      const stillMounted = isMounted(mountpoint);
      if (timedOut) child.kill('SIGKILL');
      forceUnmount(mountpoint);
      live.delete(mountpoint);
      if (ownMountpoint && !isMounted(mountpoint)) {
        try {
          rmdirSync(mountpoint);
        } catch {
          /* not empty or gone: leave it */
        }
      }
      if (timedOut) throw new Error(`server did not exit within 30 s of SIGTERM\n${out}`);
      if (exitCode !== 0) throw new Error(`server exited with code ${exitCode} signal ${exitSignal} after SIGTERM\n${out}`);
      if (stillMounted) throw new Error(`server exited 0 but ${mountpoint} is still mounted`);
    },
  };
}

/** Removes a temp dir tree, after making sure nothing is mounted inside it. */
export function removeTempDir(path: string): void {
  if (!existsSync(path)) return;
  forceUnmount(path);
  rmSync(path, { recursive: true, force: true });
}

// bench/lib: the systems under test and how to mount each (may import node:*
// and bench/lib only; never src/, so the benchmark drives our daemon exactly as
// a user would: through its CLI, in its own process).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Daemon, run, sleep, tryRun } from './proc.ts';

export type CacheMode = 'never' | 'auto' | 'always';
export type SystemKind = 'native' | 'vts' | 'bindfs' | 'pll';

export interface SystemSpec {
  /** Stable id used in --only, JSON and tables, e.g. "vts-auto". */
  id: string;
  kind: SystemKind;
  cache?: CacheMode;
  /** Human label for tables and the plot. */
  label: string;
}

export const ALL_SYSTEMS: SystemSpec[] = [
  { id: 'native', kind: 'native', label: 'native' },
  { id: 'vts-never', kind: 'vts', cache: 'never', label: 'virtiofs-ts never' },
  { id: 'vts-auto', kind: 'vts', cache: 'auto', label: 'virtiofs-ts auto' },
  { id: 'vts-always', kind: 'vts', cache: 'always', label: 'virtiofs-ts always' },
  { id: 'bindfs', kind: 'bindfs', label: 'bindfs' },
  { id: 'pll-never', kind: 'pll', cache: 'never', label: 'passthrough_ll never' },
  { id: 'pll-auto', kind: 'pll', cache: 'auto', label: 'passthrough_ll auto' },
  { id: 'pll-always', kind: 'pll', cache: 'always', label: 'passthrough_ll always' },
];

/** A started system: where to run the jobs and how to stop it. */
export interface Mounted {
  spec: SystemSpec;
  /** Directory the jobs use: the mountpoint, or the source dir for native. */
  path: string;
  /** File-system type from mountinfo (e.g. "fuse.bindfs"), "native" for native. */
  fstype: string;
  /** Exact command line, for the record. */
  command: string[];
  /** CPU seconds used so far by the daemon (all threads), if there is one. */
  daemonCpuSeconds(): number | undefined;
  /** Why the system can no longer serve (daemon gone, mount gone), or undefined while it is fine. */
  health(): string | undefined;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------- mountinfo

/** Undoes the octal escapes (\040 for space etc.) that mountinfo uses. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The fstype of the mount exactly at `mountpoint`, or undefined. The last one wins (stacked mounts). */
export function mountedFsType(mountpoint: string): string | undefined {
  let found: string | undefined;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const fields = line.slice(0, sep).split(' ');
    if (unescapeMountField(fields[4] ?? '') === mountpoint) found = line.slice(sep + 3).split(' ')[0];
  }
  return found;
}

/** Lazily detaches whatever is mounted at `mountpoint` (leftovers of a killed run). */
export function forceUnmount(mountpoint: string): void {
  for (let i = 0; i < 4 && mountedFsType(mountpoint) !== undefined; i++) {
    tryRun('umount', ['-l', mountpoint]);
  }
}

async function waitForMount(d: Daemon, mountpoint: string, timeoutMs: number, what: string): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const fstype = mountedFsType(mountpoint);
    if (fstype !== undefined && fstype.startsWith('fuse')) return fstype;
    if (!d.running) {
      const how = d.exitSignal ? `was killed by ${d.exitSignal}` : `exited with code ${d.exitCode}`;
      throw new Error(`${what} ${how} before mounting: ${d.output() || '(no output)'}`);
    }
    if (Date.now() > deadline) {
      await d.stop();
      throw new Error(`${what} did not mount within ${timeoutMs / 1000} s: ${d.output() || '(no output)'}`);
    }
    await sleep(50);
  }
}

async function startDaemon(spec: SystemSpec, cmd: string, args: string[], mountpoint: string, cwd?: string): Promise<Mounted> {
  forceUnmount(mountpoint);
  const d = new Daemon(cmd, args, { cwd });
  const fstype = await waitForMount(d, mountpoint, 30_000, spec.id);
  return {
    spec,
    path: mountpoint,
    fstype,
    command: [cmd, ...args],
    daemonCpuSeconds: () => d.cpuSeconds(),
    health() {
      if (!d.running) return `daemon exited (${d.exitSignal ?? `code ${d.exitCode}`}): ${d.output(300) || '(no output)'}`;
      if (mountedFsType(mountpoint) === undefined) return 'the mount disappeared while the daemon ran';
      return undefined;
    },
    async stop() {
      await d.stop();
      // A clean daemon unmounts on SIGTERM; anything left is detached so the
      // next system and the temp dir cleanup are not blocked by it.
      forceUnmount(mountpoint);
    },
  };
}

// ---------------------------------------------------------------- passthrough_ll

const PLL_SOURCES = [
  '/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c',
  '/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c.gz',
];

export function benchCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'virtiofs-ts', 'bench');
}

/**
 * Builds libfuse's example passthrough_ll from the copy Debian's libfuse3-dev
 * ships, into the user's cache dir (keyed by source + flags, so a libfuse
 * upgrade rebuilds). Its source never enters our repository.
 */
export function buildPassthroughLl(): { binary: string; source: string } {
  const source = PLL_SOURCES.find((p) => existsSync(p));
  if (!source) throw new Error(`passthrough_ll.c not found (looked at ${PLL_SOURCES.join(', ')}); install libfuse3-dev`);
  let code = readFileSync(source);
  if (source.endsWith('.gz')) code = gunzipSync(code);
  const flags = run('pkg-config', ['--cflags', '--libs', 'fuse3']).trim().split(/\s+/).filter(Boolean);
  const key = createHash('sha256').update(code).update(flags.join(' ')).digest('hex').slice(0, 12);
  const dir = benchCacheDir();
  mkdirSync(dir, { recursive: true });
  const binary = join(dir, `passthrough_ll-${key}`);
  if (existsSync(binary) && statSync(binary).size > 0) return { binary, source };
  const csrc = join(dir, `passthrough_ll-${key}.c`);
  writeFileSync(csrc, code);
  // It includes "passthrough_helpers.h" from the same examples dir; a
  // compressed copy is unpacked beside our cached source.
  const examples = dirname(source);
  const helperGz = join(examples, 'passthrough_helpers.h.gz');
  if (!existsSync(join(examples, 'passthrough_helpers.h')) && existsSync(helperGz)) {
    writeFileSync(join(dir, 'passthrough_helpers.h'), gunzipSync(readFileSync(helperGz)));
  }
  run('gcc', ['-O2', '-Wall', '-I', dir, '-I', examples, '-o', binary, csrc, ...flags], { timeoutMs: 120_000 });
  return { binary, source };
}

// ---------------------------------------------------------------- start

export interface StartContext {
  /** The shared source directory every system exposes. */
  sourceDir: string;
  /** An empty directory to mount on (ignored for native). */
  mountpoint: string;
  /** Repository root (for our CLI). */
  repoRoot: string;
}

/** Starts one system under test; throws an Error with a one-paragraph reason when it cannot. */
export async function startSystem(spec: SystemSpec, ctx: StartContext): Promise<Mounted> {
  mkdirSync(ctx.mountpoint, { recursive: true });
  switch (spec.kind) {
    case 'native':
      return {
        spec,
        path: ctx.sourceDir,
        fstype: 'native',
        command: [],
        daemonCpuSeconds: () => undefined,
        health: () => undefined,
        stop: async () => {},
      };
    case 'bindfs':
      // -f keeps it in the foreground so we own its pid; everything else is
      // Debian's default configuration (single-threaded, libfuse defaults).
      return startDaemon(spec, 'bindfs', ['-f', ctx.sourceDir, ctx.mountpoint], ctx.mountpoint);
    case 'pll': {
      const { binary } = buildPassthroughLl();
      // Its default loop is multi-threaded; that is how libfuse ships it.
      return startDaemon(spec, binary, ['-f', '-o', `source=${ctx.sourceDir},cache=${spec.cache}`, ctx.mountpoint], ctx.mountpoint);
    }
    case 'vts': {
      const cli = join(ctx.repoRoot, 'src', 'cli', 'main.ts');
      if (!existsSync(cli)) throw new Error(`${cli} does not exist yet`);
      return startDaemon(
        spec,
        process.execPath,
        ['--import', 'tsx', cli, 'mount', ctx.sourceDir, ctx.mountpoint, '--fs', 'passthrough', '--cache', spec.cache!],
        ctx.mountpoint,
        ctx.repoRoot,
      );
    }
  }
}

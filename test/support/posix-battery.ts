// Test support: build, run and compare the POSIX battery (posix-battery.c).
// May import node: modules only. The battery is one static C program so the
// very same binary can run on a native directory, through our /dev/fuse
// mount, and inside a busybox-only Linux guest; its output is one line per
// check, "<name> <result>", and two runs are compared line by line.
//
// By hand: gcc -O2 -static -Wall -o /tmp/battery test/support/posix-battery.c
//          mkdir /tmp/a && /tmp/battery --timing /tmp/a   (durations on stderr)
// and the same on a mount, then diff the two outputs.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BATTERY_SOURCE = fileURLToPath(new URL('./posix-battery.c', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BATTERY_CACHE_DIR = join(REPO_ROOT, 'node_modules/.cache/virtiofs-ts');

function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; spawnError?: Error }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 << 20, encoding: 'utf8', killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: unknown; signal?: string | null }) | null;
      if (e && typeof e.code === 'string') {
        // The program could not be started at all (ENOENT for a missing gcc).
        resolve({ code: null, signal: null, stdout, stderr, spawnError: e });
        return;
      }
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr });
    });
  });
}

const builds = new Map<string, Promise<string>>();

export interface CompileOptions {
  /** Where the cached binary lives (default node_modules/.cache/virtiofs-ts). */
  cacheDir?: string;
  /** The compiler to run (default gcc from PATH). */
  gcc?: string;
}

/**
 * Compiles posix-battery.c into a static binary (gcc -O2 -static -Wall) and
 * returns its path. The binary is cached by source hash under
 * node_modules/.cache/virtiofs-ts, so every test file and the guest harness
 * share one build. Throws a clear error when gcc or the static libc is missing.
 */
export function compileBattery(opts: CompileOptions = {}): Promise<string> {
  const cacheDir = opts.cacheDir ?? BATTERY_CACHE_DIR;
  const gcc = opts.gcc ?? 'gcc';
  const key = `${cacheDir}\0${gcc}`;
  let build = builds.get(key);
  if (build) return build;
  build = (async () => {
    const source = readFileSync(BATTERY_SOURCE);
    const hash = createHash('sha256').update(source).digest('hex').slice(0, 16);
    const out = join(cacheDir, `posix-battery-${hash}`);
    if (existsSync(out)) return out;
    mkdirSync(cacheDir, { recursive: true });
    // Build under a unique name and rename: concurrent test files may race here.
    const tmp = `${out}.${process.pid}.tmp`;
    const r = await run(gcc, ['-O2', '-static', '-Wall', '-o', tmp, BATTERY_SOURCE], 120_000);
    if (r.spawnError) {
      throw new Error(`cannot compile the POSIX battery: ${gcc} is not installed (${r.spawnError.message}); install it with: apt-get install gcc libc6-dev`);
    }
    if (r.code !== 0) {
      rmSync(tmp, { force: true });
      const noStatic = /cannot find -lc|libc\.a/.test(r.stderr);
      throw new Error(
        `cannot compile the POSIX battery (${BATTERY_SOURCE})${noStatic ? ': the static C library is missing; install it with: apt-get install libc6-dev' : ''}\n${r.stderr}`,
      );
    }
    renameSync(tmp, out);
    return out;
  })();
  builds.set(key, build);
  // A failed build may succeed later (after apt-get): do not cache the failure.
  build.catch(() => builds.delete(key));
  return build;
}

export interface BatteryOptions {
  /** Print "xattr.* skipped" instead of running the xattr checks. */
  skipXattr?: boolean;
  /** Print "perm skipped" instead of the non-root permission checks. */
  skipNonroot?: boolean;
  /** uid and gid the permission checks drop to (default 65534). */
  nonrootUid?: number;
  /** Hand the dir to this uid/gid and run every check as that user, without groups. */
  asUid?: number;
  /** Entries in the big readdir check (default 10000). */
  readdirCount?: number;
  /** Run only checks whose name starts with one of these comma-separated prefixes. */
  only?: string;
  /** 'populate-readonly' fills the dir for a later 'expect-readonly' run. */
  mode?: 'full' | 'populate-readonly' | 'expect-readonly';
  /** Kill the battery after this long (default 120 s). */
  timeoutMs?: number;
  /** A prebuilt binary (default: compileBattery()). */
  binary?: string;
}

export interface BatteryRun {
  lines: string[];
  exitCode: number | null;
  signal: string | null;
  stderr: string;
  durationMs: number;
}

/** The command-line flags for `opts` (also used to run the binary in a guest). */
export function batteryArgs(dir: string, opts: BatteryOptions = {}): string[] {
  const args: string[] = [];
  if (opts.skipXattr) args.push('--skip-xattr');
  if (opts.skipNonroot) args.push('--skip-nonroot');
  if (opts.nonrootUid !== undefined) args.push('--nonroot-uid', String(opts.nonrootUid));
  if (opts.asUid !== undefined) args.push('--as-uid', String(opts.asUid));
  if (opts.readdirCount !== undefined) args.push('--readdir-count', String(opts.readdirCount));
  if (opts.only !== undefined) args.push('--only', opts.only);
  if (opts.mode === 'populate-readonly') args.push('--populate-readonly');
  if (opts.mode === 'expect-readonly') args.push('--expect-readonly');
  args.push(dir);
  return args;
}

/** Runs the battery in `dir` (asynchronously: a server in this process keeps serving). */
export async function runBattery(dir: string, opts: BatteryOptions = {}): Promise<BatteryRun> {
  const binary = opts.binary ?? (await compileBattery());
  const t0 = Date.now();
  const r = await run(binary, batteryArgs(dir, opts), opts.timeoutMs ?? 120_000);
  if (r.spawnError) throw new Error(`cannot run the POSIX battery ${binary}: ${r.spawnError.message}`);
  return {
    lines: r.stdout.split('\n').filter((l) => l.length > 0),
    exitCode: r.code,
    signal: r.signal,
    stderr: r.stderr,
    durationMs: Date.now() - t0,
  };
}

/** Like runBattery, but throws unless the battery ran to completion. */
export async function runBatteryOk(dir: string, opts: BatteryOptions = {}): Promise<string[]> {
  const r = await runBattery(dir, opts);
  if (r.exitCode !== 0) {
    throw new Error(
      `POSIX battery in ${dir} exited with ${r.exitCode ?? r.signal} after ${r.durationMs} ms\nstderr: ${r.stderr}\nlast lines:\n${r.lines.slice(-5).join('\n')}`,
    );
  }
  return r.lines;
}

/** "name result..." -> [name, result]. */
export function splitLine(line: string): [string, string] {
  const sp = line.indexOf(' ');
  return sp < 0 ? [line, ''] : [line.slice(0, sp), line.slice(sp + 1)];
}

/** A difference the caller expects, with the reason a reader needs. */
export interface AllowedDifference {
  /** Why the other side legitimately differs (who is right, and why). */
  reason: string;
  /** The exact result the other side must then show (anything, when absent). */
  other?: string | RegExp;
}

export interface BatteryComparison {
  /** True when every line matches or differs only as allowed. */
  equal: boolean;
  /** Unexpected differences, one readable block per check. */
  diff: string;
  /** Checks that differed as allowed (for logging), and allowances that went unused. */
  allowedSeen: string[];
  allowedUnused: string[];
}

/**
 * Compares two battery outputs check by check. `allow` names checks whose
 * result may differ (each with its reason, and optionally the exact result
 * the other side must show). A check present on one side only, a duplicated
 * check name, or a reordered run are differences too.
 */
export function compareBatteries(
  native: string[],
  other: string[],
  allow: Record<string, AllowedDifference> = {},
  labels: [string, string] = ['native', 'other'],
): BatteryComparison {
  const problems: string[] = [];
  const toMap = (lines: string[], label: string) => {
    const m = new Map<string, string>();
    for (const l of lines) {
      const [name, result] = splitLine(l);
      if (m.has(name)) problems.push(`${label}: check ${name} printed twice`);
      m.set(name, result);
    }
    return m;
  };
  const a = toMap(native, labels[0]);
  const b = toMap(other, labels[1]);
  const names = [...a.keys()];
  for (const n of b.keys()) if (!a.has(n)) names.push(n);
  const allowedSeen: string[] = [];
  for (const name of names) {
    const ra = a.get(name);
    const rb = b.get(name);
    if (ra === rb) continue;
    const al = allow[name];
    if (al && ra !== undefined && rb !== undefined) {
      const fits = al.other === undefined || (typeof al.other === 'string' ? rb === al.other : al.other.test(rb));
      if (fits) {
        allowedSeen.push(name);
        continue;
      }
    }
    problems.push(
      `${name}\n  ${labels[0].padEnd(8)} ${ra ?? '(missing)'}\n  ${labels[1].padEnd(8)} ${rb ?? '(missing)'}` +
        (al ? `\n  (allowed only as ${al.other ?? 'any'}: ${al.reason})` : ''),
    );
  }
  const allowedUnused = Object.keys(allow).filter((n) => !allowedSeen.includes(n));
  return { equal: problems.length === 0, diff: problems.join('\n'), allowedSeen, allowedUnused };
}

/**
 * Everything about a tree that must not depend on the file system that
 * produced it: names (as bytes), types, modes, owners, sizes, link counts of
 * files, symlink targets and a content hash. No times, inode numbers or
 * directory sizes.
 */
/** A name as printable ASCII, other bytes (and backslash, space) as \\xNN. */
export function escapeName(b: Buffer): string {
  let s = '';
  for (const c of b) s += c > 0x20 && c < 0x7f && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  return s;
}

export function treeManifest(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: Buffer) => {
    const abs = Buffer.concat([Buffer.from(root + '/'), rel]);
    for (const name of (readdirSync(abs, { encoding: 'buffer' }) as Buffer[]).sort(Buffer.compare)) {
      const r = rel.length ? Buffer.concat([rel, Buffer.from('/'), name]) : name;
      const p = Buffer.concat([Buffer.from(root + '/'), r]);
      const st = lstatSync(p);
      let extra = '';
      if (st.isFile()) extra = `size=${st.size} nlink=${st.nlink} sha=${createHash('sha1').update(readFileSync(p)).digest('hex')}`;
      else if (st.isSymbolicLink()) extra = `-> ${escapeName(readlinkSync(p, { encoding: 'buffer' }) as Buffer)}`;
      else if (st.isCharacterDevice() || st.isBlockDevice()) extra = `rdev=${st.rdev}`;
      out.push(`${escapeName(r)} mode=${st.mode.toString(8)} owner=${st.uid}:${st.gid} ${extra}`);
      if (st.isDirectory()) walk(r);
    }
  };
  walk(Buffer.alloc(0));
  return out;
}

/** Lines only in one manifest or the other (first ten of each), or '' when equal. */
export function diffTrees(a: string[], b: string[], labels: [string, string] = ['native', 'host side']): string {
  const sa = new Set(a);
  const sb = new Set(b);
  const onlyA = a.filter((l) => !sb.has(l)).slice(0, 10);
  const onlyB = b.filter((l) => !sa.has(l)).slice(0, 10);
  return [...onlyA.map((l) => `${labels[0]} only: ${l}`), ...onlyB.map((l) => `${labels[1]} only: ${l}`)].join('\n');
}

// --- Running the battery inside a guest --------------------------------------

/** Marks the battery's output on a guest console full of other lines. */
export const GUEST_BATTERY_MARK = '@@battery@@';

/** A new directory `dir/name` holding the battery binary as ./battery: the share a guest mounts. */
export function prepareBatteryShare(dir: string, name: string, binary: string): string {
  const share = join(dir, name);
  mkdirSync(share);
  copyFileSync(binary, join(share, 'battery'));
  chmodSync(join(share, 'battery'), 0o755);
  return share;
}

/** The guest shell command that runs ./battery with `args` between marks (after `prelude`). */
export function guestBatteryCommand(args: string, prelude = ''): string {
  const m = GUEST_BATTERY_MARK;
  return `${prelude}mkdir -p work && echo ${m} && ./battery ${args}; echo "${m} exit=$?"`;
}

/**
 * The battery's lines from a guest console produced by guestBatteryCommand,
 * plus the console lines before it. Throws with the console's tail when the
 * battery did not run or did not exit 0.
 */
export function batteryLinesFromConsole(output: string): { lines: string[]; before: string[] } {
  const m = GUEST_BATTERY_MARK;
  const out = output.split('\n');
  const start = out.indexOf(m);
  const end = out.findIndex((l) => l.startsWith(`${m} exit=`));
  if (start < 0 || end <= start) throw new Error(`battery did not run in the guest:\n${output.slice(-3000)}`);
  if (out[end] !== `${m} exit=0`) throw new Error(`battery failed in the guest:\n${out.slice(end - 10, end + 1).join('\n')}`);
  return { lines: out.slice(start + 1, end).filter((l) => l.length > 0), before: out.slice(0, start) };
}

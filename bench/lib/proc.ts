// bench/lib: process helpers for the benchmarks (may import node:* only).
// Benchmarks drive real tools (fio, gcc, mount daemons); these wrappers turn
// every failure into one readable Error instead of a stack of child output.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Runs a command to completion; throws with its stderr tail when it fails. */
export function run(cmd: string, args: string[], opts: { cwd?: string; input?: string | Buffer; timeoutMs?: number } = {}): string {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd,
    input: opts.input,
    timeout: opts.timeoutMs ?? 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    const why = r.signal ? `killed by ${r.signal}` : `exit ${r.status}`;
    // Reason first: progress lines cut long messages, and the command is long.
    throw new Error(`${cmd} ${why}: ${tail(r.stderr.toString() || r.stdout.toString(), 600)} [command: ${cmd} ${args.join(' ')}]`);
  }
  return r.stdout.toString();
}

/** Like run() but returns undefined instead of throwing (for optional facts). */
export function tryRun(cmd: string, args: string[], opts: { cwd?: string } = {}): string | undefined {
  try {
    return run(cmd, args, { ...opts, timeoutMs: 20_000 }).trim();
  } catch {
    return undefined;
  }
}

export function tail(s: string, max: number): string {
  const t = s.trim();
  return t.length <= max ? t : '...' + t.slice(t.length - max);
}

/**
 * A long-lived child (a mount daemon) whose output is kept in a bounded ring so
 * a chatty daemon can neither block on a full pipe nor grow our memory.
 */
export class Daemon {
  readonly child: ChildProcess;
  private out = '';
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  readonly exited: Promise<void>;

  constructor(cmd: string, args: string[], opts: { cwd?: string } = {}) {
    this.child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (b: Buffer) => {
      this.out = (this.out + b.toString()).slice(-8192);
    };
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) => {
      this.child.on('error', (e) => {
        this.out += `\nspawn error: ${e.message}`;
        this.exitCode = -1;
        resolve();
      });
      this.child.on('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        resolve();
      });
    });
  }

  get running(): boolean {
    return this.exitCode === null && this.exitSignal === null;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  output(max = 800): string {
    return tail(this.out, max);
  }

  /** SIGTERM, wait up to graceMs, then SIGKILL. Resolves once the child is gone. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    if (await raceTimeout(this.exited, graceMs)) return;
    this.child.kill('SIGKILL');
    await raceTimeout(this.exited, 5000);
  }

  /** user+system CPU time of the whole process (all threads) in seconds, from /proc. */
  cpuSeconds(): number | undefined {
    return processCpuSeconds(this.pid);
  }
}

const CLK_TCK = 100; // USER_HZ is 100 on every Linux ABI Node runs on

export function processCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces; fields after it are fixed.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return (utime + stime) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** Resolves true if p settled within ms, false on timeout. */
export async function raceTimeout(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true), t]);
  } finally {
    clearTimeout(timer);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Async run with a timeout, for jobs (fio) that must not freeze the harness. */
export function runAsync(
  cmd: string,
  args: string[],
  opts: { cwd?: string; timeoutMs: number },
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => {
      err.push(b);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: -1, signal: null, stdout: '', stderr: e.message, timedOut });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), timedOut });
    });
  });
}

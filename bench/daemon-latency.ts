// bench: our vhost-user-fs daemon vs QEMU's C virtiofsd through the
// TypeScript driver (src/driver), no guest and no TCG: the tool for data-plane
// work on the daemon. Fixed operation counts (not time-based), the systems
// interleaved round by round, median ops/s per system and ours ÷ C.
//   node --import tsx bench/daemon-latency.ts [--rounds N] [--ops N] [--rows a,b] [--systems ours,c]
// Profile our daemon under the same load: VTS_DAEMON_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof'.
// May import node:* and src/driver (the code under test). Not part of `npm test`.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectVirtioFs, type VirtioFsSession } from '../src/driver/session.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(REPO, 'bin/virtiofs-ts.js');
const C_VIRTIOFSD = '/usr/lib/qemu/virtiofsd';
const MiB = 1024 * 1024;
const O_RDWR = 2;

export const usage = `node --import tsx bench/daemon-latency.ts [options]

Drives our daemon (virtiofs-ts serve) and QEMU's C virtiofsd (cache=auto both)
through the TypeScript driver with fixed operation counts; prints median ops/s
per row and the ratio ours / C.

Options:
  --rounds N        rounds, systems alternating (default 3)
  --ops N           operations per 4 KiB row (default 20000; big rows use ops/8)
  --rows LIST       comma list of rows (default all): ${'rand-read-4k,rand-read-4k-qd8,seq-read-1m,rand-write-4k,seq-write-1m,getattr'}
  --file-mib N      size of the data file (default 256)
  --systems LIST    comma list of ours, ours-poll (--poll-us 50), base (the CLI
                    at $VTS_BASE_BIN: before/after), c, c-pool64
                    (C virtiofsd --thread-pool-size=64); default ours,c
  --threads N       pass --thread-pool-size N to our daemon
  --ours-args 'A B' more arguments for our daemon (e.g. '--poll-us 0')
  --help            this text
Env: VTS_DAEMON_NODE_ARGS adds node options for our daemon (e.g. --cpu-prof).
`;

interface Row { id: string; run(s: VirtioFsSession, h: Handle, ops: number): Promise<number> }
interface Handle { nodeid: number; fh: number; size: number }

let seed = 12345;
const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);

/** Run `ops` calls of `one` with `qd` in flight; returns ops/s. */
async function drive(ops: number, qd: number, one: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  const lane = async () => { while (next < ops) await one(next++); };
  await Promise.all(Array.from({ length: qd }, lane));
  return ops / ((performance.now() - t0) / 1000);
}

const ROWS: Row[] = [
  { id: 'rand-read-4k', run: (s, h, ops) => drive(ops, 1, () => s.client.read(h.nodeid, h.fh, rnd(h.size / 4096) * 4096, 4096)) },
  { id: 'rand-read-4k-qd8', run: (s, h, ops) => drive(ops, 8, () => s.client.read(h.nodeid, h.fh, rnd(h.size / 4096) * 4096, 4096)) },
  { id: 'seq-read-1m', run: (s, h, ops) => drive(Math.max(8, ops >> 3), 1, (i) => s.client.read(h.nodeid, h.fh, (i * MiB) % h.size, MiB)) },
  {
    id: 'rand-write-4k',
    run: (s, h, ops) => {
      const b = Buffer.alloc(4096, 0x5a);
      return drive(ops, 1, () => s.client.write(h.nodeid, h.fh, rnd(h.size / 4096) * 4096, b));
    },
  },
  {
    id: 'seq-write-1m',
    run: (s, h, ops) => {
      const b = Buffer.alloc(MiB, 0x6b);
      return drive(Math.max(8, ops >> 3), 1, (i) => s.client.write(h.nodeid, h.fh, (i * MiB) % h.size, b));
    },
  },
  { id: 'getattr', run: (s, h, ops) => drive(ops, 1, () => s.client.getattr(h.nodeid)) },
];

function spawnWait(cmd: string, args: string[], sock: string): Promise<ChildProcess> {
  const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', process.env.VTS_DAEMON_STDERR ? 'inherit' : 'ignore'] });
  return (async () => {
    const t0 = Date.now();
    while (!existsSync(sock)) {
      if (c.exitCode !== null || Date.now() - t0 > 30_000) throw new Error(`${cmd} did not listen on ${sock}`);
      await sleep(20);
    }
    return c;
  })();
}

/**
 * CPU time (ns) the process tree has run so far: every thread's schedstat
 * (exact, not clock ticks), children included (the C virtiofsd forks into a
 * sandbox). Threads that already exited are lost, so measure while they live.
 */
function cpuNs(pid: number): number {
  let sum = 0;
  let tasks: string[] = [];
  try { tasks = readdirSync(`/proc/${pid}/task`); } catch { return 0; }
  for (const t of tasks) {
    try { sum += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]); } catch { /* thread gone */ }
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ').filter(Boolean)) sum += cpuNs(Number(c));
    } catch { /* gone */ }
  }
  return sum;
}

/** Per-thread CPU ns (diagnostics: VTS_THREAD_CPU=1), keyed by tid and name. */
function threadNs(pid: number): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim();
      m.set(`${t}:${name}`, Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]));
    } catch { /* gone */ }
  }
  return m;
}

function threadCpu(pid: number, before: Map<string, number>, ops: number): string {
  const after = threadNs(pid);
  return [...after].map(([k, v]) => [k, (v - (before.get(k) ?? 0)) / 1000 / ops] as const)
    .filter(([, us]) => us >= 0.05).sort((a, b) => b[1] - a[1]).map(([k, us]) => `${k} ${us.toFixed(2)}`).join(', ');
}

/** The socket file appears at bind(), a moment before listen(): retry a refused connect briefly. */
async function connectRetry(sock: string): Promise<VirtioFsSession> {
  for (let i = 0; ; i++) {
    try {
      return await connectVirtioFs({ socketPath: sock, memoryBytes: 64 * MiB });
    } catch (err) {
      if ((err as { errno?: number }).errno !== 111 || i >= 50) throw err;
      await sleep(20);
    }
  }
}

async function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  // Our daemon exits by itself once the frontend is gone; give it the chance (profiles are written at exit).
  const t = setTimeout(() => c.kill('SIGTERM'), 5000);
  await exited;
  clearTimeout(t);
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help')) { process.stdout.write(usage); return 0; }
  const arg = (k: string) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : undefined; };
  const rounds = Number(arg('--rounds') ?? 3);
  const ops = Number(arg('--ops') ?? 20000);
  const fileMiB = Number(arg('--file-mib') ?? 256);
  const rowIds = (arg('--rows') ?? ROWS.map((r) => r.id).join(',')).split(',');
  const rows = rowIds.map((id) => { const r = ROWS.find((x) => x.id === id); if (!r) throw new Error(`unknown row ${id}`); return r; });
  const sysIds = (arg('--systems') ?? 'ours,c').split(',');
  const threads = arg('--threads');
  const oursArgs = (arg('--ours-args') ?? '').split(' ').filter(Boolean);
  const work = mkdtempSync(join(process.env.BENCH_DIR ?? '/var/tmp', 'vts-daemon-lat-'));
  const data = join(work, 'data');
  mkdirSync(data);
  const fd = openSync(join(data, 'big.bin'), 'w');
  const block = Buffer.alloc(4 * MiB);
  for (let o = 0; o < fileMiB * MiB; o += block.length) { randomFillSync(block); writeSync(fd, block); }
  closeSync(fd);
  const nodeArgs = (process.env.VTS_DAEMON_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const systems: Record<string, (sock: string) => Promise<ChildProcess>> = {
    ours: (s) => spawnWait(process.execPath, [...nodeArgs, BIN, 'serve', '--socket-path', s, '--shared-dir', data, '--cache', 'auto',
      ...(threads ? ['--thread-pool-size', threads] : []), ...oursArgs], s),
    // Our daemon with adaptive polling (A/B of --poll-us; the default is 0).
    'ours-poll': (s) => spawnWait(process.execPath, [...nodeArgs, BIN, 'serve', '--socket-path', s, '--shared-dir', data, '--cache', 'auto', '--poll-us', '50', ...oursArgs], s),
    // Before/after: another checkout's CLI (VTS_BASE_BIN=/path/to/bin/virtiofs-ts.js).
    base: (s) => spawnWait(process.execPath, [...nodeArgs, process.env.VTS_BASE_BIN ?? BIN, 'serve', '--socket-path', s, '--shared-dir', data, '--cache', 'auto'], s),
    c: (s) => spawnWait(C_VIRTIOFSD, [`--socket-path=${s}`, '-o', `source=${data}`, '-o', 'cache=auto'], s),
    // Does a worker pool pay? The C daemon with one (its default is 0: the queue thread serves).
    'c-pool64': (s) => spawnWait(C_VIRTIOFSD, [`--socket-path=${s}`, '-o', `source=${data}`, '-o', 'cache=auto', '--thread-pool-size=64'], s),
  };
  const results: Record<string, Record<string, number[]>> = {};
  /** Daemon CPU µs per operation. */
  const cpu: Record<string, Record<string, number[]>> = {};
  try {
    for (let round = 0; round < rounds; round++) {
      // Alternate which system goes first so drift in machine load hits both.
      const order = round % 2 === 0 ? sysIds : [...sysIds].reverse();
      for (const sys of order) {
        const sock = join(work, `${sys}-${round}.sock`);
        const child = await systems[sys]!(sock);
        const s = await connectRetry(sock);
        try {
          const e = await s.client.lookup(1, 'big.bin');
          const o = await s.client.open(e.nodeid, O_RDWR);
          const h = { nodeid: e.nodeid, fh: o.fh, size: fileMiB * MiB };
          // Warm-up: page cache and JIT on both sides.
          await ROWS[0]!.run(s, h, 2000);
          for (const row of rows) {
            seed = 12345 + round;
            const c0 = cpuNs(child.pid!);
            const t0Threads = process.env.VTS_THREAD_CPU ? threadNs(child.pid!) : new Map<string, number>();
            const t0 = performance.now();
            const v = await row.run(s, h, ops);
            const n = v * (performance.now() - t0) / 1000;
            ((results[row.id] ??= {})[sys] ??= []).push(v);
            ((cpu[row.id] ??= {})[sys] ??= []).push((cpuNs(child.pid!) - c0) / 1000 / n);
            if (process.env.VTS_THREAD_CPU) process.stderr.write(`${sys} ${row.id} per-thread CPU µs/op: ${threadCpu(child.pid!, t0Threads, n)}\n`);
          }
          await s.client.release(e.nodeid, o.fh);
        } finally {
          await s.close();
          await stop(child);
        }
      }
      process.stderr.write(`round ${round + 1}/${rounds} done\n`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const med = (a: number[]) => { const b = [...a].sort((x, y) => x - y); return b[Math.floor(b.length / 2)]!; };
  const others = sysIds.filter((x) => x !== 'c');
  const withC = sysIds.includes('c');
  const lines = [
    `| row | ${sysIds.map((s) => `${s} ops/s`).join(' | ')} |${withC ? others.map((o) => ` ${o} ÷ c |`).join('') : ''} ${sysIds.map((s) => `${s} CPU µs/op`).join(' | ')} | samples (ops/s) |`,
    `|:--|${sysIds.map(() => '--:|').join('')}${withC ? others.map(() => '--:|').join('') : ''}${sysIds.map(() => '--:|').join('')}:--|`,
  ];
  for (const row of rows) {
    const r = results[row.id]!;
    const m = sysIds.map((s) => med(r[s]!));
    const ratio = withC ? others.map((o) => ` ${(med(r[o]!) / med(r.c!)).toFixed(2)}× |`).join('') : '';
    const c = sysIds.map((s) => med(cpu[row.id]![s]!).toFixed(1));
    lines.push(`| ${row.id} | ${m.map((v) => Math.round(v).toLocaleString('en')).join(' | ')} |${ratio} ${c.join(' | ')} | ${sysIds.map((s) => `${s}: ${r[s]!.map((v) => Math.round(v)).join(', ')}`).join('; ')} |`);
  }
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = await main(process.argv.slice(2));

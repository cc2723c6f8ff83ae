// bench: `npm run bench -- guest`: the same Linux guest (QEMU TCG) and the same
// workload on our vhost-user-fs daemon and on QEMU's C virtiofsd, per cache
// mode, in one run (may import node:*, bench/lib and src/guest).
// One boot per system and repetition; the guest's root is served by the
// daemon under test, so each boot gives the boot-to-shell time AND the fio
// matrix + metadata rows. Systems are interleaved per repetition (order
// rotated) so a change in the shared machine's load hits them alike.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { processCpuSeconds } from './lib/proc.ts';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runInGuestRoot } from '../src/guest/qemu.ts';
import { Progress } from './lib/progress.ts';
import { gitInfo, machineInfo, type Measurement } from './lib/results.ts';
import { judge, median, writeGuestResults, type GuestReport, type GuestSystemOutcome } from './lib/guest-report.ts';
import { resolveQemu, startBackend, SYSTEMS, treeCpuSeconds, type GuestQemu, type GuestSystem, type QemuChoice } from './lib/guest-systems.ts';
import { ALL_ROWS, BENCH_DIR, BOOT_ROW, FIO_ROWS, META_PHASES, parseMeta, prepareRoot, readFioResult, type WorkloadConfig } from './lib/guest-workload.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');

export const usage = `usage: npm run bench -- guest [options]

Boots the same Linux guest (QEMU, software emulation) with its ROOT file
system served over virtio-fs by each system in turn, and inside that one boot
measures: boot to the first shell line, fio psync sequential/random
reads/writes with 4 KiB and 1 MiB blocks on one file, and a metadata load
(create/stat/readdir/unlink) by a small static C program. Reports ratios
ours ÷ C virtiofsd per cache mode against the issue's targets.

Systems (default: the first six):
${SYSTEMS.map((s) => `  ${s.id.padEnd(11)} ${s.label}${s.byDefault ? '' : ' [opt-in]'}`).join('\n')}

Options:
  --quick             smoke run: 32 MiB file, 1 s jobs, 300 files, one repetition
  --reps N            repetitions (boots per system); default 3
  --systems a,b       systems to run ("all" = every entry above)
  --size MIB          fio file size; default 256
  --runtime SEC       seconds per fio job; default 5
  --meta-files N      files in the metadata load; default 2000
  --memory MIB        guest RAM; default 1024
  --cpus N            guest vCPUs; default 1 (leaves a host core for the daemon)
  --dir DIR           work dir on a disk file system; default /var/tmp/virtiofs-ts-bench-guest
  --out DIR           results dir; default bench/results
  --name BASE         results file base name; default guest
  --note TEXT         a note for the report (repeatable), e.g. that the machine was busy
  --render JSON       rebuild Markdown and plot from a results JSON, no measuring
`;

interface Sample {
  value: number;
  detail: Record<string, unknown>;
}

export async function main(argv: string[]): Promise<number> {
  const { values: o } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' },
      reps: { type: 'string' },
      systems: { type: 'string' },
      size: { type: 'string' },
      runtime: { type: 'string' },
      'meta-files': { type: 'string' },
      memory: { type: 'string' },
      cpus: { type: 'string' },
      dir: { type: 'string' },
      out: { type: 'string' },
      name: { type: 'string' },
      note: { type: 'string', multiple: true },
      render: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (o.help) {
    process.stdout.write(usage);
    return 0;
  }
  const outDir = o.out ?? join(REPO, 'bench/results');
  const name = o.name ?? 'guest';
  if (o.render) {
    const report = JSON.parse(readFileSync(o.render, 'utf8')) as GuestReport;
    judge(report);
    const w = writeGuestResults(outDir, name, report);
    process.stdout.write(`${w.md}\n${w.plot.png ?? w.plot.svg}\n`);
    return 0;
  }
  const num = (v: string | undefined, d: number, what: string) => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${what} wants a positive number, got "${v}"`);
    return n;
  };
  const quick = o.quick ?? false;
  const reps = num(o.reps, quick ? 1 : 3, 'reps');
  const cfg: WorkloadConfig = {
    fileBytes: num(o.size, quick ? 32 : 256, 'size') * 1024 * 1024,
    runtimeMs: num(o.runtime, quick ? 1 : 5, 'runtime') * 1000,
    metaFiles: num(o['meta-files'], quick ? 300 : 2000, 'meta-files'),
    readdirPasses: quick ? 3 : 10,
  };
  const memoryMiB = num(o.memory, 1024, 'memory');
  const cpus = num(o.cpus, 1, 'cpus');
  let systems: GuestSystem[];
  if (!o.systems) systems = SYSTEMS.filter((s) => s.byDefault);
  else if (o.systems === 'all') systems = SYSTEMS;
  else {
    systems = o.systems.split(',').map((id) => {
      const s = SYSTEMS.find((x) => x.id === id.trim());
      if (!s) throw new Error(`unknown system "${id}" (known: ${SYSTEMS.map((x) => x.id).join(', ')})`);
      return s;
    });
  }
  if (process.getuid?.() !== 0) throw new Error('run as root: the daemons serve a root file system (ownership, device nodes)');

  const work = o.dir ?? '/var/tmp/virtiofs-ts-bench-guest';
  const rootDir = join(work, 'root');
  mkdirSync(work, { recursive: true });
  const progress = new Progress(reps * systems.length);
  progress.note(`preparing the guest root in ${rootDir} (busybox, fio + libraries, metadata program)`);
  const prepared = prepareRoot(rootDir, cfg);

  const report: GuestReport = {
    benchmark: 'guest',
    title: 'virtio-fs guest benchmark: our daemon vs QEMU\'s C virtiofsd',
    quick,
    partial: !!o.systems && o.systems !== 'all' && SYSTEMS.filter((s) => s.byDefault).some((s) => !systems.includes(s)),
    date: new Date().toISOString(),
    git: gitInfo(REPO),
    machine: machineInfo(REPO, work),
    config: {
      command: `npm run bench -- guest ${argv.join(' ')}`.trim(),
      reps,
      ...cfg,
      memoryMiB,
      cpus,
      guest: `Debian cloud kernel, ${cpus} vCPU, ${memoryMiB} MiB, QEMU -accel tcg; root = ${rootDir} over virtio-fs (busybox + fio + libraries)`,
      workload:
        `fio ${cfg.fileBytes / 2 ** 20} MiB file, ioengine=psync iodepth=1, ${cfg.runtimeMs / 1000} s time-based jobs, guest page cache dropped before each job; ` +
        `metadata: ${cfg.metaFiles} files create/stat/unlink, ${cfg.readdirPasses} readdir passes; ${reps} repetition(s), one boot per system each, order rotated`,
      fioJobFile: prepared.jobFile,
      guestArgv: prepared.argv,
    },
    systems: [],
    rows: ALL_ROWS,
    results: [],
    ratios: [],
    targets: [],
    notes: o.note ?? [],
  };

  const qemus = new Map<QemuChoice, GuestQemu | Error>();
  const outcomes = new Map<string, GuestSystemOutcome>();
  for (const s of systems) outcomes.set(s.id, { id: s.id, label: s.label, status: 'ok', versus: s.versus, ...(s.rowTargets ? { rowTargets: s.rowTargets } : {}), qemu: s.qemu === 'system' ? 'QEMU 7.2 (system), vhost-user-fs-pci' : 'QEMU 11.1 (private), generic vhost-user device' });
  const samples = new Map<string, Sample[]>(); // `${system}/${row}`
  const failures = new Map<string, string>();
  const add = (sys: string, row: string, s: Sample) => {
    const k = `${sys}/${row}`;
    samples.set(k, [...(samples.get(k) ?? []), s]);
  };

  for (let rep = 0; rep < reps; rep++) {
    const order = systems.map((_, i) => systems[(i + rep) % systems.length]!);
    for (const sys of order) {
      const outcome = outcomes.get(sys.id)!;
      let q = qemus.get(sys.qemu);
      if (!q) {
        q = await resolveQemu(sys.qemu).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
        qemus.set(sys.qemu, q);
      }
      if (q instanceof Error) {
        outcome.status = 'failed';
        outcome.error = `QEMU ${sys.qemu}: ${q.message}`;
        progress.job(sys.id, `rep ${rep + 1}`, `failed: ${outcome.error.slice(0, 200)}`);
        continue;
      }
      outcome.qemu = `${q.version}${q.fsDevice ? ', generic vhost-user device' : ', vhost-user-fs-pci'}`;
      progress.note(`${sys.id} rep ${rep + 1}/${reps}: daemon up, booting the guest (load ${loadavg()[0]!.toFixed(1)})`);
      try {
        const r = await oneBoot(sys, q, rootDir, work, prepared.argv, cfg, memoryMiB, cpus, quick);
        outcome.command = r.command;
        for (const [row, s] of r.samples) add(sys.id, row, s);
        for (const [row, e] of r.failed) failures.set(`${sys.id}/${row}`, e);
        const f = (id: string) => r.samples.get(id)?.value;
        progress.job(
          sys.id,
          `rep ${rep + 1}`,
          `boot ${f('boot')?.toFixed(1) ?? '?'} s · seq rd 1M ${f('read-1m')?.toFixed(0) ?? '?'} MiB/s · rand rd 4k ${f('randread-4k')?.toFixed(1) ?? '?'} MiB/s · create ${f('meta-create')?.toFixed(0) ?? '?'}/s` +
            (r.failed.size ? ` · ${r.failed.size} failed: ${[...r.failed.values()][0]!.slice(0, 160)}` : ''),
        );
      } catch (e) {
        const msg = (e as Error).message;
        for (const row of ALL_ROWS) failures.set(`${sys.id}/${row.id}`, msg);
        if (![...samples.keys()].some((k) => k.startsWith(`${sys.id}/`))) {
          outcome.status = 'failed';
          outcome.error = msg;
        }
        progress.job(sys.id, `rep ${rep + 1}`, `failed: ${msg.replace(/\s+/g, ' ').slice(0, 300)}`);
      }
    }
  }

  for (const sys of systems) {
    for (const row of ALL_ROWS) {
      const ss = samples.get(`${sys.id}/${row.id}`) ?? [];
      const m: Measurement = { system: sys.id, row: row.id, status: ss.length ? 'ok' : 'failed' };
      if (ss.length) {
        m.value = median(ss.map((s) => s.value));
        if (row.unit === 'MiB/s') m.mibPerSec = m.value;
        const med = (k: string) => {
          const xs = ss.map((s) => s.detail[k]).filter((c): c is number => typeof c === 'number');
          return xs.length ? { [k]: median(xs) } : {};
        };
        m.detail = { samples: ss.map((s) => s.value), ...med('daemonCpuPct'), ...med('qemuCpuPct'), ...med('hostCpuPressurePct'), runs: ss.map((s) => s.detail) };
      } else m.error = failures.get(`${sys.id}/${row.id}`) ?? 'no sample';
      report.results.push(m);
    }
  }
  report.systems = [...outcomes.values()];
  report.finished = new Date().toISOString();
  report.machine.loadavgEnd = loadavg().map((x) => Math.round(x * 100) / 100);
  judge(report);
  const w = writeGuestResults(outDir, name, report);
  progress.note(`wrote ${w.json}, ${w.md}, ${w.plot.png ?? w.plot.svg}${w.plot.warning ? ` (${w.plot.warning})` : ''}`);
  for (const t of report.targets) progress.note(`${t.status.padEnd(12)} ${t.system.padEnd(11)} ${t.target}: ${t.detail}`);
  return report.results.some((m) => m.status === 'ok') ? 0 : 1;
}

interface Snap {
  t: number;
  cpu: number;
  qemuCpu: number;
  /** /proc/pressure/cpu "some" total, microseconds. */
  psi: number;
}

/** QEMU's pid, found by the chardev path on its command line (runInGuestRoot does not expose it). */
function findQemuPid(socket: string): number | undefined {
  const needle = `id=vfts0,path=${socket}`;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'latin1').includes(needle)) return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

function cpuPressureUs(): number {
  try {
    return Number(/^some .*total=(\d+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'))?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

interface BootOutcome {
  command: string[];
  samples: Map<string, Sample>;
  failed: Map<string, string>;
}

/** One guest boot on one system: daemon up, guest runs the whole workload, daemon down, results read back. */
async function oneBoot(sys: GuestSystem, q: GuestQemu, rootDir: string, work: string, argv: string[], cfg: WorkloadConfig, memoryMiB: number, cpus: number, quick: boolean): Promise<BootOutcome> {
  const results = join(rootDir, BENCH_DIR, 'results');
  rmSync(results, { recursive: true, force: true });
  mkdirSync(results, { recursive: true });
  rmSync(join(rootDir, BENCH_DIR, 'data'), { recursive: true, force: true });
  const socket = join(work, `${sys.id}.sock`);
  const backend = await startBackend(sys, rootDir, socket);
  const pid = backend.daemon.pid;
  const load1 = loadavg()[0]!;
  // At each marker line: host time, daemon CPU (process tree), QEMU CPU and the
  // host's CPU pressure (PSI), so each row says whether the daemon, the guest
  // or the other tenants of the machine set its pace.
  let qemuPid: number | undefined;
  const snap = (): Snap => {
    qemuPid ??= findQemuPid(socket);
    return { t: performance.now(), cpu: treeCpuSeconds(pid) ?? NaN, qemuCpu: processCpuSeconds(qemuPid) ?? NaN, psi: cpuPressureUs() };
  };
  const start: Snap = { ...snap(), qemuCpu: 0 };
  const marks = new Map<string, Snap>();
  let partial = '';
  const onOutput = (b: Buffer) => {
    partial += b.toString('utf8');
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const l of lines) {
      const m = /@@(start|end|ready)\s*(\S*)/.exec(l);
      if (m) marks.set(m[1] === 'ready' ? 'ready' : `${m[1]} ${m[2]}`, snap());
    }
  };
  let out;
  try {
    // The whole matrix at TCG speed: boot, layout, 8 jobs, metadata; generous.
    const timeoutMs = 240_000 + 8 * (cfg.runtimeMs + 30_000) + cfg.fileBytes / 1024 / 10 + cfg.metaFiles * 60;
    out = await runInGuestRoot({
      socketPath: socket,
      argv,
      memoryMiB,
      cpus,
      timeoutMs: quick ? Math.min(timeoutMs, 900_000) : timeoutMs,
      ...(q.command ? { qemu: q.command } : {}),
      ...(q.fsDevice ? { fsDevice: q.fsDevice } : {}),
      ...(sys.daxWindow ? { mountOptions: 'dax=always' } : {}),
      onOutput,
      progress: () => {},
    });
  } finally {
    await backend.stop();
  }
  // The guest's console, for a look after the run (one file per system, last boot).
  writeFileSync(join(work, `${sys.id}.console.txt`), out.output);
  const samples = new Map<string, Sample>();
  const failed = new Map<string, string>();
  if (out.exitCode !== 0) {
    const tail = out.output.split('\n').slice(-8).join(' | ');
    failed.set('boot', `guest workload exited ${out.exitCode}: ${tail}`);
  }
  /** Per-row host figures between two marks ("qemu" = QEMU's start). */
  const host = (from: string, to: string) => {
    const a = from === 'qemu' ? start : marks.get(from);
    const b = marks.get(to);
    if (!a || !b || b.t <= a.t) return {};
    const secs = (b.t - a.t) / 1000;
    const pct = (x: number, y: number) => (Number.isFinite(x) && Number.isFinite(y) ? Math.round(((y - x) / secs) * 1000) / 10 : undefined);
    return { daemonCpuPct: pct(a.cpu, b.cpu), qemuCpuPct: pct(a.qemuCpu, b.qemuCpu), hostCpuPressurePct: pct(a.psi / 1e6, b.psi / 1e6) };
  };
  const wallMs = (id: string) => {
    const a = marks.get(`start ${id}`);
    const b = marks.get(`end ${id}`);
    return a && b ? Math.round(b.t - a.t) : undefined;
  };
  const common = { load1, daemonExit: backend.daemon.exitCode ?? backend.daemon.exitSignal };
  if (out.output.startsWith('@@ready') && out.firstOutputMs !== undefined) {
    samples.set(BOOT_ROW.id, { value: out.firstOutputMs / 1000, detail: { ...common, initramfsToBeginMs: Math.round(out.bootMs), firstOutputMs: Math.round(out.firstOutputMs), totalMs: Math.round(out.totalMs), ...host('qemu', 'ready') } });
  } else failed.set(BOOT_ROW.id, `the root's first output was not "@@ready": ${out.output.slice(0, 200)}`);

  const fioExit = /@@fio-exit (\d+)/.exec(out.output)?.[1];
  if (fioExit === undefined) {
    for (const r of FIO_ROWS) failed.set(r.id, 'fio never finished');
  } else {
    for (const r of FIO_ROWS) {
      try {
        // fio exits non-zero when any job failed; each job's own error field says which.
        const f = readFioResult(rootDir, r);
        samples.set(r.id, {
          value: f.bytesPerSec / 2 ** 20,
          detail: { ...common, wallMs: wallMs(r.id), iops: f.iops, ioBytes: f.ioBytes, runtimeMs: f.runtimeMs, clatMeanUs: f.clatMeanUs, clatP99Us: f.clatP99Us, fioUsrCpu: f.fioUsrCpu, fioSysCpu: f.fioSysCpu, ...host(`start ${r.id}`, `end ${r.id}`) },
        });
      } catch (e) {
        failed.set(r.id, (e as Error).message);
      }
    }
  }
  const meta = parseMeta(out.output);
  const metaErr = /@@meta-error (.*)/.exec(out.output)?.[1];
  const metaHost = host('start meta', 'end meta');
  for (const p of META_PHASES) {
    const f = meta[p];
    if (f && f.seconds > 0) samples.set(`meta-${p}`, { value: f.ops / f.seconds, detail: { ...common, ops: f.ops, seconds: f.seconds, ...metaHost, hostFiguresOver: 'the whole metadata load' } });
    else failed.set(`meta-${p}`, metaErr ? `metadata program: ${metaErr}` : 'no figure');
  }
  return { command: backend.argv, samples, failed };
}

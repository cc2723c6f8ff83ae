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
import { judge, median, writeGuestResults, type Comparison, type GuestReport, type GuestSystemOutcome } from './lib/guest-report.ts';
import { daxSystem, resolveQemu, startBackend, SYSTEMS, systemById, treeCpuSeconds, type GuestQemu, type GuestSystem, type QemuChoice } from './lib/guest-systems.ts';
import { daxTargets, prepareThesisRoot, THESIS_DATA_DIR, thesisAllRows, thesisRows, type ThesisConfig } from './lib/guest-thesis.ts';
import { ALL_ROWS, BENCH_DIR, BOOT_ROW, FIO_ROWS, META_PHASES, parseMeta, prepareRoot, readFioResult, type FioRowSpec, type GuestRow, type WorkloadConfig } from './lib/guest-workload.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');

export const usage = `usage: npm run bench -- guest [options]

Boots the same Linux guest (QEMU, software emulation) with its ROOT file
system served over virtio-fs by each system in turn, and inside that one boot
measures: boot to the first shell line, fio psync sequential/random
reads/writes with 4 KiB and 1 MiB blocks on one file, and a metadata load
(create/stat/readdir/unlink) by a small static C program. Reports ratios
ours ÷ C virtiofsd per cache mode against the issue's targets.

--preset thesis (alias: dax) runs issue 5's comparison instead, in one run:
ours with a DAX window (QEMU 11.1, root mounted dax=always), ours without DAX
and Rust virtiofsd 1.14 (QEMU 11.1, generic vhost-user device), QEMU's C
virtiofsd 7.2 (QEMU 7.2, vhost-user-fs-pci), all --cache auto; fio sequential
and random reads (4 KiB, 1 MiB) of one big file and of N smaller files written
on the host beforehand, plus boot time (extra boot-only boots: --boots).
Ratios: DAX ÷ no-DAX (target ≥ 6× on random reads), ours no-DAX ÷ Rust
(≥ 1.0× on every row), and for information DAX ÷ Rust and C 7.2 ÷ Rust.

Systems (default: the first six):
${SYSTEMS.map((s) => `  ${s.id.padEnd(11)} ${s.label}${s.byDefault ? '' : ' [opt-in]'}`).join('\n')}

Options:
  --quick             smoke run: 32 MiB file, 1 s jobs, 300 files, one repetition
                      (thesis: 32 MiB + 3 × 8 MiB, 1 s jobs, one repetition)
  --preset NAME       thesis (or dax): issue 5's comparison, described above
  --big MIB           thesis: the big file's size; default 640
  --files N           thesis: how many smaller files; default 10
  --file-size MIB     thesis: each smaller file's size; default 64
  --dax-window SIZE   thesis: our DAX window (a power of two: QEMU makes it a
                      PCI BAR); default 1G. QEMU 11.1 makes each live SHMEM_MAP
                      a vhost memory region and aborts past 512 of them
                      (VHOST_USER_MAX_RAM_SLOTS): a bigger window let a 1 GiB
                      set crash it, while with 1G (512 ranges of 2 MiB) the
                      guest's own reclaim, from 80% full, keeps it below. The
                      default sets stay under 80% of 1G, so no DAX job waits
                      for reclaim. --big 1024 --file-size 100 gives issue 5's
                      sizes: DAX reads of the 1 GiB file then thrash the window.
  --boots N           extra boot-only boots per system and repetition, for the
                      boot row; default 0 (thesis: 2)
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
      preset: { type: 'string' },
      big: { type: 'string' },
      files: { type: 'string' },
      'file-size': { type: 'string' },
      'dax-window': { type: 'string' },
      boots: { type: 'string' },
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
  const whole = (v: string | undefined, d: number, what: string) => {
    const n = num(v, d, what);
    if (!Number.isInteger(n)) throw new Error(`--${what} wants a whole number, got "${v}"`);
    return n;
  };
  if (o.preset !== undefined && o.preset !== 'thesis' && o.preset !== 'dax') throw new Error(`unknown --preset "${o.preset}" (known: thesis, dax)`);
  const thesis = o.preset !== undefined;
  for (const k of ['big', 'files', 'file-size', 'dax-window'] as const) if (!thesis && o[k] !== undefined) throw new Error(`--${k} belongs to --preset thesis`);
  const quick = o.quick ?? false;
  const reps = whole(o.reps, quick ? 1 : 3, 'reps');
  const boots = o.boots === '0' ? 0 : whole(o.boots, thesis ? 2 : 0, 'boots');
  const cfg: WorkloadConfig = {
    fileBytes: num(o.size, quick ? 32 : 256, 'size') * 1024 * 1024,
    runtimeMs: num(o.runtime, quick ? 1 : 5, 'runtime') * 1000,
    metaFiles: num(o['meta-files'], quick ? 300 : 2000, 'meta-files'),
    readdirPasses: quick ? 3 : 10,
  };
  const tcfg: ThesisConfig = {
    bigBytes: whole(o.big, quick ? 32 : 640, 'big') * 1024 * 1024,
    files: whole(o.files, quick ? 3 : 10, 'files'),
    fileBytes: whole(o['file-size'], quick ? 8 : 64, 'file-size') * 1024 * 1024,
    runtimeMs: cfg.runtimeMs,
  };
  const daxWindow = o['dax-window'] ?? '1G';
  const memoryMiB = num(o.memory, 1024, 'memory');
  const cpus = num(o.cpus, 1, 'cpus');
  let systems: GuestSystem[];
  const thesisSystems = [daxSystem(daxWindow), systemById('vts11-auto')!, systemById('rust-auto')!, systemById('c-auto')!];
  const pool = thesis ? thesisSystems : SYSTEMS;
  if (thesis && !o.systems) systems = thesisSystems;
  else if (!o.systems) systems = SYSTEMS.filter((s) => s.byDefault);
  else if (o.systems === 'all') systems = pool;
  else {
    systems = o.systems.split(',').map((id) => {
      const s = pool.find((x) => x.id === id.trim());
      if (!s) throw new Error(`unknown system "${id}" (known${thesis ? ' with --preset thesis' : ''}: ${pool.map((x) => x.id).join(', ')})`);
      return s;
    });
  }
  if (process.getuid?.() !== 0) throw new Error('run as root: the daemons serve a root file system (ownership, device nodes)');

  const work = o.dir ?? '/var/tmp/virtiofs-ts-bench-guest';
  const rootDir = join(work, 'root');
  mkdirSync(work, { recursive: true });
  // One run per work dir: preparing the root rewrites the bench directory a
  // running guest is using (a second run once deleted a live metadata load).
  const releaseLock = lockWorkDir(work);
  process.once('exit', releaseLock);
  const progress = new Progress(reps * systems.length);
  let workload: Workload;
  let fioJobFile: string;
  let comparisons: Comparison[] | undefined;
  if (thesis) {
    progress.note(`preparing the guest root in ${rootDir} (busybox, fio + libraries, the read data set)`);
    const t = prepareThesisRoot(rootDir, tcfg, (l) => progress.note(l));
    const fioRows = thesisRows(tcfg);
    fioJobFile = t.jobFile;
    workload = {
      rows: thesisAllRows(tcfg),
      fioRows,
      meta: false,
      argv: t.argv,
      bootOnlyArgv: t.bootOnlyArgv,
      // Boot, copying ~80 MiB of programs into the tmpfs, then the read jobs.
      timeoutMs: 300_000 + fioRows.length * (cfg.runtimeMs + 30_000),
      // Each row's own data set: a leftover of the other set must not count.
      daxNeedleOf: (row) => {
        const set = fioRows.find((r) => r.id === row)?.set;
        return set === 'big' ? `/${THESIS_DATA_DIR}/big.dat` : set === 'files' ? `/${THESIS_DATA_DIR}/files/` : undefined;
      },
    };
    comparisons = [
      { system: 'vts11-dax', versus: 'vts11-auto', rowTargets: daxTargets(fioRows), onlyRowTargets: true, rowTargetsName: 'random reads ≥ 6×', note: 'DAX vs our own no-DAX, same QEMU 11.1 and device: issue 5 wants ≥ 6× on random reads; the other rows (boot: with vs without DAX) for information' },
      { system: 'vts11-auto', versus: 'rust-auto', note: 'ours without DAX vs Rust virtiofsd 1.14, same QEMU 11.1 and device: issue 5 wants ≥ 1.0× on every row' },
      { system: 'vts11-dax', versus: 'rust-auto', informational: true, note: 'what the DAX window gains over the daemon deployed today (Rust virtiofsd has no DAX)' },
      { system: 'c-auto', versus: 'rust-auto', informational: true, note: 'QEMU\'s C virtiofsd 7.2 runs on QEMU 7.2 with vhost-user-fs-pci, the others on QEMU 11.1 with the generic device: this column mixes two QEMUs' },
    ];
  } else {
    progress.note(`preparing the guest root in ${rootDir} (busybox, fio + libraries, metadata program)`);
    const prepared = prepareRoot(rootDir, cfg);
    fioJobFile = prepared.jobFile;
    // The whole matrix at TCG speed: boot, layout, 8 jobs, metadata; generous.
    workload = { rows: ALL_ROWS, fioRows: FIO_ROWS, meta: true, argv: prepared.argv, bootOnlyArgv: ['/bin/sh', '-c', 'echo @@ready'], timeoutMs: 240_000 + 8 * (cfg.runtimeMs + 30_000) + cfg.fileBytes / 1024 / 10 + cfg.metaFiles * 60 };
  }
  if (quick) workload.timeoutMs = Math.min(workload.timeoutMs, 900_000);
  const rows = workload.rows;

  const report: GuestReport = {
    benchmark: 'guest',
    title: thesis ? 'virtio-fs guest benchmark, issue 5: our daemon with and without a DAX window vs Rust virtiofsd 1.14 and C virtiofsd 7.2' : 'virtio-fs guest benchmark: our daemon vs QEMU\'s C virtiofsd',
    ...(thesis ? { plotTitle: 'virtio-fs in a QEMU guest (TCG): DAX vs no DAX vs Rust and C virtiofsd' } : {}),
    quick,
    partial: thesis ? systems.length < thesisSystems.length : !!o.systems && o.systems !== 'all' && SYSTEMS.filter((s) => s.byDefault).some((s) => !systems.includes(s)),
    date: new Date().toISOString(),
    git: gitInfo(REPO),
    machine: machineInfo(REPO, work),
    config: {
      command: `npm run bench -- guest ${argv.join(' ')}`.trim(),
      reps,
      bootOnlyBoots: boots,
      ...(thesis ? { preset: 'thesis', ...tcfg, daxWindow } : cfg),
      memoryMiB,
      cpus,
      guest: `Debian cloud kernel, ${cpus} vCPU, ${memoryMiB} MiB, QEMU -accel tcg; root = ${rootDir} over virtio-fs (busybox + fio + libraries)`,
      workload: thesis
        ? `fio reads, ioengine=psync iodepth=1, ${cfg.runtimeMs / 1000} s time-based jobs: one ${tcfg.bigBytes / 2 ** 20} MiB file, and ${tcfg.files} files of ${tcfg.fileBytes / 2 ** 20} MiB (sequential rows read file after file, random rows pick a file per I/O); ` +
          `the data set is written on the host once (warm in the host page cache for every system); the guest page cache is dropped before each job; busybox, fio and its libraries run from a guest tmpfs (nothing executes from the share while measuring); ` +
          `boot: QEMU start to the root's first shell line, ${boots} extra boot-only boot(s) per system and repetition besides the measuring boot; ${reps} repetition(s), order rotated`
        : `fio ${cfg.fileBytes / 2 ** 20} MiB file, ioengine=psync iodepth=1, ${cfg.runtimeMs / 1000} s time-based jobs, guest page cache dropped before each job; ` +
          `metadata: ${cfg.metaFiles} files create/stat/unlink, ${cfg.readdirPasses} readdir passes; ${reps} repetition(s), one boot per system each, order rotated` +
          (boots ? `; ${boots} extra boot-only boot(s) per system and repetition` : ''),
      fioJobFile,
      guestArgv: workload.argv,
    },
    systems: [],
    rows,
    ...(comparisons ? { comparisons } : {}),
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
        const r = await oneBoot(sys, q, rootDir, work, workload, memoryMiB, cpus);
        outcome.command = r.command;
        for (const [row, s] of r.samples) add(sys.id, row, s);
        for (const [row, e] of r.failed) failures.set(`${sys.id}/${row}`, e);
        const f = (id: string) => r.samples.get(id)?.value;
        const seq = workload.fioRows.find((x) => x.rw === 'read' && x.blockSize === 1 << 20);
        const rnd = workload.fioRows.find((x) => x.rw === 'randread' && x.blockSize === 4096);
        progress.job(
          sys.id,
          `rep ${rep + 1}`,
          `boot ${f('boot')?.toFixed(1) ?? '?'} s · seq rd 1M ${(seq && f(seq.id)?.toFixed(0)) ?? '?'} MiB/s · rand rd 4k ${(rnd && f(rnd.id)?.toFixed(1)) ?? '?'} MiB/s` +
            (workload.meta ? ` · create ${f('meta-create')?.toFixed(0) ?? '?'}/s` : '') +
            (r.failed.size ? ` · ${r.failed.size} failed: ${[...r.failed.values()][0]!.slice(0, 160)}` : ''),
        );
      } catch (e) {
        const msg = (e as Error).message;
        for (const row of rows) failures.set(`${sys.id}/${row.id}`, msg);
        if (![...samples.keys()].some((k) => k.startsWith(`${sys.id}/`))) {
          outcome.status = 'failed';
          outcome.error = msg;
        }
        progress.job(sys.id, `rep ${rep + 1}`, `failed: ${msg.replace(/\s+/g, ' ').slice(0, 300)}`);
      }
      // Boot-only boots: more samples for the boot row than one per measuring boot.
      const bootOnly: Workload = { ...workload, fioRows: [], meta: false, argv: workload.bootOnlyArgv, timeoutMs: 180_000 };
      const times: string[] = [];
      for (let b = 0; b < boots; b++) {
        try {
          const r = await oneBoot(sys, q, rootDir, work, bootOnly, memoryMiB, cpus, `${sys.id}.boot.console.txt`);
          const s = r.samples.get(BOOT_ROW.id);
          if (s) {
            add(sys.id, BOOT_ROW.id, { value: s.value, detail: { ...s.detail, bootOnly: true } });
            times.push(s.value.toFixed(1));
          } else times.push(`failed (${(r.failed.get(BOOT_ROW.id) ?? '?').slice(0, 120)})`);
        } catch (e) {
          times.push(`failed (${(e as Error).message.replace(/\s+/g, ' ').slice(0, 120)})`);
        }
      }
      if (boots) progress.note(`${sys.id} rep ${rep + 1}: boot-only boots ${times.join(', ')} s`);
    }
  }

  for (const sys of systems) {
    for (const row of rows) {
      const ss = samples.get(`${sys.id}/${row.id}`) ?? [];
      const m: Measurement = { system: sys.id, row: row.id, status: ss.length ? 'ok' : 'failed' };
      if (ss.length) {
        m.value = median(ss.map((s) => s.value));
        if (row.unit === 'MiB/s') m.mibPerSec = m.value;
        const med = (k: string) => {
          const xs = ss.map((s) => s.detail[k]).filter((c): c is number => typeof c === 'number');
          return xs.length ? { [k]: median(xs) } : {};
        };
        m.detail = { samples: ss.map((s) => s.value), ...med('daemonCpuPct'), ...med('qemuCpuPct'), ...med('hostCpuPressurePct'), ...med('daxMappedMiBAtStart'), ...med('daxMappedMiBAtEnd'), runs: ss.map((s) => s.detail) };
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

/** Takes `work`/.lock for this process; throws when a live process holds it. Returns the release. */
function lockWorkDir(work: string): () => void {
  const lock = join(work, '.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lock, `${process.pid}\n`, { flag: 'wx' });
      return () => {
        try {
          if (readFileSync(lock, 'utf8').trim() === String(process.pid)) rmSync(lock, { force: true });
        } catch {
          // already gone
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = Number(readFileSync(lock, 'utf8').trim());
      let alive = false;
      try {
        process.kill(holder, 0);
        alive = true;
      } catch (k) {
        alive = (k as NodeJS.ErrnoException).code === 'EPERM';
      }
      if (alive) throw new Error(`another guest benchmark (pid ${holder}) is using ${work}: wait for it, or give this run its own --dir`);
      rmSync(lock, { force: true }); // a stale lock from a run that died
    }
  }
  throw new Error(`cannot take ${lock}`);
}

interface Snap {
  t: number;
  cpu: number;
  qemuCpu: number;
  /** /proc/pressure/cpu "some" total, microseconds. */
  psi: number;
  /** DAX systems: MiB of the row's data set mapped into QEMU's window (from QEMU's /proc/PID/maps). */
  daxMiB?: number;
}

/** What one boot runs: the guest argv and which figures to read back. */
interface Workload {
  rows: GuestRow[];
  fioRows: FioRowSpec[];
  /** The metadata program runs (issue 3's matrix). */
  meta: boolean;
  argv: string[];
  /** A boot that only prints the boot mark. */
  bootOnlyArgv: string[];
  timeoutMs: number;
  /** A path fragment of a row's data set: DAX rows count its mappings in QEMU's address space at the row's marks. */
  daxNeedleOf?: (row: string) => string | undefined;
}

/**
 * MiB of files whose path holds `needle` mapped into the process: for a DAX
 * system, the data set's ranges QEMU has mapped into the window at SHMEM_MAP.
 */
function mappedMiB(pid: number | undefined, needle: string): number | undefined {
  if (pid === undefined) return undefined;
  try {
    let bytes = 0;
    for (const line of readFileSync(`/proc/${pid}/maps`, 'latin1').split('\n')) {
      if (!line.includes(needle)) continue;
      const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
      if (m) bytes += parseInt(m[2]!, 16) - parseInt(m[1]!, 16);
    }
    return Math.round((bytes / 2 ** 20) * 10) / 10;
  } catch {
    return undefined;
  }
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
async function oneBoot(sys: GuestSystem, q: GuestQemu, rootDir: string, work: string, wl: Workload, memoryMiB: number, cpus: number, consoleFile = `${sys.id}.console.txt`): Promise<BootOutcome> {
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
  const snap = (row?: string): Snap => {
    qemuPid ??= findQemuPid(socket);
    const needle = sys.daxWindow && row !== undefined ? wl.daxNeedleOf?.(row) : undefined;
    const dax = needle !== undefined ? mappedMiB(qemuPid, needle) : undefined;
    return { t: performance.now(), cpu: treeCpuSeconds(pid) ?? NaN, qemuCpu: processCpuSeconds(qemuPid) ?? NaN, psi: cpuPressureUs(), ...(dax !== undefined ? { daxMiB: dax } : {}) };
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
      if (m) marks.set(m[1] === 'ready' ? 'ready' : `${m[1]} ${m[2]}`, snap(m[2]));
    }
  };
  let out;
  try {
    out = await runInGuestRoot({
      socketPath: socket,
      argv: wl.argv,
      memoryMiB,
      cpus,
      timeoutMs: wl.timeoutMs,
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
  writeFileSync(join(work, consoleFile), out.output);
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
    return {
      daemonCpuPct: pct(a.cpu, b.cpu),
      qemuCpuPct: pct(a.qemuCpu, b.qemuCpu),
      hostCpuPressurePct: pct(a.psi / 1e6, b.psi / 1e6),
      // DAX: the data set's window mappings after the cache drop and at the job's end.
      ...(a.daxMiB !== undefined ? { daxMappedMiBAtStart: a.daxMiB } : {}),
      ...(b.daxMiB !== undefined ? { daxMappedMiBAtEnd: b.daxMiB } : {}),
    };
  };
  const wallMs = (id: string) => {
    const a = marks.get(`start ${id}`);
    const b = marks.get(`end ${id}`);
    return a && b ? Math.round(b.t - a.t) : undefined;
  };
  const common = { load1, daemonExit: backend.daemon.exitCode ?? backend.daemon.exitSignal };
  // When each mark reached the host, seconds after QEMU started: where a boot's time went.
  const timelineS = Object.fromEntries([...marks].map(([k, v]) => [k, Math.round((v.t - start.t) / 100) / 10]));
  if (out.output.startsWith('@@ready') && out.firstOutputMs !== undefined) {
    samples.set(BOOT_ROW.id, { value: out.firstOutputMs / 1000, detail: { ...common, initramfsToBeginMs: Math.round(out.bootMs), firstOutputMs: Math.round(out.firstOutputMs), totalMs: Math.round(out.totalMs), timelineS, ...host('qemu', 'ready') } });
  } else failed.set(BOOT_ROW.id, `the root's first output was not "@@ready": ${out.output.slice(0, 200)}`);

  const setupError = /@@setup-error (.*)/.exec(out.output)?.[1];
  const fioExit = /@@fio-exit (\d+)/.exec(out.output)?.[1];
  if (fioExit === undefined) {
    for (const r of wl.fioRows) failed.set(r.id, setupError ? `guest set-up failed: ${setupError}` : 'fio never finished');
  } else {
    for (const r of wl.fioRows) {
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
  if (!wl.meta) return { command: backend.argv, samples, failed };
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

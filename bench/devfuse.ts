// bench: `npm run bench -- devfuse`: our /dev/fuse mount side by side with the
// native directory, Debian's bindfs and libfuse's C passthrough_ll, on fio
// read/write matrices and a metadata load (may import node:* and bench/lib;
// drives our daemon only through its CLI).
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { randomFillSync } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { runFio, type FioJob, type FioResult } from './lib/fio.ts';
import { ALL_SYSTEMS, startSystem, type Mounted, type SystemSpec } from './lib/mounts.ts';
import { renderMarkdown, writeMarkdown, formatValue, formatRatio } from './lib/markdown.ts';
import { writePlot, type PlotSpec } from './lib/plot.ts';
import { Progress } from './lib/progress.ts';
import { run, runAsync, tail } from './lib/proc.ts';
import {
  gitInfo,
  machineInfo,
  okValue,
  writeJson,
  type BenchReport,
  type Measurement,
  type RowSpec,
  type TargetOutcome,
} from './lib/results.ts';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

export const usage = `npm run bench -- devfuse [options]

Runs fio read/write matrices and a metadata load on the native directory, our
mount (--cache never/auto/always), Debian's bindfs and libfuse's passthrough_ll
(built from libfuse3-dev's example at run time), all over one source directory.
Needs root (FUSE mounts, drop_caches). Full run: ~15-25 min.

Options:
  --quick             small data set and 0.5 s jobs (~3 min smoke run); writes
                      <out>/devfuse-quick.{json,md,png} unless --name is given
  --only a,b,...      systems to run (default: all): ${ALL_SYSTEMS.map((s) => s.id).join(', ')}
  --rows a,b,...      only rows whose id contains one of these substrings
                      (e.g. "warm", "rand-4k", "meta,write"); --list-rows shows ids
  --runtime <sec>     per-job time cap (default 5, quick 0.5)
  --dir <path>        work dir for the data set and mountpoints
                      (default /var/tmp/virtiofs-ts-bench; must not be tmpfs
                      for cold rows to mean anything)
  --out <dir>         where results go (default bench/results)
  --name <name>       base name of the result files (default devfuse[-quick])
  --note <text>       add a note to the report (e.g. "machine busy with tests")
  --list-rows         print the row ids and exit
  --render <json>     measure nothing: rebuild the .md and plot from a results
                      JSON (after a change to the report code)
  --help              this text
`;

interface Config {
  quick: boolean;
  runtimeMs: number;
  bigFileBytes: number;
  multiCount: number;
  multiFileBytes: number;
  blockSizes: number[];
  metaCount: number;
  seqWriteBytes: number;
  randWriteFileBytes: number;
}

function makeConfig(quick: boolean, runtimeSec?: number): Config {
  return quick
    ? {
        quick,
        runtimeMs: Math.round((runtimeSec ?? 0.5) * 1000),
        bigFileBytes: 256 * MiB,
        multiCount: 16,
        multiFileBytes: 4 * MiB,
        blockSizes: [4 * KiB, 1 * MiB],
        metaCount: 2000,
        seqWriteBytes: 128 * MiB,
        randWriteFileBytes: 32 * MiB,
      }
    : {
        quick,
        runtimeMs: Math.round((runtimeSec ?? 5) * 1000),
        bigFileBytes: 1 * GiB,
        multiCount: 64,
        multiFileBytes: 16 * MiB,
        blockSizes: [4 * KiB, 128 * KiB, 1 * MiB],
        metaCount: 10_000,
        seqWriteBytes: 1 * GiB,
        randWriteFileBytes: 256 * MiB,
      };
}

// ------------------------------------------------------------------ rows

type Dataset = 'one' | 'many';
type Phase = 'warm' | 'cold';

interface ReadRow extends RowSpec {
  kind: 'read';
  pattern: 'seq' | 'rand';
  blockSize: number;
  dataset: Dataset;
  phase: Phase;
}
interface WriteRow extends RowSpec {
  kind: 'write';
  pattern: 'seq' | 'rand';
  blockSize: number;
}
interface MetaRow extends RowSpec {
  kind: 'meta';
  phaseName: 'create' | 'stat' | 'readdir' | 'unlink';
}
type Row = ReadRow | WriteRow | MetaRow;

function bsName(bs: number): string {
  return bs >= MiB ? `${bs / MiB}m` : `${bs / KiB}k`;
}
function sizeName(bytes: number): string {
  return bytes >= GiB ? `${bytes / GiB} GiB` : `${bytes / MiB} MiB`;
}

function makeRows(cfg: Config): Row[] {
  const rows: Row[] = [];
  const dsTitle: Record<Dataset, string> = {
    one: `1×${sizeName(cfg.bigFileBytes)}`,
    many: `${cfg.multiCount}×${sizeName(cfg.multiFileBytes)}`,
  };
  for (const phase of ['warm', 'cold'] as const) {
    for (const dataset of ['one', 'many'] as const) {
      for (const pattern of ['seq', 'rand'] as const) {
        for (const bs of cfg.blockSizes) {
          rows.push({
            kind: 'read',
            id: `read-${pattern}-${bsName(bs)}-${dataset === 'one' ? '1file' : `${cfg.multiCount}files`}-${phase}`,
            title: `${pattern} read ${bsName(bs)} · ${dsTitle[dataset]} · ${phase}`,
            group: `read, ${phase} cache`,
            unit: bs <= 4 * KiB ? 'IOPS' : 'MiB/s',
            pattern,
            blockSize: bs,
            dataset,
            phase,
          });
        }
      }
    }
  }
  rows.push({ kind: 'write', id: 'write-seq-1m', title: `seq write 1m · new ${sizeName(cfg.seqWriteBytes)} file`, group: 'write', unit: 'MiB/s', pattern: 'seq', blockSize: MiB });
  rows.push({ kind: 'write', id: 'write-rand-4k', title: `rand write 4k · ${sizeName(cfg.randWriteFileBytes)} file`, group: 'write', unit: 'IOPS', pattern: 'rand', blockSize: 4 * KiB });
  for (const phaseName of ['create', 'stat', 'readdir', 'unlink'] as const) {
    rows.push({ kind: 'meta', id: `meta-${phaseName}`, title: `${phaseName} · ${cfg.metaCount.toLocaleString('en-US')} files`, group: 'metadata', unit: 'ops/s', phaseName });
  }
  return rows;
}

// ------------------------------------------------------------------ data set

interface DataPaths {
  /** Relative to the source dir, so the same names work under any mount. */
  big: string;
  many: string[];
  randWrite: string;
}

function dataPaths(cfg: Config): DataPaths {
  const mb = (b: number) => `${b / MiB}m`;
  const dir = `data/many-${cfg.multiCount}x${mb(cfg.multiFileBytes)}`;
  return {
    big: `data/big-${mb(cfg.bigFileBytes)}.bin`,
    many: Array.from({ length: cfg.multiCount }, (_, i) => `${dir}/f${String(i).padStart(3, '0')}.bin`),
    randWrite: `data/randwrite-${mb(cfg.randWriteFileBytes)}.bin`,
  };
}

/** Writes incompressible files of exactly `bytes`, unless they already exist at that size. */
function layoutFile(path: string, bytes: number, chunk: Buffer): boolean {
  if (existsSync(path) && statSync(path).size === bytes) return false;
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(path, 'w', 0o644);
  try {
    for (let off = 0, n = 0; off < bytes; off += chunk.length, n++) {
      chunk.writeUInt32LE(n, 0); // no two chunks alike
      writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - off), off);
    }
  } finally {
    closeSync(fd);
  }
  return true;
}

function prepareData(sourceDir: string, cfg: Config, p: DataPaths): boolean {
  const chunk = randomFillSync(Buffer.alloc(MiB));
  let wrote = layoutFile(join(sourceDir, p.big), cfg.bigFileBytes, chunk);
  for (const f of p.many) wrote = layoutFile(join(sourceDir, f), cfg.multiFileBytes, chunk) || wrote;
  wrote = layoutFile(join(sourceDir, p.randWrite), cfg.randWriteFileBytes, chunk) || wrote;
  return wrote;
}

// ------------------------------------------------------------------ jobs

function dropCaches(): void {
  run('sync', []);
  writeFileSync('/proc/sys/vm/drop_caches', '3\n');
}

function canDropCaches(): string | undefined {
  try {
    accessSync('/proc/sys/vm/drop_caches', constants.W_OK);
    return undefined;
  } catch {
    return 'cold rows need root (/proc/sys/vm/drop_caches is not writable)';
  }
}

function readJob(row: ReadRow, cfg: Config, p: DataPaths, base: string): FioJob {
  const files = row.dataset === 'one' ? [p.big] : p.many;
  return {
    name: row.id,
    rw: row.pattern === 'seq' ? 'read' : 'randread',
    blockSize: row.blockSize,
    files: files.map((f) => join(base, f)),
    totalBytes: row.dataset === 'one' ? cfg.bigFileBytes : cfg.multiCount * cfg.multiFileBytes,
    runtimeMs: cfg.runtimeMs,
    // Warm: loop over cached data for the whole time. Cold: touch each block
    // once (so nothing is re-read from cache), stopping early at the time cap.
    timeBased: row.phase === 'warm',
    readonly: true,
  };
}

interface JobOutcome {
  value: number;
  mibPerSec?: number;
  detail: Record<string, unknown>;
}

function fioOutcome(r: FioResult, unit: RowSpec['unit']): JobOutcome {
  const mibPerSec = r.bytesPerSec / MiB;
  return {
    value: unit === 'IOPS' ? r.iops : mibPerSec,
    mibPerSec,
    detail: {
      mibPerSec,
      iops: r.iops,
      ioMiB: r.ioBytes / MiB,
      runtimeMs: r.runtimeMs,
      clatMeanUs: r.clatMeanUs,
      clatP99Us: r.clatP99Us,
      fioCpuPct: { usr: r.fioUsrCpu, sys: r.fioSysCpu },
      fioArgs: r.args,
    },
  };
}

async function runMetadata(dir: string, count: number): Promise<Record<string, { seconds: number; ops: number }>> {
  const script = join(REPO_ROOT, 'bench', 'lib', 'metadata-load.ts');
  const r = await runAsync(process.execPath, ['--import', 'tsx', script, dir, String(count)], { cwd: REPO_ROOT, timeoutMs: 600_000 });
  if (r.timedOut) throw new Error('metadata load did not finish within 600 s');
  if (r.code !== 0) throw new Error(`metadata load failed: ${tail(r.stderr || r.stdout, 400)}`);
  const doc = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { phases: Record<string, { seconds: number; ops: number }> };
  return doc.phases;
}

// ------------------------------------------------------------------ targets

const TARGET_ROWS = 'every row ≥ bindfs';
const TARGET_META = 'metadata ≥ 1.5× bindfs';
const TARGET_WARM = 'warm reads with --cache always within 10% of native';

function listWorst(items: { title: string; ratio: number }[], n: number): string {
  return items
    .sort((a, b) => a.ratio - b.ratio)
    .slice(0, n)
    .map((i) => `${i.title} ${formatRatio(i.ratio)}`)
    .join('; ');
}

function evaluateTargets(report: BenchReport, rows: Row[]): TargetOutcome[] {
  const out: TargetOutcome[] = [];
  const ours = report.systems.filter((s) => s.id.startsWith('vts-') && s.status !== 'skipped');
  const compare = (sys: string, base: string, subset: Row[], need: number, target: string) => {
    const items: { title: string; ratio: number }[] = [];
    for (const r of subset) {
      const v = okValue(report, sys, r.id);
      const b = okValue(report, base, r.id);
      if (v !== undefined && b) items.push({ title: r.title, ratio: v / b });
    }
    if (items.length === 0) {
      out.push({ target, system: sys, status: 'not measured', detail: `no row measured on both ${sys} and ${base}` });
      return;
    }
    const misses = items.filter((i) => i.ratio < need);
    const missing = subset.length - items.length;
    const partial = missing > 0 ? ` (${missing} row(s) not measured)` : '';
    out.push({
      target,
      system: sys,
      status: misses.length === 0 && missing === 0 ? 'met' : misses.length === 0 ? 'not measured' : 'missed',
      detail:
        misses.length === 0
          ? `all ${items.length} rows ≥ ${formatRatio(need)} ${base}; lowest: ${listWorst(items, 1)}${partial}`
          : `${misses.length}/${items.length} rows below ${formatRatio(need)} ${base}; worst: ${listWorst(misses, 3)}${partial}`,
    });
  };
  for (const s of ours) compare(s.id, 'bindfs', rows, 1.0, TARGET_ROWS);
  for (const s of ours) compare(s.id, 'bindfs', rows.filter((r) => r.kind === 'meta'), 1.5, TARGET_META);
  if (ours.some((s) => s.id === 'vts-always')) {
    compare('vts-always', 'native', rows.filter((r) => r.kind === 'read' && r.phase === 'warm'), 0.9, TARGET_WARM);
  }
  return out;
}

// ------------------------------------------------------------------ main

interface Args {
  quick: boolean;
  only?: string[];
  rows?: string[];
  runtimeSec?: number;
  dir: string;
  out: string;
  name?: string;
  notes: string[];
  listRows: boolean;
  render?: string;
  help: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, dir: '/var/tmp/virtiofs-ts-bench', out: join(REPO_ROOT, 'bench', 'results'), notes: [], listRows: false, help: false };
  const list = (v: string | undefined, flag: string) => {
    if (!v) throw new Error(`${flag} needs a value`);
    return v.split(',').map((x) => x.trim()).filter(Boolean);
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const [name, inline] = flag.includes('=') ? [flag.slice(0, flag.indexOf('=')), flag.slice(flag.indexOf('=') + 1)] : [flag, undefined];
    const value = () => inline ?? argv[++i];
    switch (name) {
      case '--quick': a.quick = true; break;
      case '--only': a.only = list(value(), name); break;
      case '--rows': a.rows = list(value(), name); break;
      case '--runtime': {
        const v = Number(value());
        if (!(v > 0)) throw new Error('--runtime needs a positive number of seconds');
        a.runtimeSec = v;
        break;
      }
      case '--dir': a.dir = value() ?? ''; break;
      case '--out': a.out = value() ?? ''; break;
      case '--name': a.name = value(); break;
      case '--note': a.notes.push(value() ?? ''); break;
      case '--list-rows': a.listRows = true; break;
      case '--render': a.render = value(); break;
      case '--help': case '-h': a.help = true; break;
      default: throw new Error(`unknown option ${flag} (see --help)`);
    }
  }
  if (a.only) {
    const unknown = a.only.filter((id) => !ALL_SYSTEMS.some((s) => s.id === id));
    if (unknown.length) throw new Error(`unknown system(s) ${unknown.join(', ')}; known: ${ALL_SYSTEMS.map((s) => s.id).join(', ')}`);
  }
  return a;
}

export async function main(argv: string[]): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`devfuse: ${(e as Error).message}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(usage);
    return 0;
  }
  if (args.render) {
    try {
      return rerender(args.render, args.out, args.name);
    } catch (e) {
      process.stderr.write(`devfuse: --render: ${(e as Error).message}\n`);
      return 1;
    }
  }
  const cfg = makeConfig(args.quick, args.runtimeSec);
  let rows = makeRows(cfg);
  if (args.rows) rows = rows.filter((r) => args.rows!.some((f) => r.id.includes(f)));
  if (args.listRows) {
    for (const r of rows) process.stdout.write(`${r.id.padEnd(32)} ${r.title}\n`);
    return 0;
  }
  if (rows.length === 0) {
    process.stderr.write(`devfuse: --rows ${args.rows?.join(',')} matches no row (see --list-rows)\n`);
    return 2;
  }
  const fioVersion = (() => {
    try {
      return run('fio', ['--version']).trim();
    } catch {
      return undefined;
    }
  })();
  if (!fioVersion) {
    process.stderr.write('devfuse: fio is not installed (apt-get install fio)\n');
    return 1;
  }
  const systems = ALL_SYSTEMS.filter((s) => !args.only || args.only.includes(s.id));
  const name = args.name ?? (args.quick ? 'devfuse-quick' : 'devfuse');
  const sourceDir = join(args.dir, 'src');
  mkdirSync(sourceDir, { recursive: true });
  const paths = dataPaths(cfg);
  const coldBlocked = canDropCaches();

  const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  const cmdline = ['npm run bench -- devfuse', ...argv.map(quote)].join(' ');
  const report: BenchReport = {
    benchmark: 'devfuse',
    title: 'virtiofs-ts /dev/fuse mount vs native, bindfs and libfuse passthrough_ll',
    quick: args.quick,
    partial: Boolean(args.only || args.rows),
    date: new Date().toISOString(),
    git: gitInfo(REPO_ROOT),
    machine: machineInfo(REPO_ROOT, args.dir),
    config: {
      command: cmdline,
      runtimeMs: cfg.runtimeMs,
      bigFileBytes: cfg.bigFileBytes,
      multiFiles: `${cfg.multiCount} × ${cfg.multiFileBytes} bytes`,
      blockSizes: cfg.blockSizes,
      metaCount: cfg.metaCount,
      seqWriteBytes: cfg.seqWriteBytes,
      randWriteFileBytes: cfg.randWriteFileBytes,
      fio: 'ioengine=psync iodepth=1 numjobs=1 invalidate=0; warm rows time_based after one full read; cold rows: sync + drop_caches=3, each block read at most once, capped at runtime',
    },
    systems: [],
    rows: rows.map(({ id, title, group, unit }) => ({ id, title, group, unit })),
    results: [],
    targets: [],
    notes: [...args.notes],
  };
  const load = loadavg()[0]!;
  if (load > cpus().length * 0.5) {
    report.notes.push(`The machine was busy when the run started (1-min load ${load.toFixed(2)} on ${cpus().length} CPUs): figures are noisy; compare ratios, not absolutes.`);
  }
  if (args.quick) report.notes.push('QUICK run: small data set, short jobs. It shows the harness works; do not read performance into it.');

  const progress = new Progress(systems.length * rows.length);
  progress.note(`devfuse: ${systems.length} systems × ${rows.length} rows, ${cfg.runtimeMs / 1000} s per job; work dir ${args.dir}`);
  if (prepareData(sourceDir, cfg, paths)) {
    progress.note('wrote the data set; syncing');
    run('sync', [], { timeoutMs: 600_000 });
  }

  // Every system is mounted at once and the rows run row by row across them,
  // so a change in machine load (the machine is shared) hits all systems of a
  // row alike instead of whichever system happened to run then.
  interface Sut {
    spec: SystemSpec;
    m: Mounted;
    /** Why this system can no longer run rows (daemon died or hung). */
    dead?: string;
    /** Scratch dir through the system, and the same dir on the source side. */
    scratch: string;
    scratchSource: string;
  }
  const suts: Sut[] = [];
  let interrupted = false;
  const stopAll = async () => {
    for (const s of suts) await s.m.stop();
  };
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    progress.note(`${sig}: unmounting and stopping`);
    void stopAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const fail = (sut: Sut, row: Row, error: string, load1?: number) => {
    report.results.push({ system: sut.spec.id, row: row.id, status: 'failed', error, detail: load1 === undefined ? undefined : { loadavg1: load1 } });
    progress.job(sut.spec.id, row.id, `FAILED: ${error.replace(/\s+/g, ' ').slice(0, 200)}`);
  };
  // Once a daemon dies or hangs, its remaining rows fail at once with the
  // reason instead of each waiting for its own timeout.
  const checkAfterFailure = async (sut: Sut, error: string) => {
    sut.dead = sut.m.health();
    if (!sut.dead && error.includes('did not finish within')) {
      sut.dead = `the mount hung (${error}); stopped the daemon`;
      await sut.m.stop();
    }
  };
  const cpuPct = (sut: Sut, cpu0: number | undefined, t0: bigint) => {
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu1 = sut.m.daemonCpuSeconds();
    return cpu0 !== undefined && cpu1 !== undefined ? Math.round(((cpu1 - cpu0) / wall) * 1000) / 10 : undefined;
  };
  const measure = async (sut: Sut, row: Row, fn: () => Promise<JobOutcome>) => {
    if (interrupted) return;
    if (sut.dead) return fail(sut, row, sut.dead);
    const cpu0 = sut.m.daemonCpuSeconds();
    const t0 = process.hrtime.bigint();
    const load1 = loadavg()[0]!;
    try {
      const o = await fn();
      const daemonCpuPct = cpuPct(sut, cpu0, t0);
      report.results.push({ system: sut.spec.id, row: row.id, status: 'ok', value: o.value, mibPerSec: o.mibPerSec, detail: { ...o.detail, daemonCpuPct, loadavg1: load1 } });
      const extra = row.unit === 'IOPS' && o.mibPerSec !== undefined ? ` (${o.mibPerSec.toFixed(1)} MiB/s)` : '';
      progress.job(sut.spec.id, row.id, `${formatValue(o.value, row.unit).padStart(9)} ${row.unit}${extra}${daemonCpuPct !== undefined ? `  daemon cpu ${daemonCpuPct}%` : ''}`);
    } catch (e) {
      const error = (e as Error).message;
      fail(sut, row, error, load1);
      await checkAfterFailure(sut, error);
    }
  };

  try {
    // 0. Start every system. One that cannot start is recorded with its reason.
    for (const spec of systems) {
      if (interrupted) break;
      const mountpoint = join(args.dir, 'mnt', spec.id);
      try {
        if (spec.kind !== 'native') progress.note(`${spec.id}: mounting`);
        const m = await startSystem(spec, { sourceDir, mountpoint, repoRoot: REPO_ROOT });
        // The harness itself never makes a blocking fs call through a mount (a
        // hung daemon would freeze it): scratch space is made and removed on the
        // source side; only fio and the metadata child, both with timeouts, go
        // through the mount.
        const scratchSource = join(sourceDir, 'scratch', spec.id);
        rmSync(scratchSource, { recursive: true, force: true });
        mkdirSync(scratchSource, { recursive: true });
        suts.push({ spec, m, scratch: join(m.path, 'scratch', spec.id), scratchSource });
        report.systems.push({ id: spec.id, label: spec.label, status: 'ok', fstype: m.fstype, command: m.command });
      } catch (e) {
        const error = `system under test failed to start: ${(e as Error).message}`;
        report.systems.push({ id: spec.id, label: spec.label, status: 'failed', error });
        for (const r of rows) report.results.push({ system: spec.id, row: r.id, status: 'failed', error: 'system under test failed to start' });
        progress.job(spec.id, '(all rows)', `FAILED TO START: ${error.replace(/\s+/g, ' ').slice(0, 160)}`, rows.length);
      }
    }

    // 1. Warm reads: one full read of each data set through every system first.
    const warmRows = rows.filter((r): r is ReadRow => r.kind === 'read' && r.phase === 'warm');
    for (const ds of ['one', 'many'] as const) {
      const first = warmRows.find((r) => r.dataset === ds);
      if (!first) continue;
      for (const sut of suts) {
        if (interrupted || sut.dead) continue;
        const pre: ReadRow = { ...first, pattern: 'seq', blockSize: MiB, phase: 'cold' };
        try {
          await runFio({ ...readJob(pre, cfg, paths, sut.m.path), name: 'warmup', runtimeMs: 120_000 }, sut.m.path);
        } catch (e) {
          progress.note(`${sut.spec.id}: warm-up read failed: ${(e as Error).message}`);
          await checkAfterFailure(sut, (e as Error).message);
        }
      }
    }
    for (const r of warmRows) {
      for (const sut of suts) await measure(sut, r, async () => fioOutcome(await runFio(readJob(r, cfg, paths, sut.m.path), sut.m.path), r.unit));
    }

    // 2. Cold reads: sync + drop every clean page (host and FUSE) before each job.
    for (const r of rows) {
      if (r.kind !== 'read' || r.phase !== 'cold') continue;
      for (const sut of suts) {
        if (coldBlocked) {
          report.results.push({ system: sut.spec.id, row: r.id, status: 'skipped', error: coldBlocked });
          progress.job(sut.spec.id, r.id, `skipped: ${coldBlocked}`);
          continue;
        }
        await measure(sut, r, async () => {
          dropCaches();
          return fioOutcome(await runFio(readJob(r, cfg, paths, sut.m.path), sut.m.path), r.unit);
        });
      }
    }

    // 3. Writes (buffered, no fsync: the cost of the write path itself). A
    // sync after each keeps its writeback out of the next job.
    for (const r of rows) {
      if (r.kind !== 'write') continue;
      for (const sut of suts) {
        await measure(sut, r, async () => {
          const job: FioJob =
            r.pattern === 'seq'
              ? { name: r.id, rw: 'write', blockSize: r.blockSize, files: [join(sut.scratch, 'seqwrite.bin')], totalBytes: cfg.seqWriteBytes, runtimeMs: cfg.runtimeMs, timeBased: false, readonly: false }
              : { name: r.id, rw: 'randwrite', blockSize: r.blockSize, files: [join(sut.m.path, paths.randWrite)], totalBytes: cfg.randWriteFileBytes, runtimeMs: cfg.runtimeMs, timeBased: true, readonly: false };
          try {
            return fioOutcome(await runFio(job, sut.m.path), r.unit);
          } finally {
            rmSync(join(sut.scratchSource, 'seqwrite.bin'), { force: true });
            run('sync', [], { timeoutMs: 300_000 });
          }
        });
      }
    }

    // 4. Metadata load: one child process per system, four timed phases.
    const metaRows = rows.filter((r): r is MetaRow => r.kind === 'meta');
    for (const sut of metaRows.length > 0 ? suts : []) {
      if (interrupted) break;
      if (sut.dead) {
        for (const r of metaRows) report.results.push({ system: sut.spec.id, row: r.id, status: 'failed', error: sut.dead });
        progress.job(sut.spec.id, 'meta-*', `FAILED: ${sut.dead.replace(/\s+/g, ' ').slice(0, 200)}`, metaRows.length);
        continue;
      }
      const cpu0 = sut.m.daemonCpuSeconds();
      const t0 = process.hrtime.bigint();
      const load1 = loadavg()[0]!;
      try {
        const phases = await runMetadata(join(sut.scratch, 'meta'), cfg.metaCount);
        const daemonCpuPct = cpuPct(sut, cpu0, t0);
        for (const r of metaRows) {
          const ph = phases[r.phaseName]!;
          const value = ph.ops / ph.seconds;
          report.results.push({ system: sut.spec.id, row: r.id, status: 'ok', value, detail: { seconds: ph.seconds, ops: ph.ops, daemonCpuPctWholeLoad: daemonCpuPct, loadavg1: load1 } });
          progress.job(sut.spec.id, r.id, `${formatValue(value, 'ops/s').padStart(9)} ops/s  (${(ph.seconds * 1000).toFixed(0)} ms)`);
        }
      } catch (e) {
        const error = (e as Error).message;
        for (const r of metaRows) report.results.push({ system: sut.spec.id, row: r.id, status: 'failed', error });
        progress.job(sut.spec.id, 'meta-*', `FAILED: ${error.replace(/\s+/g, ' ').slice(0, 200)}`, metaRows.length);
        await checkAfterFailure(sut, error);
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (!interrupted) {
      await stopAll();
      for (const sut of suts) rmSync(sut.scratchSource, { recursive: true, force: true });
      progress.note(`stopped ${suts.filter((s) => s.spec.kind !== 'native').map((s) => s.spec.id).join(', ') || 'nothing'}`);
    }
  }

  // Results in the order of the rows, then the systems, whatever order they ran in.
  const rowIndex = new Map(rows.map((r, i) => [r.id, i]));
  const sysIndex = new Map(ALL_SYSTEMS.map((s, i) => [s.id, i]));
  report.results.sort((a, b) => (rowIndex.get(a.row)! - rowIndex.get(b.row)!) || (sysIndex.get(a.system)! - sysIndex.get(b.system)!));

  report.finished = new Date().toISOString();
  report.machine.loadavgEnd = loadavg().map((x) => Math.round(x * 100) / 100);
  for (const s of ALL_SYSTEMS) {
    if (!report.systems.some((x) => x.id === s.id)) report.systems.push({ id: s.id, label: s.label, status: 'skipped' });
  }
  if (coldBlocked) report.notes.push(coldBlocked);

  writeOutputs(report, rows, cfg, args.out, name, progress);
  return interrupted ? 130 : 0;
}

/** Writes <name>.json, .md, .svg/.png from a finished report. */
function writeOutputs(report: BenchReport, rows: Row[], cfg: Config, out: string, name: string, progress: Progress): void {
  report.targets = evaluateTargets(report, rows);
  const jsonPath = writeJson(out, name, report);
  const plot = writePlot(out, name, plotSpec(report, rows, cfg));
  if (plot.warning) progress.note(plot.warning);
  const md = renderMarkdown(report, {
    baselines: ['bindfs', 'native'],
    plot: plot.png ? `${name}.png` : `${name}.svg`,
    jsonFile: `${name}.json`,
    preface: [
      'How to read: every system serves the same source directory on the same disk. *warm* rows read each file once through the ' +
        'system first and then loop for the time cap; *cold* rows run `sync; echo 3 > /proc/sys/vm/drop_caches` first (which ' +
        'also empties the FUSE page cache) and read each block at most once. fio: psync, one job, queue depth 1, buffered I/O. ' +
        'Writes are buffered with no fsync. Metadata: one Node process doing plain synchronous fs calls (bench/lib/metadata-load.ts). ' +
        '`vts-*` is our daemon (`virtiofs-ts mount --fs passthrough --cache X`); `bindfs` is Debian\'s bindfs with default options ' +
        '(single-threaded); `pll-*` is libfuse\'s example passthrough_ll with `-o cache=X`, built from libfuse3-dev at run time, ' +
        'in its default multi-threaded loop. All systems are mounted at once and each row runs on every system in turn, so a ' +
        'change in machine load hits a row\'s systems alike; the JSON has the 1-min load at every job.',
    ],
  });
  const mdPath = writeMarkdown(out, name, md);
  progress.note(`wrote ${[jsonPath, mdPath, plot.png ?? plot.svg].map((p) => relative(process.cwd(), p)).join(', ')}`);
  for (const t of report.targets) progress.note(`target ${t.target} / ${t.system}: ${t.status}: ${t.detail}`);
}

/** --render: rebuilds the Markdown and plot (and targets) from a results JSON without measuring. */
function rerender(jsonPath: string, out: string, name: string | undefined): number {
  const report = JSON.parse(readFileSync(jsonPath, 'utf8')) as BenchReport;
  if (report.benchmark !== 'devfuse') throw new Error(`${jsonPath} is not a devfuse result`);
  const cfg = makeConfig(report.quick, Number(report.config.runtimeMs) / 1000);
  const ids = new Set(report.rows.map((r) => r.id));
  const rows = makeRows(cfg).filter((r) => ids.has(r.id));
  writeOutputs(report, rows, cfg, out, name ?? basename(jsonPath, '.json'), new Progress(0));
  return 0;
}

function plotSpec(report: BenchReport, rows: Row[], cfg: Config): PlotSpec {
  const ran = report.systems.filter((s) => s.status === 'ok');
  const failed = report.systems.filter((s) => s.status === 'failed').map((s) => s.id);
  const panels = ['read, warm cache', 'read, cold cache', 'write', 'metadata']
    .map((g) => ({
      title: g === 'metadata' ? `metadata (${cfg.metaCount.toLocaleString('en-US')} files)` : g,
      unit: g === 'metadata' ? 'operations/s' : 'MiB/s',
      rows: rows.filter((r) => r.group === g).map((r) => ({ id: r.id, title: r.title })),
    }))
    .filter((p) => p.rows.length > 0);
  return {
    title: `${report.title}${report.quick ? ' (QUICK smoke run)' : ''}`,
    subtitle:
      `${report.date.slice(0, 16).replace('T', ' ')} UTC · ${report.git.commit?.slice(0, 10) ?? '?'}${report.git.dirty ? '+dirty' : ''} · ` +
      `${report.machine.cpus} CPUs, load ${report.machine.loadavgStart[0]} · fio psync QD1, ${cfg.runtimeMs / 1000} s per job` +
      (failed.length ? ` · failed to start: ${failed.join(', ')}` : ''),
    series: ran.map((s) => ({ id: s.id, label: s.label })),
    panels,
    value(system, row) {
      const m: Measurement | undefined = report.results.find((x) => x.system === system && x.row === row);
      if (!m) return undefined;
      if (m.status !== 'ok') return m.status;
      return row.startsWith('meta-') ? m.value : m.mibPerSec;
    },
  };
}

// bench/lib: the result model every benchmark writes (JSON + Markdown + plot),
// and machine facts for the record (may import node:* and bench/lib).
import { cpus, loadavg, release, totalmem } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tryRun } from './proc.ts';

export type Unit = 'MiB/s' | 'IOPS' | 'ops/s';

export interface RowSpec {
  id: string;
  /** Short label for tables and the plot, e.g. "rand read 4k · 1×1GiB · warm". */
  title: string;
  /** Rows of one group share a plot panel, e.g. "read, warm". */
  group: string;
  /** Unit shown in the table. */
  unit: Unit;
}

export interface SystemOutcome {
  id: string;
  label: string;
  status: 'ok' | 'failed' | 'skipped';
  error?: string;
  fstype?: string;
  command?: string[];
}

export interface Measurement {
  system: string;
  row: string;
  status: 'ok' | 'failed' | 'skipped';
  /** In the row's unit. */
  value?: number;
  /** Throughput in MiB/s where the row moves data (for the plot's common axis). */
  mibPerSec?: number;
  error?: string;
  /** Raw figures: fio numbers, daemon CPU, load average... */
  detail?: Record<string, unknown>;
}

export interface TargetOutcome {
  target: string;
  system: string;
  status: 'met' | 'missed' | 'not measured';
  detail: string;
}

export interface BenchReport {
  benchmark: string;
  title: string;
  quick: boolean;
  /** True when --only / --rows narrowed the run. */
  partial: boolean;
  date: string;
  finished?: string;
  git: { commit?: string; dirty?: boolean };
  machine: MachineInfo;
  config: Record<string, unknown>;
  systems: SystemOutcome[];
  rows: RowSpec[];
  results: Measurement[];
  targets: TargetOutcome[];
  notes: string[];
}

export interface MachineInfo {
  cpuModel: string;
  cpus: number;
  memGiB: number;
  kernel: string;
  node: string;
  tools: Record<string, string | undefined>;
  loadavgStart: number[];
  loadavgEnd?: number[];
  workDir?: string;
  workDirFs?: string;
}

export function machineInfo(repoRoot: string, workDir?: string): MachineInfo {
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cpus: cpus().length,
    memGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    tools: {
      fio: tryRun('fio', ['--version']),
      bindfs: tryRun('bindfs', ['--version']),
      libfuse3: tryRun('pkg-config', ['--modversion', 'fuse3']),
      gcc: tryRun('gcc', ['-dumpfullversion']),
    },
    loadavgStart: loadavg().map((x) => Math.round(x * 100) / 100),
    workDir,
    workDirFs: workDir ? tryRun('findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '-T', workDir], { cwd: repoRoot }) : undefined,
  };
}

export function gitInfo(repoRoot: string): { commit?: string; dirty?: boolean } {
  const commit = tryRun('git', ['rev-parse', 'HEAD'], { cwd: repoRoot });
  const status = tryRun('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: repoRoot });
  return { commit, dirty: status === undefined ? undefined : status.length > 0 };
}

export function find(report: BenchReport, system: string, row: string): Measurement | undefined {
  return report.results.find((m) => m.system === system && m.row === row);
}

export function okValue(report: BenchReport, system: string, row: string): number | undefined {
  const m = find(report, system, row);
  return m?.status === 'ok' ? m.value : undefined;
}

export function writeJson(dir: string, name: string, report: BenchReport): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(report, null, 2) + '\n');
  return path;
}

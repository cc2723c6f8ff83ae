// bench/lib: runs one fio job and reads its JSON report (may import node:* and bench/lib).
import { runAsync, tail } from './proc.ts';
import { basename, dirname } from 'node:path';

export type FioRw = 'read' | 'randread' | 'write' | 'randwrite';

export interface FioJob {
  name: string;
  rw: FioRw;
  blockSize: number;
  /** Files the job uses; for several, fio spreads `totalBytes` evenly over them. */
  files: string[];
  totalBytes: number;
  /** Upper bound on the run time (fio `runtime`), in milliseconds. */
  runtimeMs: number;
  /** Loop over the files until runtimeMs has passed (otherwise: stop after totalBytes once). */
  timeBased: boolean;
  /** Never create or extend files (read rows on a prepared data set). */
  readonly: boolean;
}

export interface FioResult {
  bytesPerSec: number;
  iops: number;
  ioBytes: number;
  runtimeMs: number;
  clatMeanUs: number;
  clatP99Us: number | null;
  /** fio's own CPU use, percent of one core. */
  fioUsrCpu: number;
  fioSysCpu: number;
  /** The exact fio argument list, for the record. */
  args: string[];
}

export function fioArgs(job: FioJob): string[] {
  for (const f of job.files) if (f.includes(':')) throw new Error(`fio file names cannot contain ':' (${f})`);
  const args = [
    `--name=${job.name}`,
    '--ioengine=psync',
    '--iodepth=1',
    '--numjobs=1',
    `--rw=${job.rw}`,
    `--bs=${job.blockSize}`,
    ...fileArgs(job.files),
    `--size=${job.totalBytes}`,
    `--runtime=${job.runtimeMs}ms`,
    // fio's default invalidate=1 would fadvise(DONTNEED) the file first and
    // turn every "warm" row cold; cold rows drop caches themselves.
    '--invalidate=0',
    '--fallocate=none',
    '--group_reporting',
    '--output-format=json',
  ];
  if (job.timeBased) args.push('--time_based');
  if (job.readonly) args.push('--readonly');
  return args;
}

/**
 * fio keeps --filename in a 4 KiB buffer: 64 absolute paths under a mountpoint
 * overflow it (fio exits 1). Files in one directory go as --directory plus
 * bare names instead.
 */
function fileArgs(files: string[]): string[] {
  const dir = dirname(files[0]!);
  if (files.length > 1 && files.every((f) => dirname(f) === dir)) {
    return [`--directory=${dir}`, `--filename=${files.map((f) => basename(f)).join(':')}`];
  }
  return [`--filename=${files.join(':')}`];
}

/** Extracts the one JSON document from fio's stdout (which may carry warning lines first). */
export function parseFioJson(stdout: string, rw: FioRw, args: string[]): FioResult {
  const start = stdout.indexOf('{');
  if (start < 0) throw new Error(`fio printed no JSON: ${tail(stdout, 300)}`);
  const doc = JSON.parse(stdout.slice(start)) as { jobs?: FioJobJson[] };
  const j = doc.jobs?.[0];
  if (!j) throw new Error('fio JSON has no jobs');
  if (j.error) throw new Error(`fio job error ${j.error}`);
  const dir = rw === 'read' || rw === 'randread' ? j.read : j.write;
  if (!dir || dir.io_bytes === 0) throw new Error('fio moved no data');
  const p99 = dir.clat_ns.percentile?.['99.000000'];
  return {
    bytesPerSec: dir.bw_bytes,
    iops: dir.iops,
    ioBytes: dir.io_bytes,
    runtimeMs: dir.runtime,
    clatMeanUs: dir.clat_ns.mean / 1000,
    clatP99Us: p99 === undefined ? null : p99 / 1000,
    fioUsrCpu: j.usr_cpu,
    fioSysCpu: j.sys_cpu,
    args,
  };
}

interface FioDirJson {
  io_bytes: number;
  bw_bytes: number;
  iops: number;
  runtime: number;
  clat_ns: { mean: number; percentile?: Record<string, number> };
}
interface FioJobJson {
  error: number;
  usr_cpu: number;
  sys_cpu: number;
  read: FioDirJson;
  write: FioDirJson;
}

export async function runFio(job: FioJob, cwd: string): Promise<FioResult> {
  const args = fioArgs(job);
  // Generous: fio stops at runtimeMs, but open/close and layout on a slow
  // mount take extra; a hung mount must not hang the whole benchmark.
  const timeoutMs = job.runtimeMs + 60_000;
  const r = await runAsync('fio', args, { cwd, timeoutMs });
  if (r.timedOut) throw new Error(`fio did not finish within ${timeoutMs / 1000} s (mount hung?)`);
  if (r.code !== 0) throw new Error(`fio exit ${r.code ?? r.signal}: ${tail(r.stderr || r.stdout, 400)}`);
  return parseFioJson(r.stdout, job.rw, args);
}

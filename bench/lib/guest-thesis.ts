// bench/lib: the thesis comparison of issue 5 for `npm run bench -- guest
// --preset thesis` (may import node:*, bench/lib and src/guest): fio
// sequential and random reads of one big file and of ten smaller ones, inside
// the same Linux guest, on our daemon with and without a DAX window, Rust
// virtiofsd 1.14 and QEMU's C virtiofsd 7.2, plus boot time.
// The data set is written once on the HOST into the shared root (not by the
// guest: a 2 GiB layout under TCG would cost minutes per boot) and kept
// between boots and runs; every system reads the same bytes from a warm host
// page cache, so no row measures the host's disk.
// Nothing executes from the share while measuring: the guest copies busybox,
// fio and fio's libraries into a tmpfs and bind-mounts the copies over the
// originals before fio starts (executing from a dax=always mount can crash
// under TCG, the known DAX bug; doing it for every system keeps them alike).
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync, chmodSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { basename, join } from 'node:path';
import type { FioRw } from './fio.ts';
import { BENCH_DIR, BOOT_ROW, ensureBenchRoot, type FioRowSpec, type GuestRow } from './guest-workload.ts';

const KiB = 1024;
const MiB = 1024 * 1024;

/** The data set's directory inside the guest root (host: ROOT/vfts-bench-data). */
export const THESIS_DATA_DIR = 'vfts-bench-data';

export interface ThesisConfig {
  /** The one big file (issue 5: 1 GiB). */
  bigBytes: number;
  /** How many smaller files (issue 5: 10) and the size of each (about 100 MiB). */
  files: number;
  fileBytes: number;
  runtimeMs: number;
}

/** A read row of the thesis matrix: which data set and how fio spreads I/O over it. */
export interface ThesisRowSpec extends FioRowSpec {
  set: 'big' | 'files';
  /** The untimed-by-clock first pass over the whole set (size-based, not time-based). */
  firstPass?: boolean;
}

export function thesisRows(cfg: Pick<ThesisConfig, 'bigBytes' | 'files' | 'fileBytes'>): ThesisRowSpec[] {
  const size = (b: number) => (b >= 1024 * MiB && b % (1024 * MiB) === 0 ? `${b / (1024 * MiB)} GiB` : `${Math.round(b / MiB)} MiB`);
  const sets = [
    { set: 'big' as const, group: 'read' as const, what: `1 × ${size(cfg.bigBytes)}` },
    { set: 'files' as const, group: 'read-many' as const, what: `${cfg.files} × ${size(cfg.fileBytes)}` },
  ];
  const kinds: [FioRw, string][] = [
    ['read', 'seq read'],
    ['randread', 'rand read'],
  ];
  // Per set: one size-based sequential pass over all of it first (for DAX it
  // maps the set into the window: the cost of the first touch), then the
  // time-based rows, which for DAX find the set mapped.
  return sets.flatMap((s) => [
    {
      id: `${s.set}-first-1m`,
      title: `${s.what}: first read-through 1 MiB`,
      group: s.group,
      unit: 'MiB/s' as const,
      higherIsBetter: true,
      target: 1.0,
      rw: 'read' as const,
      blockSize: MiB,
      set: s.set,
      firstPass: true,
    },
    ...kinds.flatMap(([rw, name]) =>
      ([4 * KiB, MiB] as const).map(
        (bs): ThesisRowSpec => ({
          id: `${s.set}-${rw}-${bs === MiB ? '1m' : '4k'}`,
          title: `${s.what}: ${name} ${bs === MiB ? '1 MiB' : '4 KiB'}`,
          group: s.group,
          unit: 'MiB/s',
          higherIsBetter: true,
          // Issue 5: every non-DAX row of ours ≥ 1.0× Rust virtiofsd.
          target: 1.0,
          rw,
          blockSize: bs,
          set: s.set,
        }),
      ),
    ),
  ]);
}

/** Rows of the thesis report: the fio read rows, then boot time. */
export function thesisAllRows(cfg: Pick<ThesisConfig, 'bigBytes' | 'files' | 'fileBytes'>): GuestRow[] {
  return [...thesisRows(cfg), BOOT_ROW];
}

/** The random-read rows, where issue 5 wants DAX ≥ 6× our own no-DAX. */
export function daxTargets(rows: ThesisRowSpec[], factor = 6): Record<string, number> {
  return Object.fromEntries(rows.filter((r) => r.rw === 'randread').map((r) => [r.id, factor]));
}

const fileName = (i: number) => `f${String(i).padStart(2, '0')}`;

/**
 * Writes the data set on the host (once: a stamp records the sizes) with
 * incompressible bytes, so every system reads real data, not holes.
 * Returns the host paths.
 */
export function ensureThesisData(rootDir: string, cfg: Pick<ThesisConfig, 'bigBytes' | 'files' | 'fileBytes'>, progress: (line: string) => void = () => {}): { big: string; files: string[] } {
  const dir = join(rootDir, THESIS_DATA_DIR);
  const big = join(dir, 'big.dat');
  const files = Array.from({ length: cfg.files }, (_, i) => join(dir, 'files', fileName(i)));
  const stamp = join(dir, '.layout.json');
  const want = JSON.stringify({ bigBytes: cfg.bigBytes, files: cfg.files, fileBytes: cfg.fileBytes });
  const sizesOk = () => existsSync(big) && statSync(big).size === cfg.bigBytes && files.every((f) => existsSync(f) && statSync(f).size === cfg.fileBytes);
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want && sizesOk()) return { big, files };
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'files'), { recursive: true });
  progress(`writing the data set on the host: ${cfg.bigBytes / MiB} MiB + ${cfg.files} × ${cfg.fileBytes / MiB} MiB in ${dir}`);
  // 16 MiB of random bytes, each 1 MiB block stamped with its file and offset: no two blocks alike.
  const pool = randomFillSync(Buffer.alloc(16 * MiB));
  const write = (path: string, bytes: number, id: number) => {
    const fd = openSync(path, 'w', 0o644);
    try {
      for (let off = 0, k = 0; off < bytes; off += MiB, k++) {
        const len = Math.min(MiB, bytes - off);
        const block = pool.subarray((k % 16) * MiB, (k % 16) * MiB + len);
        if (len >= 16) {
          block.writeUInt32LE(id, 0);
          block.writeUInt32LE(k, 4);
        }
        writeSync(fd, block, 0, len, off);
      }
    } finally {
      closeSync(fd);
    }
  };
  write(big, cfg.bigBytes, 0);
  files.forEach((f, i) => write(f, cfg.fileBytes, i + 1));
  writeFileSync(stamp, want);
  return { big, files };
}

/** The guest-side scripts and fio job file; returns the guest argv of a measuring boot and of a boot-only boot. */
export function prepareThesisRoot(rootDir: string, cfg: ThesisConfig, progress: (line: string) => void = () => {}): { argv: string[]; bootOnlyArgv: string[]; jobFile: string; execFiles: string[] } {
  const fio = ensureBenchRoot(rootDir);
  ensureThesisData(rootDir, cfg, progress);
  const bench = join(rootDir, BENCH_DIR);
  rmSync(bench, { recursive: true, force: true });
  mkdirSync(join(bench, 'results'), { recursive: true });
  mkdirSync(join(bench, 'exec'), { recursive: true });

  const rows = thesisRows(cfg);
  const dataDir = `/${THESIS_DATA_DIR}`;
  const job = (r: ThesisRowSpec) => [
    `[${r.id}]`,
    ...(r.set === 'big'
      ? [`filename=${dataDir}/big.dat`, `size=${cfg.bigBytes}`]
      : [
          `directory=${dataDir}/files`,
          `filename=${Array.from({ length: cfg.files }, (_, i) => fileName(i)).join(':')}`,
          `size=${cfg.files * cfg.fileBytes}`,
          // Sequential rows read file after file; random rows pick a file per I/O.
          `file_service_type=${r.rw === 'read' ? 'sequential' : 'random'}`,
        ]),
    `rw=${r.rw}`,
    `bs=${r.blockSize}`,
    ...(r.firstPass ? ['time_based=0', 'runtime=900s'] : ['time_based=1', `runtime=${cfg.runtimeMs}ms`]),
    // Before a set's first pass, drop the inodes too (3): the previous set's DAX ranges go back to the window.
    `exec_prerun=/${BENCH_DIR}/mark start ${r.id} ${r.firstPass ? 3 : 1}`,
    `exec_postrun=/${BENCH_DIR}/mark end ${r.id}`,
    '',
  ];
  const jobFile = [
    '[global]',
    'ioengine=psync',
    'iodepth=1',
    'numjobs=1',
    // The data set was written on the host: fio must neither create nor extend it.
    'allow_file_create=0',
    // fio's default invalidate=1 would fadvise the files; the marks drop the whole guest cache instead.
    'invalidate=0',
    'fallocate=none',
    'stonewall',
    '',
    ...rows.flatMap(job),
  ].join('\n');
  writeFileSync(join(bench, 'jobs.fio'), jobFile);
  // As in the issue-3 matrix: a filler line after each mark, so the host sees it when it happens.
  const pad = `echo "${'-'.repeat(64)}"`;
  // Before the time-based rows, the page cache only (1): the no-DAX guests read
  // every job from an empty cache, while the inodes, and with them their DAX
  // window mappings, stay (echo 3 evicts closed files' inodes and frees their
  // ranges, so a DAX job would pay its mappings again, or not, as eviction
  // goes). Before a set's first pass, 3: that set starts unmapped.
  writeFileSync(join(bench, 'mark'), `#!/bin/sh\nexec >/dev/console 2>&1\n[ "$1" = start ] && { sync; echo \${3:-1} > /proc/sys/vm/drop_caches; }\necho "@@$1 $2"\n${pad}\n`);
  chmodSync(join(bench, 'mark'), 0o755);
  // Everything that executes while measuring, copied to a tmpfs: busybox is
  // bound over /bin/busybox (the shell, and fio's exec_prerun through
  // system()), fio runs through the copied loader with the copied libraries.
  // (One bind mount, not one per library: each mount cost the non-DAX guests
  // up to a second under TCG.)
  const execFiles = ['/bin/busybox', ...fio];
  const loader = fio.find((f) => basename(f).startsWith('ld-linux'));
  if (!loader) throw new Error(`no dynamic loader among fio's libraries (${fio.join(', ')})`);
  const stage1 = [
    'echo @@ready',
    `B=/${BENCH_DIR}`,
    `echo "@@start setup"; ${pad}`,
    'mount -t tmpfs -o size=256m,mode=0755 vfts-exec $B/exec || { echo "@@setup-error tmpfs"; exit 1; }',
    `for f in ${execFiles.join(' ')}; do`,
    '  dd if="$f" of="$B/exec/${f##*/}" bs=1M 2>/dev/null && chmod 755 "$B/exec/${f##*/}" || { echo "@@setup-error $f"; exit 1; }',
    'done',
    'mount -o bind $B/exec/busybox /bin/busybox || { echo "@@setup-error bind busybox"; exit 1; }',
    `echo "@@end setup"; ${pad}`,
    // The running shell was itself executed from the share: start over from the tmpfs copy.
    'exec /bin/sh $B/run2.sh',
  ];
  const stage2 = [
    `cd /${BENCH_DIR} || exit 1`,
    `echo "@@start fio"; ${pad}`,
    // --readonly: fio refuses any write to the data set.
    `exec/${basename(loader)} --library-path /${BENCH_DIR}/exec exec/fio --eta=never --readonly --output-format=json --output=results/fio.json jobs.fio; echo "@@fio-exit $?"`,
    'sync',
    'echo @@done',
  ];
  writeFileSync(join(bench, 'run.sh'), stage1.join('\n') + '\n');
  writeFileSync(join(bench, 'run2.sh'), stage2.join('\n') + '\n');
  return { argv: ['/bin/sh', `/${BENCH_DIR}/run.sh`], bootOnlyArgv: ['/bin/sh', '-c', 'echo @@ready'], jobFile, execFiles };
}

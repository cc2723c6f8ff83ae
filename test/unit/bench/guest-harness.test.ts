// The guest benchmark's host-side parts on the real tools they drive (gcc,
// fio, the busybox root), so `npm run bench -- guest` cannot rot unnoticed
// between its rare runs: the guest root is built, its fio job file is one that
// fio runs (here on the host, tiny sizes) and every row's figures are read
// back from fio's JSON; the static metadata program runs and reports all four
// phases; ratios are oriented so above 1 means ours is better.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { judge, median, type GuestReport } from '../../../bench/lib/guest-report.ts';
import { SYSTEMS, treeCpuSeconds } from '../../../bench/lib/guest-systems.ts';
import { ALL_ROWS, BENCH_DIR, BOOT_ROW, FIO_ROWS, parseMeta, prepareRoot, readFioResult } from '../../../bench/lib/guest-workload.ts';
import { processCpuSeconds } from '../../../bench/lib/proc.ts';

const dir = mkdtempSync(join(tmpdir(), 'vts-bench-guest-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('guest root: busybox, fio at its host path, a static metadata program; the job file runs in fio and every row reads back', { timeout: 240_000 }, () => {
  const root = join(dir, 'root');
  const { argv, jobFile } = prepareRoot(root, { fileBytes: 2 << 20, runtimeMs: 200, metaFiles: 40, readdirPasses: 2 });
  assert.deepEqual(argv, ['/bin/sh', `/${BENCH_DIR}/run.sh`]);
  for (const f of ['bin/busybox', 'usr/bin/fio', `${BENCH_DIR}/meta`, `${BENCH_DIR}/run.sh`, `${BENCH_DIR}/mark`, `${BENCH_DIR}/jobs.fio`]) assert.ok(existsSync(join(root, f)), f);
  assert.match(readFileSync(join(root, BENCH_DIR, 'run.sh'), 'utf8'), /^echo @@ready\n/, 'the first line the root prints is the boot mark');

  // The job file as the guest gets it, on the host: data in our temp dir, no marks (they drop caches, write the console).
  const data = join(dir, 'bench.dat');
  const hostJobs = jobFile.split('\n').filter((l) => !l.startsWith('exec_')).join('\n').replace(`/${BENCH_DIR}/data/bench.dat`, data);
  writeFileSync(join(dir, 'jobs.fio'), hostJobs);
  mkdirSync(join(root, BENCH_DIR, 'results'), { recursive: true });
  const out = join(root, BENCH_DIR, 'results', 'fio.json');
  const r = spawnSync('fio', ['--eta=never', '--output-format=json', `--output=${out}`, join(dir, 'jobs.fio')], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  for (const row of FIO_ROWS) {
    const f = readFioResult(root, row);
    assert.ok(f.bytesPerSec > 0 && f.iops > 0 && f.ioBytes > 0, row.id);
    assert.ok(f.ioBytes % row.blockSize === 0, `${row.id} moved whole blocks`);
  }

  // The metadata program is static: it runs on the host as in the guest.
  const m = spawnSync(join(root, BENCH_DIR, 'meta'), [join(dir, 'meta'), '40', '2'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(m.status, 0, m.stdout + m.stderr);
  const meta = parseMeta(m.stdout);
  assert.deepEqual(Object.fromEntries(Object.entries(meta).map(([k, v]) => [k, v.ops])), { create: 40, stat: 40, readdir: 2 * 42, unlink: 40 });
  assert.ok(!existsSync(join(dir, 'meta')), 'the metadata directory is removed');
  // A second run on an existing directory fails loudly rather than measuring nothing.
  mkdirSync(join(dir, 'meta'));
  const again = spawnSync(join(root, BENCH_DIR, 'meta'), [join(dir, 'meta'), '5', '1'], { encoding: 'utf8' });
  assert.notEqual(again.status, 0);
  assert.match(again.stdout, /@@meta-error mkdir/);
});

test('ratios: ours ÷ C for throughput, C ÷ ours for boot time; targets met/missed/not measured', () => {
  const res = (system: string, row: string, value?: number) => ({ system, row, status: value === undefined ? ('failed' as const) : ('ok' as const), value });
  const report = {
    systems: [
      { id: 'vts-auto', label: '', status: 'ok', versus: 'c-auto', qemu: '' },
      { id: 'c-auto', label: '', status: 'ok', qemu: '' },
    ],
    rows: ALL_ROWS,
    results: [
      ...ALL_ROWS.filter((r) => r.id !== BOOT_ROW.id).flatMap((r) => [res('vts-auto', r.id, r.group === 'metadata' ? 95 : 100), res('c-auto', r.id, 100)]),
      res('vts-auto', 'boot', 20),
      res('c-auto', 'boot', 10),
    ],
    ratios: [],
    targets: [],
  } as unknown as GuestReport;
  judge(report);
  const ratio = (row: string) => report.ratios.find((x) => x.row === row)!;
  assert.equal(ratio('read-4k').ratio, 1);
  assert.equal(ratio('read-4k').status, 'met');
  assert.equal(ratio('meta-stat').ratio, 0.95);
  assert.equal(ratio('meta-stat').status, 'met', '0.95 ≥ the 0.9 metadata target');
  assert.equal(ratio('boot').ratio, 0.5, 'twice the boot time is 0.5×');
  assert.equal(ratio('boot').status, 'missed');
  assert.deepEqual(report.targets.map((t) => t.status), ['met', 'met', 'missed']);
  // A system's own per-row target (issue 5: DAX ≥ 6× no-DAX on random reads) wins over the row's.
  report.systems[0]!.rowTargets = { 'randread-4k': 6 };
  judge(report);
  assert.equal(ratio('randread-4k').target, 6);
  assert.equal(ratio('randread-4k').status, 'missed');
  assert.equal(report.targets[0]!.status, 'missed');
  assert.match(report.targets[0]!.target, /rand read 4 KiB ≥ 6×/);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
});

test('systems: every default system has a reference or is one; ours and C per cache mode', () => {
  const def = SYSTEMS.filter((s) => s.byDefault).map((s) => s.id);
  assert.deepEqual(def, ['vts-never', 'c-never', 'vts-auto', 'c-auto', 'vts-always', 'c-always']);
  for (const s of SYSTEMS) if (s.versus) assert.ok(SYSTEMS.some((o) => o.id === s.versus), `${s.id} -> ${s.versus}`);
});

test('treeCpuSeconds counts a process and its children', () => {
  const own = processCpuSeconds(process.pid)!;
  const tree = treeCpuSeconds(process.pid)!;
  assert.ok(tree >= own, `${tree} >= ${own}`);
  assert.equal(treeCpuSeconds(2 ** 22 + 12345), undefined);
});

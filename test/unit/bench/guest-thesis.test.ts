// The issue-5 preset of the guest benchmark (`npm run bench -- guest --preset
// thesis`) on the real tools it drives, so it cannot rot between its rare
// runs: the data set is written on the host with the asked sizes and kept;
// the fio job file runs in fio (here on the host, tiny sizes) and every row's
// figures read back; the guest scripts copy what executes into a tmpfs and
// bind only busybox; the ratio columns follow the comparisons (DAX targets on
// random reads only, informational columns carry no target).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { judge, renderGuestMarkdown, type GuestReport } from '../../../bench/lib/guest-report.ts';
import { daxTargets, ensureThesisData, prepareThesisRoot, THESIS_DATA_DIR, thesisAllRows, thesisRows } from '../../../bench/lib/guest-thesis.ts';
import { BENCH_DIR, readFioResult } from '../../../bench/lib/guest-workload.ts';

const dir = mkdtempSync(join(tmpdir(), 'vts-bench-thesis-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const MiB = 1024 * 1024;
const cfg = { bigBytes: 3 * MiB, files: 3, fileBytes: 2 * MiB, runtimeMs: 200 };

test('thesis root: data set on the host, job file runs in fio and every row reads back', { timeout: 240_000 }, () => {
  const root = join(dir, 'root');
  const p = prepareThesisRoot(root, cfg);
  const data = join(root, THESIS_DATA_DIR);
  assert.equal(statSync(join(data, 'big.dat')).size, cfg.bigBytes);
  for (const f of ['f00', 'f01', 'f02']) assert.equal(statSync(join(data, 'files', f)).size, cfg.fileBytes);
  // Kept between runs: the same sizes do not rewrite the files.
  const before = statSync(join(data, 'big.dat')).mtimeMs;
  ensureThesisData(root, cfg);
  assert.equal(statSync(join(data, 'big.dat')).mtimeMs, before);
  // Blocks differ (stamped), so no row reads a repeated pattern the host could dedupe.
  const big = readFileSync(join(data, 'big.dat'));
  assert.notDeepEqual(big.subarray(0, 64), big.subarray(MiB, MiB + 64));

  const run = readFileSync(join(root, BENCH_DIR, 'run.sh'), 'utf8');
  assert.match(run, /^echo @@ready\n/, 'the first line the root prints is the boot mark');
  assert.match(run, /mount -t tmpfs/);
  assert.equal((run.match(/mount -o bind/g) ?? []).length, 1, 'only busybox is bound over its original');
  assert.ok(p.execFiles.includes('/bin/busybox') && p.execFiles.some((f) => f.endsWith('/fio')));
  const run2 = readFileSync(join(root, BENCH_DIR, 'run2.sh'), 'utf8');
  assert.match(run2, /exec\/ld-linux[^ ]* --library-path \/vfts-bench\/exec exec\/fio .*--readonly/);
  const mark = readFileSync(join(root, BENCH_DIR, 'mark'), 'utf8');
  assert.match(mark, /echo \$\{3:-1\} > \/proc\/sys\/vm\/drop_caches/);
  assert.match(p.jobFile, /\[big-first-1m\][^[]*time_based=0[^[]*mark start big-first-1m 3/);
  assert.match(p.jobFile, /\[files-randread-4k\][^[]*file_service_type=random[^[]*time_based=1[^[]*mark start files-randread-4k 1/);

  // The job file as the guest gets it, on the host: data paths under our root, no marks.
  const hostJobs = p.jobFile
    .split('\n')
    .filter((l) => !l.startsWith('exec_'))
    .join('\n')
    .replaceAll(`/${THESIS_DATA_DIR}`, data);
  writeFileSync(join(dir, 'jobs.fio'), hostJobs);
  const out = join(root, BENCH_DIR, 'results', 'fio.json');
  const r = spawnSync('fio', ['--eta=never', '--readonly', '--output-format=json', `--output=${out}`, join(dir, 'jobs.fio')], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const rows = thesisRows(cfg);
  assert.equal(rows.length, 10);
  for (const row of rows) {
    const f = readFioResult(root, row);
    assert.ok(f.bytesPerSec > 0 && f.ioBytes > 0, row.id);
    if (row.firstPass) assert.equal(f.ioBytes, row.set === 'big' ? cfg.bigBytes : cfg.files * cfg.fileBytes, `${row.id} reads the whole set once`);
  }
  // fio was told never to create files: a missing data file fails the job instead of being laid out.
  rmSync(join(data, 'files', 'f01'));
  const again = spawnSync('fio', ['--eta=never', '--readonly', '--output-format=json', `--output=${join(dir, 'again.json')}`, join(dir, 'jobs.fio')], { encoding: 'utf8', timeout: 120_000 });
  assert.notEqual(again.status, 0);
  assert.ok(!existsSync(join(data, 'files', 'f01')));
});

test('thesis ratios: DAX ÷ no-DAX has targets on random reads only; informational columns have none', () => {
  const rows = thesisAllRows(cfg);
  const fio = thesisRows(cfg);
  const res = (system: string, row: string, value: number) => ({ system, row, status: 'ok' as const, value });
  const values: Record<string, (row: string) => number> = {
    'vts11-dax': (row) => (row === 'boot' ? 10 : row.includes('randread') ? 70 : 100),
    'vts11-auto': (row) => (row === 'boot' ? 8 : 10),
    'rust-auto': (row) => (row === 'boot' ? 9 : row === 'big-read-4k' ? 20 : 10),
    'c-auto': () => 10,
  };
  const report = {
    title: 't',
    quick: false,
    partial: false,
    date: '',
    git: {},
    machine: { cpus: 2, cpuModel: '', memGiB: 1, kernel: '', node: '', loadavgStart: [0, 0, 0] },
    config: {},
    notes: [],
    systems: Object.keys(values).map((id) => ({ id, label: id, status: 'ok', qemu: '' })),
    rows,
    comparisons: [
      { system: 'vts11-dax', versus: 'vts11-auto', rowTargets: daxTargets(fio), onlyRowTargets: true },
      { system: 'vts11-auto', versus: 'rust-auto' },
      { system: 'c-auto', versus: 'rust-auto', informational: true, note: 'two QEMUs' },
    ],
    results: Object.entries(values).flatMap(([sys, v]) => rows.map((r) => res(sys, r.id, v(r.id)))),
    ratios: [],
    targets: [],
  } as unknown as GuestReport;
  judge(report);
  const ratio = (system: string, row: string) => report.ratios.find((x) => x.system === system && x.row === row)!;
  assert.deepEqual(Object.keys(daxTargets(fio)).sort(), ['big-randread-1m', 'big-randread-4k', 'files-randread-1m', 'files-randread-4k']);
  assert.equal(ratio('vts11-dax', 'big-randread-4k').ratio, 7);
  assert.equal(ratio('vts11-dax', 'big-randread-4k').status, 'met');
  assert.equal(ratio('vts11-dax', 'big-read-4k').status, 'info', 'sequential DAX rows carry no target');
  assert.equal(ratio('vts11-dax', 'boot').ratio, 0.8, 'boot: no-DAX time ÷ DAX time');
  assert.equal(ratio('vts11-auto', 'big-read-4k').status, 'missed');
  assert.equal(ratio('vts11-auto', 'boot').status, 'met');
  assert.ok(report.ratios.filter((x) => x.system === 'c-auto').every((x) => x.status === 'info' && x.target === undefined));
  // Targets: the DAX group, then ours vs Rust on throughput and boot; nothing for the informational column, no metadata group.
  assert.deepEqual(
    report.targets.map((t) => [t.system, t.status]),
    [
      ['vts11-dax', 'met'],
      ['vts11-auto', 'missed'],
      ['vts11-auto', 'met'],
    ],
  );
  assert.match(report.targets[1]!.detail, /seq read 4 KiB 0\.50×/);
  const md = renderGuestMarkdown(report);
  assert.match(md, /\| row \| target \| vts11-dax ÷ vts11-auto \| vts11-auto ÷ rust-auto \| c-auto ÷ rust-auto \|/);
  assert.match(md, /\*\*c-auto ÷ rust-auto\*\*: two QEMUs/);
});

// The benchmark harness's own parts, on the real tools they drive (fio, gcc,
// mount, rsvg-convert), so `npm run bench` cannot rot unnoticed between the
// rare full runs. Seconds, not a benchmark: tiny sizes, nothing timed.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fioArgs, parseFioJson, runFio } from '../../../bench/lib/fio.ts';
import { buildPassthroughLl, forceUnmount, mountedFsType } from '../../../bench/lib/mounts.ts';
import { renderMarkdown } from '../../../bench/lib/markdown.ts';
import { writePlot } from '../../../bench/lib/plot.ts';
import type { BenchReport } from '../../../bench/lib/results.ts';

const root = new URL('../../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'vts-bench-harness-'));
const spaced = join(dir, 'mount point');
after(() => {
  forceUnmount(spaced);
  rmSync(dir, { recursive: true, force: true });
});

test('fio: a write then a read-only read move exactly the bytes asked for, and warm rows keep the page cache', async () => {
  const file = join(dir, 'fio.bin');
  const w = await runFio({ name: 'w', rw: 'write', blockSize: 65536, files: [file], totalBytes: 4 << 20, runtimeMs: 20_000, timeBased: false, readonly: false }, dir);
  assert.equal(w.ioBytes, 4 << 20);
  assert.equal(statSync(file).size, 4 << 20);
  const r = await runFio({ name: 'r', rw: 'randread', blockSize: 4096, files: [file], totalBytes: 4 << 20, runtimeMs: 20_000, timeBased: false, readonly: true }, dir);
  assert.equal(r.ioBytes, 4 << 20);
  assert.ok(r.iops > 0 && r.bytesPerSec > 0 && r.clatMeanUs > 0);
  assert.ok(r.args.includes('--invalidate=0'), 'fio must not drop the page cache before warm rows');
  assert.ok(r.args.includes('--readonly'));
});

test('fio: several files go in one colon list (in one directory: --directory + bare names); a name with a colon is refused', () => {
  const args = fioArgs({ name: 'm', rw: 'read', blockSize: 4096, files: ['/a/x', '/a/y'], totalBytes: 8192, runtimeMs: 500, timeBased: true, readonly: true });
  assert.ok(args.includes('--directory=/a') && args.includes('--filename=x:y'));
  // 64 long paths in one directory overflow fio's 4 KiB --filename buffer:
  // they must go as --directory plus bare names.
  const many = Array.from({ length: 64 }, (_, i) => `${'/very-long-mountpoint-name'.repeat(3)}/data/many-64x16m/f${String(i).padStart(3, '0')}.bin`);
  const margs = fioArgs({ name: 'm', rw: 'read', blockSize: 4096, files: many, totalBytes: 8192, runtimeMs: 500, timeBased: true, readonly: true });
  assert.ok(margs.every((a) => a.length < 4000));
  assert.equal(fioArgs({ name: 'm', rw: 'read', blockSize: 4096, files: ['/a/x', '/b/y'], totalBytes: 8192, runtimeMs: 500, timeBased: true, readonly: true }).find((a) => a.startsWith('--filename')), '--filename=/a/x:/b/y');
  assert.ok(args.includes('--runtime=500ms') && args.includes('--time_based'));
  assert.throws(() => fioArgs({ name: 'm', rw: 'read', blockSize: 4096, files: ['/a:b'], totalBytes: 8192, runtimeMs: 500, timeBased: false, readonly: true }), /cannot contain ':'/);
});

test('fio JSON: warnings before the document are skipped; no data or a job error is an error', () => {
  const job = (io: number, error = 0) => ({ error, usr_cpu: 1, sys_cpu: 2, read: { io_bytes: io, bw_bytes: 10, iops: 5, runtime: 100, clat_ns: { mean: 2000, percentile: { '99.000000': 9000 } } }, write: { io_bytes: 0, bw_bytes: 0, iops: 0, runtime: 0, clat_ns: { mean: 0 } } });
  const ok = parseFioJson(`fio: some warning\n${JSON.stringify({ jobs: [job(4096)] })}`, 'randread', []);
  assert.equal(ok.clatMeanUs, 2);
  assert.equal(ok.clatP99Us, 9);
  assert.throws(() => parseFioJson(JSON.stringify({ jobs: [job(0)] }), 'read', []), /no data/);
  assert.throws(() => parseFioJson(JSON.stringify({ jobs: [job(4096, 5)] }), 'read', []), /error 5/);
  assert.throws(() => parseFioJson('fio: file not found', 'read', []), /no JSON/);
});

test('metadata load: every phase counts all files, readdir is checked, the dir is removed', () => {
  const target = join(dir, 'meta');
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'bench/lib/metadata-load.ts'), target, '300'], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as { count: number; phases: Record<string, { seconds: number; ops: number }> };
  assert.equal(doc.count, 300);
  assert.deepEqual(Object.keys(doc.phases), ['create', 'stat', 'readdir', 'unlink']);
  for (const p of Object.values(doc.phases)) assert.ok(p.ops === 300 && p.seconds > 0);
  assert.equal(existsSync(target), false);
  mkdirSync(target);
  spawnSync('touch', [join(target, 'stray')]);
  const bad = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'bench/lib/metadata-load.ts'), target, '10'], { cwd: root, encoding: 'utf8' });
  assert.notEqual(bad.status, 0, 'a non-empty directory must be refused');
});

test('mountinfo: a mountpoint with a space is found (octal escapes undone) and forceUnmount detaches it', () => {
  mkdirSync(spaced);
  assert.equal(mountedFsType(spaced), undefined);
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'vts-bench-test', spaced], { encoding: 'utf8' });
  assert.equal(m.status, 0, `mount tmpfs (needs root): ${m.stderr}`);
  assert.equal(mountedFsType(spaced), 'tmpfs');
  forceUnmount(spaced);
  assert.equal(mountedFsType(spaced), undefined);
});

test('passthrough_ll builds from libfuse3-dev\'s example into the cache dir and prints its usage', () => {
  const { binary } = buildPassthroughLl();
  assert.ok(!binary.startsWith(root), 'the built reference must live outside the repository');
  const h = spawnSync(binary, ['--help'], { encoding: 'utf8' });
  assert.match(h.stdout + h.stderr, /source=/);
});

test('report: ratio tables divide by the baseline; the plot is a PNG', () => {
  const report: BenchReport = {
    benchmark: 'devfuse', title: 'T', quick: true, partial: false, date: '2026-01-01T00:00:00Z', git: { commit: 'abc' },
    machine: { cpuModel: 'x', cpus: 2, memGiB: 1, kernel: 'k', node: 'v20', tools: {}, loadavgStart: [0, 0, 0] },
    config: { command: 'c' },
    systems: [{ id: 'bindfs', label: 'bindfs', status: 'ok' }, { id: 'vts-auto', label: 'ours', status: 'ok' }, { id: 'vts-never', label: 'ours never', status: 'failed', error: 'boom' }],
    rows: [{ id: 'r1', title: 'row one', group: 'write', unit: 'MiB/s' }],
    results: [
      { system: 'bindfs', row: 'r1', status: 'ok', value: 100, mibPerSec: 100 },
      { system: 'vts-auto', row: 'r1', status: 'ok', value: 250, mibPerSec: 250 },
    ],
    targets: [], notes: [],
  };
  const md = renderMarkdown(report, { baselines: ['bindfs'], jsonFile: 'x.json' });
  assert.match(md, /\| row one \| 2\.50× \|/);
  assert.match(md, /vts-never\*\*: boom/);
  assert.match(md, /QUICK/);
  const plot = writePlot(dir, 'plot', {
    title: 'T', subtitle: 's', series: [{ id: 'bindfs', label: 'bindfs' }, { id: 'vts-auto', label: 'ours' }],
    panels: [{ title: 'write', unit: 'MiB/s', rows: [{ id: 'r1', title: 'row one' }] }],
    value: (s) => (s === 'bindfs' ? 100 : 'failed'),
  });
  assert.equal(plot.warning, undefined, plot.warning);
  assert.deepEqual([...readFileSync(plot.png!).subarray(1, 4)], [...Buffer.from('PNG')]);
  assert.match(readFileSync(plot.svg, 'utf8'), /vts-auto: failed/);
});

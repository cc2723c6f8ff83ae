// bench: `npm run bench -- driver`: the thesis matrix through our guest-side
// virtio-fs driver (src/driver), side by side: Node's own fs on the host
// directory (the ceiling), the driver to QEMU's C virtiofsd, to our daemon
// without DAX, to our daemon with a DAX window, and to the scripted DAX test
// peer (test/integration/driver-dax-peer.ts: the only backend that answers
// SETUPMAPPING today). Plus the example app's startup (booted from virtio-fs
// vs local disk) and the static server's requests/s under wrk.
// May import node:*, bench/lib and src/driver (the code under test).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeSync, closeSync, rmSync, cpSync, writeFileSync } from 'node:fs';
import { open as fsOpen } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { randomFillSync } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectVirtioFs, type VirtioFsSession } from '../src/driver/session.ts';
import { renderMarkdown, writeMarkdown } from './lib/markdown.ts';
import { writePlot } from './lib/plot.ts';
import { tryRun } from './lib/proc.ts';
import { gitInfo, machineInfo, okValue, writeJson, type BenchReport, type RowSpec, type TargetOutcome } from './lib/results.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(REPO, 'bin/virtiofs-ts.js');
const PEER = join(REPO, 'test/integration/driver-dax-peer.ts');
const C_VIRTIOFSD = '/usr/lib/qemu/virtiofsd';
const MiB = 1024 * 1024;
/** The DAX window (MiB) both the driver and `serve --dax-window` use; set from --window in main(). */
let daxWindowMiB = 1024;

export const usage = `npm run bench -- driver [options]

Reads through the TypeScript virtio-fs driver from several backends and from
Node's fs directly: one big file and 10 files, sequential and random reads at
4 KiB / 128 KiB / 1 MiB (queue depth 1, warm host page cache); the example
static server's startup and requests/s (wrk).

Options:
  --quick           128 MiB + 10 x 16 MiB, 1 s per cell (smoke run)
  --app-only        only the example app rows (startup, static server);
                    results in driver-app.{json,md}
  --rounds N        app startups per system (default 3; the median counts)
  --runtime SEC     seconds per cell (default 3)
  --window SIZE_MB  DAX window in MiB (default 1024; quick 256)
  --out DIR         results directory (default bench/results)
  --render JSON     measure nothing: rebuild .md and plot from a results JSON
  --help            this text
`;

interface Sys {
  id: string;
  label: string;
  start(dir: string, sock: string): Promise<ChildProcess | null>;
  dax: boolean;
}

function spawnWait(cmd: string, args: string[], sock: string): Promise<ChildProcess> {
  const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'ignore'] });
  return (async () => {
    const t0 = Date.now();
    while (!existsSync(sock)) {
      if (c.exitCode !== null || Date.now() - t0 > 30_000) throw new Error(`${cmd} did not listen on ${sock}`);
      await sleep(30);
    }
    return c;
  })();
}

const SYSTEMS: Sys[] = [
  { id: 'node-fs', label: "Node's fs on the host dir (ceiling)", dax: false, start: async () => null },
  { id: 'drv-c', label: 'driver -> C virtiofsd', dax: false, start: (d, s) => spawnWait(C_VIRTIOFSD, [`--socket-path=${s}`, '-o', `source=${d}`, '-o', 'cache=auto'], s) },
  { id: 'drv-ours', label: 'driver -> our daemon', dax: false, start: (d, s) => spawnWait(process.execPath, [BIN, 'serve', '--socket-path', s, '--shared-dir', d], s) },
  { id: 'drv-ours-dax', label: 'driver -> our daemon, DAX window', dax: true, start: (d, s) => spawnWait(process.execPath, [BIN, 'serve', '--socket-path', s, '--shared-dir', d, '--dax-window', `${daxWindowMiB}M`], s) },
  { id: 'drv-peer-dax', label: 'driver -> DAX test peer', dax: true, start: (d, s) => spawnWait(process.execPath, ['--import', 'tsx', PEER, s, d, 'good'], s) },
];

interface Reader {
  read(file: number, pos: number, len: number): Promise<number>;
  close(): Promise<void>;
}

async function nodeReader(paths: string[]): Promise<Reader> {
  const hs = await Promise.all(paths.map((p) => fsOpen(p, 'r')));
  const buf = Buffer.alloc(MiB);
  return {
    read: async (f, pos, len) => (await hs[f]!.read(buf, 0, len, pos)).bytesRead,
    close: async () => { for (const h of hs) await h.close(); },
  };
}

async function driverReader(s: VirtioFsSession, names: string[]): Promise<Reader> {
  const hs = await Promise.all(names.map((n) => s.fs.open(`/${n}`, 'r')));
  const buf = Buffer.alloc(MiB);
  return {
    read: async (f, pos, len) => (await hs[f]!.read(buf, 0, len, pos)).bytesRead,
    close: async () => { for (const h of hs) await h.close(); },
  };
}

interface Row extends RowSpec { files: 'one' | 'ten'; block: number; random: boolean }

function rows(): Row[] {
  const out: Row[] = [];
  for (const files of ['one', 'ten'] as const) {
    for (const random of [false, true]) {
      for (const block of [4096, 128 * 1024, MiB]) {
        const b = block === 4096 ? '4k' : block === MiB ? '1m' : '128k';
        out.push({
          id: `${random ? 'rand' : 'seq'}-${b}-${files}`,
          title: `${random ? 'rand' : 'seq'} read ${b} · ${files === 'one' ? '1 big file' : '10 files'}`,
          group: random ? 'random reads' : 'sequential reads',
          unit: block === 4096 ? 'IOPS' : 'MiB/s',
          files, block, random,
        });
      }
    }
  }
  return out;
}

async function measure(r: Reader, row: Row, sizes: number[], runtimeMs: number): Promise<{ ops: number; bytes: number; ms: number }> {
  let seed = 12345;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
  const nfiles = row.files === 'one' ? 1 : sizes.length;
  let ops = 0;
  let bytes = 0;
  let pos = 0;
  let f = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < runtimeMs) {
    for (let k = 0; k < 16; k++) {
      const fi = row.files === 'one' ? 0 : row.random ? rnd(nfiles) : f;
      const size = sizes[fi]!;
      const at = row.random ? rnd(Math.floor((size - row.block) / row.block)) * row.block : pos;
      const n = await r.read(fi, at, row.block);
      ops++;
      bytes += n;
      if (!row.random) {
        pos += row.block;
        if (pos + row.block > size) { pos = 0; f = (f + 1) % nfiles; }
      }
    }
  }
  return { ops, bytes, ms: performance.now() - t0 };
}

/** JSON + Markdown + plot for a report (also used by --render). */
function render(report: BenchReport, out: string, name: string, rowList: Row[]): void {
  writeJson(out, name, report);
  const plot = writePlot(out, name, {
    title: report.title, subtitle: report.quick ? 'quick run' : '',
    series: report.systems.filter((s) => s.status === 'ok').map((s) => ({ id: s.id, label: s.label })),
    panels: [
      { title: 'sequential reads', unit: 'MiB/s', rows: rowList.filter((r) => !r.random).map((r) => ({ id: r.id, title: r.title })) },
      { title: 'random reads (MiB/s)', unit: 'MiB/s', rows: rowList.filter((r) => r.random).map((r) => ({ id: r.id, title: r.title })) },
    ],
    value: (s, r) => report.results.find((m) => m.system === s && m.row === r)?.mibPerSec,
  });
  writeMarkdown(out, name, renderMarkdown(report, { baselines: ['drv-c', 'node-fs'], plot: plot.png ? `${name}.png` : `${name}.svg`, jsonFile: `${name}.json` }));
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help')) { process.stdout.write(usage); return 0; }
  const arg = (k: string) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : undefined; };
  const renderFrom = arg('--render');
  if (renderFrom) {
    // Rebuild the report files from a results JSON (after a change to the report code).
    const report = JSON.parse(readFileSync(renderFrom, 'utf8')) as BenchReport;
    for (const m of report.results) {
      const ms = (m.detail?.startupMs as number[] | undefined)?.slice().sort((a, b) => a - b);
      if (m.row === 'app-startup' && ms && ms.length > 0) m.value = 60000 / ms[Math.floor(ms.length / 2)]!;
    }
    const row = report.rows.find((r) => r.id === 'app-startup');
    if (row) row.title = 'example app startup (boots per minute = 60000 / median ms)';
    render(report, dirname(renderFrom), basename(renderFrom, '.json'), rows());
    return 0;
  }
  const quick = argv.includes('--quick');
  const appOnly = argv.includes('--app-only');
  const rounds = Number(arg('--rounds') ?? 3);
  const runtimeMs = Number(arg('--runtime') ?? (quick ? 1 : 3)) * 1000;
  daxWindowMiB = Number(arg('--window') ?? (quick ? 256 : 1024));
  const windowBytes = daxWindowMiB * MiB;
  const out = arg('--out') ?? join(REPO, 'bench/results');
  const bigSize = appOnly ? 0 : quick ? 128 * MiB : 1024 * MiB;
  const smallSize = appOnly ? 0 : quick ? 16 * MiB : 100 * MiB;
  const work = mkdtempSync(join(process.env.BENCH_DIR ?? '/var/tmp', 'vts-driver-bench-'));
  const data = join(work, 'data');
  mkdirSync(data);
  const names = appOnly ? [] : ['big.bin', ...Array.from({ length: 10 }, (_, i) => `f${i}.bin`)];
  const sizes = [bigSize, ...Array.from({ length: 10 }, () => smallSize)];
  const block = Buffer.alloc(4 * MiB);
  for (const [i, n] of names.entries()) {
    const fd = openSync(join(data, n), 'w');
    for (let o = 0; o < sizes[i]!; o += block.length) { randomFillSync(block); writeSync(fd, block, 0, Math.min(block.length, sizes[i]! - o)); }
    closeSync(fd);
  }
  const rowList = appOnly ? [] : rows();
  const report: BenchReport = {
    benchmark: 'driver', title: 'virtio-fs driver (TypeScript guest side): thesis read matrix', quick, partial: false,
    date: new Date().toISOString(), git: gitInfo(REPO), machine: machineInfo(REPO, work),
    config: { command: `npm run bench -- driver ${argv.join(' ')}`.trim(), runtimeMs, windowBytes, bigSize, smallSize },
    systems: [], rows: [...rowList], results: [], targets: [], notes: [],
  };
  report.machine.tools.wrk = existsSync('/usr/bin/wrk') ? 'installed' : undefined;
  const log = (s: string) => process.stderr.write(`${s}\n`);

  for (const sys of appOnly ? [] : SYSTEMS) {
    const sock = join(work, `${sys.id}.sock`);
    let child: ChildProcess | null = null;
    let session: VirtioFsSession | null = null;
    try {
      child = await sys.start(data, sock);
      let reader: Reader;
      if (sys.id === 'node-fs') reader = await nodeReader(names.map((n) => join(data, n)));
      else {
        session = await connectVirtioFs({ socketPath: sock, daxWindowBytes: sys.dax ? windowBytes : 0, memoryBytes: 64 * MiB });
        reader = await driverReader(session, names);
      }
      const daxNote = session?.dax ? (session.dax.enabled ? 'DAX on' : `DAX off: ${session.dax.disabledReason}`) : '';
      report.systems.push({ id: sys.id, label: sys.label + (daxNote ? ` (${daxNote})` : ''), status: 'ok' });
      let lastSet = '';
      for (const row of rowList) {
        // A new data set starts with an empty DAX window, as a fresh mount would
        // (LIFO eviction keeps the previous set's mappings at the bottom otherwise).
        if (row.files !== lastSet) session?.dax?.reset();
        lastSet = row.files;
        const files = row.files === 'one' ? sizes.slice(0, 1) : sizes.slice(1);
        const wrapped: Reader = row.files === 'one' ? reader : { read: (f, p, l) => reader.read(f + 1, p, l), close: reader.close };
        // Warm-up: one sequential pass over the row's files (host page cache,
        // and the DAX window's mappings), then a short run of the row itself.
        for (let f = 0; f < files.length; f++) for (let p = 0; p < files[f]!; p += MiB) await wrapped.read(f, p, MiB);
        await measure(wrapped, row, files, Math.min(300, runtimeMs / 4));
        const m = await measure(wrapped, row, files, runtimeMs);
        const mibs = m.bytes / MiB / (m.ms / 1000);
        const iops = m.ops / (m.ms / 1000);
        report.results.push({ system: sys.id, row: row.id, status: 'ok', value: row.unit === 'IOPS' ? iops : mibs, mibPerSec: mibs, detail: { ops: m.ops, ms: Math.round(m.ms), dax: session?.dax?.stats } });
        log(`${sys.id} ${row.id}: ${row.unit === 'IOPS' ? `${iops.toFixed(0)} IOPS` : `${mibs.toFixed(1)} MiB/s`}`);
      }
      await reader.close();
    } catch (err) {
      report.systems.push({ id: sys.id, label: sys.label, status: 'failed', error: (err as Error).message });
      log(`${sys.id}: failed: ${(err as Error).message}`);
    } finally {
      await session?.close().catch(() => {});
      if (child && child.exitCode === null) child.kill('SIGKILL');
    }
  }

  // ---- app startup and static server requests/s --------------------------------------
  const cliEntry = new URL('../bin/cli-entry.js', import.meta.url).href; // plain JS, no types
  const { distStaleReason } = (await import(cliEntry)) as { distStaleReason(): string };
  const stale = distStaleReason();
  const cliFrom = stale ? `our CLI from the TypeScript sources under tsx: ${stale}` : 'our CLI from dist/ (npm run build)';
  log(`app: ${cliFrom}`);
  const app = join(work, 'app');
  cpSync(join(REPO, 'examples/static-server'), app, { recursive: true });
  const served: string[] = [];
  for (let i = 0; i < 10; i++) {
    const size = Math.round((0.5 + (11.5 * i) / 9) * MiB);
    const b = Buffer.alloc(size);
    randomFillSync(b);
    writeFileSync(join(app, 'public', `file${i}.bin`), b);
    served.push(`/file${i}.bin`);
  }
  const lua = join(work, 'paths.lua');
  writeFileSync(lua, `local paths = {${served.map((p) => `"${p}"`).join(',')}}\nlocal i = 0\nrequest = function()\n  i = i % #paths + 1\n  return wrk.format("GET", paths[i])\nend\n`);
  const appRows: RowSpec[] = [
    { id: 'app-startup', title: 'example app startup (boots per minute = 60000 / median ms)', group: 'app', unit: 'ops/s' },
    { id: 'static-rps', title: 'static server, 10 files 0.5-12 MiB (req/s)', group: 'app', unit: 'ops/s' },
  ];
  report.rows.push(...appRows);
  const appSystems = [
    { id: 'node-fs', how: 'local' },
    { id: 'drv-c', how: 'c' },
    { id: 'drv-ours', how: 'ours' },
    { id: 'drv-ours-dax', how: 'ours-dax' },
  ];
  for (const a of appSystems) {
    const startups: number[] = [];
    let rps: number | undefined;
    for (let round = 0; round < rounds; round++) {
      const sock = join(work, `app-${a.id}-${round}.sock`);
      let backend: ChildProcess | null = null;
      let appProc: ChildProcess | null = null;
      try {
        if (a.how === 'c') backend = await spawnWait(C_VIRTIOFSD, [`--socket-path=${sock}`, '-o', `source=${app}`, '-o', 'cache=auto'], sock);
        if (a.how.startsWith('ours')) backend = await spawnWait(process.execPath, [BIN, 'serve', '--socket-path', sock, '--shared-dir', app, ...(a.how === 'ours-dax' ? ['--dax-window', '256M'] : [])], sock);
        const t0 = performance.now();
        appProc = a.how === 'local'
          ? spawn(process.execPath, [join(app, 'main.js')], { env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'ignore'] })
          : spawn(process.execPath, [BIN, 'boot', '--socket', sock, '--entry', '/main.js', ...(a.how === 'ours-dax' ? ['--dax-window', '256M'] : [])], { env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'ignore'] });
        // (the ours-dax backend below is started with --dax-window 256M to match)
        const url = await new Promise<string>((resolve, reject) => {
          let o = '';
          const t = setTimeout(() => reject(new Error('app did not start in 60 s')), 60_000);
          appProc!.stdout!.on('data', (d: Buffer) => { o += d; const m = /listening on (\S+)/.exec(o); if (m) { clearTimeout(t); resolve(m[1]!); } });
        });
        startups.push(performance.now() - t0);
        if (round === 0) {
          const w = spawn('wrk', ['-t1', '-c4', `-d${Math.max(2, runtimeMs / 1000)}s`, '-s', lua, url], { stdio: ['ignore', 'pipe', 'ignore'] });
          let wo = '';
          w.stdout!.on('data', (d: Buffer) => (wo += d));
          await new Promise((r) => w.on('exit', r));
          const m = /Requests\/sec:\s+([\d.]+)/.exec(wo);
          if (m) rps = Number(m[1]);
        }
      } catch (err) {
        log(`app ${a.id}: ${(err as Error).message}`);
      } finally {
        appProc?.kill('SIGKILL');
        if (backend && backend.exitCode === null) backend.kill('SIGKILL');
      }
    }
    startups.sort((x, y) => x - y);
    const median = startups[Math.floor(startups.length / 2)];
    report.results.push(median === undefined ? { system: a.id, row: 'app-startup', status: 'failed' } : { system: a.id, row: 'app-startup', status: 'ok', value: 60000 / median, detail: { startupMs: startups.map(Math.round) } });
    report.results.push(rps === undefined ? { system: a.id, row: 'static-rps', status: 'failed', error: 'wrk gave no figure' } : { system: a.id, row: 'static-rps', status: 'ok', value: rps });
    log(`app ${a.id}: startup ${median?.toFixed(0)} ms, ${rps ?? '?'} req/s`);
  }

  // ---- targets ---------------------------------------------------------------------
  const v = (s: string, r: string) => okValue(report, s, r);
  const target = (t: string, system: string, ok: boolean | undefined, detail: string): TargetOutcome =>
    ({ target: t, system, status: ok === undefined ? 'not measured' : ok ? 'met' : 'missed', detail });
  const ratio = (a?: number, b?: number) => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined);
  for (const dax of ['drv-ours-dax', 'drv-peer-dax']) {
    const r4 = ratio(v(dax, 'rand-4k-one'), v('drv-ours', 'rand-4k-one'));
    report.targets.push(target('DAX >= 6x no-DAX, rand 4k', dax, r4 === undefined ? undefined : r4 >= 6, r4 === undefined ? '' : `${r4.toFixed(2)}x`));
    const rs = ratio(v(dax, 'seq-1m-one'), v('node-fs', 'seq-1m-one'));
    report.targets.push(target("DAX seq >= 0.5x Node's fs", dax, rs === undefined ? undefined : rs >= 0.5, rs === undefined ? '' : `${rs.toFixed(2)}x`));
  }
  for (const row of ['seq-1m-one', 'rand-4k-one', 'seq-128k-ten']) {
    const r = ratio(v('drv-ours', row), v('drv-c', row));
    report.targets.push(target(`our daemon >= 1.0x C virtiofsd (${row})`, 'drv-ours', r === undefined ? undefined : r >= 1, r === undefined ? '' : `${r.toFixed(2)}x`));
  }
  const su = ratio(v('node-fs', 'app-startup'), v('drv-ours-dax', 'app-startup'));
  report.targets.push(target('app startup with DAX within 1.2x local', 'drv-ours-dax', su === undefined ? undefined : su <= 1.2, su === undefined ? '' : `${su.toFixed(2)}x local`));
  report.notes.push(
    'drv-ours-dax: `serve --dax-window` (SETUPMAPPING answered with SHMEM_MAP); drv-peer-dax: the scripted DAX backend of the driver tests, for comparison.',
    'Queue depth 1, one reader, warm host page cache; 2 shared cores, so absolute figures move with machine load.',
    'Each data set (1 big file / 10 files) starts with an empty DAX window (DaxManager.reset(), as a fresh mount) and one sequential warm-up pass.',
    `App startup is end to end: \`virtiofs-ts boot\` (${cliFrom}, then the app through the driver) vs \`node main.js\` on the local disk, so it includes the CLI's own start.`,
  );
  report.finished = new Date().toISOString();
  report.machine.loadavgEnd = (await import('node:os')).loadavg().map((x) => Math.round(x * 100) / 100);
  const name = appOnly ? 'driver-app' : quick ? 'driver-quick' : 'driver';
  render(report, out, name, rowList);
  rmSync(work, { recursive: true, force: true });
  log(`results: ${join(out, name)}.{json,md}`);
  return 0;
}

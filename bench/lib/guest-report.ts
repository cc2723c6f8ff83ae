// bench/lib: the guest benchmark's report: ratios of each system to its
// reference (ours ÷ C virtiofsd per cache mode), the issue's targets, Markdown
// and plot (may import node:* and bench/lib).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatRatio } from './markdown.ts';
import { writePlot, type PlotPanel } from './plot.ts';
import type { BenchReport, Measurement, SystemOutcome } from './results.ts';
import type { GuestRow } from './guest-workload.ts';

export interface GuestSystemOutcome extends SystemOutcome {
  versus?: string;
  rowTargets?: Record<string, number>;
  qemu: string;
}

/** The shared report shape, with guest systems, guest rows and ratio rows. */
export interface GuestReport extends Omit<BenchReport, 'benchmark' | 'systems' | 'rows'> {
  benchmark: 'guest';
  systems: GuestSystemOutcome[];
  rows: GuestRow[];
  /** One per system and row: the median over repetitions (detail.samples holds them all). */
  results: Measurement[];
  /** Ratio rows: ours ÷ reference, oriented so > 1 is better for ours. */
  ratios: RatioRow[];
}

export interface RatioRow {
  system: string;
  versus: string;
  row: string;
  ratio?: number;
  target: number;
  status: 'met' | 'missed' | 'not measured';
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function valueOf(r: GuestReport, system: string, row: string): number | undefined {
  const m = r.results.find((x) => x.system === system && x.row === row);
  return m?.status === 'ok' ? m.value : undefined;
}

/** Fills report.ratios and report.targets from report.results. */
export function judge(report: GuestReport): void {
  report.ratios = [];
  report.targets = [];
  for (const s of report.systems) {
    if (!s.versus || !report.systems.some((o) => o.id === s.versus)) continue;
    for (const row of report.rows) {
      const a = valueOf(report, s.id, row.id);
      const b = valueOf(report, s.versus, row.id);
      const ratio = a !== undefined && b !== undefined && a > 0 && b > 0 ? (row.higherIsBetter ? a / b : b / a) : undefined;
      const target = s.rowTargets?.[row.id] ?? row.target;
      report.ratios.push({ system: s.id, versus: s.versus, row: row.id, ratio, target, status: ratio === undefined ? 'not measured' : ratio >= target ? 'met' : 'missed' });
    }
    const groups: { name: string; rows: (r: GuestRow) => boolean; target: number }[] = [
      { name: 'throughput ≥ 1.0×', rows: (r) => r.group === 'read' || r.group === 'write', target: 1.0 },
      { name: 'metadata ≥ 0.9×', rows: (r) => r.group === 'metadata', target: 0.9 },
      { name: 'boot time ≥ 1.0× (as fast)', rows: (r) => r.group === 'boot', target: 1.0 },
    ];
    if (s.rowTargets) {
      const ids = Object.keys(s.rowTargets);
      groups.unshift({ name: ids.map((id) => `${report.rows.find((r) => r.id === id)?.title ?? id} ≥ ${s.rowTargets![id]}×`).join(', '), rows: (r) => ids.includes(r.id), target: 0 });
      for (const g of groups.slice(1)) {
        const inner = g.rows;
        g.rows = (r) => inner(r) && !ids.includes(r.id);
      }
    }
    for (const g of groups) {
      const mine = report.ratios.filter((x) => x.system === s.id && g.rows(report.rows.find((r) => r.id === x.row)!));
      const measured = mine.filter((x) => x.ratio !== undefined);
      const missed = measured.filter((x) => x.status === 'missed').sort((p, q) => p.ratio! - q.ratio!);
      const title = (id: string) => report.rows.find((r) => r.id === id)?.title ?? id;
      report.targets.push({
        target: `${g.name} vs ${s.versus}`,
        system: s.id,
        status: measured.length === 0 ? 'not measured' : missed.length === 0 && measured.length === mine.length ? 'met' : missed.length === 0 ? 'not measured' : 'missed',
        detail:
          measured.length === 0
            ? 'no figures'
            : missed.length === 0
              ? `worst ${formatRatio(Math.min(...measured.map((x) => x.ratio!)))}${measured.length < mine.length ? `; ${mine.length - measured.length} row(s) not measured` : ''}`
              : missed.map((x) => `${title(x.row)} ${formatRatio(x.ratio!)}`).join('; '),
      });
    }
  }
}

function fmt(v: number, unit: string): string {
  if (unit === 's') return `${v.toFixed(2)} s`;
  if (unit === 'MiB/s') return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return Math.round(v).toLocaleString('en-US');
}

function table(header: string[], lines: string[][], textCols = 1): string {
  const out = [`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i < textCols ? ':---' : '---:')).join('|')}|`];
  for (const l of lines) out.push(`| ${l.join(' | ')} |`);
  return out.join('\n');
}

export function renderGuestMarkdown(report: GuestReport, plotFile?: string): string {
  const out: string[] = [];
  out.push(`# ${report.title}${report.quick ? ' (QUICK smoke run: small file, 1 s jobs, one repetition; not for comparison)' : ''}`, '');
  const m = report.machine;
  out.push(
    `- Date: ${report.date}${report.finished ? ` → ${report.finished}` : ''}`,
    `- Commit: ${report.git.commit ?? 'unknown'}${report.git.dirty ? ' (with uncommitted changes)' : ''}`,
    `- Machine: ${m.cpus} × ${m.cpuModel}, ${m.memGiB} GiB, Linux ${m.kernel}, Node ${m.node}; load average ${m.loadavgStart.join(' / ')} at start${m.loadavgEnd ? `, ${m.loadavgEnd.join(' / ')} at end` : ''}`,
    `- Command: \`${String(report.config.command ?? '')}\``,
    `- Guest: ${String(report.config.guest ?? '')}`,
    `- Workload: ${String(report.config.workload ?? '')}`,
  );
  if (report.partial) out.push('- PARTIAL run: --systems narrowed the systems.');
  out.push('');
  for (const n of report.notes) out.push(`> ${n}`, '');
  out.push(
    'The guest is emulated (QEMU TCG, no KVM), so absolute figures are emulation-bound: read the ratios. ' +
      'Ratios are ours ÷ reference for throughput and metadata and reference ÷ ours for boot time, so above 1 always means ours is better.',
    '',
  );
  if (plotFile) out.push(`![guest benchmark](${plotFile})`, '');

  const failed = report.systems.filter((s) => s.status === 'failed');
  if (failed.length) {
    out.push('## Systems that failed', '');
    for (const s of failed) out.push(`- **${s.id}**: ${(s.error ?? '').replace(/\s+/g, ' ')}`);
    out.push('');
  }
  if (report.targets.length) {
    out.push('## Targets', '');
    out.push(table(['target', 'system', 'status', 'detail'], report.targets.map((t) => [t.target, t.system, t.status === 'met' ? '✅ met' : t.status === 'missed' ? '❌ missed' : '– not measured', t.detail]), 4), '');
  }
  const pairs = report.systems.filter((s) => s.versus && report.ratios.some((r) => r.system === s.id));
  if (pairs.length) {
    out.push('## Ratios', '');
    out.push(
      table(
        ['row', 'target', ...pairs.map((s) => `${s.id} ÷ ${s.versus}`)],
        report.rows.map((row) => [
          row.title,
          `≥ ${row.target.toFixed(1)}×`,
          ...pairs.map((s) => {
            const r = report.ratios.find((x) => x.system === s.id && x.row === row.id);
            const own = r && r.target !== row.target ? ` (target ${r.target}×)` : '';
            return r?.ratio === undefined ? '' : `${formatRatio(r.ratio)} ${r.status === 'met' ? '✅' : '❌'}${own}`;
          }),
        ]),
        2,
      ),
      '',
    );
  }
  const ran = report.systems.filter((s) => s.status !== 'skipped');
  out.push('## Figures', '', 'Median over repetitions (each sample is in the JSON). MiB/s for fio rows, operations/s for metadata, seconds for boot (lower is better).', '');
  out.push(
    table(
      ['row', 'unit', ...ran.map((s) => s.id)],
      report.rows.map((row) => [
        row.title,
        row.unit,
        ...ran.map((s) => {
          const x = report.results.find((r) => r.system === s.id && r.row === row.id);
          if (!x) return '';
          if (x.status !== 'ok') return x.status;
          return x.value === undefined ? '' : fmt(x.value, row.unit === 's' ? 's' : row.unit);
        }),
      ]),
      2,
    ),
    '',
  );
  const det = (sys: string, row: string, k: string) => {
    const v = report.results.find((r) => r.system === sys && r.row === row)?.detail?.[k];
    return typeof v === 'number' ? `${Math.round(v)}%` : '–';
  };
  const cpuRows = report.rows.filter((row) => ran.some((s) => typeof report.results.find((r) => r.system === s.id && r.row === row.id)?.detail?.daemonCpuPct === 'number'));
  if (cpuRows.length) {
    out.push(
      '## Who set the pace',
      '',
      'Per row (median over repetitions), measured on the host between the guest\'s marks: **daemon** CPU (process tree, % of one core) · **QEMU** CPU (the TCG vCPU and I/O threads) · host CPU **pressure** (PSI "some": share of the time runnable tasks waited for a core). ' +
        'A busy daemon is the bottleneck; QEMU near 100% with an idle daemon means the emulated guest is; high pressure means the other tenants of the machine were.',
      '',
    );
    out.push(
      table(
        ['row', ...ran.map((s) => `${s.id} (daemon · QEMU · pressure)`)],
        cpuRows.map((row) => [row.title, ...ran.map((s) => `${det(s.id, row.id, 'daemonCpuPct')} · ${det(s.id, row.id, 'qemuCpuPct')} · ${det(s.id, row.id, 'hostCpuPressurePct')}`)]),
      ),
      '',
    );
  }
  out.push('## Systems', '');
  for (const s of report.systems) out.push(`- **${s.id}** (${s.status}): ${s.label}; ${s.qemu}${s.command ? `; \`${s.command.join(' ')}\`` : ''}`);
  out.push('');
  const errors = report.results.filter((r) => r.status === 'failed');
  if (errors.length) {
    out.push('## Failed jobs', '');
    for (const e of errors) out.push(`- ${e.system} / ${e.row}: ${(e.error ?? '').replace(/\s+/g, ' ')}`);
    out.push('');
  }
  out.push('Raw figures (every sample, fio latency, daemon CPU, load per boot, exact commands): `guest.json` next to this file.', '');
  return out.join('\n');
}

export function writeGuestResults(dir: string, name: string, report: GuestReport): { json: string; md: string; plot: { svg: string; png?: string; warning?: string } } {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, `${name}.json`);
  writeFileSync(json, JSON.stringify(report, null, 2) + '\n');
  const ran = report.systems.filter((s) => s.status !== 'skipped');
  const panel = (title: string, unit: string, group: GuestRow['group']): PlotPanel => ({ title, unit, rows: report.rows.filter((r) => r.group === group).map((r) => ({ id: r.id, title: r.title })) });
  const plot = writePlot(dir, name, {
    title: `virtio-fs in a QEMU guest (TCG): our daemon vs C virtiofsd${report.quick ? ' (QUICK run)' : ''}`,
    subtitle: `${report.date} · ${report.git.commit?.slice(0, 10) ?? '?'} · load ${report.machine.loadavgStart.join('/')} · boot shown as boots per minute (60 ÷ seconds)`,
    series: ran.map((s) => ({ id: s.id, label: s.id })),
    panels: [panel('reads (fio psync, guest cache dropped)', 'MiB/s', 'read'), panel('writes (fio psync)', 'MiB/s', 'write'), panel('metadata', 'ops/s', 'metadata'), panel('boot to shell, virtio-fs root', 'boots/min', 'boot')],
    value: (sys, row) => {
      const x = report.results.find((r) => r.system === sys && r.row === row);
      if (!x) return undefined;
      if (x.status !== 'ok' || x.value === undefined) return x.status;
      return row === 'boot' ? 60 / x.value : x.value;
    },
  });
  const md = join(dir, `${name}.md`);
  writeFileSync(md, renderGuestMarkdown(report, plot.png ? `${name}.png` : `${name}.svg`).replace('`guest.json`', `\`${name}.json\``));
  return { json, md, plot };
}

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

/**
 * One ratio column: `system ÷ versus` per row. Without report.comparisons the
 * columns come from each system's own `versus` (ours ÷ C per cache mode).
 */
export interface Comparison {
  system: string;
  versus: string;
  /** Per-row targets that win over the row's own (issue 5: DAX ≥ 6× no-DAX on random reads). */
  rowTargets?: Record<string, number>;
  /** Only the rows in rowTargets have a target; the other rows' ratios are shown for information. */
  onlyRowTargets?: boolean;
  /** No target at all: the ratio is shown for information. */
  informational?: boolean;
  /** What the column shows, for the reader (listed under the ratio table). */
  note?: string;
  /** Short name of the rowTargets group in the Targets table (default: every row and its target). */
  rowTargetsName?: string;
}

/** The shared report shape, with guest systems, guest rows and ratio rows. */
export interface GuestReport extends Omit<BenchReport, 'benchmark' | 'systems' | 'rows'> {
  benchmark: 'guest';
  systems: GuestSystemOutcome[];
  rows: GuestRow[];
  /** One per system and row: the median over repetitions (detail.samples holds them all). */
  results: Measurement[];
  /** Ratio columns; absent: one per system with a `versus`. */
  comparisons?: Comparison[];
  /** Ratio rows: ours ÷ reference, oriented so > 1 is better for ours. */
  ratios: RatioRow[];
  /** The plot's title; absent: the issue-3 title (ours vs C virtiofsd). */
  plotTitle?: string;
}

export interface RatioRow {
  system: string;
  versus: string;
  row: string;
  ratio?: number;
  /** Undefined: no target for this row in this comparison (shown for information). */
  target?: number;
  status: 'met' | 'missed' | 'not measured' | 'info';
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

/** The report's ratio columns: its own list, or one per system with a reference. */
export function comparisonsOf(report: GuestReport): Comparison[] {
  if (report.comparisons) return report.comparisons;
  return report.systems.filter((s) => s.versus).map((s) => ({ system: s.id, versus: s.versus!, ...(s.rowTargets ? { rowTargets: s.rowTargets } : {}) }));
}

/** The plot panel / target group of a row group. */
const THROUGHPUT_GROUPS: ReadonlySet<GuestRow['group']> = new Set(['read', 'read-many', 'write']);

/** Fills report.ratios and report.targets from report.results. */
export function judge(report: GuestReport): void {
  report.ratios = [];
  report.targets = [];
  const title = (id: string) => report.rows.find((r) => r.id === id)?.title ?? id;
  for (const c of comparisonsOf(report)) {
    if (!report.systems.some((o) => o.id === c.system) || !report.systems.some((o) => o.id === c.versus)) continue;
    for (const row of report.rows) {
      const a = valueOf(report, c.system, row.id);
      const b = valueOf(report, c.versus, row.id);
      const ratio = a !== undefined && b !== undefined && a > 0 && b > 0 ? (row.higherIsBetter ? a / b : b / a) : undefined;
      const target = c.informational ? undefined : (c.rowTargets?.[row.id] ?? (c.onlyRowTargets ? undefined : row.target));
      const status = target === undefined ? 'info' : ratio === undefined ? 'not measured' : ratio >= target ? 'met' : 'missed';
      report.ratios.push({ system: c.system, versus: c.versus, row: row.id, ratio, ...(target !== undefined ? { target } : {}), status });
    }
    if (c.informational) continue;
    let groups: { name: string; rows: (r: GuestRow) => boolean }[] = [
      { name: 'throughput ≥ 1.0×', rows: (r) => THROUGHPUT_GROUPS.has(r.group) },
      { name: 'metadata ≥ 0.9×', rows: (r) => r.group === 'metadata' },
      { name: 'boot time ≥ 1.0× (as fast)', rows: (r) => r.group === 'boot' },
    ];
    if (c.onlyRowTargets) groups = [];
    if (c.rowTargets) {
      const ids = Object.keys(c.rowTargets);
      for (const g of groups) {
        const inner = g.rows;
        g.rows = (r) => inner(r) && !ids.includes(r.id);
      }
      groups.unshift({ name: c.rowTargetsName ?? ids.map((id) => `${title(id)} ≥ ${c.rowTargets![id]}×`).join(', '), rows: (r) => ids.includes(r.id) });
    }
    for (const g of groups) {
      if (!report.rows.some(g.rows)) continue; // e.g. no metadata rows in the DAX comparison
      const mine = report.ratios.filter((x) => x.system === c.system && x.versus === c.versus && x.target !== undefined && g.rows(report.rows.find((r) => r.id === x.row)!));
      const measured = mine.filter((x) => x.ratio !== undefined);
      const missed = measured.filter((x) => x.status === 'missed').sort((p, q) => p.ratio! - q.ratio!);
      report.targets.push({
        target: `${g.name} vs ${c.versus}`,
        system: c.system,
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
  const cols = comparisonsOf(report).filter((c) => report.ratios.some((r) => r.system === c.system && r.versus === c.versus));
  if (cols.length) {
    out.push('## Ratios', '');
    out.push(
      table(
        ['row', 'target', ...cols.map((c) => `${c.system} ÷ ${c.versus}`)],
        report.rows.map((row) => [
          row.title,
          `≥ ${row.target.toFixed(1)}×`,
          ...cols.map((c) => {
            const r = report.ratios.find((x) => x.system === c.system && x.versus === c.versus && x.row === row.id);
            if (r?.ratio === undefined) return '';
            if (r.target === undefined) return formatRatio(r.ratio);
            const own = r.target !== row.target ? ` (target ${r.target}×)` : '';
            return `${formatRatio(r.ratio)} ${r.status === 'met' ? '✅' : '❌'}${own}`;
          }),
        ]),
        2,
      ),
      '',
    );
    const notes = cols.filter((c) => c.note || c.informational || c.onlyRowTargets);
    if (notes.length || report.ratios.some((r) => r.status === 'info')) {
      out.push('A ratio without ✅/❌ has no target: it is there for information.', '');
      for (const c of notes) out.push(`- **${c.system} ÷ ${c.versus}**: ${c.note ?? (c.informational ? 'for information' : 'targets only on the rows marked')}`);
      out.push('');
    }
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
  const daxSystems = ran.filter((s) => report.results.some((r) => r.system === s.id && typeof r.detail?.daxMappedMiBAtStart === 'number'));
  if (daxSystems.length) {
    const mapped = (sys: string, row: string) => {
      const d = report.results.find((r) => r.system === sys && r.row === row)?.detail;
      const a = d?.daxMappedMiBAtStart;
      const b = d?.daxMappedMiBAtEnd;
      return typeof a === 'number' && typeof b === 'number' ? `${Math.round(a)} → ${Math.round(b)}` : '–';
    };
    out.push(
      '## DAX window',
      '',
      "MiB of the row's data set QEMU had mapped into the DAX window (its `/proc/PID/maps`, median over repetitions) when each job started (after the guest's cache drop) → when it ended. 0 at a start: the job paid for every mapping it used; the whole set: it found the set mapped.",
      '',
      table(['row', ...daxSystems.map((s) => `${s.id} (MiB mapped: start → end)`)], report.rows.filter((row) => daxSystems.some((s) => mapped(s.id, row.id) !== '–')).map((row) => [row.title, ...daxSystems.map((s) => mapped(s.id, row.id))])),
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
  const panels: [string, string, GuestRow['group']][] = [
    [report.rows.some((r) => r.group === 'read-many') ? 'reads, one file (fio psync)' : 'reads (fio psync, guest cache dropped)', 'MiB/s', 'read'],
    ['reads, many files (fio psync)', 'MiB/s', 'read-many'],
    ['writes (fio psync)', 'MiB/s', 'write'],
    ['metadata', 'ops/s', 'metadata'],
    ['boot to shell, virtio-fs root', 'boots/min', 'boot'],
  ];
  const plot = writePlot(dir, name, {
    title: `${report.plotTitle ?? 'virtio-fs in a QEMU guest (TCG): our daemon vs C virtiofsd'}${report.quick ? ' (QUICK run)' : ''}`,
    subtitle: `${report.date} · ${report.git.commit?.slice(0, 10) ?? '?'} · load ${report.machine.loadavgStart.join('/')} · boot shown as boots per minute (60 ÷ seconds)`,
    series: ran.map((s) => ({ id: s.id, label: s.id })),
    panels: panels.filter(([, , g]) => report.rows.some((r) => r.group === g)).map(([t, u, g]) => panel(t, u, g)),
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

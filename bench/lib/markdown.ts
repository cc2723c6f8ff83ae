// bench/lib: renders a BenchReport as Markdown tables with ratios and targets
// (may import node:* and bench/lib).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { find, okValue, type BenchReport, type Unit } from './results.ts';

export function formatValue(v: number, unit: Unit): string {
  if (unit === 'MiB/s') return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return Math.round(v).toLocaleString('en-US');
}

export function formatRatio(r: number): string {
  return r >= 10 ? `${r.toFixed(0)}×` : `${r.toFixed(2)}×`;
}

function cell(report: BenchReport, system: string, row: string, unit: Unit): string {
  const m = find(report, system, row);
  if (!m) return '';
  if (m.status === 'failed') return 'failed';
  if (m.status === 'skipped') return 'skipped';
  return m.value === undefined ? '' : formatValue(m.value, unit);
}

/** Numbers right-aligned; the first `textCols` columns (labels, prose) left-aligned. */
function table(header: string[], lines: string[][], textCols = 1): string {
  const out = [`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i < textCols ? ':---' : '---:')).join('|')}|`];
  for (const l of lines) out.push(`| ${l.join(' | ')} |`);
  return out.join('\n');
}

export interface MarkdownOptions {
  /** Systems the ratio tables divide by, e.g. ["bindfs", "native"]. */
  baselines: string[];
  /** Relative link to the plot image, if one was written. */
  plot?: string;
  /** Extra paragraphs (how to read, why a target is missed) after the summary. */
  preface?: string[];
  /** File name of the JSON with the raw figures. */
  jsonFile: string;
}

export function renderMarkdown(report: BenchReport, opts: MarkdownOptions): string {
  const ran = report.systems.filter((s) => s.status !== 'skipped');
  const out: string[] = [];
  const label = report.quick ? ' (QUICK smoke run: small sizes, short jobs; not for comparison)' : '';
  out.push(`# ${report.title}${label}`, '');
  const m = report.machine;
  const load = `load average ${m.loadavgStart.join(' / ')} at start` + (m.loadavgEnd ? `, ${m.loadavgEnd.join(' / ')} at end` : '');
  out.push(
    `- Date: ${report.date}${report.finished ? ` → ${report.finished}` : ''}`,
    `- Commit: ${report.git.commit ?? 'unknown'}${report.git.dirty ? ' (with uncommitted changes)' : ''}`,
    `- Machine: ${m.cpus} × ${m.cpuModel}, ${m.memGiB} GiB, Linux ${m.kernel}, Node ${m.node}; ${load}`,
    `- Tools: ${Object.entries(m.tools).map(([k, v]) => `${k} ${v ?? 'missing'}`).join(', ')}`,
    `- Work dir: ${m.workDir ?? '?'} (${m.workDirFs ?? '?'})`,
    `- Command: \`${String(report.config.command ?? '')}\``,
  );
  if (report.partial) out.push('- PARTIAL run: --only/--rows narrowed the systems or rows.');
  out.push('');
  for (const p of report.notes) out.push(`> ${p}`, '');
  for (const p of opts.preface ?? []) out.push(p, '');

  const failed = report.systems.filter((s) => s.status === 'failed');
  if (failed.length > 0) {
    out.push('## Systems that failed to start', '');
    for (const s of failed) out.push(`- **${s.id}**: ${(s.error ?? '').replace(/\s+/g, ' ')}`);
    out.push('');
  }

  if (report.targets.length > 0) {
    out.push('## Targets', '');
    out.push(
      table(
        ['target', 'system', 'status', 'detail'],
        report.targets.map((t) => [t.target, t.system, t.status === 'met' ? '✅ met' : t.status === 'missed' ? '❌ missed' : '– not measured', t.detail]),
        4,
      ),
      '',
    );
  }

  if (opts.plot) out.push(`![${report.title}](${opts.plot})`, '');

  out.push('## Results', '', 'Throughput in MiB/s, 4 KiB rows in IOPS, metadata in operations per second. Higher is better.', '');
  out.push(
    table(
      ['row', 'unit', ...ran.map((s) => s.id)],
      report.rows.map((r) => [r.title, r.unit, ...ran.map((s) => cell(report, s.id, r.id, r.unit))]),
      2,
    ),
    '',
  );

  for (const base of opts.baselines) {
    if (!ran.some((s) => s.id === base)) continue;
    const others = ran.filter((s) => s.id !== base && s.id !== 'native');
    if (others.length === 0) continue;
    out.push(`## Ratio to ${base}`, '', `Each system's figure divided by ${base}'s on the same row (1.00× = as fast).`, '');
    out.push(
      table(
        ['row', ...others.map((s) => s.id)],
        report.rows.map((r) => {
          const b = okValue(report, base, r.id);
          return [
            r.title,
            ...others.map((s) => {
              const v = okValue(report, s.id, r.id);
              return b && v !== undefined ? formatRatio(v / b) : '';
            }),
          ];
        }),
      ),
      '',
    );
  }

  // Daemon CPU explains many gaps: near 100% of one core means the daemon is
  // the bottleneck; low CPU with low throughput means waiting (round trips).
  const cpuOf = (sys: string, row: string) => {
    const d = find(report, sys, row)?.detail?.daemonCpuPct;
    return typeof d === 'number' ? d : undefined;
  };
  const daemons = ran.filter((s) => report.rows.some((r) => cpuOf(s.id, r.id) !== undefined));
  if (daemons.length > 0) {
    out.push('## Daemon CPU', '', 'CPU time of the serving process (all threads) during each job, in % of one core.', '');
    out.push(
      table(
        ['row', ...daemons.map((s) => s.id)],
        report.rows
          .filter((r) => daemons.some((s) => cpuOf(s.id, r.id) !== undefined))
          .map((r) => [r.title, ...daemons.map((s) => {
            const c = cpuOf(s.id, r.id);
            return c === undefined ? '' : `${Math.round(c)}%`;
          })]),
      ),
      '',
    );
  }

  const errors = report.results.filter((r) => r.status === 'failed');
  if (errors.length > 0) {
    out.push('## Failed jobs', '');
    for (const e of errors) out.push(`- ${e.system} / ${e.row}: ${(e.error ?? '').replace(/\s+/g, ' ')}`);
    out.push('');
  }
  out.push(`Raw figures (fio latency, daemon CPU, load per job, exact commands): \`${opts.jsonFile}\`.`, '');
  return out.join('\n');
}

export function writeMarkdown(dir: string, name: string, text: string): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.md`);
  writeFileSync(path, text);
  return path;
}

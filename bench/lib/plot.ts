// bench/lib: grouped horizontal bar charts as SVG, turned into PNG with
// rsvg-convert (librsvg2-bin) when it is installed (may import node:* and bench/lib).
// We draw the SVG ourselves so the only dependency is a small converter.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './proc.ts';

export interface PlotPanel {
  title: string;
  /** Axis unit, e.g. "MiB/s". */
  unit: string;
  rows: { id: string; title: string }[];
}

export interface PlotSeries {
  id: string;
  label: string;
}

export interface PlotSpec {
  title: string;
  subtitle: string;
  series: PlotSeries[];
  panels: PlotPanel[];
  /** The value of one bar in its panel's unit, or a short reason it has none. */
  value(series: string, row: string): number | string | undefined;
}

const FONT = 'DejaVu Sans, Liberation Sans, Arial, sans-serif';

/** Distinct, print-safe colours; ours in blues, the C references in greens/orange. */
export function seriesColour(id: string, index: number): string {
  const fixed: Record<string, string> = {
    native: '#4d4d4d',
    'vts-never': '#9ecae1',
    'vts-auto': '#4292c6',
    'vts-always': '#08306b',
    bindfs: '#f16913',
    'pll-never': '#c7e9c0',
    'pll-auto': '#74c476',
    'pll-always': '#238b45',
  };
  const fallback = ['#6a51a3', '#e7298a', '#a6761d', '#66a61e', '#e6ab02', '#1b9e77'];
  return fixed[id] ?? fallback[index % fallback.length]!;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function short(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(v >= 1e7 ? 0 : 1)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(v >= 1e4 ? 0 : 1)}k`;
  if (v >= 10) return v.toFixed(0);
  if (v >= 1) return v.toFixed(1);
  return v.toPrecision(2);
}

const BAR_H = 9;
const BAR_GAP = 1;
const ROW_GAP = 12;
const LABEL_W = 250;
const PANEL_W = 720;
const VALUE_W = 46;

function panelHeight(p: PlotPanel, nSeries: number): number {
  return 58 + p.rows.length * (nSeries * (BAR_H + BAR_GAP) + ROW_GAP);
}

function renderPanel(spec: PlotSpec, p: PlotPanel, x0: number, y0: number): string {
  const out: string[] = [];
  const n = spec.series.length;
  const values: number[] = [];
  for (const r of p.rows) for (const s of spec.series) {
    const v = spec.value(s.id, r.id);
    if (typeof v === 'number' && v > 0) values.push(v);
  }
  const lo = values.length ? 10 ** Math.floor(Math.log10(Math.min(...values))) : 1;
  // Top of the axis just past the largest bar (not the next decade), so bars use the width.
  let hi = values.length ? Math.max(...values) * 1.4 : 10;
  if (hi <= lo * 10) hi = lo * 10;
  const axisX = x0 + LABEL_W;
  const axisW = PANEL_W - LABEL_W - VALUE_W;
  const xOf = (v: number) => axisX + ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * axisW;
  const top = y0 + 40;
  const bottom = y0 + panelHeight(p, n) - 18;

  out.push(`<text x="${x0}" y="${y0 + 18}" font-size="16" font-weight="bold">${esc(p.title)}</text>`);
  out.push(`<text x="${axisX + axisW}" y="${y0 + 18}" font-size="12" text-anchor="end" fill="#555">${esc(p.unit)}, log scale, higher is better</text>`);
  // Decade grid with 2× and 5× minor lines, labelled at the bottom.
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    for (const k of [1, 2, 5]) {
      const v = d * k;
      if (v > hi * 1.0001) break;
      const x = xOf(v).toFixed(1);
      out.push(`<line x1="${x}" y1="${top - 4}" x2="${x}" y2="${bottom}" stroke="${k === 1 ? '#bbb' : '#e6e6e6'}" stroke-width="1"/>`);
      if (k === 1 || hi / lo <= 100) {
        out.push(`<text x="${x}" y="${bottom + 14}" font-size="11" text-anchor="middle" fill="#444">${short(v)}</text>`);
      }
    }
  }
  let y = top;
  for (const r of p.rows) {
    const groupH = n * (BAR_H + BAR_GAP);
    out.push(`<text x="${axisX - 8}" y="${(y + groupH / 2 + 5).toFixed(1)}" font-size="13" text-anchor="end">${esc(r.title)}</text>`);
    spec.series.forEach((s, i) => {
      const v = spec.value(s.id, r.id);
      const by = y + i * (BAR_H + BAR_GAP);
      if (typeof v === 'number' && v > 0) {
        const x1 = xOf(Math.max(v, lo));
        out.push(`<rect x="${axisX}" y="${by}" width="${Math.max(1, x1 - axisX).toFixed(1)}" height="${BAR_H}" fill="${seriesColour(s.id, i)}"/>`);
        out.push(`<text x="${(x1 + 3).toFixed(1)}" y="${by + BAR_H - 1}" font-size="9" fill="#333">${short(v)}</text>`);
      } else if (typeof v === 'string') {
        out.push(`<rect x="${axisX}" y="${by}" width="4" height="${BAR_H}" fill="${seriesColour(s.id, i)}"/>`);
        out.push(`<text x="${axisX + 7}" y="${by + BAR_H - 1}" font-size="9" fill="#b00">${esc(s.id)}: ${esc(v)}</text>`);
      }
    });
    y += groupH + ROW_GAP;
  }
  out.push(`<line x1="${axisX}" y1="${top - 4}" x2="${axisX}" y2="${bottom}" stroke="#333" stroke-width="1"/>`);
  return out.join('\n');
}

/** Two panels per line; returns the SVG text. */
export function renderSvg(spec: PlotSpec): string {
  const n = spec.series.length;
  const cols = spec.panels.length > 1 ? 2 : 1;
  const legendRows = Math.ceil(spec.series.length / 4);
  const headerH = 60 + legendRows * 20;
  const lines: PlotPanel[][] = [];
  for (let i = 0; i < spec.panels.length; i += cols) lines.push(spec.panels.slice(i, i + cols));
  const width = cols * PANEL_W + (cols + 1) * 20;
  let height = headerH;
  for (const l of lines) height += Math.max(...l.map((p) => panelHeight(p, n))) + 16;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${FONT}">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="20" y="28" font-size="20" font-weight="bold">${esc(spec.title)}</text>`);
  out.push(`<text x="20" y="48" font-size="12" fill="#555">${esc(spec.subtitle)}</text>`);
  spec.series.forEach((s, i) => {
    const lx = 20 + (i % 4) * 270;
    const ly = 62 + Math.floor(i / 4) * 20;
    out.push(`<rect x="${lx}" y="${ly}" width="14" height="12" fill="${seriesColour(s.id, i)}"/>`);
    out.push(`<text x="${lx + 20}" y="${ly + 11}" font-size="13">${esc(s.label)}</text>`);
  });
  let y = headerH;
  for (const l of lines) {
    l.forEach((p, c) => out.push(renderPanel(spec, p, 20 + c * (PANEL_W + 20), y)));
    y += Math.max(...l.map((p) => panelHeight(p, n))) + 16;
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/**
 * Writes <name>.svg and, when rsvg-convert exists, <name>.png.
 * Returns the PNG path, or the SVG path and a reason when no PNG could be made.
 */
export function writePlot(dir: string, name: string, spec: PlotSpec): { svg: string; png?: string; warning?: string } {
  mkdirSync(dir, { recursive: true });
  const svg = join(dir, `${name}.svg`);
  writeFileSync(svg, renderSvg(spec));
  const png = join(dir, `${name}.png`);
  try {
    run('rsvg-convert', ['-f', 'png', '-o', png, svg], { timeoutMs: 60_000 });
    return { svg, png };
  } catch (e) {
    return { svg, warning: `no PNG: ${(e as Error).message} (apt-get install librsvg2-bin)` };
  }
}

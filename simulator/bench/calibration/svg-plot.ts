/**
 * A small SVG line chart for the calibration study: one panel per soak, detection power against canary
 * count (log scale) with one line per rate ratio. No dependencies; deterministic output. Pure.
 */

export interface Series {
  label: string;
  colour: string;
  /** [x, y] with y in 0..1. */
  points: [number, number][];
}

export interface Panel {
  title: string;
  series: Series[];
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Panels side by side; x on a log scale over `xs`, y from 0 to 1 with a dashed line at `target`. */
export function powerChart(title: string, panels: readonly Panel[], xs: readonly number[], target: number): string {
  const w = 300;
  const h = 240;
  const m = { l: 46, r: 12, t: 34, b: 40 };
  const legendH = 28;
  const width = panels.length * w;
  const height = h + legendH + 24;
  const lx = (x: number): number => Math.log(x);
  const x0 = lx(xs[0]!);
  const x1 = lx(xs[xs.length - 1]!);
  const px = (x: number): number => m.l + ((lx(x) - x0) / (x1 - x0)) * (w - m.l - m.r);
  const py = (y: number): number => 24 + m.t + (1 - y) * (h - m.t - m.b);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">${esc(title)}</text>`,
  ];
  panels.forEach((p, i) => {
    out.push(`<g transform="translate(${i * w},0)">`);
    out.push(`<text x="${(m.l + w - m.r) / 2}" y="${24 + m.t - 10}" text-anchor="middle" font-weight="bold">${esc(p.title)}</text>`);
    for (const y of [0, 0.25, 0.5, 0.75, 1]) {
      out.push(`<line x1="${m.l}" x2="${w - m.r}" y1="${py(y)}" y2="${py(y)}" stroke="#ddd"/>`);
      out.push(`<text x="${m.l - 4}" y="${py(y) + 4}" text-anchor="end">${Math.round(y * 100)}%</text>`);
    }
    out.push(`<line x1="${m.l}" x2="${w - m.r}" y1="${py(target)}" y2="${py(target)}" stroke="#888" stroke-dasharray="4 3"/>`);
    for (const x of xs) out.push(`<text x="${px(x)}" y="${py(0) + 14}" text-anchor="middle">${x}</text>`);
    out.push(`<text x="${(m.l + w - m.r) / 2}" y="${py(0) + 28}" text-anchor="middle">canary devices</text>`);
    for (const s of p.series) {
      const d = s.points.map(([x, y], k) => `${k ? 'L' : 'M'}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
      out.push(`<path d="${d}" fill="none" stroke="${s.colour}" stroke-width="2"/>`);
      for (const [x, y] of s.points) out.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${s.colour}"/>`);
    }
    out.push('</g>');
  });
  const series = panels[0]?.series ?? [];
  series.forEach((s, k) => {
    const x = 20 + k * 120;
    const y = h + 30;
    out.push(`<line x1="${x}" x2="${x + 20}" y1="${y}" y2="${y}" stroke="${s.colour}" stroke-width="2"/><text x="${x + 26}" y="${y + 4}">${esc(s.label)}</text>`);
  });
  out.push(`<text x="${20 + series.length * 120}" y="${h + 34}" fill="#666">dashed: ${Math.round(target * 100)}% power</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

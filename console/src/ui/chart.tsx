/**
 * A time-series chart on uPlot (canvas, ~50 KB): x in milliseconds of the coordinator's clock, one or
 * more series, resized with its container. Gaps (null) stay gaps: no data is not zero.
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { clockTime } from '../format.js';

const hm = (ms: number): string => clockTime(ms).slice(0, 5);

export interface ChartSeries {
  label: string;
  values: (number | null)[];
  color: string;
  dash?: number[];
  /** Steps (per-slot counts and rates) instead of lines. */
  steps?: boolean;
}

export const CANARY = '#e8590c';
export const CONTROL = '#1c7ed6';
export const DEVICE = '#2f9e44';

export function Chart(props: { title: string; x: number[]; series: ChartSeries[]; height?: number; unit?: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const height = props.height ?? 170;

  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      ms: 1,
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, min, max) => (min === max ? [Math.min(0, min), max + 1] : [Math.min(0, min), max + (max - Math.min(0, min)) * 0.1]) } },
      axes: [
        { stroke: '#5c6b80', grid: { stroke: '#eef1f5' }, ticks: { stroke: '#dde3ea' }, values: (_u, splits) => splits.map((v) => hm(v)) },
        { stroke: '#5c6b80', grid: { stroke: '#eef1f5' }, ticks: { stroke: '#dde3ea' }, size: 48, ...(props.unit ? { label: props.unit, labelSize: 14 } : {}) },
      ],
      series: [
        { label: 'time', value: (_u: uPlot, v: number | null) => (v === null || v === undefined ? '–' : clockTime(v)) },
        ...props.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          ...(s.dash ? { dash: s.dash } : {}),
          points: { show: props.x.length <= 40, size: 5 },
          ...(s.steps ? { paths: uPlot.paths.stepped!({ align: 1 }) } : {}),
          value: (_u: uPlot, v: number | null) => (v === null || v === undefined ? '–' : Number.isInteger(v) ? String(v) : v.toFixed(2)),
        })),
      ],
    };
    const data = [props.x, ...props.series.map((s) => s.values)] as uPlot.AlignedData;
    plot.current?.destroy();
    plot.current = new uPlot(opts, data, el);
    const resize = new ResizeObserver(() => {
      const w = Math.max(200, el.clientWidth);
      if (plot.current && Math.abs(plot.current.width - w) > 2) plot.current.setSize({ width: w, height });
    });
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [props.x, props.series, height, props.unit]);

  return (
    <figure class="chart">
      <figcaption>{props.title}</figcaption>
      <div ref={box} class="chart-box" />
    </figure>
  );
}

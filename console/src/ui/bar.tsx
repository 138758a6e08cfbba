/** A stacked progress bar with its legend: parts of a whole, each in its own colour. */
export interface Segment {
  label: string;
  value: number;
  /** A CSS class: good, busy, bad, back, muted. */
  tone: string;
}

export function StackedBar(props: { total: number; segments: Segment[]; label: string; compact?: boolean }) {
  const total = Math.max(props.total, props.segments.reduce((s, x) => s + x.value, 0));
  return (
    <div class="stacked">
      <div class="bar" role="img" aria-label={`${props.label}: ${props.segments.map((s) => `${s.value} ${s.label}`).join(', ')} of ${props.total}`}>
        {props.segments.map((s) =>
          s.value > 0 && total > 0 ? <span key={s.label} class={`seg ${s.tone}`} style={{ width: `${(100 * s.value) / total}%` }} title={`${s.label}: ${s.value}`} /> : null,
        )}
      </div>
      {props.compact ? null : (
        <div class="legend">
          {props.segments.map((s) => (
            <span key={s.label} class="legend-item">
              <i class={`swatch ${s.tone}`} />
              {s.label} <b>{s.value}</b>
            </span>
          ))}
        </div>
      )}
    </div>
  );
}

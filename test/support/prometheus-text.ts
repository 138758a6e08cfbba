/**
 * A strict reader of the Prometheus text exposition format (0.0.4) for tests: every sample must belong
 * to a family declared by `# TYPE` (histogram samples by their `_bucket`, `_sum`, `_count` suffixes),
 * names and label names must be valid, label values correctly escaped, values numbers; a family may
 * not be declared twice, nor a series appear twice. Throws naming the line that breaks a rule.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const series = new Set<string>();
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${JSON.stringify(line.slice(0, 200))}`;
    if (line === '') return;
    if (line.startsWith('# HELP ')) {
      const [, name] = /^# HELP (\S+) /.exec(line) ?? [];
      if (!name || !NAME.test(name)) throw new Error(`bad HELP, ${where}`);
      const f = families.get(name) ?? { name, type: 'untyped', help: '', samples: [] };
      f.help = line.slice(`# HELP ${name} `.length);
      families.set(name, f);
      return;
    }
    if (line.startsWith('# TYPE ')) {
      const m = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (!m || !NAME.test(m[1]!) || !TYPES.has(m[2]!)) throw new Error(`bad TYPE, ${where}`);
      const f = families.get(m[1]!) ?? { name: m[1]!, type: m[2]!, help: '', samples: [] };
      if (f.samples.length > 0) throw new Error(`TYPE after samples, ${where}`);
      f.type = m[2]!;
      families.set(m[1]!, f);
      return;
    }
    if (line.startsWith('#')) return;
    const sample = parseSample(line, where);
    const family = familyOf(sample.name, families);
    if (!family) throw new Error(`sample of an undeclared family, ${where}`);
    const key = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
    if (series.has(key)) throw new Error(`duplicate series, ${where}`);
    series.add(key);
    family.samples.push(sample);
  });
  return families;
}

function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(name);
  if (direct) return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const f = families.get(name.slice(0, -suffix.length));
    if (f && (f.type === 'histogram' || f.type === 'summary')) return f;
  }
  return undefined;
}

function parseSample(line: string, where: string): Sample {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+-?\d+)?$/.exec(line);
  if (!m) throw new Error(`bad sample, ${where}`);
  const labels: Record<string, string> = {};
  if (m[2]) {
    const body = m[2].slice(1, -1);
    const re = /([^=,\s]+)="((?:[^"\\]|\\.)*)"\s*(,|$)/gy;
    let pos = 0;
    while (pos < body.length) {
      re.lastIndex = pos;
      const l = re.exec(body);
      if (!l) throw new Error(`bad labels, ${where}`);
      if (!LABEL.test(l[1]!)) throw new Error(`bad label name ${l[1]!}, ${where}`);
      if (/\\[^\\"n]/.test(l[2]!)) throw new Error(`bad escape in label value, ${where}`);
      labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
      pos = re.lastIndex;
    }
  }
  // Prometheus reads values with Go's ParseFloat: NaN and Inf in any case (prom-client writes `Nan`).
  const raw = m[3]!;
  const special = /^([+-]?)(inf|infinity|nan)$/i.exec(raw);
  const value = special ? (special[2]!.toLowerCase() === 'nan' ? NaN : special[1] === '-' ? -Infinity : Infinity) : Number(raw);
  if (!special && (Number.isNaN(value) || !/^[+-]?(\d|\.\d)/.test(raw))) throw new Error(`bad value, ${where}`);
  return { name: m[1]!, labels, value };
}

/** The sum of the samples of `name` whose labels include `labels` (undefined when there is none). */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = familyOf(name, families);
  const matching = family?.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) ?? [];
  if (matching.length === 0) return undefined;
  return matching.reduce((sum, s) => sum + s.value, 0);
}

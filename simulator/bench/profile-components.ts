/**
 * Attributes the CPU samples of a profiled benchmark run (`FLEET_CPU_PROF_DIR`, see
 * simulator/cpu-profile.ts) to components, per process role and per window of the run
 * (marks.json: the downloads alone, the rollout). Two views per role:
 *
 * - owner: the innermost frame of the project's own code (agent/, coordinator/, simulator/) on the
 *   sample's stack, so a library's time is charged to the module that called it (zod parsing under
 *   the status ingest counts as the ingest); with none on the stack, the outermost library frame;
 * - leaf: where the sample itself was (a package, a node internal, a native function).
 *
 * Usage: node simulator/dist/bench/profile-components.js DIR [--top N]. Pure over the files it reads.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}
interface Marks {
  benchPid: number;
  windows: Record<string, [number, number]>;
}

const OWN = /\/(agent|coordinator|simulator)\/dist\/(.+)\.js$/;
const PKG = /node_modules\/((?:@[^/]+\/)?[^/]+)\//;

/** The project's own module a frame is in (e.g. `agent/downloader`), or null. */
function ownModule(url: string): string | null {
  const m = OWN.exec(url);
  return m ? `${m[1]}/${m[2]}` : null;
}

/** What a frame is, as a library: a package, a node internal module, our shared packages, or native. */
function library(f: CallFrame): string {
  if (f.url === '') return f.functionName.startsWith('(') ? f.functionName : `native ${f.functionName}`;
  const pkg = PKG.exec(f.url);
  if (pkg) return pkg[1]!;
  const own = /\/(protocol|firmware|runtime)\/dist\/(.+)\.js$/.exec(f.url);
  if (own) return `${own[1]}/${own[2]}`;
  const o = ownModule(f.url);
  if (o) return o;
  if (f.url.startsWith('node:')) return f.url.replace(/^node:(internal\/)?/, 'node:');
  return f.url;
}

function role(file: string, p: Profile, marks: Marks): string {
  if (file.startsWith(`bench.${marks.benchPid}.`)) return 'coordinator (bench process)';
  const urls = new Set(p.nodes.map((n) => n.callFrame.url));
  for (const u of urls) if (u.endsWith('/simulator/dist/device-process.js')) return 'device processes';
  for (const u of urls) if (u.endsWith('/bench/download-child.js')) return 'download children';
  return 'other';
}

type Tally = Map<string, number>;
const add = (t: Tally, k: string, v: number): void => void t.set(k, (t.get(k) ?? 0) + v);

function tally(p: Profile, from: number, to: number, owner: Tally, leaf: Tally): number {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const ownerOf = new Map<number, string>();
  const ownerFor = (id: number): string => {
    const cached = ownerOf.get(id);
    if (cached !== undefined) return cached;
    let outerLib: string | null = null;
    let found: string | null = null;
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      const own = ownModule(f.url);
      if (own) {
        found = own;
        break;
      }
      if (f.url !== '' || !f.functionName.startsWith('(root')) outerLib = library(f);
    }
    const r = found ?? `(no own frame) ${outerLib ?? '?'}`;
    ownerOf.set(id, r);
    return r;
  };
  let t = p.startTime;
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (t < from || t > to) continue;
    // A sample stands for the interval up to the next one.
    const weight = (p.timeDeltas[i + 1] ?? dt) / 1000;
    const id = p.samples[i]!;
    const f = byId.get(id)!.callFrame;
    const special = f.url === '' && f.functionName.startsWith('(') ? f.functionName : null;
    add(owner, special ?? ownerFor(id), weight);
    add(leaf, library(f), weight);
    total += weight;
  }
  return total;
}

function main(): void {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: profile-components DIR [--top N]');
  const topIdx = process.argv.indexOf('--top');
  const top = topIdx >= 0 ? Number(process.argv[topIdx + 1]) : 25;
  const marks = JSON.parse(readFileSync(join(dir, 'marks.json'), 'utf8')) as Marks;
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  const profiles = files.map((f) => ({ f, p: JSON.parse(readFileSync(join(dir, f), 'utf8')) as Profile }));
  for (const [name, [from, to]] of Object.entries(marks.windows)) {
    console.log(`\n## window: ${name} (${((to - from) / 1e6).toFixed(2)} s wall)`);
    const roles = new Map<string, { owner: Tally; leaf: Tally; total: number; n: number }>();
    const blank = (): { owner: Tally; leaf: Tally; total: number; n: number } => ({ owner: new Map<string, number>(), leaf: new Map<string, number>(), total: 0, n: 0 });
    for (const { f, p } of profiles) {
      const r = role(f, p, marks);
      const acc = roles.get(r) ?? blank();
      const ms = tally(p, from, to, acc.owner, acc.leaf);
      if (ms > 0) acc.n++;
      acc.total += ms;
      roles.set(r, acc);
    }
    for (const [r, acc] of roles) {
      if (acc.total === 0) continue;
      const busy = acc.total - (acc.owner.get('(idle)') ?? 0);
      console.log(`\n### ${r}: ${acc.n} process(es), ${(busy / 1000).toFixed(2)} s on the main thread (idle excluded)`);
      for (const [title, t] of [['owner', acc.owner], ['leaf', acc.leaf]] as const) {
        console.log(`\n| ${title} | ms | share of busy |\n|---|---|---|`);
        const rows = [...t.entries()].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]);
        for (const [k, v] of rows.slice(0, top)) console.log(`| ${k} | ${v.toFixed(0)} | ${((100 * v) / busy).toFixed(1)} % |`);
        const rest = rows.slice(top).reduce((s, [, v]) => s + v, 0);
        if (rest > 0) console.log(`| (${rows.length - top} more) | ${rest.toFixed(0)} | ${((100 * rest) / busy).toFixed(1)} % |`);
      }
    }
  }
}

main();

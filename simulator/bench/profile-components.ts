/**
 * Attributes the CPU samples of a profiled benchmark run (`FLEET_CPU_PROF_DIR`, see
 * simulator/cpu-profile.ts) to components, per process role and per window of the run
 * (marks.json: the downloads alone, the rollout). Three views per role:
 *
 * - component: the table BENCHMARKS.md §4 shows (the owner grouped by the rules below, except that
 *   every sha256 sample is counted as hashing, whoever asked for it);
 * - owner: the innermost frame of the project's own code (agent/, coordinator/, simulator/) on the
 *   sample's stack, so a library's time is charged to the module that called it (zod parsing under
 *   the status ingest counts as the ingest); with none on the stack, the package whose callback it
 *   is (the broker, the MQTT clients), else node's HTTP, else node's other I/O;
 * - leaf: where the sample itself was (a package, a node internal, a native function).
 *
 * Each sample counts as one 1 ms interval: on a loaded machine the gaps between samples include time
 * the process was not running, so shares are the figure to read, not absolute times.
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
  samples: number[];
  timeDeltas: number[];
}
interface Marks {
  benchPid: number;
  windows: Record<string, [number, number]>;
}

const OWN = /\/(agent|coordinator|simulator)\/dist\/(.+)\.js$/;
const PKG = /node_modules\/((?:@[^/]+\/)?[^/]+)\//;
const NO_OWN = '(no own frame) ';

/** Components by owner, first match wins: a device's process, then the coordinator's. */
const COMMON: readonly [RegExp, string][] = [
  [/^\(garbage collector\)$/, 'garbage collection'],
  [/^\(program\)$/, 'V8 / node (program)'],
];
const DEVICE_COMPONENTS: readonly [RegExp, string][] = [
  ...COMMON,
  [/^agent\/(downloader|agent-tasks)$|^\(no own frame\) node http$/, 'download: HTTP client, file write'],
  [/^simulator\/memory-slot-backend$/, 'slot write (simulated flash: read the file)'],
  [/^(agent\/mqtt-session|\(no own frame\) (mqtt|mqtt-packet|bl|readable-stream|debug))$/, 'MQTT client'],
  [/^agent\/(state-store|durable-record|durable-writer)$/, 'agent: state and durable record saves, state load'],
  [/^agent\//, 'agent: update flow, statuses, reboot into a new agent'],
  [/^simulator\//, 'simulator harness: clock, IPC, traces'],
  [/^\(no own frame\) node i\/o$/, 'node I/O callbacks: sockets, streams, fs'],
];
const COORDINATOR_COMPONENTS: readonly [RegExp, string][] = [
  ...COMMON,
  [/^coordinator\/artifacts\/|^\(no own frame\) node http$/, 'artifact server (HTTP)'],
  [/^coordinator\/broker\/|^\(no own frame\) (aedes|mqtt-packet|qlobber|mqemitter|bl|readable-stream|aedes-packet|aedes-persistence|debug)$/, 'broker: Aedes, ACL, retained index, publisher'],
  [/^coordinator\/store\/|^\(no own frame\) better-sqlite3$/, 'SQLite statements and commits'],
  [/^coordinator\/ingest\//, 'ingest: statuses, hellos, telemetry, inbox'],
  [/^coordinator\/(engine|deployments)\//, 'engine and deployment state'],
  [/^coordinator\/(gate|telemetry|canary)\//, 'gates and telemetry snapshots'],
  [/^coordinator\/registry\//, 'registry'],
  [/^coordinator\/(admin|prometheus)\//, 'admin API and metrics (the run polls them)'],
  [/^coordinator\//, 'coordinator: other'],
  [/^simulator\//, 'simulator driver: paced clock, device-process IPC, trace'],
  [/^\(no own frame\) node i\/o$/, 'node I/O callbacks: sockets, streams, fs'],
];
const HASHING = 'sha256 (download stream, verify pass, slot read-back)';

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
  const shared = /\/(protocol|firmware|runtime)\/dist\/(.+)\.js$/.exec(f.url);
  if (shared) return `${shared[1]}/${shared[2]}`;
  const own = ownModule(f.url);
  if (own) return own;
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
interface Views {
  component: Tally;
  owner: Tally;
  leaf: Tally;
  total: number;
  processes: number;
}
const add = (t: Tally, k: string): void => void t.set(k, (t.get(k) ?? 0) + 1);
const componentOf = (rules: readonly [RegExp, string][], owner: string): string => rules.find(([re]) => re.test(owner))?.[1] ?? 'other';

/** Adds the samples of `p` between `from` and `to` (µs) to `v`; returns how many there were. */
function tally(p: Profile, from: number, to: number, v: Views, rules: readonly [RegExp, string][]): number {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const ownerOf = new Map<number, string>();
  const ownerFor = (id: number): string => {
    const cached = ownerOf.get(id);
    if (cached !== undefined) return cached;
    let pkg: string | null = null;
    let http = false;
    let found: string | null = null;
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      const own = ownModule(f.url);
      if (own) {
        found = own;
        break;
      }
      pkg ??= PKG.exec(f.url)?.[1] ?? null;
      if (f.url.startsWith('node:_http_')) http = true;
    }
    const r = found ?? `${NO_OWN}${pkg ?? (http ? 'node http' : 'node i/o')}`;
    ownerOf.set(id, r);
    return r;
  };
  let t = p.startTime;
  let n = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (t < from || t > to) continue;
    const id = p.samples[i]!;
    const f = byId.get(id)!.callFrame;
    const special = f.url === '' && f.functionName.startsWith('(') ? f.functionName : null;
    const owner = special ?? ownerFor(id);
    const lib = library(f);
    add(v.owner, owner);
    add(v.leaf, lib);
    if (owner !== '(idle)') add(v.component, lib === 'node:crypto/hash' ? HASHING : componentOf(rules, owner));
    n++;
  }
  return n;
}

function table(title: string, t: Tally, busy: number, top: number): string[] {
  const rows = [...t.entries()].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]);
  const out = [`\n| ${title} | samples | share |`, '|---|---|---|'];
  for (const [k, v] of rows.slice(0, top)) out.push(`| ${k} | ${v} | ${((100 * v) / busy).toFixed(1)} % |`);
  const rest = rows.slice(top).reduce((s, [, v]) => s + v, 0);
  if (rest > 0) out.push(`| (${rows.length - top} more) | ${rest} | ${((100 * rest) / busy).toFixed(1)} % |`);
  return out;
}

function main(): void {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: profile-components DIR [--top N]');
  const topIdx = process.argv.indexOf('--top');
  const top = topIdx >= 0 ? Number(process.argv[topIdx + 1]) : 25;
  const marks = JSON.parse(readFileSync(join(dir, 'marks.json'), 'utf8')) as Marks;
  const profiles = readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => ({ f, p: JSON.parse(readFileSync(join(dir, f), 'utf8')) as Profile }));
  const out: string[] = [];
  for (const [name, [from, to]] of Object.entries(marks.windows)) {
    out.push(`\n## window: ${name} (${((to - from) / 1e6).toFixed(2)} s wall)`);
    const roles = new Map<string, Views>();
    for (const { f, p } of profiles) {
      const r = role(f, p, marks);
      const v = roles.get(r) ?? { component: new Map<string, number>(), owner: new Map<string, number>(), leaf: new Map<string, number>(), total: 0, processes: 0 };
      const n = tally(p, from, to, v, r.startsWith('coordinator') ? COORDINATOR_COMPONENTS : DEVICE_COMPONENTS);
      if (n > 0) v.processes++;
      v.total += n;
      roles.set(r, v);
    }
    for (const [r, v] of roles) {
      const busy = v.total - (v.owner.get('(idle)') ?? 0);
      if (busy <= 0) continue;
      out.push(`\n### ${r}: ${v.processes} process(es), ${busy} busy main-thread samples (~1 ms each; idle left out)`);
      out.push(...table('component', v.component, busy, top), ...table('owner', v.owner, busy, top), ...table('leaf', v.leaf, busy, top));
    }
  }
  console.log(out.join('\n'));
}

main();

/**
 * The coordinator's Prometheus metrics (prom-client), one registry per coordinator so that several can
 * run in one process. Most series are derived at scrape time from state the coordinator already keeps
 * (collect() callbacks): its counters (counter-map.ts), the registry, the telemetry queue, deployments
 * and their waves. Only what has no other home is observed as it happens: gate decisions with their
 * analyzers' verdicts and latency, rollbacks started and finished, webhook deliveries (HTTP request
 * latency: http-metrics.ts, on the same registry). Labels are bounded: never a device id; deployment
 * ids only for the deployments the engine holds live. I/O shell (prom-client).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DecisionRecord } from '../gate/decision.js';
import { mapCounters, COUNTER_FAMILIES, type CounterFamily } from './counter-map.js';
import { BoundedLabel, cleanLabel, ruleFamily } from './bounded-labels.js';

/** A live deployment as the metrics read it (the engine's core, narrowed). */
export interface LiveDeploymentSample {
  id: string;
  phase: string;
  /** 0-based index of the current wave. */
  current: number;
  waves: readonly { index: number; percent: number; counts: Readonly<Record<string, number>> }[];
}

/** Where the scrape-time series come from; each is read at every scrape. */
export interface MetricSources {
  counters(): Readonly<Record<string, number>>;
  /** Connected MQTT clients (embedded broker); undefined with an external broker. */
  connections(): number | undefined;
  devices(): { known: number; online: number; withAnomalies: number; byVersion: readonly { model: string; version: string; count: number }[] };
  telemetry(): { pending: number; written: number };
  activeDownloads(): number;
  /** Read from the store at each scrape (every deployment, not only live ones). */
  deploymentsByPhase(): Promise<Readonly<Record<string, number>>>;
  liveDeployments(): readonly LiveDeploymentSample[];
  /** Devices over every rollback so far, by outcome (exposed, confirmed, unreachable, refused). */
  rollbackDevices(): Promise<Readonly<Record<string, number>>>;
  engine(): Readonly<Record<string, number>>;
}

export interface FleetMetricsOptions {
  /** The coordinator's registry (HTTP request metrics, http-metrics.ts, register there too). */
  registry: Registry;
  sources: MetricSources;
  /** Every phase a deployment can be in: each is exported, 0 when no deployment is in it. */
  phases: readonly string[];
  /** Also export Node's process metrics (CPU, memory, event loop, GC; one set per process). Default true. */
  processMetrics?: boolean;
}

/** Webhook delivery latency buckets (seconds), up to the delivery timeout. */
const WEBHOOK_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Analyzer latency buckets (seconds): the statistical judge takes milliseconds, an AI call up to its timeout. */
const GATE_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60];

export class FleetMetrics {
  private constructor(
    readonly registry: Registry,
    private readonly decisions: Counter<'source' | 'verdict' | 'rule'>,
    private readonly verdicts: Counter<'analyzer' | 'verdict' | 'rule'>,
    private readonly analyzerLatency: Histogram<'analyzer'>,
    private readonly gateLatency: Histogram,
    private readonly rollbacks: Counter<'event'>,
    private readonly webhooks: Counter<'outcome'>,
    private readonly webhookLatency: Histogram,
    private readonly labels: { rule: BoundedLabel; analyzer: BoundedLabel },
  ) {}

  static create(o: FleetMetricsOptions): FleetMetrics {
    const registry = o.registry;
    const registers = [registry];
    const src = o.sources;
    registerCounterFamilies(registry, src);

    gauge(registry, 'fleet_mqtt_connections', 'MQTT clients connected to the embedded broker (absent with an external broker).', [], (g) => {
      const n = src.connections();
      if (n !== undefined) g.set(n);
    });
    gauge(registry, 'fleet_devices_known', 'Devices in the registry (provisioned, or seen).', [], (g) => g.set(src.devices().known));
    gauge(registry, 'fleet_devices_online', 'Devices the registry holds online.', [], (g) => g.set(src.devices().online));
    gauge(registry, 'fleet_devices_with_anomalies', 'Devices with at least one recorded anomaly.', [], (g) => g.set(src.devices().withAnomalies));
    gauge(registry, 'fleet_devices_by_version', 'Devices by hardware model and the firmware version they run.', ['model', 'version'], (g) => {
      for (const v of src.devices().byVersion) g.set({ model: v.model, version: v.version }, v.count);
    });
    gauge(registry, 'fleet_telemetry_queue', 'Telemetry messages waiting to be stored.', [], (g) => g.set(src.telemetry().pending));
    counter(registry, 'fleet_telemetry_stored_total', 'Telemetry messages stored in telemetry.db.', [], (c) => c.inc(src.telemetry().written));
    gauge(registry, 'fleet_artifact_downloads_active', 'Artifact downloads in progress.', [], (g) => g.set(src.activeDownloads()));
    gauge(registry, 'fleet_deployments', 'Deployments by phase (every deployment the store holds).', ['phase'], async (g) => {
      const by = await src.deploymentsByPhase();
      for (const phase of o.phases) g.set({ phase }, by[phase] ?? 0);
    });
    gauge(registry, 'fleet_deployment_current_wave', 'The wave a live deployment is at (1-based), with its phase.', ['deployment', 'phase'], (g) => {
      for (const d of src.liveDeployments()) g.set({ deployment: d.id, phase: d.phase }, d.current + 1);
    });
    gauge(registry, 'fleet_wave_percent', 'Cumulative share of the target a wave reaches, per live deployment.', ['deployment', 'wave'], (g) => {
      for (const d of src.liveDeployments()) for (const w of d.waves) g.set({ deployment: d.id, wave: String(w.index + 1) }, w.percent);
    });
    gauge(
      registry,
      'fleet_wave_devices',
      'Devices in each wave of a live deployment, by state (tracked, waiting, inProgress, committed, failed, trialFailures, timedOut, offline, ineligible, reporting).',
      ['deployment', 'wave', 'state'],
      (g) => {
        for (const d of src.liveDeployments()) {
          for (const w of d.waves) for (const [state, n] of Object.entries(w.counts)) g.set({ deployment: d.id, wave: String(w.index + 1), state }, n);
        }
      },
    );
    gauge(registry, 'fleet_rollback_devices', 'Devices over every rollback, by outcome: exposed (sent a rollback), confirmed, unreachable, refused.', ['outcome'], async (g) => {
      for (const [outcome, n] of Object.entries(await src.rollbackDevices())) g.set({ outcome }, n);
    });
    counter(registry, 'fleet_engine_steps_total', 'Events the rollout engine stepped.', [], (c) => c.inc(src.engine()['steps'] ?? 0));
    counter(registry, 'fleet_engine_effect_failures_total', 'Engine effects that failed (a broker down) and were retried by reconciling.', [], (c) => c.inc(src.engine()['effectFailures'] ?? 0));
    counter(registry, 'fleet_gate_runs_total', 'Gate runs started.', [], (c) => c.inc(src.engine()['gateRuns'] ?? 0));

    const decisions = new Counter({
      name: 'fleet_gate_decisions_total',
      help: 'Gate decisions by source (gate, early-hard-limit, monitor-limit, empty-wave, operator), final verdict and the rule family that decided.',
      labelNames: ['source', 'verdict', 'rule'] as const,
      registers,
    });
    const verdicts = new Counter({
      name: 'fleet_gate_analyzer_verdicts_total',
      help: 'Analyzer outcomes at gates, by analyzer, verdict (Proceed, Monitor, Abort, or error) and rule family (or error code).',
      labelNames: ['analyzer', 'verdict', 'rule'] as const,
      registers,
    });
    const analyzerLatency = new Histogram({
      name: 'fleet_gate_analyzer_duration_seconds',
      help: 'How long each analyzer took at a gate.',
      labelNames: ['analyzer'] as const,
      buckets: GATE_BUCKETS,
      registers,
    });
    const gateLatency = new Histogram({
      name: 'fleet_gate_duration_seconds',
      help: 'How long a gate run took (its analyzers run concurrently: the slowest one).',
      buckets: GATE_BUCKETS,
      registers,
    });
    const rollbacks = new Counter({ name: 'fleet_rollbacks_total', help: 'Deployment rollbacks, by event: started, finished.', labelNames: ['event'] as const, registers });
    const webhooks = new Counter({
      name: 'fleet_webhook_deliveries_total',
      help: 'Webhook delivery attempts by outcome: delivered, retry (failed, will be retried), failed (given up).',
      labelNames: ['outcome'] as const,
      registers,
    });
    const webhookLatency = new Histogram({ name: 'fleet_webhook_delivery_duration_seconds', help: 'Webhook delivery attempts, until the receiver answered or failed.', buckets: WEBHOOK_BUCKETS, registers });
    for (const event of ['started', 'finished']) rollbacks.inc({ event }, 0);
    for (const outcome of ['delivered', 'retry', 'failed']) webhooks.inc({ outcome }, 0);
    return new FleetMetrics(o.processMetrics === false ? registry : Registry.merge([registry, processRegistry()]), decisions, verdicts, analyzerLatency, gateLatency, rollbacks, webhooks, webhookLatency, {
      rule: new BoundedLabel(200),
      analyzer: new BoundedLabel(20),
    });
  }

  /** The exposition text and its content type. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** A decision the engine recorded. */
  observeDecision(d: DecisionRecord): void {
    this.decisions.inc({ source: d.source, verdict: d.final.recommendation, rule: this.labels.rule.of(ruleFamily(d.final.rule)) });
    if (d.source !== 'gate') return;
    let slowest = 0;
    for (const a of d.analyzers) {
      const analyzer = this.labels.analyzer.of(a.name);
      const verdict = a.verdict ? a.verdict.recommendation : 'error';
      const rule = a.verdict ? ruleFamily(a.verdict.rule) : (a.error?.code ?? 'unknown');
      this.verdicts.inc({ analyzer, verdict, rule: this.labels.rule.of(rule) });
      this.analyzerLatency.observe({ analyzer }, a.latencyMs / 1000);
      slowest = Math.max(slowest, a.latencyMs);
    }
    this.gateLatency.observe(slowest / 1000);
  }

  observeRollback(event: 'started' | 'finished'): void {
    this.rollbacks.inc({ event });
  }

  observeWebhook(outcome: 'delivered' | 'retry' | 'failed', seconds: number): void {
    this.webhooks.inc({ outcome });
    this.webhookLatency.observe(seconds);
  }

  /** Every metric name this registry exports (the Grafana dashboard test checks its queries against these). */
  names(): string[] {
    return this.registry.getMetricsAsArray().map((m) => m.name);
  }
}

let processMetrics: Registry | undefined;

/**
 * Node's process metrics, collected once per process and shared by every coordinator in it: each
 * collection installs a GC observer and an event-loop monitor that live as long as the process.
 */
function processRegistry(): Registry {
  if (!processMetrics) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics });
  }
  return processMetrics;
}

/** The counter families of counter-map.ts, each set from the counters at scrape time. */
function registerCounterFamilies(registry: Registry, src: MetricSources): void {
  for (const f of Object.values<CounterFamily>(COUNTER_FAMILIES)) {
    new Counter({
      name: f.name,
      help: f.help,
      labelNames: f.labels,
      registers: [registry],
      collect() {
        this.reset();
        // A few dozen counters: mapping them again per family costs microseconds.
        for (const s of mapCounters(src.counters())) if (s.family.name === f.name) this.inc(cleanLabels(s.labels), s.value);
      },
    });
  }
}

function cleanLabels(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).map(([k, v]) => [k, cleanLabel(v)]));
}

/** A gauge set at each scrape; a setter that reads the store is awaited (prom-client awaits collect). */
function gauge<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[], set: (g: Gauge<L>) => void | Promise<void>): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    async collect() {
      this.reset();
      await set(this);
    },
  });
}

function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[], set: (c: Counter<L>) => void): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      set(this);
    },
  });
}

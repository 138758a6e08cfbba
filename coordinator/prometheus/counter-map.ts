/**
 * How the coordinator's in-process counters (metrics.ts, dotted names such as `ingest.bad.status`)
 * appear in Prometheus: one table from counter name to metric name and labels, so every counter is
 * exported once, under a proper `fleet_…_total` name with bounded labels, and none is kept twice. A
 * counter no rule names is still exported, as `fleet_unmapped_events_total{counter}`, so a counter
 * added later is never silently missing from the scrape. Pure.
 */

/** One exported counter family: its name, HELP text and label names. */
export interface CounterFamily {
  name: string;
  help: string;
  labels: readonly string[];
}

interface Rule {
  /** Matched against the whole counter name; capture groups feed `labels`. */
  match: RegExp;
  family: CounterFamily;
  labels: (m: RegExpExecArray) => Record<string, string>;
}

const family = (name: string, help: string, ...labels: string[]): CounterFamily => ({ name, help, labels });

export const COUNTER_FAMILIES = {
  received: family('fleet_messages_received_total', 'Device messages received and parsed, by channel (hello, status, presence, telemetry).', 'channel'),
  refused: family(
    'fleet_messages_refused_total',
    'Device messages refused or dropped before use, by reason: bad-<channel> (payload failed its schema), rate-limited-<telemetry|control>, acl-publish, oversize-packet, hello-contradicts-registry.',
    'reason',
  ),
  sent: family('fleet_messages_sent_total', 'Messages the coordinator published to devices, by kind (manifest and cancel per bucket topic, clear, command).', 'kind'),
  commands: family('fleet_commands_sent_total', 'Signed commands sent to devices, by action.', 'action'),
  subscribesRefused: family('fleet_mqtt_subscribes_refused_total', 'MQTT subscriptions refused by the topic ACL.'),
  loginsRefused: family('fleet_mqtt_logins_refused_total', 'MQTT connections refused, by reason: bad-credentials, throttled, busy, anonymous, tls, overloaded (past the node\'s CONNECT admission: CONNACK 3).', 'reason'),
  anonymousConnects: family('fleet_mqtt_anonymous_connects_total', 'Connections accepted without credentials (development, --allow-anonymous).'),
  handlerErrors: family('fleet_ingest_handler_errors_total', 'Device messages whose handler failed (a bug; see the log).'),
  telemetryDropped: family('fleet_telemetry_dropped_total', 'Telemetry messages not stored, by reason: queue-full (past telemetry.maxQueue), lost (a failed commit or a crashed telemetry thread).', 'reason'),
  telemetryFlushErrors: family('fleet_telemetry_flush_errors_total', 'Telemetry commits that failed.'),
  telemetryCrashes: family('fleet_telemetry_thread_crashes_total', 'Telemetry thread crashes (the thread is restarted).'),
  deviceRefusals: family('fleet_device_refusals_total', 'Signed manifests or commands devices refused, by reason (stale-manifest, replayed, unbound-rollback, below-security-floor, unknown-deployment).', 'reason'),
  anomalies: family('fleet_device_anomalies_total', 'Device anomalies recorded, by kind.', 'kind'),
  downloadsStarted: family('fleet_artifact_downloads_started_total', 'Artifact downloads started (after authentication and limits).'),
  downloads: family('fleet_artifact_downloads_total', 'Artifact downloads that ended, by outcome: completed, aborted (client gone), error, dropped-idle, dropped-slow.', 'outcome'),
  downloadsRefused: family(
    'fleet_artifact_downloads_refused_total',
    'Artifact downloads refused, by reason: busy, device-busy, damaged, and the authentication failures (auth-<why>).',
    'reason',
  ),
  bytes: family('fleet_artifact_bytes_sent_total', 'Artifact bytes passed to the network.'),
  damaged: family('fleet_artifacts_damaged_total', 'Stored images found truncated or altered.'),
  registryFlushErrors: family('fleet_registry_flush_errors_total', 'Failed writes of devices\' last-seen times.'),
  secretsUpgraded: family('fleet_device_secrets_upgraded_total', 'Device secrets stored as scrypt by an earlier version, replaced by their sha256 after a login (docs/credential-hashing.md).'),
  uncleanStops: family('fleet_coordinator_unclean_stops_total', '1 when this start followed a coordinator that did not stop cleanly on the same data directory.'),
  unmapped: family('fleet_unmapped_events_total', 'Coordinator counters without a metric of their own, by counter name.', 'counter'),
} as const;

const CHANNELS = 'hello|status|presence|telemetry';

const RULES: readonly Rule[] = [
  { match: new RegExp(`^ingest\\.(${CHANNELS})$`), family: COUNTER_FAMILIES.received, labels: (m) => ({ channel: m[1]! }) },
  { match: /^ingest\.bad\.([a-z-]+)$/, family: COUNTER_FAMILIES.refused, labels: (m) => ({ reason: `bad-${m[1]!}` }) },
  { match: /^ingest\.shed\.(telemetry|control)$/, family: COUNTER_FAMILIES.refused, labels: (m) => ({ reason: `rate-limited-${m[1]!}` }) },
  { match: /^mqtt\.acl\.publish\.refused$/, family: COUNTER_FAMILIES.refused, labels: () => ({ reason: 'acl-publish' }) },
  { match: /^mqtt\.packets\.oversize$/, family: COUNTER_FAMILIES.refused, labels: () => ({ reason: 'oversize-packet' }) },
  { match: /^ingest\.hello\.refused$/, family: COUNTER_FAMILIES.refused, labels: () => ({ reason: 'hello-contradicts-registry' }) },
  { match: /^rollout\.topics\.published$/, family: COUNTER_FAMILIES.sent, labels: () => ({ kind: 'manifest' }) },
  { match: /^rollout\.topics\.cancelled$/, family: COUNTER_FAMILIES.sent, labels: () => ({ kind: 'cancel' }) },
  { match: /^rollout\.topics\.cleared$/, family: COUNTER_FAMILIES.sent, labels: () => ({ kind: 'clear' }) },
  { match: /^commands\.([a-z-]+)$/, family: COUNTER_FAMILIES.sent, labels: () => ({ kind: 'command' }) },
  { match: /^commands\.([a-z-]+)$/, family: COUNTER_FAMILIES.commands, labels: (m) => ({ action: m[1]! }) },
  { match: /^mqtt\.acl\.subscribe\.refused$/, family: COUNTER_FAMILIES.subscribesRefused, labels: () => ({}) },
  { match: /^mqtt\.auth\.refused$/, family: COUNTER_FAMILIES.loginsRefused, labels: () => ({ reason: 'bad-credentials' }) },
  { match: /^mqtt\.auth\.(throttled|busy)$/, family: COUNTER_FAMILIES.loginsRefused, labels: (m) => ({ reason: m[1]! }) },
  { match: /^mqtt\.connect\.overloaded$/, family: COUNTER_FAMILIES.loginsRefused, labels: () => ({ reason: 'overloaded' }) },
  { match: /^mqtt\.anonymous\.refused$/, family: COUNTER_FAMILIES.loginsRefused, labels: () => ({ reason: 'anonymous' }) },
  { match: /^mqtt\.tls\.refused$/, family: COUNTER_FAMILIES.loginsRefused, labels: () => ({ reason: 'tls' }) },
  { match: /^mqtt\.anonymous\.connects$/, family: COUNTER_FAMILIES.anonymousConnects, labels: () => ({}) },
  { match: /^ingest\.handler\.errors$/, family: COUNTER_FAMILIES.handlerErrors, labels: () => ({}) },
  { match: /^telemetry\.dropped$/, family: COUNTER_FAMILIES.telemetryDropped, labels: () => ({ reason: 'queue-full' }) },
  { match: /^telemetry\.lost$/, family: COUNTER_FAMILIES.telemetryDropped, labels: () => ({ reason: 'lost' }) },
  { match: /^telemetry\.flush\.errors$/, family: COUNTER_FAMILIES.telemetryFlushErrors, labels: () => ({}) },
  { match: /^telemetry\.thread\.crashes$/, family: COUNTER_FAMILIES.telemetryCrashes, labels: () => ({}) },
  { match: /^device\.refusals\.([a-z-]+)$/, family: COUNTER_FAMILIES.deviceRefusals, labels: (m) => ({ reason: m[1]! }) },
  { match: /^anomalies\.([a-z-]+)$/, family: COUNTER_FAMILIES.anomalies, labels: (m) => ({ kind: m[1]! }) },
  { match: /^artifacts\.downloads$/, family: COUNTER_FAMILIES.downloadsStarted, labels: () => ({}) },
  { match: /^artifacts\.(completed|aborted)$/, family: COUNTER_FAMILIES.downloads, labels: (m) => ({ outcome: m[1]! }) },
  { match: /^artifacts\.errors$/, family: COUNTER_FAMILIES.downloads, labels: () => ({ outcome: 'error' }) },
  { match: /^artifacts\.dropped\.([a-z-]+)$/, family: COUNTER_FAMILIES.downloads, labels: (m) => ({ outcome: `dropped-${m[1]!}` }) },
  { match: /^artifacts\.refused-([a-z-]+)$/, family: COUNTER_FAMILIES.downloadsRefused, labels: (m) => ({ reason: m[1]! }) },
  { match: /^artifacts\.auth\.([a-z-]+)$/, family: COUNTER_FAMILIES.downloadsRefused, labels: (m) => ({ reason: `auth-${m[1]!}` }) },
  { match: /^artifacts\.bytes$/, family: COUNTER_FAMILIES.bytes, labels: () => ({}) },
  { match: /^artifacts\.damaged$/, family: COUNTER_FAMILIES.damaged, labels: () => ({}) },
  { match: /^registry\.flush\.errors$/, family: COUNTER_FAMILIES.registryFlushErrors, labels: () => ({}) },
  { match: /^credentials\.upgraded$/, family: COUNTER_FAMILIES.secretsUpgraded, labels: () => ({}) },
  { match: /^coordinator\.unclean-stops$/, family: COUNTER_FAMILIES.uncleanStops, labels: () => ({}) },
];

/**
 * Counters deliberately not exported: sums of others (`ingest.bad` is the sum of `ingest.bad.*`) and
 * the start count of this very process (always 1).
 */
const SKIPPED: ReadonlySet<string> = new Set(['ingest.bad', 'coordinator.starts']);

/** One sample of an exported counter family. */
export interface CounterSample {
  family: CounterFamily;
  labels: Record<string, string>;
  value: number;
}

/** Every sample the counters give, summed where several counters land on the same series. */
export function mapCounters(values: Readonly<Record<string, number>>): CounterSample[] {
  const out = new Map<string, CounterSample>();
  const add = (f: CounterFamily, labels: Record<string, string>, value: number): void => {
    const key = `${f.name}${JSON.stringify(labels)}`;
    const prev = out.get(key);
    if (prev) prev.value += value;
    else out.set(key, { family: f, labels, value });
  };
  for (const [name, value] of Object.entries(values)) {
    if (SKIPPED.has(name)) continue;
    let matched = false;
    for (const rule of RULES) {
      const m = rule.match.exec(name);
      if (!m) continue;
      matched = true;
      add(rule.family, rule.labels(m), value);
    }
    if (!matched) add(COUNTER_FAMILIES.unmapped, { counter: name }, value);
  }
  return [...out.values()];
}

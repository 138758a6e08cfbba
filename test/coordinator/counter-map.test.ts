/**
 * The table from the coordinator's counters to Prometheus series (pure): each known counter lands on
 * its family and labels, sums where several share a series, an unknown one is still exported, and
 * gate rules become bounded rule families.
 */
import { describe, expect, it } from 'vitest';
import { mapCounters } from '../../coordinator/prometheus/counter-map.js';
import { BoundedLabel, cleanLabel, ruleFamily } from '../../coordinator/prometheus/bounded-labels.js';

const series = (values: Record<string, number>): string[] =>
  mapCounters(values).map((s) => `${s.family.name}${JSON.stringify(s.labels)} ${s.value}`).sort();

describe('counter map', () => {
  it.each([
    ['ingest.status', 'fleet_messages_received_total{"channel":"status"} 1'],
    ['ingest.bad.telemetry', 'fleet_messages_refused_total{"reason":"bad-telemetry"} 1'],
    ['ingest.shed.control', 'fleet_messages_refused_total{"reason":"rate-limited-control"} 1'],
    ['mqtt.acl.publish.refused', 'fleet_messages_refused_total{"reason":"acl-publish"} 1'],
    ['mqtt.auth.refused', 'fleet_mqtt_logins_refused_total{"reason":"bad-credentials"} 1'],
    ['mqtt.auth.throttled', 'fleet_mqtt_logins_refused_total{"reason":"throttled"} 1'],
    ['mqtt.connect.overloaded', 'fleet_mqtt_logins_refused_total{"reason":"overloaded"} 1'],
    ['telemetry.dropped', 'fleet_telemetry_dropped_total{"reason":"queue-full"} 1'],
    ['telemetry.lost', 'fleet_telemetry_dropped_total{"reason":"lost"} 1'],
    ['device.refusals.stale-manifest', 'fleet_device_refusals_total{"reason":"stale-manifest"} 1'],
    ['anomalies.wrong-model', 'fleet_device_anomalies_total{"kind":"wrong-model"} 1'],
    ['artifacts.dropped.idle', 'fleet_artifact_downloads_total{"outcome":"dropped-idle"} 1'],
    ['artifacts.refused-busy', 'fleet_artifact_downloads_refused_total{"reason":"busy"} 1'],
    ['artifacts.auth.bad-secret', 'fleet_artifact_downloads_refused_total{"reason":"auth-bad-secret"} 1'],
    ['artifacts.bytes', 'fleet_artifact_bytes_sent_total{} 1'],
    ['rollout.topics.published', 'fleet_messages_sent_total{"kind":"manifest"} 1'],
    ['something.new', 'fleet_unmapped_events_total{"counter":"something.new"} 1'],
  ])('%s → %s', (name, expected) => {
    expect(series({ [name]: 1 })).toEqual([expected]);
  });

  it('sums counters that share a series, exports a command under both views, skips sums and the start count', () => {
    expect(series({ 'commands.rollback': 3, 'rollout.topics.cancelled': 2, 'ingest.bad': 9, 'coordinator.starts': 1 })).toEqual([
      'fleet_commands_sent_total{"action":"rollback"} 3',
      'fleet_messages_sent_total{"kind":"cancel"} 2',
      'fleet_messages_sent_total{"kind":"command"} 3',
    ]);
    expect(series({ 'artifacts.completed': 2, 'artifacts.errors': 1, 'artifacts.aborted': 4 })).toEqual([
      'fleet_artifact_downloads_total{"outcome":"aborted"} 4',
      'fleet_artifact_downloads_total{"outcome":"completed"} 2',
      'fleet_artifact_downloads_total{"outcome":"error"} 1',
    ]);
  });
});

describe('bounded labels', () => {
  it.each([
    ['most-cautious: hard-gates=Abort (hard-limit:trial-failures)', 'hard-limit:trial-failures'],
    ['most-cautious: stat=Abort (critical:crashes[gateway-x]; advisory capped at Monitor)', 'critical:crashes'],
    ['critical:crashes@last-8%', 'critical:crashes'],
    ['hard-limit:install-failures (early)', 'hard-limit:install-failures'],
    ['empty-wave', 'empty-wave'],
    ['monitor-limit', 'monitor-limit'],
  ])('rule %s is family %s', (rule, family) => {
    expect(ruleFamily(rule)).toBe(family);
  });

  it('cleans values and folds values past the bound into other', () => {
    expect(cleanLabel('Lost Metric:Battery%')).toBe('lost-metric:battery');
    const l = new BoundedLabel(2);
    expect([l.of('a'), l.of('b'), l.of('c'), l.of('a')]).toEqual(['a', 'b', 'other', 'a']);
  });
});

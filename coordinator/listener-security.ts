/**
 * Which of the coordinator's network paths would carry plaintext beyond this machine. Staging and
 * production refuse to start with any of them: the MQTT listener (device secrets, manifests), the
 * HTTP listener (the operator token, artifact downloads), the external broker connection and the
 * artifact URL put into manifests. Loopback stays allowed, so TLS can be terminated by a proxy on
 * the same host (docs/tls.md). Pure.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** True for `localhost`, 127.0.0.0/8 and ::1 (in any spelling); false for 0.0.0.0, :: and names. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return true;
  if (isIPv4(h)) return h.startsWith('127.');
  if (!isIPv6(h)) return false;
  // The URL parser writes an IPv6 address in its one canonical form (::1, ::ffff:7f00:1).
  const canonical = new URL(`http://[${h}]/`).hostname.slice(1, -1);
  return canonical === '::1' || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(canonical);
}

export interface ListenerSettings {
  /** Ports as configured (`auto`: the previous run's), named in the messages only. */
  mqtt: { host: string; port: number | 'auto'; tlsCert?: string | undefined; brokerUrl?: string | undefined };
  http: { host: string; port: number | 'auto'; tlsCert?: string | undefined; publicUrl?: string | undefined };
}

/** Each plaintext path that leaves the machine, phrased as "<what>: <the fix>". Empty when none. */
export function plaintextPaths(s: ListenerSettings): string[] {
  const out: string[] = [];
  if (s.mqtt.brokerUrl !== undefined) {
    const url = new URL(s.mqtt.brokerUrl);
    if (url.protocol === 'mqtt:' && !isLoopbackHost(url.hostname)) {
      out.push(`plaintext MQTT to the broker at ${url.host}: use an mqtts:// broker URL (FLEET_BROKER_URL)`);
    }
  } else if (!isLoopbackHost(s.mqtt.host) && s.mqtt.tlsCert === undefined) {
    out.push(
      `plaintext MQTT on ${s.mqtt.host}:${s.mqtt.port}: set FLEET_TLS_CERT and FLEET_TLS_KEY (--mqtt-tls-cert, --mqtt-tls-key; see docs/tls.md) or listen on 127.0.0.1`,
    );
  }
  if (!isLoopbackHost(s.http.host) && s.http.tlsCert === undefined) {
    out.push(
      `plaintext HTTP on ${s.http.host}:${s.http.port} (admin API and artifact downloads): set FLEET_HTTP_TLS_CERT and FLEET_HTTP_TLS_KEY (--http-tls-cert, --http-tls-key; see docs/tls.md) or listen on 127.0.0.1 behind a TLS proxy`,
    );
  }
  if (s.http.publicUrl !== undefined) {
    const url = new URL(s.http.publicUrl);
    if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
      out.push(`plaintext artifact downloads from ${s.http.publicUrl}: make FLEET_PUBLIC_URL an https:// URL`);
    }
  }
  return out;
}

/**
 * The real defaults behind the Agent's injectable seams: Linux telemetry collectors, the HTTP
 * downloader, broker client options and the kernel boot id. I/O adapters' wiring.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { IClientOptions } from 'mqtt';
import { ConfigError, errorMessage } from '@fleet/protocol/errors';
import { brokerUrls, type AgentConfig } from './config.js';
import { HttpDownloader, type HttpDownloaderOptions } from './downloader.js';
import { combineCollectors, type TelemetryCollector } from './telemetry/collector.js';
import { LinuxCollector } from './telemetry/linux-collector.js';
import { LogExcerptCollector } from './telemetry/log-excerpt.js';
import { ScriptMetricsCollector } from './telemetry/custom-metrics.js';
import { definedProps } from '@fleet/firmware/defined-props';

/** The kernel's id of this boot (changes on every boot). */
export async function systemBootId(): Promise<string | undefined> {
  try {
    return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The broker URL as mqtt.js connect options, parsed once per agent instead of by mqtt.js on every
 * (re)connect. The fields and their forms are the ones mqtt.js derives from a URL string: protocol
 * without its colon, a bare host name (IPv6 without brackets), the port when the URL has one, the
 * path only for WebSockets, and user and password from the URL. Pure.
 */
export function brokerAddress(url: string): Partial<IClientOptions> {
  const u = new URL(url);
  const protocol = u.protocol.slice(0, -1) as NonNullable<IClientOptions['protocol']>;
  const hostname = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const o: Partial<IClientOptions> = { protocol, hostname, host: hostname };
  if (u.port !== '') o.port = Number(u.port);
  if (protocol.startsWith('ws')) o.path = u.pathname + u.search;
  if (u.username !== '') o.username = decodeURIComponent(u.username);
  if (u.password !== '') o.password = decodeURIComponent(u.password);
  return o;
}

/** The port of a broker URL without one, per scheme (what mqtt.js assumes for a single URL). */
const DEFAULT_PORTS = { mqtt: 1883, mqtts: 8883, ws: 80, wss: 443 } as const;

/** A file the broker config names; unreadable, it is a configuration error that names the field. */
async function brokerFile(field: string, path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new ConfigError(`broker.${field} ${path} cannot be read: ${errorMessage(err)}`);
  }
}

/**
 * mqtt.js options from the broker config: address, credentials, TLS material, keepalive. The
 * config's credentials win over any in the URL; a password file wins over a password.
 */
export async function brokerClientOptions(cfg: AgentConfig): Promise<Partial<IClientOptions>> {
  const b = cfg.broker;
  const urls = brokerUrls(b, cfg.deviceId);
  const o = brokerAddress(urls[0]!);
  // Several nodes: mqtt.js takes the next of `servers` at every (re)connect, so a refused or failed
  // connect, or a lost connection, moves the device on to the next node (with the session's backoff).
  if (urls.length > 1) {
    o.servers = urls.map((url) => {
      const a = brokerAddress(url);
      const protocol = a.protocol as 'mqtt' | 'mqtts' | 'ws' | 'wss';
      return { host: a.host!, port: a.port ?? DEFAULT_PORTS[protocol], protocol };
    });
  }
  o.keepalive = Math.max(1, Math.round(b.keepalive / 1000));
  o.connectTimeout = b.connectTimeout;
  if (b.username !== undefined) o.username = b.username;
  if (b.password !== undefined) o.password = b.password;
  if (b.passwordFile !== undefined) o.password = (await brokerFile('passwordFile', b.passwordFile)).toString('utf8').trim();
  if (b.caFile !== undefined) o.ca = await brokerFile('caFile', b.caFile);
  if (b.certFile !== undefined) o.cert = await brokerFile('certFile', b.certFile);
  if (b.keyFile !== undefined) o.key = await brokerFile('keyFile', b.keyFile);
  return o;
}

/** /proc and /sys metrics, plus the configured metrics script and error-log excerpt. */
export function defaultTelemetry(cfg: AgentConfig, now: () => number, logger: Logger): TelemetryCollector {
  const t = cfg.telemetry;
  const collectors: TelemetryCollector[] = [new LinuxCollector()];
  if (t.metricsScript !== undefined) collectors.push(new ScriptMetricsCollector(t.metricsScript, t.metricsTimeout));
  if (t.logFile !== undefined || t.journalUnit !== undefined) {
    collectors.push(
      new LogExcerptCollector({
        ...definedProps({ file: t.logFile, journalUnit: t.journalUnit }),
        pattern: t.logPattern,
        maxLines: t.maxLogLines,
        now,
      }),
    );
  }
  return combineCollectors(collectors, (err) => logger.warn({ err: errorMessage(err) }, 'telemetry collector failed'));
}

/**
 * The device's credentials for artifact servers that ask (the coordinator's does): its broker user
 * name and secret, allowed over plain http only when the broker link is plain too.
 */
export async function downloadCredentials(cfg: AgentConfig): Promise<Pick<HttpDownloaderOptions, 'credentials' | 'plainHttpCredentials'>> {
  const b = cfg.broker;
  let password = b.password;
  if (b.passwordFile !== undefined) password = (await readFile(b.passwordFile, 'utf8')).trim();
  if (b.username === undefined || password === undefined) return {};
  // Plain http only when every broker link is plain too.
  const plain = brokerUrls(b, cfg.deviceId).every((url) => ['mqtt:', 'ws:'].includes(new URL(url).protocol));
  return { credentials: { username: b.username, password }, plainHttpCredentials: plain };
}

/** Resumable HTTP/HTTPS downloads bounded by the config's limits, with the device's credentials. */
export async function defaultDownloader(cfg: AgentConfig): Promise<HttpDownloader> {
  return new HttpDownloader({
    idleTimeoutMs: cfg.download.idleTimeout,
    maxBytes: cfg.download.maxBytes,
    ...(cfg.download.caFile !== undefined ? { ca: await readFile(cfg.download.caFile) } : {}),
    ...(await downloadCredentials(cfg)),
  });
}

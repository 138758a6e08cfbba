/**
 * The real defaults behind the Agent's injectable seams: Linux telemetry collectors, the HTTP
 * downloader, broker client options and the kernel boot id. I/O adapters' wiring.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { IClientOptions } from 'mqtt';
import type { AgentConfig } from './config.js';
import { HttpDownloader } from './downloader.js';
import { combineCollectors, type TelemetryCollector } from './telemetry/collector.js';
import { LinuxCollector } from './telemetry/linux-collector.js';
import { LogExcerptCollector } from './telemetry/log-excerpt.js';
import { ScriptMetricsCollector } from './telemetry/custom-metrics.js';

/** The kernel's id of this boot (changes on every boot). */
export async function systemBootId(): Promise<string | undefined> {
  try {
    return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** mqtt.js options from the broker config: credentials, TLS material, keepalive. */
export function brokerClientOptions(cfg: AgentConfig): Promise<Partial<IClientOptions>> {
  const b = cfg.broker;
  const read = (p: string | undefined) => (p === undefined ? Promise.resolve(undefined) : readFile(p));
  return Promise.all([read(b.caFile), read(b.certFile), read(b.keyFile), read(b.passwordFile)]).then(([ca, cert, key, pw]) => ({
    ...(b.username !== undefined ? { username: b.username } : {}),
    ...(b.password !== undefined ? { password: b.password } : {}),
    ...(pw !== undefined ? { password: pw.toString('utf8').trim() } : {}),
    ...(ca !== undefined ? { ca } : {}),
    ...(cert !== undefined ? { cert } : {}),
    ...(key !== undefined ? { key } : {}),
    keepalive: Math.max(1, Math.round(b.keepalive / 1000)),
    connectTimeout: b.connectTimeout,
  }));
}

/** /proc and /sys metrics, plus the configured metrics script and error-log excerpt. */
export function defaultTelemetry(cfg: AgentConfig, now: () => number, logger: Logger): TelemetryCollector {
  const t = cfg.telemetry;
  const collectors: TelemetryCollector[] = [new LinuxCollector()];
  if (t.metricsScript !== undefined) collectors.push(new ScriptMetricsCollector(t.metricsScript, t.metricsTimeout));
  if (t.logFile !== undefined || t.journalUnit !== undefined) {
    collectors.push(
      new LogExcerptCollector({
        ...(t.logFile !== undefined ? { file: t.logFile } : {}),
        ...(t.journalUnit !== undefined ? { journalUnit: t.journalUnit } : {}),
        pattern: t.logPattern,
        maxLines: t.maxLogLines,
        now,
      }),
    );
  }
  return combineCollectors(collectors, (err) => logger.warn({ err: (err as Error).message }, 'telemetry collector failed'));
}

/** Resumable HTTP/HTTPS downloads bounded by the config's limits. */
export async function defaultDownloader(cfg: AgentConfig): Promise<HttpDownloader> {
  return new HttpDownloader({
    idleTimeoutMs: cfg.download.idleTimeout,
    maxBytes: cfg.download.maxBytes,
    ...(cfg.download.caFile !== undefined ? { ca: await readFile(cfg.download.caFile) } : {}),
  });
}

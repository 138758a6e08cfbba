/**
 * What `fleet agent validate-config` checks beyond the schema: that this machine can run the config —
 * the files it names exist and are readable, the trust store holds keys, the data and slot directories
 * can be written, and health-check programs exist. A config can parse and still fail at `agent start`
 * (a template's `/etc/fleet/...` paths on a laptop); this says which field to fix first. I/O shell (fs).
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { loadTrustStore } from '@fleet/firmware/trust-store';
import type { AgentConfig } from './config.js';
import { errorMessage } from '@fleet/protocol/errors';

async function can(path: string, mode: number): Promise<boolean> {
  try {
    await access(path, mode);
    return true;
  } catch {
    return false;
  }
}

async function readable(field: string, path: string | undefined, out: string[]): Promise<void> {
  if (path !== undefined && !(await can(path, constants.R_OK))) out.push(`${field}: cannot read ${path}`);
}

/** A directory the agent writes into: it exists and is writable, or its nearest existing parent is. */
async function writableDir(field: string, path: string, out: string[]): Promise<void> {
  let dir = path;
  for (;;) {
    try {
      if (!(await stat(dir)).isDirectory()) return void out.push(`${field}: ${dir} is not a directory`);
      if (!(await can(dir, constants.W_OK))) out.push(`${field}: cannot write ${dir}${dir === path ? '' : ` (to create ${path})`}`);
      return;
    } catch {
      const parent = dirname(dir);
      if (parent === dir) return void out.push(`${field}: cannot create ${path}`);
      dir = parent;
    }
  }
}

async function onPath(program: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  if (program.includes('/')) return can(program, constants.X_OK);
  for (const dir of (env['PATH'] ?? '').split(delimiter).filter(Boolean)) {
    if (await can(join(dir, program), constants.X_OK)) return true;
  }
  return false;
}

/** Problems that would stop this config from running here, one per line, `field: problem`; [] when none. */
export async function checkAgentEnvironment(cfg: AgentConfig, env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const out: string[] = [];
  await readable('broker.passwordFile', cfg.broker.passwordFile, out);
  await readable('broker.caFile', cfg.broker.caFile, out);
  await readable('broker.certFile', cfg.broker.certFile, out);
  await readable('broker.keyFile', cfg.broker.keyFile, out);
  await readable('download.caFile', cfg.download.caFile, out);
  await readable('telemetry.logFile', cfg.telemetry.logFile, out);
  try {
    await loadTrustStore(cfg.trustStoreDir);
  } catch (err) {
    out.push(`trustStoreDir: ${errorMessage(err)}`);
  }
  await writableDir('dataDir', cfg.dataDir, out);
  if (cfg.slots.kind === 'file') await writableDir('slots.dir', cfg.slots.dir, out);
  if (cfg.telemetry.metricsScript !== undefined && !(await can(cfg.telemetry.metricsScript, constants.X_OK))) {
    out.push(`telemetry.metricsScript: ${cfg.telemetry.metricsScript} is not an executable file`);
  }
  if (cfg.telemetry.journalUnit !== undefined && !(await onPath('journalctl', env))) {
    out.push('telemetry.journalUnit: journalctl is not on PATH');
  }
  for (const [i, check] of cfg.health.checks.entries()) {
    // A string runs through /bin/sh -c: its program cannot be told apart from the shell syntax.
    if (typeof check.command === 'string') continue;
    const program = check.command[0]!;
    if (!(await onPath(program, env))) {
      out.push(`health.checks[${i}] (${check.name}): ${program} is ${isAbsolute(program) || program.includes('/') ? 'not an executable file' : 'not on PATH'}`);
    }
  }
  return out;
}

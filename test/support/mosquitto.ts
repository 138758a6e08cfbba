/**
 * Debian's Mosquitto 2 as a real broker in tests: its own config, data dir and loopback port, run in
 * the foreground; stopped (SIGTERM: it saves its persistence file), killed (SIGKILL) and started
 * again on the same port with the same sessions. Skip a suite with `describe.skipIf(!hasMosquitto)`
 * where the machine lacks it (CI installs it through .ci/apt-packages.txt). `config` runs it on a whole
 * configuration of the caller's instead (a generated one: test/support/mosquitto-dynsec.ts).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LoopbackDaemon, type DaemonCommand } from './loopback-daemon.js';

const MOSQUITTO = '/usr/sbin/mosquitto';

/** True where the broker binary is installed. */
export const hasMosquitto = existsSync(MOSQUITTO);

export interface MosquittoOptions {
  /** Default false: every client needs a user from `users`. */
  allowAnonymous?: boolean;
  /** username → password, written with mosquitto_passwd. */
  users?: Record<string, string>;
  /** The text of an ACL file (Mosquitto's `acl_file` syntax). */
  acl?: string;
  /** Seconds between persistence saves (default 1, so a SIGKILL loses at most a second). */
  autosaveIntervalS?: number;
  /** More config lines. */
  extra?: readonly string[];
  /**
   * The whole configuration for the chosen port and the broker's directory, instead of the lines the
   * options above make (they are then ignored). It must listen on 127.0.0.1:`port` and may write
   * files into `dir` (called again with another port when the first was taken).
   */
  config?: (port: number, dir: string) => string;
}

/** `stop()` saves its sessions and retained messages, which `restart()` brings back. */
export class Mosquitto extends LoopbackDaemon {
  private constructor(
    port: number,
    dir: string,
    private readonly configPath: string,
  ) {
    super(port, dir);
  }

  /** Starts a broker on a free 127.0.0.1 port; resolves once it listens. */
  static async start(options: MosquittoOptions = {}): Promise<Mosquitto> {
    const dir = mkdtempSync(join(tmpdir(), 'fleet-mosquitto-'));
    const lines = [
      `allow_anonymous ${options.allowAnonymous ? 'true' : 'false'}`,
      // Run as whoever starts it (root in CI would otherwise drop to the mosquitto user, who cannot
      // write the temporary data dir).
      'user root',
      'persistence true',
      `persistence_location ${dir}/`,
      `autosave_interval ${options.autosaveIntervalS ?? 1}`,
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'log_type notice',
      'log_type information',
      'connection_messages true',
    ];
    if (options.users) {
      const passwordFile = join(dir, 'passwords');
      writeFileSync(passwordFile, '');
      for (const [user, password] of Object.entries(options.users)) execFileSync('mosquitto_passwd', ['-b', passwordFile, user, password]);
      lines.push(`password_file ${passwordFile}`);
    }
    if (options.acl !== undefined) {
      const aclFile = join(dir, 'acl');
      writeFileSync(aclFile, options.acl);
      lines.push(`acl_file ${aclFile}`);
    }
    lines.push(...(options.extra ?? []));
    const configPath = join(dir, 'mosquitto.conf');
    return LoopbackDaemon.onFreePort((port) => {
      writeFileSync(configPath, options.config ? options.config(port, dir) : [`listener ${port} 127.0.0.1`, ...lines].join('\n') + '\n');
      return new Mosquitto(port, dir, configPath);
    });
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  protected override command(): DaemonCommand {
    // Printed once every listener is bound ("Opening … listen socket" comes before the bind).
    return { name: 'mosquitto', file: MOSQUITTO, args: ['-c', this.configPath], ready: /mosquitto version \S+ running/ };
  }
}

/**
 * Debian's Mosquitto 2 as a real broker in tests: its own config, data dir and loopback port, run in
 * the foreground; stopped (SIGTERM: it saves its persistence file), killed (SIGKILL) and started
 * again on the same port with the same sessions. Skip a suite with `describe.skipIf(!hasMosquitto)`
 * where the machine lacks it (CI installs it through .ci/apt-packages.txt). `config` runs it on a whole
 * configuration of the caller's instead (a generated one: test/support/mosquitto-dynsec.ts).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, spawnProcess, type Exit, type RunningProcess } from './processes.js';

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

export class Mosquitto {
  private process: RunningProcess | undefined;

  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly configPath: string,
  ) {}

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
    // freePort() says a port was free a moment ago: another process may bind it first. Try another.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      writeFileSync(configPath, options.config ? options.config(port, dir) : [`listener ${port} 127.0.0.1`, ...lines].join('\n') + '\n');
      const broker = new Mosquitto(port, dir, configPath);
      try {
        await broker.run();
        return broker;
      } catch (err) {
        if (attempt >= 3 || !broker.output().includes('Address already in use')) throw err;
      }
    }
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** The broker's process id while it runs (undefined when stopped). */
  get pid(): number | undefined {
    return this.running ? this.process?.pid : undefined;
  }

  get running(): boolean {
    return this.process !== undefined && this.process.exit === undefined;
  }

  /** The broker's log so far (its current run). */
  output(): string {
    return this.process?.output() ?? '';
  }

  private async run(): Promise<void> {
    const p = spawnProcess(MOSQUITTO, ['-c', this.configPath]);
    this.process = p;
    await Promise.race([
      // Printed once every listener is bound ("Opening … listen socket" comes before the bind).
      p.waitForLine(/mosquitto version \S+ running/, 15_000),
      p.exited.then((e) => {
        throw new Error(`mosquitto exited at start (${JSON.stringify(e)}):\n${p.output()}`);
      }),
    ]);
  }

  /** Stops the broker cleanly (it saves its sessions and retained messages). */
  async stop(): Promise<Exit | undefined> {
    const p = this.process;
    this.process = undefined;
    return p?.stop('SIGTERM');
  }

  /** Kills the broker as a crash would. */
  async kill(): Promise<Exit | undefined> {
    const p = this.process;
    this.process = undefined;
    return p?.stop('SIGKILL');
  }

  /** Starts it again on the same port, with the sessions it saved. */
  async restart(): Promise<void> {
    if (this.running) await this.stop();
    await this.run();
  }

  /** Stops it and removes its directory. Safe twice. */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

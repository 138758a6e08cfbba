/**
 * What the test brokers and servers of Debian's packages share (mosquitto.ts, redis.ts): a daemon run
 * in the foreground on a 127.0.0.1 port with its own temporary directory, ready once it prints a given
 * line; stopped (SIGTERM), killed (SIGKILL) and started again on the same port and directory.
 */
import { rmSync } from 'node:fs';
import { freePort, spawnProcess, type Exit, type RunningProcess } from './processes.js';

/** How to run the daemon and when it is ready. */
export interface DaemonCommand {
  /** For errors: "mosquitto". */
  name: string;
  file: string;
  args: readonly string[];
  /** A line of its output printed once it accepts connections. */
  ready: RegExp;
}

export abstract class LoopbackDaemon {
  private process: RunningProcess | undefined;

  protected constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  protected abstract command(): DaemonCommand;

  /** Its process id while it runs (undefined when stopped). */
  get pid(): number | undefined {
    return this.running ? this.process?.pid : undefined;
  }

  get running(): boolean {
    return this.process !== undefined && this.process.exit === undefined;
  }

  /** Its log so far (its current run). */
  output(): string {
    return this.process?.output() ?? '';
  }

  /** Stops it cleanly. */
  async stop(): Promise<Exit | undefined> {
    const p = this.process;
    this.process = undefined;
    return p?.stop('SIGTERM');
  }

  /** Kills it as a crash would. */
  async kill(): Promise<Exit | undefined> {
    const p = this.process;
    this.process = undefined;
    return p?.stop('SIGKILL');
  }

  /** Starts it again on the same port and directory. */
  async restart(): Promise<void> {
    if (this.running) await this.stop();
    await this.run();
  }

  /** Stops it and removes its directory. Safe twice. */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Starts the process; resolves once it is ready, rejects with its output if it exits first. */
  protected async run(): Promise<void> {
    const { name, file, args, ready } = this.command();
    const p = spawnProcess(file, args);
    this.process = p;
    await Promise.race([
      p.waitForLine(ready, 15_000),
      p.exited.then((e) => {
        throw new Error(`${name} exited at start (${JSON.stringify(e)}):\n${p.output()}`);
      }),
    ]);
  }

  /**
   * Makes one on a free port and starts it. freePort() says a port was free a moment ago: another
   * process may bind it first, so a start that finds it taken tries another (three tries).
   */
  protected static async onFreePort<T extends LoopbackDaemon>(make: (port: number) => T): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const daemon = make(await freePort());
      try {
        await daemon.run();
        return daemon;
      } catch (err) {
        if (attempt >= 3 || !daemon.output().includes('Address already in use')) throw err;
      }
    }
  }
}

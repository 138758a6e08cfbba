/**
 * Debian's redis-server as a throwaway instance in tests: a free 127.0.0.1 port, no persistence (no
 * RDB, no AOF: what the embedded cluster keeps in Redis is rebuilt by its nodes), run in the foreground
 * and stopped (SIGTERM), killed (SIGKILL) and started again on the same port. Skip a suite with
 * `describe.skipIf(!hasRedis)` where the machine lacks it (CI installs it through .ci/apt-packages.txt).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, spawnProcess, type Exit, type RunningProcess } from './processes.js';

const REDIS_SERVER = '/usr/bin/redis-server';

/** True where the server binary is installed. */
export const hasRedis = existsSync(REDIS_SERVER);

export class RedisServer {
  private process: RunningProcess | undefined;

  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  /** Starts a server on a free 127.0.0.1 port; resolves once it accepts connections. */
  static async start(): Promise<RedisServer> {
    const dir = mkdtempSync(join(tmpdir(), 'fleet-redis-'));
    // freePort() says a port was free a moment ago: another process may bind it first. Try another.
    for (let attempt = 1; ; attempt++) {
      const server = new RedisServer(await freePort(), dir);
      try {
        await server.run();
        return server;
      } catch (err) {
        if (attempt >= 3 || !server.output().includes('Address already in use')) {
          rmSync(dir, { recursive: true, force: true });
          throw err;
        }
      }
    }
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.process !== undefined && this.process.exit === undefined;
  }

  /** The server's log so far (its current run). */
  output(): string {
    return this.process?.output() ?? '';
  }

  private async run(): Promise<void> {
    const p = spawnProcess(REDIS_SERVER, [
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'no',
      '--daemonize', 'no',
      '--dir', this.dir,
    ]);
    this.process = p;
    await Promise.race([
      p.waitForLine(/Ready to accept connections/, 15_000),
      p.exited.then((e) => {
        throw new Error(`redis-server exited at start (${JSON.stringify(e)}):\n${p.output()}`);
      }),
    ]);
  }

  /** Stops the server cleanly. */
  async stop(): Promise<Exit | undefined> {
    const p = this.process;
    this.process = undefined;
    return p?.stop('SIGTERM');
  }

  /** Kills the server as a crash would (everything it held is gone: no persistence). */
  async kill(): Promise<Exit | undefined> {
    const p = this.process;
    this.process = undefined;
    return p?.stop('SIGKILL');
  }

  /** Starts it again on the same port (empty). */
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

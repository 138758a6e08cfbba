/**
 * Debian's redis-server as a throwaway instance in tests: a free 127.0.0.1 port, no persistence (no
 * RDB, no AOF: what the embedded cluster keeps in Redis is rebuilt by its nodes), run in the foreground
 * and stopped (SIGTERM), killed (SIGKILL) and started again on the same port. Skip a suite with
 * `describe.skipIf(!hasRedis)` where the machine lacks it (CI installs it through .ci/apt-packages.txt).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LoopbackDaemon, type DaemonCommand } from './loopback-daemon.js';

const REDIS_SERVER = '/usr/bin/redis-server';

/** True where the server binary is installed. */
export const hasRedis = existsSync(REDIS_SERVER);

/** `kill()` loses everything it held (no persistence); `restart()` starts it empty. */
export class RedisServer extends LoopbackDaemon {
  private constructor(port: number, dir: string) {
    super(port, dir);
  }

  /** Starts a server on a free 127.0.0.1 port; resolves once it accepts connections. */
  static async start(): Promise<RedisServer> {
    const dir = mkdtempSync(join(tmpdir(), 'fleet-redis-'));
    try {
      return await LoopbackDaemon.onFreePort((port) => new RedisServer(port, dir));
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  protected override command(): DaemonCommand {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', this.dir];
    return { name: 'redis-server', file: REDIS_SERVER, args, ready: /Ready to accept connections/ };
  }
}

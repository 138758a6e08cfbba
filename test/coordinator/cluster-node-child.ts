/**
 * One embedded broker node of a cluster in its own process, for tests that kill it with SIGKILL (a
 * node that dies leaves its devices' last wills in Redis and stops its heartbeats). Its devices'
 * credentials come from a SQLite file the test provisioned them in. Prints one JSON line
 * {url, brokerId} when it listens, then runs until killed.
 * Usage: cluster-node-child.ts <redis-url> <credentials-db> <node-name> <heartbeat-ms>
 */
import { pino } from 'pino';
import { CredentialStore } from '../../coordinator/broker/credentials.js';
import { EmbeddedBroker } from '../../coordinator/broker/embedded-broker.js';
import { Counters } from '../../coordinator/metrics.js';
import { SqliteSql } from '../../coordinator/store/sqlite-sql.js';
import { openDatabase } from '../../coordinator/store/db.js';

const [redisUrl, dbPath, nodeName, heartbeat] = process.argv.slice(2);
if (!redisUrl || !dbPath || !nodeName) throw new Error('usage: cluster-node-child.ts <redis-url> <credentials-db> <node-name> <heartbeat-ms>');
const credentials = await CredentialStore.load(new SqliteSql(openDatabase(dbPath)));
const broker = new EmbeddedBroker({
  port: 0,
  host: '127.0.0.1',
  credentials,
  allowAnonymous: false,
  hardwareModelOf: () => 'rpi4',
  logger: pino({ level: 'warn' }, pino.destination(2)),
  counters: new Counters(),
  cluster: { redisUrl, nodeName, heartbeatMs: Number(heartbeat ?? 10_000) },
});
await broker.start();
process.stdout.write(JSON.stringify({ url: broker.url }) + '\n');

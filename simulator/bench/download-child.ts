/**
 * Benchmark child process: the rollout benchmark's "downloads alone" baseline for a slice of the
 * devices, in a process of their own as the rollout's devices are (--processes). On {cmd:'download'}
 * it downloads the image once per device, all at once, with the agent's own downloader and each
 * device's credentials (503 past the server's bound: retried, as agents do), and answers
 * {type:'downloaded', ms, cpuMs}. I/O shell.
 *
 * IPC: {type:'ready'}; {cmd:'download', url, size, sha256, dir, devices:[{deviceId, secret}]};
 * {cmd:'stop'}.
 */
import { join } from 'node:path';
import { HttpDownloader } from '@fleet/agent';

interface DownloadCommand {
  cmd: 'download';
  url: string;
  size: number;
  sha256: string;
  dir: string;
  devices: { deviceId: string; secret: string }[];
}

async function downloadAll(c: DownloadCommand): Promise<void> {
  await Promise.all(
    c.devices.map(async ({ deviceId, secret }) => {
      const dl = new HttpDownloader({ idleTimeoutMs: 60_000, credentials: { username: deviceId, password: secret }, plainHttpCredentials: true });
      const dest = join(c.dir, `${deviceId}.img`);
      for (let attempt = 0; attempt < 20; attempt++) {
        const r = await dl.download({ url: c.url, size: c.size, sha256: c.sha256, dest }, { signal: new AbortController().signal });
        if (r.ok) return;
        await new Promise((res) => setTimeout(res, 50));
      }
      throw new Error(`download for ${deviceId} kept failing`);
    }),
  );
}

process.on('message', (msg: { cmd?: string }) => {
  if (msg.cmd === 'stop') {
    process.disconnect();
    return;
  }
  if (msg.cmd !== 'download') return;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  downloadAll(msg as DownloadCommand).then(
    () => {
      const cpu = process.cpuUsage(cpu0);
      process.send?.({ type: 'downloaded', ms: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000 });
    },
    (err: unknown) => process.send?.({ type: 'downloaded', error: String(err) }),
  );
});
process.on('disconnect', () => process.exit(0));
process.send?.({ type: 'ready' });

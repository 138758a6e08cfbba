/**
 * The agent's long-running effects — a download attempt and the trial's health run — as functions
 * that end in the update machine's next event (or null when cancelled). I/O through injected seams.
 */
import type { Artifact } from './agent-state.js';
import { SlotError, type SlotBackend } from './slots/slot-backend.js';
import type { Downloader } from './downloader.js';
import type { StreamedDownloads } from './streamed-downloads.js';
import type { HealthCheck, HealthCheckRunner } from './health-checks.js';
import type { UpdateEvent } from './update-types.js';
import { errorMessage } from '@fleet/protocol/errors';
import { definedProps } from '@fleet/firmware/defined-props';

/**
 * One download attempt. Progress goes to `onProgress` once per tenth of the image (the machine
 * reports a tenth only when `download.progressInterval` has passed); the result is
 * `download-finished` or `download-failed`.
 */
export async function downloadTask(
  downloader: Downloader,
  deploymentId: string,
  artifact: Artifact,
  dest: string,
  signal: AbortSignal,
  onProgress: (event: UpdateEvent) => void,
  streamed?: StreamedDownloads,
): Promise<UpdateEvent | null> {
  let lastTenth = -1;
  let outcome;
  try {
    outcome = await downloader.download(
      { url: artifact.url, size: artifact.size, sha256: artifact.sha256, dest },
      {
        signal,
        onProgress: (bytes) => {
          const tenth = Math.floor((bytes * 10) / artifact.size);
          if (tenth === lastTenth) return;
          lastTenth = tenth;
          onProgress({ type: 'download-progress', deploymentId, bytes });
        },
      },
    );
  } catch (err) {
    if (signal.aborted) return null;
    return { type: 'download-failed', deploymentId, reason: 'download-failed', detail: errorMessage(err), retryable: true };
  }
  if (signal.aborted) return null;
  streamed?.record(dest, artifact, outcome);
  if (outcome.ok) return { type: 'download-finished', deploymentId };
  return {
    type: 'download-failed',
    deploymentId,
    reason: outcome.reason,
    detail: outcome.detail,
    retryable: outcome.retryable,
    ...(outcome.busy ? { busy: true } : {}),
    ...definedProps({ retryAfterMs: outcome.retryAfterMs }),
  };
}

/**
 * The trial's health run: the agent on the new slot must reach the broker within `brokerWaitMs`, then
 * every configured check must pass. The trial window itself is the caller's timer.
 */
export async function trialHealthTask(
  waitConnected: (timeoutMs: number) => Promise<boolean>,
  runner: HealthCheckRunner,
  checks: readonly HealthCheck[],
  brokerWaitMs: number,
  deploymentId: string,
  signal: AbortSignal,
): Promise<UpdateEvent | null> {
  try {
    const reached = await waitConnected(brokerWaitMs);
    if (signal.aborted) return null;
    if (!reached) {
      return { type: 'health-failed', deploymentId, reason: 'broker-unreachable', detail: `no broker connection within ${brokerWaitMs} ms of the trial boot` };
    }
    const result = await runner.run(checks, signal);
    if (signal.aborted) return null;
    if (result.ok) return { type: 'health-passed', deploymentId };
    return { type: 'health-failed', deploymentId, reason: 'health-check-failed', detail: result.detail };
  } catch (err) {
    if (signal.aborted) return null;
    return { type: 'health-failed', deploymentId, reason: 'health-check-failed', detail: `health check runner failed: ${errorMessage(err)}` };
  }
}

/**
 * The verifying stage: the file on disk must have exactly the signed size and sha256. A file this
 * process streamed whole with that digest (`streamed`, streamed-downloads.ts) is not read again.
 */
export async function verifyTask(downloader: Downloader, deploymentId: string, artifact: Artifact, path: string, streamed?: StreamedDownloads): Promise<UpdateEvent> {
  if (streamed?.take(path, artifact)) return { type: 'verify-done', deploymentId, ok: true };
  try {
    const d = await downloader.digest(path);
    if (d.size === artifact.size && d.sha256 === artifact.sha256) return { type: 'verify-done', deploymentId, ok: true };
    const detail = `file on disk has ${d.size} bytes, sha256 ${d.sha256}; the manifest says ${artifact.size}, ${artifact.sha256}`;
    return { type: 'verify-done', deploymentId, ok: false, detail };
  } catch (err) {
    return { type: 'verify-done', deploymentId, ok: false, detail: `cannot read the download: ${errorMessage(err)}` };
  }
}

/** The installing stage: write the verified image to the inactive slot (the backend reads it back). */
export async function writeSlotTask(slots: SlotBackend, deploymentId: string, artifact: Artifact, path: string): Promise<UpdateEvent> {
  try {
    await slots.writeInactive({ path, size: artifact.size, sha256: artifact.sha256 });
    return { type: 'slot-written', deploymentId };
  } catch (err) {
    const reason = err instanceof SlotError && (err.code === 'write-failed' || err.code === 'readback-failed') ? err.code : 'write-failed';
    return { type: 'slot-failed', deploymentId, reason, detail: errorMessage(err).slice(0, 500) };
  }
}

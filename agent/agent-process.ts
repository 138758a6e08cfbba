/**
 * The agent as the device's process (`fleet agent start`): builds the agent for the configured slot
 * backend, starts it, and returns how to stop it. The process lifetime around it — signals, the
 * ref'd handle, exit codes — is runDaemon (runtime/daemon.ts). I/O shell.
 */
import type { Logger } from 'pino';
import type { DaemonControl } from '@fleet/runtime/daemon';
import type { AgentConfig } from './config.js';
import { errorMessage } from '@fleet/protocol/errors';

/** Starts the agent; resolves with its clean stop once it runs. Throws on a fatal local error. */
export async function startAgent(config: AgentConfig, logger: Logger, control: DaemonControl): Promise<() => Promise<void>> {
  if (config.slots.kind === 'file') {
    // The file backend has no real reboot: power-cycle the simulated device inside this process.
    const { FileSlotBackend } = await import('./slots/slot-backend-file.js');
    const { SimulatedDevice } = await import('./simulated-device.js');
    const slots = await FileSlotBackend.create({ dir: config.slots.dir, trialBoots: config.slots.trialBoots });
    const device = new SimulatedDevice({
      config,
      slots,
      logger,
      // A boot that cannot start its agent (its state or slots unreadable) is a fatal local error:
      // exit non-zero, and the supervisor's restart is the next power-on.
      onBootFailed: (err) => control.shutdown(1, `the simulated device could not boot its agent: ${errorMessage(err)}`),
    });
    await device.start();
    return () => device.stop();
  }
  const { Agent } = await import('./agent.js');
  const agent = await Agent.create({
    config,
    logger,
    // systemd (Restart=always) starts us again; the new agent re-arms and retries the reboot.
    onRebootFailed: (err) => control.shutdown(1, `the reboot failed: ${errorMessage(err)}`),
  });
  await agent.start();
  return () => agent.stop();
}

/**
 * Live progress lines for `fleet simulate` and `fleet demo`: fleet start, wave progress, gate
 * decisions with their top reasons, injected faults. Pure formatting plus a write callback.
 */
import type { SimEvent } from './fleet-runner.js';
import { humanDuration } from './report-format.js';

export function progressPrinter(write: (line: string) => void, wallStart = performance.now()): (e: SimEvent) => void {
  const stamp = (): string => `[${((performance.now() - wallStart) / 1000).toFixed(1).padStart(5)}s]`;
  return (e) => {
    switch (e.type) {
      case 'fleet-starting':
        write(`${stamp()} starting ${e.devices} simulated devices (${e.offline} offline for now), each with its own MQTT connection and credentials`);
        break;
      case 'fleet-ready':
        write(`${stamp()} ${e.connected}${e.connected < e.expected ? ` of ${e.expected}` : ''} devices online in ${(e.ms / 1000).toFixed(1)} s`);
        break;
      case 'release-start':
        write(`${stamp()} rolling out ${e.version} (simulated behaviour: ${e.behaviour.kind}) as deployment ${e.deploymentId}`);
        for (const w of e.warnings) write(`${stamp()}   coordinator warning: ${w}`);
        break;
      case 'wave':
        write(`${stamp()}   ${e.version} wave ${e.wave + 1} (${e.percent}%): ${e.status.padEnd(8)} ${String(e.committed).padStart(4)}/${e.targeted} committed${e.failed ? `, ${e.failed} failed` : ''}`);
        break;
      case 'decision': {
        const d = e.decision;
        const why = d.issues.slice(0, 2).join('; ');
        write(`${stamp()}   gate after wave ${d.wave + 1}: ${d.recommendation} (${d.rule})${why ? ` — ${why}` : ''}`);
        break;
      }
      case 'release-end':
        write(`${stamp()} ${e.version}: ${e.phase} after ${humanDuration(e.simulatedMs)} of simulated time`);
        break;
      case 'fault':
        write(`${stamp()} fault: ${e.kind}${e.detail ? ` (${e.detail})` : ''}`);
        break;
      case 'note':
        write(`${stamp()} ${e.text}`);
        break;
    }
  };
}

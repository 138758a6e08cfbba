/** Why a simulation could not run as asked; the message says what to change. Pure. */
import { FleetError } from '@fleet/protocol/errors';

export class SimulationError extends FleetError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

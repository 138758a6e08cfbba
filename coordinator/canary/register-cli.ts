/** The canary and flag CLI registrations, re-exported for the one composition root (fleet.ts). */
export { registerCanaryCommands } from './cli.js';
export { registerDecisionCommands } from './decisions-cli.js';
export { registerFlagCommands } from '../flags/cli.js';

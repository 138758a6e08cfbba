/**
 * coordinator/ commands for the `fleet` executable: the operator's commands (`fleet coordinator`,
 * `deploy`, `devices`, `webhooks`, `firmware upload|list`, `canary`, `flags`, `deploy decisions`) and
 * the enroller behind `fleet agent dev`. Heavy modules load inside the command actions.
 */
export { registerCoordinatorCommands } from './coordinator-cli.js';
export { devEnroller } from './dev-enroller.js';
export { registerCanaryCommands, registerDecisionCommands, registerFlagCommands } from '../canary/register-cli.js';

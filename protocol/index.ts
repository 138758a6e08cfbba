/** protocol/: the wire contract shared by coordinator, agent and simulator. Depends on zod alone. */
export * from './errors.js';
export * from './ids.js';
export * from './bucket.js';
export * from './topics.js';
export * from './reasons.js';
export * from './update-state.js';
export * from './signed.js';
export * from './messages.js';
export * from './parse.js';
export * from './clock.js';
export * from './canary.js';
export * from './webhooks.js';

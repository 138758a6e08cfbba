/** firmware/: keys, canonical JSON, signed manifests and commands, trust stores. */
export * from './canonical-json.js';
export * from './keys.js';
export * from './trust-store.js';
export * from './envelope.js';
export * from './manifest.js';
export * from './image.js';
export * from './duration.js';

// `node --import ./test/support/register-ts.js file.ts`: runs TypeScript sources in a child process, and
// in worker threads started from tests (vitest passes it to its test processes; workers inherit it).
import { register } from 'node:module';
register('./ts-loader.js', import.meta.url);

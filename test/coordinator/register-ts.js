// `node --import ./test/coordinator/register-ts.js file.ts`: runs TypeScript sources in a child process.
import { register } from 'node:module';
register('./ts-loader.js', import.meta.url);

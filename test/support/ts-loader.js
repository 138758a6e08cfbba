// Test-only ESM loader: lets a child Node process or a worker thread run the TypeScript sources directly
// (the coordinator killed with SIGKILL in the restart test, the telemetry thread). `.js` imports and
// entry points resolve to the `.ts` file beside them when no `.js` file exists;
// `.ts` files are transpiled with the project's TypeScript (types are not checked here), and the
// output is cached by content hash so a restarted child starts quickly. Workspace packages
// (`@fleet/protocol/…`) resolve to their sources through the `@fleet/source` export condition.
import { createHash } from 'node:crypto';
import { readFile, writeFile, mkdir, rename } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import process from 'node:process';
import { join } from 'node:path';
import { URL, fileURLToPath, pathToFileURL } from 'node:url';

const cacheDir = join(tmpdir(), 'fleet-ts-loader-cache');
let ts;

export async function resolve(specifier, context, next) {
  if ((specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('file:')) && specifier.endsWith('.js')) {
    // An entry point (a worker's) has no parent: it comes as an absolute path or file: URL.
    const url = context.parentURL ? new URL(specifier, context.parentURL) : specifier.startsWith('file:') ? new URL(specifier) : pathToFileURL(specifier);
    const tsUrl = new URL(url.href.replace(/\.js$/, '.ts'));
    if (!existsSync(fileURLToPath(url)) && existsSync(fileURLToPath(tsUrl))) return { url: tsUrl.href, shortCircuit: true };
  }
  if (specifier.startsWith('@fleet/')) return next(specifier, { ...context, conditions: ['@fleet/source', ...context.conditions] });
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (!url.endsWith('.ts')) return next(url, context);
  const path = fileURLToPath(url);
  const source = await readFile(path, 'utf8');
  const key = join(cacheDir, createHash('sha256').update(path).update('\0').update(source).digest('hex') + '.js');
  if (existsSync(key)) return { format: 'module', source: await readFile(key, 'utf8'), shortCircuit: true };
  ts ??= (await import('typescript')).default;
  const out = ts.transpileModule(source, {
    fileName: path,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true, sourceMap: false },
  });
  await mkdir(cacheDir, { recursive: true });
  // Written aside and renamed: test processes and their threads load the same files concurrently.
  const tmp = `${key}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(tmp, out.outputText);
  await rename(tmp, key);
  return { format: 'module', source: out.outputText, shortCircuit: true };
}

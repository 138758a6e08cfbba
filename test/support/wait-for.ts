/**
 * The one polling helper of the tests, for a condition no event announces (a row in SQLite, a line in
 * a log, a device's reported state): polls `check` until it returns a truthy value and resolves with
 * it, or fails after `timeoutMs` naming `what`. Bounded and generous by default, because the machine
 * may be busy; an error thrown by `check` fails at once. Where an event can be awaited, await it instead.
 */
export async function waitFor<T>(check: () => T | Promise<T>, what: string, timeoutMs = 30_000, intervalMs = 20): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

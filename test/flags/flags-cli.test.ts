/**
 * `fleet flags list|set|kill|history` against a real admin API (router + flag routes + the flag store on
 * SQLite and on PostgreSQL, 127.0.0.1), and the flag-driven analyzer selection the gate uses: per-wave
 * variants choose the AI's prompt and model, and one kill turns the AI off for every wave.
 */
import { Command } from 'commander';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AuditLog } from '../../coordinator/store/audit-log.js';
import { createAdminApi, type AdminApi } from '../../coordinator/admin/admin-api.js';
import { tokenAuthenticator } from '../../coordinator/users/access.js';
import { FlagStore } from '../../coordinator/flags/flag-store.js';
import { registerFlagRoutes } from '../../coordinator/flags/flag-routes.js';
import { parseVariant, registerFlagCommands } from '../../coordinator/flags/cli.js';
import { selectAnalyzers } from '../../coordinator/canary/analyzers-for.js';
import { STORE_KINDS, openTestStore } from '../support/postgres.js';

const token = 'flags-cli-token-0123456789';
let store: FlagStore;
let audit: AuditLog;
let api: AdminApi;
let url: string;

describe.each(STORE_KINDS)('flags on %s', (kind) => {
  beforeEach(async () => {
    const sql = await openTestStore(kind);
    // The coordinator's audit log in the same store, each entry inside its change's transaction.
    audit = new AuditLog(sql);
    store = await FlagStore.load({ sql, now: () => 1_800_000_000_000, audit: (tx, e) => audit.append(e.at, e.actor, e.action, e.subject, e.detail, undefined, tx) });
    api = await createAdminApi({ authenticator: tokenAuthenticator(token) });
    registerFlagRoutes(api, { flags: store });
    url = await api.listen({ port: 0, host: '127.0.0.1' });
  });
  afterEach(async () => {
    await api.close();
  });

  async function fleet(...args: string[]): Promise<string> {
    const program = new Command('fleet').exitOverride();
    registerFlagCommands(program);
    const lines: string[] = [];
    const spy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.map(String).join(' ')));
    try {
      await program.parseAsync(['node', 'fleet', ...args, '--url', url, '--token', token]);
    } finally {
      spy.mockRestore();
    }
    return lines.join('\n');
  }

  describe('fleet flags', () => {
    it('parses variant specs', () => {
      expect(parseVariant('exp:10:promptId=risk-experimental-v2,model=gpt-4o-mini')).toEqual([{ name: 'exp', weight: 10, payload: { promptId: 'risk-experimental-v2', model: 'gpt-4o-mini' } }]);
      expect(() => parseVariant('bad')).toThrow(/name:weight/);
    });

    it('lists, sets variants, kills and shows history; every change is audited', async () => {
      expect(await fleet('flags', 'list')).toMatch(/canary\.ai[\s\S]*off \(default\)/);
      const set = await fleet('flags', 'set', 'canary.ai', '--on', '--rollout', '100', '--variant', 'stable:1:promptId=risk-stable-v1', '--variant', 'exp:1:promptId=risk-experimental-v2,model=m2');
      expect(set).toContain('canary.ai [coordinator] on, rollout 100%');
      expect(store.effective('canary.ai')?.variants).toHaveLength(2);
      expect(await fleet('flags', 'evaluate', 'canary.ai', '--key', 'dep-1:0')).toMatch(/canary\.ai for dep-1:0: on \[enabled\], variant (stable|exp) \(promptId=risk-/);
      const killed = JSON.parse(await fleet('flags', 'kill', 'canary.ai', '--json')) as { enabled: boolean };
      expect(killed.enabled).toBe(false);
      expect(await fleet('flags', 'history', 'canary.ai')).toMatch(/kill[\s\S]*set/);
      // The token is the coordinator's admin token: the built-in admin, named in every entry.
      expect((await audit.list()).map((e) => [e.action, e.actor, e.user, e.role, e.source])).toEqual([
        ['flag.kill', 'admin', 'admin', 'admin', '127.0.0.1'],
        ['flag.set', 'admin', 'admin', 'admin', '127.0.0.1'],
      ]);
      await expect(fleet('flags', 'set', 'canary.ai')).rejects.toThrow(/nothing to change/);
      await expect(fleet('flags', 'set', 'new.flag', '--rollout', '10')).rejects.toThrow(/enabled/);
    });
  });

  describe('flag-driven analyzer selection', () => {
    const ai = { baseURL: 'http://127.0.0.1:9/v1', apiKey: 'k', model: 'default-model' };
    const names = (dep: string, wave: number) => selectAnalyzers({ flags: store, ai }, dep, wave).analyzers.map((a) => a.name);

    it('runs hard gates and stat by default, the AI only when its flag is on', async () => {
      expect(names('dep-1', 0)).toEqual(['hard-gates', 'stat']);
      await store.set('canary.ai', { enabled: true }, 'ops');
      expect(names('dep-1', 0)).toEqual(['hard-gates', 'stat', 'ai']);
      await store.set('canary.stat', { enabled: false }, 'ops');
      expect(names('dep-1', 0)).toEqual(['hard-gates', 'ai']);
    });

    it('chooses the prompt and model per wave by variant, and one kill turns the AI off everywhere', async () => {
      await store.set('canary.ai', { enabled: true, variants: [
        { name: 'stable', weight: 1, payload: { promptId: 'risk-stable-v1' } },
        { name: 'exp', weight: 1, payload: { promptId: 'risk-experimental-v2', model: 'm2' } },
      ] }, 'ops');
      const picks = new Set<string>();
      for (let w = 0; w < 40; w++) {
        const sel = selectAnalyzers({ flags: store, ai }, `dep-${w}`, w % 4);
        const v = sel.flags.find((f) => f.name === 'canary.ai')!.variant!.name;
        picks.add(v);
        // Sticky: the same wave always gets the same variant.
        expect(selectAnalyzers({ flags: store, ai }, `dep-${w}`, w % 4).flags[1]!.variant!.name).toBe(v);
      }
      expect(picks).toEqual(new Set(['stable', 'exp']));
      await store.kill('canary.ai', 'ops');
      for (let w = 0; w < 10; w++) expect(names(`dep-${w}`, 0)).not.toContain('ai');
    });

    it('falls back to the safe defaults when the flag store cannot be read', () => {
      const broken = { evaluate: () => { throw new Error('database is locked'); } };
      expect(selectAnalyzers({ flags: broken, ai }, 'dep-1', 0).analyzers.map((a) => a.name)).toEqual(['hard-gates', 'stat']);
    });

    it('records an error (never a verdict) when the AI is on but no endpoint is configured', async () => {
      await store.set('canary.ai', { enabled: true }, 'ops');
      const sel = selectAnalyzers({ flags: store }, 'dep-1', 0);
      const aiAnalyzer = sel.analyzers.find((a) => a.name === 'ai')!;
      expect(aiAnalyzer.role).toBe('advisory');
      const out = await aiAnalyzer.analyze({} as never, { policy: {} as never, now: 0 });
      expect(out).toMatchObject({ ok: false, error: { code: 'ai-not-configured' } });
    });
  });
});

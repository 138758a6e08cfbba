/** The audit log, newest first, live: who did what to what, when, and why. */
import { href } from '../router.js';
import { useStore } from '../store.js';
import { ago, dateTime, who } from '../format.js';
import type { AuditRecord } from '../types.js';
import { Card, Empty, useTicker } from '../ui/common.js';

function subjectLink(e: AuditRecord): string | undefined {
  if (!e.subject) return undefined;
  if (e.action.startsWith('deployment') || e.action.startsWith('decision')) return href.deployment(e.subject);
  if (e.action.startsWith('devices.') && !e.subject.includes(' ')) return href.device(e.subject);
  if (e.action.startsWith('flag')) return href.flags;
  return undefined;
}

export function AuditList(props: { entries: AuditRecord[]; compact?: boolean }) {
  useTicker(10_000);
  if (props.entries.length === 0) return <Empty>Nothing recorded yet.</Empty>;
  return (
    <ul class={`audit ${props.compact ? 'compact' : ''}`}>
      {props.entries.map((e) => {
        const link = subjectLink(e);
        const reason = e.reason ?? (typeof e.detail['reason'] === 'string' ? e.detail['reason'] : undefined);
        return (
          <li key={e.id} data-action={e.action}>
            <span class="audit-when" title={dateTime(e.at)}>
              {ago(e.at)}
            </span>
            <span class="audit-what">
              <b title={e.source ? `from ${e.source}` : undefined}>{e.user ?? who(e.actor)}</b>
              {e.role ? <span class="muted small"> ({e.role})</span> : null} <span class="mono">{e.action}</span>{' '}
              {e.subject ? link ? <a href={link}>{e.subject}</a> : <span>{e.subject}</span> : null}
              {reason ? <span class="reason">“{reason}”</span> : null}
            </span>
          </li>
        );
      })}
    </ul>
  );
}

export function AuditPage() {
  const s = useStore();
  return (
    <div class="page">
      <h1>Audit log</h1>
      <Card>
        <AuditList entries={s.audit} />
      </Card>
    </div>
  );
}

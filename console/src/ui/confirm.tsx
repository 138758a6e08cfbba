/**
 * The confirmation every action goes through: what will happen, a reason (required: it goes into the
 * audit log with the operator's name), and the server's answer — an error stays in the dialog.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ErrorBox } from './common.js';

export interface PendingAction {
  title: string;
  /** What happens, in words. */
  body: ComponentChildren;
  confirm: string;
  danger?: boolean;
  run: (reason: string) => Promise<unknown>;
}

export function ConfirmDialog(props: { action: PendingAction | null; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const a = props.action;

  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (a && !d.open) {
      setReason('');
      setError(undefined);
      setBusy(false);
      d.showModal();
    } else if (!a && d.open) d.close();
  }, [a]);

  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    if (!a || !reason.trim()) return;
    setBusy(true);
    setError(undefined);
    try {
      await a.run(reason.trim());
      props.onClose();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  return (
    <dialog ref={ref} class="confirm" onClose={props.onClose} aria-labelledby="confirm-title">
      {a ? (
        <form method="dialog" onSubmit={(e) => void submit(e)}>
          <h2 id="confirm-title">{a.title}</h2>
          <div class="confirm-body">{a.body}</div>
          <label class="field">
            <span>Reason (recorded in the audit log)</span>
            <textarea
              name="reason"
              required
              maxLength={500}
              rows={3}
              value={reason}
              onInput={(e) => setReason((e.target as HTMLTextAreaElement).value)}
              placeholder="Why?"
            />
          </label>
          {error !== undefined ? <ErrorBox error={error} /> : null}
          <div class="confirm-buttons">
            <button type="button" class="btn" onClick={props.onClose} disabled={busy}>
              Cancel
            </button>
            <button type="submit" class={`btn ${a.danger ? 'danger' : 'primary'}`} disabled={busy || !reason.trim()}>
              {busy ? 'Working…' : a.confirm}
            </button>
          </div>
        </form>
      ) : null}
    </dialog>
  );
}

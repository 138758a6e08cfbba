/**
 * Before an offline-signed manifest is accepted: is its artifact URL one devices can download from?
 * The coordinator's own `/artifacts/<sha256>` URL always is (it serves the uploaded image there); any
 * other URL gets one HEAD request, and must answer 2xx with the manifest's size (when it says a size).
 * A manifest signed with a placeholder such as `https://updates.example.com/…` would otherwise be
 * accepted, and every device would then fail to download it for minutes. I/O shell (fetch).
 */
import { errorMessage } from '@fleet/protocol/errors';

/** Says what is wrong with `url` as a download of `size` bytes, or undefined when it serves them. */
export type ArtifactUrlCheck = (url: string, size: number) => Promise<string | undefined>;

/** The default check: a HEAD request with a timeout (default 5 s). */
export function headCheck(timeoutMs = 5_000): ArtifactUrlCheck {
  return async (url, size) => {
    let res: Response;
    try {
      res = await fetch(url, { method: 'HEAD', redirect: 'follow', signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      return `it did not answer (${cause?.code ?? cause?.message ?? errorMessage(err)})`;
    }
    // A server that refuses HEAD may still serve GET: nothing to conclude from that.
    if (res.status === 405 || res.status === 501) return undefined;
    if (!res.ok) return `it answered ${res.status} ${res.statusText}`.trimEnd();
    const length = res.headers.get('content-length');
    if (length !== null && Number(length) !== size) return `it serves ${length} bytes, the manifest says ${size}`;
    return undefined;
  };
}

/**
 * Downloads whose every byte this agent process hashed as it wrote them, with that streaming sha256
 * equal to the signed one: the verifying stage need not read such a file again. Kept in memory only,
 * never with the state on disk — after a restart nothing says the file is still what was streamed, so
 * it is hashed as it always was. Resumed downloads (their first bytes were read back from disk, perhaps
 * written before a power loss) are never recorded either. The slot's read-back against the signed sha256
 * still checks what is installed. Not pure: a small in-memory record owned by the agent's shell.
 */
import type { Artifact } from './agent-state.js';
import type { DownloadOutcome } from './downloader.js';

export class StreamedDownloads {
  /** By the download's path: the size and sha256 it was streamed with. */
  private readonly whole = new Map<string, { size: number; sha256: string }>();

  /**
   * Records a finished download when it provably holds the signed image: fetched from its first byte
   * in this process (`resumedFrom` 0) and its streaming digest and size equal to the artifact's.
   */
  record(path: string, artifact: Artifact, outcome: DownloadOutcome): void {
    this.whole.delete(path);
    if (!outcome.ok || outcome.resumedFrom !== 0) return;
    if (outcome.size !== artifact.size || outcome.sha256 !== artifact.sha256) return;
    this.whole.set(path, { size: outcome.size, sha256: outcome.sha256 });
  }

  /** Whether `path` was streamed whole with the artifact's size and sha256; forgets it either way. */
  take(path: string, artifact: Artifact): boolean {
    const streamed = this.whole.get(path);
    this.whole.delete(path);
    return streamed !== undefined && streamed.size === artifact.size && streamed.sha256 === artifact.sha256;
  }

  /** The file at `path` is being replaced or deleted: what was streamed into it no longer counts. */
  forget(path: string): void {
    this.whole.delete(path);
  }
}

import type { Locker } from '@tus/utils';
import type { DocStore } from '../storage/json-dir.js';
import { withLocks } from '../tus/locks.js';
import { KeyedSerializer } from '../storage/serial.js';

export type SessionStatus = 'pending' | 'in_progress' | 'completed' | 'failed' | 'cancelled';

/**
 * What the legacy API knows about a session beyond its upload in the store: the chunk grid, which
 * chunks have been accepted, and the legacy status. Timestamps are ISO strings with `Z`; responses
 * render them the legacy (naive) way.
 */
export interface LegacySession {
  session_id: string;
  user_id: string;
  filename: string;
  file_size: number;
  chunk_size: number;
  total_chunks: number;
  /** The whole-file SHA-256 declared at initiate, as the client sent it. */
  file_hash: string | null;
  mime_type: string;
  status: SessionStatus;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
  /** Accepted chunks (verified and on disk: staged or already in the store), sorted. */
  uploaded_chunks: number[];
  metadata: Record<string, unknown>;
}

export const ACTIVE: readonly SessionStatus[] = ['pending', 'in_progress'];

export function expectedChunkSize(session: LegacySession, chunk: number): number {
  return chunk === session.total_chunks - 1 ? session.file_size - (session.total_chunks - 1) * session.chunk_size : session.chunk_size;
}

export function remainingChunks(session: LegacySession): number[] {
  const uploaded = new Set(session.uploaded_chunks);
  const remaining: number[] = [];
  for (let chunk = 0; chunk < session.total_chunks; chunk++) if (!uploaded.has(chunk)) remaining.push(chunk);
  return remaining;
}

export function progressPercent(session: LegacySession): number {
  return (session.uploaded_chunks.length / session.total_chunks) * 100;
}

export function withChunks(session: LegacySession, chunks: Iterable<number>): LegacySession {
  const merged = new Set(session.uploaded_chunks);
  for (const chunk of chunks) merged.add(chunk);
  return { ...session, uploaded_chunks: [...merged].sort((a, b) => a - b) };
}

/**
 * Session documents (atomic JSON files, or Redis). Every change goes through `update`, which runs the
 * changes of one session one after another: parallel chunk requests of a session each read, change
 * and write its document, and must not overwrite each other's additions. With `locker` (several
 * processes) each change also holds the session's lock there, so processes take turns too.
 */
export class SessionStore {
  private readonly queue = new KeyedSerializer();

  constructor(
    private readonly docs: DocStore<LegacySession>,
    private readonly locker?: Locker,
  ) {}

  init(): Promise<void> {
    return this.docs.init();
  }

  get(id: string): Promise<LegacySession | undefined> {
    return this.docs.get(id);
  }

  create(session: LegacySession): Promise<void> {
    return this.serialize(session.session_id, () => this.docs.set(session.session_id, session));
  }

  /**
   * Applies `change` to the current document; it returns the new document, or undefined to leave
   * it as it is. Resolves to what `change` returned, with the document it saw.
   */
  update<T>(id: string, change: (session: LegacySession | undefined) => Promise<{ save?: LegacySession; result: T }> | { save?: LegacySession; result: T }): Promise<T> {
    return this.serialize(id, async () => {
      const current = await this.docs.get(id);
      const { save, result } = await change(current);
      if (save) await this.docs.set(id, save);
      return result;
    });
  }

  delete(id: string): Promise<void> {
    return this.serialize(id, () => this.docs.delete(id));
  }

  /** Deletes the document if `condition` holds for it, in turn with `update`s of it. */
  deleteIf(id: string, condition: (session: LegacySession) => boolean): Promise<void> {
    return this.serialize(id, async () => {
      const current = await this.docs.get(id);
      if (current && condition(current)) await this.docs.delete(id);
    });
  }

  async all(): Promise<LegacySession[]> {
    const sessions = await Promise.all((await this.docs.keys()).map((id) => this.docs.get(id)));
    return sessions.filter((session): session is LegacySession => session !== undefined);
  }

  private serialize<T>(id: string, task: () => Promise<T>): Promise<T> {
    const locker = this.locker;
    return this.queue.run(id, locker ? () => withLocks(locker, [`session-${id}`], task) : task);
  }
}

import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import { Upload, type Locker } from '@tus/utils';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { reprDigest } from '../uploads/digest.js';
import type { UploadEvents } from '../uploads/events.js';
import type { PreCreateHook } from '../hooks/pre-create.js';
import { admitUpload } from '../uploads/policy.js';
import type { Quota } from '../uploads/quota.js';
import type { RequestContext } from '../uploads/request-context.js';
import type { Tombstones } from '../uploads/tombstones.js';
import type { VerifyingStore } from '../uploads/verifying-store.js';
import { appendReady, withUploadLock } from './assembly.js';
import { accessDenied, LegacyError, notFound, validationError } from './errors.js';
import { discardRest, readChunkForm, type ChunkSink } from './multipart.js';
import {
  ACTIVE,
  expectedChunkSize,
  remainingChunks,
  SessionStore,
  withChunks,
  type LegacySession,
} from './sessions.js';
import { isSessionId, Staging } from './staging.js';
import type { InitiateRequest, CompleteRequest } from './validation.js';

export interface LegacyDeps {
  config: Config;
  store: VerifyingStore;
  locker: Locker;
  quota: Quota;
  events: UploadEvents;
  logger: Logger;
  preCreate?: PreCreateHook;
  /** Session documents: in DATA_DIR, or shared in Redis. */
  sessions: SessionStore;
  /** What is left of ended uploads: tells an expired session from one that never was. */
  tombstones: Tombstones;
}

/**
 * A session's chunk list is kept in its document and returned in full by every chunk and status
 * response; a tiny chunk size on a large file would make those lists (and each document write)
 * enormous, so the chunk count is bounded. At the default limits (100 MB, 1 MiB chunks) a session
 * has 96 chunks.
 */
export const MAX_TOTAL_CHUNKS = 10_000;

const HEX_SHA256 = /^[0-9a-fA-F]{64}$/;
const isStoreGone = (error: unknown) => (error as { status_code?: number } | null)?.status_code === 404;

/** The legacy session's operations, on the shared store; HTTP stays in router.ts. */
export class LegacyService {
  readonly sessions: SessionStore;
  readonly staging: Staging;
  private readonly expiryMs: number;

  constructor(private readonly deps: LegacyDeps) {
    const root = path.resolve(deps.config.DATA_DIR, 'legacy');
    this.sessions = deps.sessions;
    this.staging = new Staging(path.join(root, 'staging'));
    this.expiryMs = deps.config.UPLOAD_EXPIRY_SECONDS * 1000;
  }

  async init(): Promise<void> {
    await this.sessions.init();
    await this.staging.init();
    const { events, logger } = this.deps;
    const log = (error: unknown) => logger.error({ err: error }, 'legacy session bookkeeping failed');
    // The periodic sweep removed an expired upload: its session and staged chunks go with it. A
    // session this facade ended itself (cancelled when a chunk came after its expiry) is kept, as
    // the original kept it.
    events.on('expired', (record) => {
      if (record.origin !== 'legacy' || !isSessionId(record.id)) return;
      const removeSession = this.sessions.deleteIf(record.id, (session) => ACTIVE.includes(session.status));
      void Promise.all([removeSession, this.staging.removeSession(record.id)]).catch(log);
    });
    // Terminated through the tus door (its owner may use both): the session can no longer finish, or
    // its file is gone. Its status says so by the time the termination is answered.
    this.deps.store.whenTerminated(async (record) => {
      if (record.origin !== 'legacy' || !isSessionId(record.id)) return;
      try {
        const cancelled = await this.sessions.update(record.id, (session) => {
          if (!session || !(ACTIVE.includes(session.status) || session.status === 'completed')) return { result: false };
          return { save: { ...session, status: 'cancelled', updated_at: new Date().toISOString() }, result: true };
        });
        if (cancelled) await this.staging.removeSession(record.id);
      } catch (error) {
        log(error);
      }
    });
  }

  // ---- initiate ------------------------------------------------------------------------------

  /** Legacy matching is exact and case-sensitive; `type/*` entries of the list match any subtype. */
  private mimeAllowed(type: string): boolean {
    return this.deps.config.ALLOWED_MIME_TYPES.some((entry) => {
      if (!entry.endsWith('/*')) return entry === type;
      return type.startsWith(entry.slice(0, -1)) && /^[^\s;/*]+\/[^\s;/*]+$/.test(type);
    });
  }

  /** @param clientGone whether the client has closed its connection */
  async initiate(user: string, requestId: string, request: InitiateRequest, clientGone?: () => boolean) {
    const { config, quota, store } = this.deps;
    if (request.file_size > config.MAX_FILE_SIZE) {
      throw new LegacyError(413, `File size ${request.file_size} exceeds maximum allowed size of ${config.MAX_FILE_SIZE} bytes`);
    }
    if (!this.mimeAllowed(request.mime_type)) throw new LegacyError(400, `MIME type ${request.mime_type} is not allowed`);
    const totalChunks = Math.ceil(request.file_size / request.chunk_size);
    if (totalChunks > MAX_TOTAL_CHUNKS) {
      const least = Math.ceil(request.file_size / MAX_TOTAL_CHUNKS);
      throw validationError([
        {
          loc: ['body', 'chunk_size'],
          msg: `ensure this value is greater than or equal to ${least}`,
          type: 'value_error.number.not_ge',
          ctx: { limit_value: least },
        },
      ]);
    }

    const id = randomUUID();
    const verdict = await admitUpload(
      {
        user,
        uploadId: id,
        declaredType: request.mime_type,
        sha256: undefined,
        origin: 'legacy',
        length: request.file_size,
        metadata: { filename: request.filename, filetype: request.mime_type },
        clientGone,
      },
      { allowedTypes: config.ALLOWED_MIME_TYPES, preCreate: this.deps.preCreate },
      quota,
    );
    if (!verdict.ok) {
      const headers: Record<string, string> = verdict.retryAfterSeconds ? { 'Retry-After': String(verdict.retryAfterSeconds) } : {};
      throw new LegacyError(verdict.error.status_code, verdict.error.body.trim(), headers);
    }

    const now = new Date();
    const session: LegacySession = {
      session_id: id,
      user_id: user,
      filename: request.filename,
      file_size: request.file_size,
      chunk_size: request.chunk_size,
      total_chunks: totalChunks,
      file_hash: request.file_hash,
      mime_type: request.mime_type,
      status: 'pending',
      created_at: now.toISOString(),
      updated_at: now.toISOString(),
      completed_at: null,
      uploaded_chunks: [],
      metadata: request.metadata,
    };
    const context: RequestContext = { requestId, user, origin: 'legacy', uploadId: id, responseHeaders: {} };
    try {
      // The whole-file hash is not given to the store here: it is checked when the client calls
      // complete (which may bring another one), through store.confirm.
      const upload = new Upload({
        id,
        size: request.file_size,
        offset: 0,
        metadata: { filename: request.filename, filetype: request.mime_type },
      });
      await store.contexts.during(id, context, () => store.create(upload));
      await this.sessions.create(session);
    } catch (error) {
      await quota.release(user, id);
      await store.remove(id).catch(() => undefined);
      throw error;
    }
    return { session, expiresAt: new Date(now.getTime() + this.expiryMs) };
  }

  // ---- lookups -------------------------------------------------------------------------------

  /** The session, if `user` owns it: 404 "Upload session not found" / 403 "Access denied" otherwise. */
  async owned(id: string, user: string): Promise<LegacySession> {
    const session = isSessionId(id) ? await this.sessions.get(id) : undefined;
    if (!session) throw notFound();
    if (session.user_id !== user) throw accessDenied();
    return session;
  }

  /**
   * The answer for a session whose document is gone. The sweep deletes an expired session, but its
   * owner's next chunk is still an expired session's, 410 as before the sweep, for as long as the
   * upload's tombstone is kept. Anyone else, a session the admin cleanup removed, or one that never
   * was or failed, gets 404.
   */
  private async missing(id: string, user: string): Promise<LegacyError> {
    const tombstone = isSessionId(id) ? await this.deps.tombstones.get(id) : undefined;
    const { record, state } = tombstone ?? {};
    if (state === 'expired' && record?.origin === 'legacy' && record.owner === user) {
      return new LegacyError(410, `Upload session ${id} has expired`);
    }
    return notFound();
  }

  private isExpired(session: LegacySession, now = Date.now()): boolean {
    return Date.parse(session.updated_at) + this.expiryMs < now;
  }

  private notActive(session: LegacySession): LegacyError {
    return new LegacyError(400, `Upload session ${session.session_id} is not active (status: ${session.status})`);
  }

  /**
   * An expired (or vanished) upload touched by a client: the session becomes `cancelled`, as in
   * the original, and its upload and staged chunks are removed at once rather than at the sweep.
   */
  private expire(id: string): Promise<LegacyError> {
    return withUploadLock(this.deps.locker, id, () => this.expireLocked(id));
  }

  // ---- chunks --------------------------------------------------------------------------------

  /**
   * Appends what is ready (under the upload's lock) and records in the session every chunk the
   * store now holds: after a crash between staging a chunk and recording it, the chunk may have
   * reached the store without being listed.
   */
  private async advance(session: LegacySession, justStaged?: number): Promise<LegacySession> {
    const { locker, store } = this.deps;
    const id = session.session_id;
    const { appended } = await withUploadLock(locker, id, async () => {
      const result = await appendReady(store, this.staging, session);
      // A chunk that waits in staging is a write all the same: it keeps the upload from expiring.
      if (justStaged !== undefined && !result.appended.includes(justStaged)) await store.touch(id);
      return result;
    });
    return this.sessions.update(id, (current) => {
      if (!current) return { result: session };
      const known = new Set(current.uploaded_chunks);
      const unlisted = appended.filter((chunk) => !known.has(chunk));
      if (unlisted.length === 0) return { result: current };
      const next = withChunks(current, unlisted);
      if (next.status === 'pending') next.status = 'in_progress';
      return { save: next, result: next };
    });
  }

  async uploadChunk(user: string, id: string, chunk: { value: number; text: string }, req: IncomingMessage) {
    const session = isSessionId(id) ? await this.sessions.get(id) : undefined;
    // The original validated the form (422) before looking at the session, so the refusal is
    // decided here and given only once the form has been read.
    let refusal: (() => Promise<LegacyError>) | undefined;
    let duplicate = false;
    if (!session) refusal = () => this.missing(id, user);
    else if (session.user_id !== user) refusal = async () => accessDenied();
    else if (ACTIVE.includes(session.status) && this.isExpired(session)) refusal = () => this.expire(id);
    else if (!ACTIVE.includes(session.status)) refusal = async () => this.notActive(session);
    else if (chunk.value < 0 || chunk.value >= session.total_chunks) {
      refusal = async () => new LegacyError(400, `Invalid chunk number ${chunk.text}. Expected 0-${session.total_chunks - 1}`);
    } else if (session.uploaded_chunks.includes(chunk.value)) duplicate = true;

    const n = chunk.value;
    const sink: ChunkSink =
      refusal || duplicate || !session
        ? { kind: 'discard' }
        : { kind: 'stage', file: await this.staging.temporaryPath(id, n), expectedSize: expectedChunkSize(session, n) };
    let promoted = false;
    try {
      let body;
      try {
        body = await readChunkForm(req, sink, this.deps.config.MAX_CHUNK_SIZE);
      } finally {
        // Whatever the answer, a client still sending gets to finish and read it.
        discardRest(req, this.deps.config.MAX_CHUNK_SIZE);
      }
      if (refusal) throw await refusal();
      if (duplicate || sink.kind === 'discard') return { session: session!, chunk: n, status: 'already_exists' as const };

      // In the original's order: the hash of what was sent, then its size.
      const expected = sink.expectedSize;
      // Compared as sent, but for the case of its hex digits (no spaces trimmed, as the original).
      const given = body.chunkHash?.toLowerCase();
      if (given && given !== body.sha256) {
        // Counted as a tus PATCH whose Upload-Checksum differs: one request's bytes refused.
        const record = await this.deps.store.records.get(id).catch(() => undefined);
        if (record) this.deps.events.emit('rejected', record, 'checksum');
        throw new LegacyError(400, `Chunk hash mismatch for chunk ${n}`);
      }
      if (body.size !== expected) {
        throw new LegacyError(400, `Invalid chunk size for chunk ${n}. Expected ${expected}, got ${body.size}`);
      }

      type Recorded = { error: LegacyError } | { session: LegacySession; status: 'uploaded' | 'already_exists' };
      const recorded = await this.sessions.update<Recorded>(id, async (current) => {
        if (!current) return { result: { error: await this.missing(id, user) } };
        if (!ACTIVE.includes(current.status)) return { result: { error: this.notActive(current) } };
        if (current.uploaded_chunks.includes(n)) return { result: { session: current, status: 'already_exists' } };
        // Staged before it is listed: a listed chunk is always on disk.
        await this.staging.promote(sink.file, id, n);
        promoted = true;
        const next: LegacySession = { ...withChunks(current, [n]), status: 'in_progress', updated_at: new Date().toISOString() };
        return { save: next, result: { session: next, status: 'uploaded' } };
      });
      if ('error' in recorded) throw recorded.error;
      if (recorded.status === 'already_exists') return { session: recorded.session, chunk: n, status: recorded.status };
      try {
        const latest = await this.advance(recorded.session, n);
        return { session: latest, chunk: n, status: 'uploaded' as const };
      } catch (error) {
        if (isStoreGone(error)) throw await this.expire(id);
        throw error;
      }
    } finally {
      if (sink.kind === 'stage' && !promoted) await this.staging.discard(sink.file);
    }
  }

  // ---- complete ------------------------------------------------------------------------------

  async complete(user: string, id: string, request: CompleteRequest, context: RequestContext) {
    const { locker, store } = this.deps;
    await this.owned(id, user);
    return withUploadLock(locker, id, async () => {
      // Read under the lock: a DELETE or another complete may have finished meanwhile.
      const session = await this.owned(id, user);
      if (session.status !== 'in_progress') throw new LegacyError(400, `Upload session ${id} is not in progress`);
      const missing = remainingChunks(session);
      if (missing.length > 0) throw new LegacyError(400, `Missing chunks: [${missing.join(', ')}]`);

      let appended;
      try {
        appended = await appendReady(store, this.staging, session);
      } catch (error) {
        if (isStoreGone(error)) throw await this.expireLocked(id);
        throw error;
      }
      if (appended.offset < session.file_size) {
        // A listed chunk is neither staged nor stored (its staged file was lost): unlist what is
        // not on disk, so the client sends it again.
        const onDisk = new Set([...appended.appended, ...(await this.staging.staged(id))]);
        const lost = session.uploaded_chunks.filter((chunk) => !onDisk.has(chunk));
        this.deps.logger.warn({ uploadId: id, lost }, 'legacy chunks listed but not on disk');
        const updated = await this.sessions.update(id, (current) => {
          if (!current) return { result: session };
          const next = { ...current, uploaded_chunks: current.uploaded_chunks.filter((chunk) => onDisk.has(chunk)) };
          return { save: next, result: next };
        });
        throw new LegacyError(400, `Missing chunks: [${remainingChunks(updated).join(', ')}]`);
      }

      // Hex in either case, exactly: anything else (spaces, base64) differs, as it did in the original.
      const declared = request.file_hash || session.file_hash || undefined;
      const expected = declared && HEX_SHA256.test(declared) ? declared.toLowerCase() : declared;
      let record;
      try {
        record = await store.contexts.during(id, context, () => store.confirm(id, expected));
      } catch (error) {
        const status = (error as { status_code?: number }).status_code;
        if (status === 460) throw new LegacyError(400, 'Final file hash mismatch');
        if (status === 415 || status === 422) {
          // The store removed the upload: bytes that are not what they claim (415), or media past
          // the configured limits (422), are never served.
          await this.sessions.update(id, (current) =>
            current ? { save: { ...current, status: 'failed', updated_at: new Date().toISOString() }, result: undefined } : { result: undefined },
          );
          await this.staging.removeSession(id);
          throw new LegacyError(status, String((error as { body?: string }).body ?? 'Unsupported Media Type').trim());
        }
        if (isStoreGone(error)) throw await this.expireLocked(id);
        throw error;
      }

      context.responseHeaders['Repr-Digest'] = reprDigest(record.sha256!);
      const completedAt = record.completedAt ?? new Date().toISOString();
      const completed = await this.sessions.update(id, (current) => {
        const next: LegacySession = { ...(current ?? session), status: 'completed', completed_at: completedAt, updated_at: completedAt };
        return { save: next, result: next };
      });
      await this.staging.removeSession(id);
      return completed;
    });
  }

  /** `expire` for a caller that already holds the upload's lock. */
  private async expireLocked(id: string): Promise<LegacyError> {
    const ended = await this.sessions.update(id, (session) => {
      if (!session) return { result: undefined };
      // Cancelled (or finished) while the request ran: that, not an expiry, is why its upload is gone.
      if (!ACTIVE.includes(session.status)) return { result: this.notActive(session) };
      return { save: { ...session, status: 'cancelled' }, result: undefined };
    });
    if (ended) {
      await this.staging.removeSession(id);
      return ended;
    }
    await this.deps.store.removeExpired(id).catch(() => undefined);
    await this.staging.removeSession(id);
    return new LegacyError(410, `Upload session ${id} has expired`);
  }

  // ---- cancel and cleanup --------------------------------------------------------------------

  /**
   * Cancels (idempotently). The session is kept as `cancelled`; an incomplete upload is removed
   * from the store, while a completed file stays served, as the original kept its final file.
   */
  async cancel(user: string, id: string): Promise<void> {
    await this.owned(id, user);
    const { locker, store } = this.deps;
    await withUploadLock(locker, id, async () => {
      await this.sessions.update(id, (session) =>
        session ? { save: { ...session, status: 'cancelled', updated_at: new Date().toISOString() }, result: undefined } : { result: undefined },
      );
      const record = await store.records.get(id);
      if (record && record.state !== 'complete') await store.remove(id).catch(() => undefined);
      await this.staging.removeSession(id);
    });
  }

  /**
   * Removes expired pending and in-progress sessions outright (their uploads, staged chunks and
   * tombstones): a later chunk is then the original's "not found", 404.
   */
  async cleanupExpired(): Promise<number> {
    const { locker, store } = this.deps;
    let removed = 0;
    const now = Date.now();
    for (const candidate of await this.sessions.all()) {
      if (!ACTIVE.includes(candidate.status) || !this.isExpired(candidate, now)) continue;
      const id = candidate.session_id;
      const gone = await withUploadLock(locker, id, async () => {
        const session = await this.sessions.get(id);
        if (!session || !ACTIVE.includes(session.status) || !this.isExpired(session, now)) return false;
        await store.removeExpired(id, { tombstone: false }).catch(() => undefined);
        // The sweep may have removed the upload already, and left its tombstone.
        await this.deps.tombstones.remove(id).catch(() => undefined);
        await this.staging.removeSession(id);
        await this.sessions.delete(id);
        return true;
      });
      if (gone) removed++;
    }
    return removed;
  }

  async status(user: string, id: string): Promise<LegacySession> {
    return this.owned(id, user);
  }
}

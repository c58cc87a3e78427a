import { ERRORS, Metadata, StreamLimiter, Uid, Upload } from '@tus/utils';
import type { NextFunction, Request, Response } from 'express';
import { ownChunk } from '../storage/chunk-release.js';
import { baseType } from '../uploads/content-type.js';
import { reprDigest } from '../uploads/digest.js';
import { admitUpload, type CreationDeps } from '../uploads/policy.js';
import type { UploadRecord } from '../uploads/records.js';
import type { RequestContext } from '../uploads/request-context.js';
import { declaredTypeOf, type HttpError } from '../uploads/verifying-store.js';
import { bodyChecksum, digestOf, dispositionFilename, Draft, informational, integerField } from './ietf-fields.js';
import { withLocks } from './locks.js';
import { Problem } from './problem.js';
import { uploadUrl } from './urls.js';

/**
 * "Resumable Uploads for HTTP" (draft-ietf-httpbis-resumable-upload), on the same uploads, auth,
 * ownership, limits and verification as tus. A request speaks it by carrying
 * `Upload-Draft-Interop-Version`; the versions differ little:
 *
 *   3 (draft -01): completeness is `Upload-Incomplete` (inverted), not `Upload-Complete`
 *   4 (draft -02), 5 (draft -03, tus-js-client `ietf-draft-03`): `Upload-Complete`
 *   6 (drafts -04, -05, tus-js-client `ietf-draft-05`, tusd): appends need
 *     `Content-Type: application/partial-upload`; `Upload-Limit` with `expires`
 *   7 (drafts -06 to -08): `Upload-Limit` says `max-age`; an append must carry `Upload-Complete`
 *
 * As in tusd, an upload whose length is known completes when its last byte arrives; the draft's
 * explicit completion is honoured for uploads of unknown length (their length is then the offset).
 */
export const INTEROP_VERSIONS = [3, 4, 5, 6, 7] as const;

const PARTIAL_UPLOAD = 'application/partial-upload';

/**
 * The request body on its way to the store, limited to `room` bytes. `stop()` ends it where it is,
 * so that the bytes received so far are kept: a newer request for the upload (the client resuming
 * after a dropped connection) asks for the lock, and the draft lets the server end the old one.
 */
class Body {
  readonly stream: StreamLimiter;
  private overflow = false;
  private interrupt = false;

  constructor(private readonly req: Request, room: number) {
    this.stream = new StreamLimiter(room);
    this.stream.once('error', (error: Partial<HttpError>) => (this.overflow = error.status_code === 413));
    req.on('data', ownChunk);
    req.pipe(this.stream);
    req.once('close', () => this.stop());
  }

  get overflowed(): boolean {
    return this.overflow;
  }

  /** Whether the server ended the body early because another request asked for the upload. */
  get interrupted(): boolean {
    return this.interrupt;
  }

  /** Whether the whole body arrived (not cut short by the client going away, or by `yieldLock`). */
  get arrived(): boolean {
    return this.req.complete && !this.interrupt;
  }

  /** Ends the body where it is, for another request that asks for the upload's lock. */
  yieldLock(): void {
    if (!this.req.complete) this.interrupt = true;
    this.stop();
  }

  stop(): void {
    this.req.unpipe(this.stream);
    if (!this.stream.writableEnded && !this.stream.destroyed) this.stream.end();
  }
}

/** The IETF draft handler: answers requests with `Upload-Draft-Interop-Version`, passes others on. */
export function ietfDraft(options: CreationDeps) {
  const { store, locker, quota, maxFileSize } = options;

  /** Appends the body at `offset`; `complete` ends the upload with it. Returns the new offset. */
  async function append(req: Request, id: string, offset: number, size: number | undefined, complete: boolean, body: { current?: Body }): Promise<number> {
    const current = new Body(req, (size ?? maxFileSize) - offset);
    body.current = current;
    let offsetAfter: number;
    try {
      offsetAfter = await store.write(current.stream, id, offset);
    } catch (error) {
      if (current.overflowed && size !== undefined) {
        throw new Problem(400, `the request carries more than the upload's ${size} bytes`, 'inconsistent-upload-length');
      }
      throw error;
    }
    // A body cut short completes nothing: where it ended is not where the client said the upload ends.
    if (complete && !current.arrived) {
      throw new Problem(400, current.interrupted
        ? `the append was stopped at offset ${offsetAfter}: another request for the upload arrived`
        : `the request ended at offset ${offsetAfter} before its body did`);
    }
    if (complete && size === undefined) await store.completeAtOffset(id);
    else if (complete && offsetAfter !== size) {
      throw new Problem(400, `the upload was marked complete at ${offsetAfter} of its ${size} bytes`, 'inconsistent-upload-length');
    }
    return offsetAfter;
  }

  async function create(req: Request, res: Response, context: RequestContext, draft: Draft): Promise<void> {
    const complete = draft.complete(req);
    if (complete === undefined) throw new Problem(400, 'a resumable upload creation says whether it is complete (Upload-Complete: ?0 or ?1)');
    if (req.get('upload-offset') !== undefined) throw new Problem(400, 'an upload creation carries no Upload-Offset');
    let size = integerField(req.get('upload-length'), 'Upload-Length');
    const contentLength = integerField(req.get('content-length'), 'Content-Length');
    if (complete && contentLength !== undefined) {
      if (size !== undefined && size !== contentLength) {
        throw new Problem(400, `Upload-Length ${size} and Content-Length ${contentLength} of a complete upload differ`, 'inconsistent-upload-length');
      }
      size = contentLength;
    }
    if (size !== undefined && size > maxFileSize) throw new Problem(413, `the upload's ${size} bytes exceed the maximum of ${maxFileSize}`);
    const checksum = bodyChecksum(req);

    // Representation metadata of the request stands in for tus metadata the client did not send.
    let metadata: Record<string, string | null> = {};
    try {
      const header = req.get('upload-metadata');
      if (header !== undefined) metadata = Metadata.parse(header);
    } catch {
      throw new Problem(400, 'Upload-Metadata must be comma-separated "key base64value" pairs with unique keys');
    }
    const contentType = req.get('content-type') && baseType(req.get('content-type')!);
    if (!declaredTypeOf(metadata) && contentType && contentType !== PARTIAL_UPLOAD && contentType !== 'application/offset+octet-stream') {
      metadata.filetype = req.get('content-type')!;
    }
    const filename = dispositionFilename(req.get('content-disposition'));
    if (!metadata.filename && !metadata.name && filename) metadata.filename = filename;
    const reprDigest = /(?:^|,)\s*sha-256=:([A-Za-z0-9+/]+=*):/.exec(req.get('repr-digest') ?? '');
    if (!metadata.sha256 && reprDigest) metadata.sha256 = reprDigest[1]!;

    const id = Uid.rand();
    const verdict = await admitUpload(
      { user: context.user!, uploadId: id, declaredType: declaredTypeOf(metadata), sha256: metadata.sha256, length: size, metadata, clientGone: () => req.socket.destroyed },
      options,
      quota,
    );
    if (!verdict.ok) {
      throw Problem.from(verdict.error, verdict.retryAfterSeconds ? { 'Retry-After': String(verdict.retryAfterSeconds) } : {});
    }
    // Not `admitted`: that marks a tus creation, whose refused first bytes leave nothing behind.
    // Here the client has the upload's URL from the 104 and may resume it.
    Object.assign(context, { uploadId: id, checksum });
    const location = uploadUrl(req, id);
    const body: { current?: Body } = {};
    let offset: number;
    try {
      offset = await withLocks(
        store.contexts.lockerFor(locker, context),
        [id],
        async () => {
          await store.create(new Upload({ id, size, offset: 0, metadata }));
          informational(res, { Location: location, 'Upload-Draft-Interop-Version': String(draft.version), ...draft.limit(maxFileSize) });
          return append(req, id, 0, size, complete, body);
        },
        () => body.current?.yieldLock(),
      );
    } catch (error) {
      if (!(await store.records.get(id))) await quota.release(context.user!, id);
      throw error;
    }
    const record = await store.records.get(id);
    res
      .status(201)
      .set({
        ...digestOf(context),
        Location: location,
        'Upload-Offset': String(offset),
        ...draft.completeness(record?.state === 'complete'),
        ...draft.limit(maxFileSize, record && store.expiresAt(record)),
      })
      .end();
  }

  async function retrieveOffset(req: Request, res: Response, draft: Draft, id: string): Promise<void> {
    if (req.get('upload-offset') !== undefined || req.get('upload-length') !== undefined || draft.hasCompleteness(req)) {
      throw new Problem(400, 'an offset retrieval carries no Upload-Offset, Upload-Complete or Upload-Length');
    }
    // Taking the lock ends an append still running for the upload (the client has given up on it).
    const upload = await withLocks(locker, [id], () => store.getUpload(id));
    const record = await activeRecord(id);
    res
      .status(204)
      .set({
        'Upload-Offset': String(upload.offset),
        ...draft.completeness(record.state === 'complete'),
        ...(upload.size !== undefined ? { 'Upload-Length': String(upload.size) } : {}),
        ...draft.limit(maxFileSize, record && store.expiresAt(record)),
        ...(record.state === 'complete' && record.sha256 ? { 'Repr-Digest': reprDigest(record.sha256) } : {}),
        'Cache-Control': 'no-store',
      })
      .end();
  }

  async function appendTo(req: Request, res: Response, context: RequestContext, draft: Draft, id: string): Promise<void> {
    if (draft.version >= 6 && baseType(req.get('content-type') ?? '') !== PARTIAL_UPLOAD) {
      throw new Problem(415, `an append needs Content-Type: ${PARTIAL_UPLOAD}`);
    }
    const offset = integerField(req.get('upload-offset'), 'Upload-Offset');
    if (offset === undefined) throw new Problem(400, 'an append needs Upload-Offset');
    let complete = draft.complete(req);
    if (complete === undefined && draft.version >= 7) throw new Problem(400, 'an append says whether it completes the upload (Upload-Complete)');
    complete ??= false;
    const declared = integerField(req.get('upload-length'), 'Upload-Length');
    const contentLength = integerField(req.get('content-length'), 'Content-Length');
    context.checksum = bodyChecksum(req);
    const body: { current?: Body } = {};
    const offsetAfter = await withLocks(
      store.contexts.lockerFor(locker, context),
      [id],
      async () => {
        const upload = await store.getUpload(id);
        const record = await activeRecord(id);
        if (record.state !== 'uploading') {
          // A retried completion that finds the upload complete is answered as its first try was.
          if (complete && offset === upload.offset && !contentLength) return offset;
          throw new Problem(400, 'the upload is complete and takes no more bytes', 'completed-upload');
        }
        const incomplete = draft.completeness(false);
        if (upload.offset !== offset) {
          throw new Problem(409, `the upload is at offset ${upload.offset}, not ${offset}`, 'mismatching-upload-offset', { 'expected-offset': upload.offset, 'provided-offset': offset }, { 'Upload-Offset': String(upload.offset), ...incomplete });
        }
        let size = upload.size;
        let total = declared;
        if (complete && contentLength !== undefined) {
          if (total !== undefined && total !== offset + contentLength) {
            throw new Problem(400, `Upload-Length ${total} is not Upload-Offset + Content-Length`, 'inconsistent-upload-length', {}, incomplete);
          }
          total = offset + contentLength;
        }
        if (total !== undefined && size !== undefined && total !== size) {
          throw new Problem(400, `the upload's length is ${size}, not ${total}`, 'inconsistent-upload-length', {}, incomplete);
        }
        if (total !== undefined && size === undefined) {
          if (total < offset) throw new Problem(400, `Upload-Length ${total} is below the offset ${offset}`, 'inconsistent-upload-length', {}, incomplete);
          if (total > maxFileSize) throw new Problem(413, `the upload's ${total} bytes exceed the maximum of ${maxFileSize}`, undefined, {}, incomplete);
          await store.declareUploadLength(id, total);
          size = total;
        }
        if (size !== undefined && contentLength !== undefined && offset + contentLength > size) {
          throw new Problem(400, `the request carries more than the upload's ${size} bytes`, 'inconsistent-upload-length', {}, incomplete);
        }
        return append(req, id, offset, size, complete, body);
      },
      () => body.current?.yieldLock(),
    );
    const record = await store.records.get(id);
    // An append creates nothing: 204, as tusd answers it (the draft asks for a 2xx).
    res
      .status(204)
      .set({
        ...digestOf(context),
        'Upload-Offset': String(offsetAfter),
        ...draft.completeness(record?.state === 'complete'),
        ...draft.limit(maxFileSize, record && store.expiresAt(record)),
      })
      .end();
  }

  async function cancel(req: Request, res: Response, draft: Draft, id: string): Promise<void> {
    if (req.get('upload-offset') !== undefined || draft.hasCompleteness(req)) {
      throw new Problem(400, 'a cancellation carries no Upload-Offset or Upload-Complete');
    }
    await withLocks(locker, [id], () => store.remove(id));
    res.status(204).end();
  }

  /** The upload's record while it is active: an expired upload is gone to this protocol (404). */
  async function activeRecord(id: string): Promise<UploadRecord> {
    const record = await store.records.get(id);
    if (!record || store.isExpired(record)) throw ERRORS.FILE_NOT_FOUND;
    return record;
  }

  /**
   * What a failed creation or append still tells the client: that the upload is not complete, and,
   * while it is active, its offset (drafts -01 to -05 require it) and, for a creation, its URL
   * (for clients that missed the 104).
   */
  async function stateAfterFailure(req: Request, context: RequestContext, draft: Draft): Promise<Record<string, string>> {
    const headers = draft.completeness(false);
    const record = context.uploadId ? await store.records.get(context.uploadId) : undefined;
    if (!record || record.owner !== context.user || record.state !== 'uploading') return headers;
    const offset = await store.bytes.storedBytes(record.id).catch(() => undefined);
    if (offset !== undefined) headers['Upload-Offset'] = String(offset);
    if (req.method === 'POST') headers.Location = uploadUrl(req, record.id);
    return headers;
  }

  async function answer(req: Request, res: Response, context: RequestContext, draft: Draft, id: string | undefined): Promise<void> {
    if (!id) {
      if (req.method !== 'POST') throw new Problem(405, 'create an upload with POST', undefined, {}, { Allow: 'POST, OPTIONS' });
      return create(req, res, context, draft);
    }
    // Another user's upload is answered exactly like one that does not exist.
    const record = await store.records.get(id);
    if (!record || record.owner !== context.user) throw ERRORS.FILE_NOT_FOUND;
    if (req.method === 'HEAD') return retrieveOffset(req, res, draft, id);
    if (req.method === 'PATCH') return appendTo(req, res, context, draft, id);
    if (req.method === 'DELETE') return cancel(req, res, draft, id);
    throw new Problem(405, `${req.method} is not part of the resumable upload protocol`, undefined, {}, { Allow: 'HEAD, PATCH, DELETE, OPTIONS' });
  }

  return async (req: Request, res: Response, next: NextFunction) => {
    const header = req.get('upload-draft-interop-version');
    // OPTIONS is answered by @tus/server for both protocols (with Upload-Limit added by the app).
    if (header === undefined || req.method === 'OPTIONS') return next();
    const id = req.params.id as string | undefined;
    const context: RequestContext = { requestId: String(req.id), user: req.identity?.user, uploadId: id, responseHeaders: {} };
    if (id) req.uploadId = id;
    const version = Number(header);
    const draft = new Draft(version);
    try {
      if (!(INTEROP_VERSIONS as readonly number[]).includes(version) || String(version) !== header.trim()) {
        throw new Problem(400, `Upload-Draft-Interop-Version ${header} is not supported; this server speaks ${INTEROP_VERSIONS.join(', ')}`);
      }
      await answer(req, res, context, draft, id);
    } catch (error) {
      if (context.uploadId) req.uploadId = context.uploadId;
      const problem = error instanceof Problem ? error : typeof (error as Partial<HttpError>)?.status_code === 'number' ? Problem.from(error as HttpError) : undefined;
      if (!problem) return next(error);
      if (res.headersSent) return void res.destroy();
      const failedWrite = req.method === 'PATCH' || req.method === 'POST';
      problem.send(res, failedWrite && problem.type !== 'completed-upload' ? await stateAfterFailure(req, context, draft) : {});
      return;
    }
    if (context.uploadId) req.uploadId = context.uploadId;
  };
}

import { Readable } from 'node:stream';
import { Metadata, TUS_RESUMABLE, Uid, Upload } from '@tus/utils';
import type { Request, Response } from 'express';
import { admitUpload, type CreationDeps } from '../uploads/policy.js';
import { isFinal, isPartial, type UploadRecord } from '../uploads/records.js';
import type { RequestContext } from '../uploads/request-context.js';
import { declaredTypeOf, type HttpError, type VerifyingStore } from '../uploads/verifying-store.js';
import { withLocks } from './locks.js';
import { replaceRequestHeader } from './request-headers.js';
import { uploadIdFromUrl, uploadUrl } from './urls.js';

export type UploadConcat = { kind: 'partial' } | { kind: 'final'; urls: string[] };

/** Parses `Upload-Concat`: `partial`, or `final;` and a space-separated list of upload URLs. */
export function parseUploadConcat(value: string): UploadConcat | undefined {
  const text = value.trim();
  if (text === 'partial') return { kind: 'partial' };
  if (!text.startsWith('final;')) return undefined;
  const urls = text.slice('final;'.length).split(' ').filter(Boolean);
  return urls.length > 0 ? { kind: 'final', urls } : undefined;
}

export type ConcatenationOptions = CreationDeps;

/** A plain-text answer, unless `headers` names another Content-Type. */
function answer(res: Response, status: number, body: string, headers: Record<string, string> = {}): void {
  res.status(status).type('text/plain').set({ 'Tus-Resumable': TUS_RESUMABLE, ...headers }).send(body.endsWith('\n') ? body : `${body}\n`);
}

function isHttpError(error: unknown): error is HttpError {
  return typeof (error as Partial<HttpError> | undefined)?.status_code === 'number';
}

/** The bytes of the parts, one after another, streamed from the store (never held in memory). */
function concatenated(store: VerifyingStore, parts: readonly UploadRecord[]): Readable {
  return Readable.from(
    (async function* () {
      for (const part of parts) yield* store.bytes.readRange(part.id, 0, part.size ?? 0);
    })(),
    { objectMode: false },
  );
}

/**
 * The tus concatenation extension (tus-js-client's `parallelUploads`), answered in front of
 * @tus/server, whose PostHandler refuses `Upload-Concat` (it tests for the misspelt extension
 * `concatentation`).
 *
 * Partial uploads are created by @tus/server like any other, without a type (the final upload's
 * type is checked) and never served. A final upload is created here: its parts must be complete
 * partial uploads of the same user, and their bytes are streamed through the store into a new
 * upload, so that its SHA-256, declared sha256 and content type are checked exactly as for an
 * upload sent in PATCHes. Parts stay until they expire, as the protocol lets a client reuse them.
 */
export class Concatenation {
  constructor(private readonly options: ConcatenationOptions) {}

  /** Applies concatenation to a tus request; true when it has answered the request itself. */
  async handle(req: Request, res: Response, context: RequestContext): Promise<boolean> {
    if (req.method === 'POST' && context.uploadId === undefined) {
      const header = req.get('upload-concat');
      const concat = header === undefined ? undefined : parseUploadConcat(header);
      if (!header || !concat) return false;
      if (concat.kind === 'partial') {
        context.concat = 'partial';
        // A partial upload is an ordinary creation apart from its header, which @tus/server refuses.
        replaceRequestHeader(req, 'upload-concat', undefined);
        return false;
      }
      await this.createFinal(req, res, context, header.trim(), concat.urls);
      return true;
    }
    if (context.uploadId === undefined || (req.method !== 'PATCH' && req.method !== 'HEAD')) return false;
    const record = await this.options.store.records.get(context.uploadId);
    if (!record?.concat) return false;
    if (req.method === 'PATCH' && isFinal(record)) {
      answer(res, 403, 'Forbidden: a final upload is made of its partial uploads and takes no PATCH');
      return true;
    }
    if (req.method === 'HEAD') context.responseHeaders['Upload-Concat'] = record.concat;
    return false;
  }

  private async createFinal(req: Request, res: Response, context: RequestContext, header: string, urls: string[]): Promise<void> {
    const { store, quota, locker } = this.options;
    const user = context.user!;
    const parts: UploadRecord[] = [];
    for (const url of urls) {
      const id = uploadIdFromUrl(url);
      if (!id) return answer(res, 400, `Bad Request: ${url} in Upload-Concat is not an upload URL of this server`);
      const part = await store.records.get(id);
      // Another user's upload is answered exactly like one that does not exist.
      if (!part || part.owner !== user) return answer(res, 404, `Not Found: partial upload ${url} does not exist`);
      if (!isPartial(part)) return answer(res, 400, `Bad Request: ${url} is not a partial upload (Upload-Concat: partial)`);
      if (part.state !== 'complete') return answer(res, 400, `Bad Request: partial upload ${url} is not complete`);
      // A part past its expiry is gone, whether or not the sweep has come for it yet.
      if (store.isExpired(part)) return answer(res, 410, `Gone: partial upload ${url} has expired`);
      parts.push(part);
    }
    const size = parts.reduce((sum, part) => sum + (part.size ?? 0), 0);
    const length = req.get('upload-length');
    if (length !== undefined && Number(length) !== size) {
      return answer(res, 400, `Bad Request: Upload-Length ${length} is not the ${size} bytes of the partial uploads`);
    }
    if (size > this.options.maxFileSize) {
      return answer(res, 413, `Request Entity Too Large: the partial uploads make ${size} bytes, over the maximum of ${this.options.maxFileSize}`);
    }
    const metadataHeader = req.get('upload-metadata');
    const metadata = metadataHeader ? Metadata.parse(metadataHeader) : undefined;
    const id = Uid.rand();
    const verdict = await admitUpload(
      { user, uploadId: id, declaredType: declaredTypeOf(metadata), sha256: metadata?.sha256, length: size, metadata, clientGone: () => req.socket.destroyed },
      { allowedTypes: this.options.allowedTypes, preCreate: this.options.preCreate },
      quota,
    );
    if (!verdict.ok) {
      const headers: Record<string, string> = verdict.retryAfterSeconds ? { 'Retry-After': String(verdict.retryAfterSeconds) } : {};
      // A pre-create receiver's JSON stays JSON, as on @tus/server's creations (tus-server.ts).
      if (verdict.contentType) headers['Content-Type'] = verdict.contentType;
      return answer(res, verdict.error.status_code, verdict.error.body, headers);
    }
    Object.assign(context, { uploadId: id, admitted: true, concat: header });
    try {
      // The parts' locks keep a DELETE of a part from cutting the copy short.
      await withLocks(store.contexts.lockerFor(locker, context), [id, ...parts.map((part) => part.id)], async () => {
        // Looked at again under their locks: a part deleted (or expired) since is not copied.
        for (const [index, part] of parts.entries()) {
          const current = await store.records.get(part.id);
          if (!current || store.isExpired(current)) throw { status_code: 404, body: `Not Found: partial upload ${urls[index]} does not exist` };
        }
        await store.create(new Upload({ id, size, offset: 0, metadata }));
        const copied = await store.write(concatenated(store, parts), id, 0);
        if (copied !== size) throw new Error(`final upload ${id}: ${copied} of ${size} bytes copied from its parts`);
      });
    } catch (error) {
      // A verdict (415, 460) has removed the upload already; any other failure leaves it half built.
      if (await store.records.get(id)) await store.remove(id).catch(() => undefined);
      if (isHttpError(error)) return answer(res, error.status_code, error.body);
      throw error;
    }
    res.status(201).set({ 'Tus-Resumable': TUS_RESUMABLE, Location: uploadUrl(req, id) }).end();
  }
}

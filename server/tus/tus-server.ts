import { Server, type ServerOptions } from '@tus/server';
import { ERRORS, type Locker } from '@tus/utils';
import type { Logger } from 'pino';
import { RESUME_LATER } from '../redis/unavailable.js';
import { STORAGE_FULL } from '../storage/file-store.js';
import type { PreCreateHook } from '../hooks/pre-create.js';
import { admitUpload } from '../uploads/policy.js';
import type { Quota } from '../uploads/quota.js';
import { contextOfRequest, nodeRequestOf } from '../uploads/request-context.js';
import { declaredTypeOf, type VerifyingStore } from '../uploads/verifying-store.js';

export interface TusServerOptions {
  store: VerifyingStore;
  locker: Locker;
  quota: Quota;
  maxFileSize: number;
  allowedTypes: readonly string[];
  corsOrigins: readonly string[];
  logger: Logger;
  preCreate?: PreCreateHook;
}

/** Headers tusgate adds that browsers may read from tus responses (beyond @tus/server's own, Upload-Concat among them). */
export const TUSGATE_EXPOSED_HEADERS = [
  'Repr-Digest',
  'Content-Digest',
  'Upload-Expires',
  'Retry-After',
  'X-Request-Id',
  'Tus-Checksum-Algorithm',
  // A 401's challenge (SPEC §2), for a page to tell an expired token from a missing one.
  'WWW-Authenticate',
  // The IETF resumable-uploads draft (server/tus/ietf-draft.ts).
  'Upload-Complete',
  'Upload-Incomplete',
  'Upload-Limit',
  'Upload-Draft-Interop-Version',
];

/** Request headers beyond tus core that browsers may send (CORS preflight). */
export const TUSGATE_ALLOWED_HEADERS = [
  'Upload-Checksum',
  'Upload-Complete',
  'Upload-Incomplete',
  'Upload-Draft-Interop-Version',
  'Content-Disposition',
  'Repr-Digest',
  'Content-Digest',
  // tus-js-client's addRequestId.
  'X-Request-ID',
];

/** @tus/server configured with tusgate's store, locks and creation policy. */
export function createTusServer(options: TusServerOptions): Server {
  const serverOptions: ServerOptions & { datastore: VerifyingStore } = {
    path: '/files',
    datastore: options.store,
    // Each request's locks tell the store whose request it is serving (server/uploads/request-context.ts).
    locker: (req) => options.store.contexts.lockerFor(options.locker, contextOfRequest(req)),
    maxSize: options.maxFileSize,
    allowedOrigins: [...options.corsOrigins],
    allowedCredentials: true,
    exposedHeaders: TUSGATE_EXPOSED_HEADERS,
    allowedHeaders: TUSGATE_ALLOWED_HEADERS,
    // Retries after a dropped connection must find the lock free quickly.
    lockDrainTimeout: 1000,
    async onUploadCreate(req, upload) {
      const context = contextOfRequest(req);
      if (!context?.user) throw { status_code: 401, body: 'Unauthorized\n' };
      const verdict = await admitUpload(
        {
          user: context.user,
          uploadId: upload.id,
          declaredType: declaredTypeOf(upload.metadata),
          sha256: upload.metadata?.sha256,
          partial: context.concat === 'partial',
          length: upload.size,
          metadata: upload.metadata,
          clientGone: () => nodeRequestOf(req)?.socket.destroyed ?? false,
        },
        { allowedTypes: options.allowedTypes, preCreate: options.preCreate },
        options.quota,
      );
      if (!verdict.ok) {
        if (verdict.retryAfterSeconds) context.responseHeaders['Retry-After'] = String(verdict.retryAfterSeconds);
        // @tus/server writes every error body as text/plain; a pre-create receiver's JSON stays JSON.
        if (verdict.contentType) context.responseHeaders['Content-Type'] = verdict.contentType;
        throw verdict.error;
      }
      context.uploadId = upload.id;
      context.admitted = true;
      return {};
    },
    async onResponseError(req, error) {
      const context = contextOfRequest(req);
      const known = 'status_code' in error;
      const full = !known && (error as NodeJS.ErrnoException).code === 'ENOSPC';
      if (req.method === 'POST' && context?.admitted && context.uploadId && context.user) {
        // The error answer of a creation has no Location: what it stored goes before the answer does.
        const reason = known && error.status_code === 413 ? 'size' : 'aborted';
        await options.store.abandonCreation(context.uploadId, context.user, reason).catch(() => undefined);
      }
      // Shared state (or the policy hook) away: clients are told when to try again.
      if (known && error.status_code === 503 && context) context.responseHeaders['Retry-After'] ??= '1';
      if (known && error.status_code === 503 && req.method === 'HEAD') return RESUME_LATER;
      // @tus/server's own words for a body cut off by its limit; tusgate's other 413s say which limit.
      if (known && (error === ERRORS.ERR_SIZE_EXCEEDED || error === ERRORS.ERR_MAX_SIZE_EXCEEDED)) {
        return { status_code: 413, body: `Request Entity Too Large: the body passes the upload's length or the maximum of ${options.maxFileSize} bytes\n` };
      }
      if (known) return undefined;
      // A full disk anywhere on the way (records, metadata) is 507, not a server bug.
      if (full) return STORAGE_FULL;
      options.logger.error({ err: error, uploadId: context?.uploadId }, 'tus request failed');
      return undefined;
    },
  };
  return new Server(serverOptions);
}


import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Server as TusServer } from '@tus/server';
import { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { isAllowedOrigin } from '../ops/cors.js';
import type { Metrics } from '../ops/metrics.js';
import { isTemporary, RESUME_LATER } from '../redis/unavailable.js';
import { CHECKSUM_ALGORITHMS, requestChecksum } from '../uploads/checksum.js';
import { reprDigest } from '../uploads/digest.js';
import { attachContext, type RequestContext } from '../uploads/request-context.js';
import type { VerifyingStore } from '../uploads/verifying-store.js';
import type { Concatenation } from './concat.js';
import { uploadLimit } from './ietf-fields.js';
import { methodOverride, tusPrecheck, tusResumableHeader } from './precheck.js';
import { replaceRequestHeader } from './request-headers.js';
import { Problem } from './problem.js';
import { handleTus } from './request-body.js';

/**
 * Adds headers that are known only after @tus/server has decided its response (a digest computed
 * at completion, the sliding expiry). srvx hands Node the tus headers as a flat array, which
 * overrides anything set earlier, so they are merged into that array.
 */
function mergeContextHeaders(request: Request, res: ServerResponse, context: RequestContext, corsOrigins: readonly string[]): void {
  // @tus/server names its first allowed origin to any other origin (or none), and `*` for any: an
  // allowed origin is echoed (browsers refuse `*` with credentials), another gets none.
  const origin = request.headers.origin;
  const dropOrigin = !isAllowedOrigin(corsOrigins, origin);
  if (!dropOrigin) context.responseHeaders['Access-Control-Allow-Origin'] = origin!;
  const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
  (res as unknown as { writeHead: (...args: unknown[]) => ServerResponse }).writeHead = (...args: unknown[]) => {
    // The request log line is written on 'finish'; the upload a creation made is known by now.
    if (context.uploadId) request.uploadId = context.uploadId;
    // @tus/server's answers come with an empty reason phrase; Node's is given instead, and for 460,
    // which Node does not know, the one tus clients and tusd use.
    if (args[1] === '' || args[1] === undefined) args[1] = args[0] === 460 ? 'Checksum Mismatch' : STATUS_CODES[args[0] as number];
    const extra = Object.entries(context.responseHeaders);
    const raw = args.find((arg): arg is string[] => Array.isArray(arg));
    if (raw) {
      const names = new Set(extra.map(([name]) => name.toLowerCase()));
      if (dropOrigin) names.add('access-control-allow-origin');
      const kept: string[] = [];
      for (let i = 0; i + 1 < raw.length; i += 2) {
        if (!names.has(String(raw[i]).toLowerCase())) kept.push(raw[i]!, raw[i + 1]!);
      }
      for (const [name, value] of extra) kept.push(name, value);
      // A creation without a body is at offset 0; tus-js-client reads the offset of every creation
      // it sends in creation-with-upload mode, an empty one of deferred length included.
      if (args[0] === 201 && !kept.some((name, i) => i % 2 === 0 && name.toLowerCase() === 'upload-offset')) kept.push('Upload-Offset', '0');
      raw.splice(0, raw.length, ...kept);
    } else {
      for (const [name, value] of extra) res.setHeader(name, value);
    }
    return writeHead(...args);
  };
}

/** What tus answers at an upload's URL and at the creation URL (GET serves downloads, elsewhere). */
const UPLOAD_METHODS = ['HEAD', 'PATCH', 'DELETE', 'OPTIONS'];
const CREATION_METHODS = ['POST', 'OPTIONS'];

export interface TusDoorOptions {
  tus: TusServer;
  store: VerifyingStore;
  metrics: Metrics;
  concatenation: Concatenation;
  /** Answers IETF draft requests; passes tus ones on. */
  ietf: RequestHandler;
  authenticated: RequestHandler;
  maxFileSize: number;
  corsOrigins: readonly string[];
}

/**
 * The tus endpoint: auth, the protocol corrections of the precheck, ownership (another user's
 * upload is a 404, like a missing one), then @tus/server inside the request's context.
 */
export function tusDoor(options: TusDoorOptions): Router {
  const { tus, store, metrics, concatenation, ietf, authenticated, maxFileSize, corsOrigins } = options;
  const precheck = tusPrecheck(maxFileSize);
  const router = Router();
  const notFound = (res: Response) =>
    res.status(404).set('Tus-Resumable', '1.0.0').type('text/plain').send('The file for this url was not found\n');

  /** Calls `dropped` if a PATCH or POST closes before its answer is sent: its client went away mid-request. */
  const whenDropped = (req: Request, res: Response, dropped: () => void) => {
    if (req.method !== 'PATCH' && req.method !== 'POST') return;
    res.once('close', () => {
      if (!res.writableFinished) dropped();
    });
  };
  // An IETF draft request dropped mid-body counts as aborted, as a tus one does below.
  const countDroppedDraft = (req: Request, res: Response, next: NextFunction) => {
    if (req.get('upload-draft-interop-version') !== undefined) whenDropped(req, res, () => metrics.failed.inc({ reason: 'aborted' }));
    next();
  };
  // Requests of the IETF resumable-uploads draft are answered by `ietf`; tus ones pass on.
  router.all(['/files', '/files/', '/files/:id'], methodOverride, tusResumableHeader, authenticated, countDroppedDraft, ietf, precheck, async (req: Request, res: Response) => {
    const id = req.params.id as string | undefined;
    const context: RequestContext = {
      requestId: String(req.id),
      user: req.identity?.user,
      uploadId: id,
      responseHeaders: {},
      checksum: requestChecksum(req.get('upload-checksum')),
      bodyLength: req.get('content-length') === undefined ? undefined : Number(req.get('content-length')),
    };
    if (req.method === 'GET') return notFound(res);
    const allowed = id ? UPLOAD_METHODS : CREATION_METHODS;
    if (!allowed.includes(req.method)) {
      res.status(405).set({ Allow: allowed.join(', '), 'Tus-Resumable': '1.0.0' }).type('text/plain').send('Method Not Allowed\n');
      return;
    }
    if (id && req.method !== 'OPTIONS') {
      // Another user's upload is answered exactly like one that does not exist.
      req.uploadId = id;
      const record = await store.records.get(id);
      if (!record || record.owner !== context.user) return notFound(res);
      if (req.method === 'PATCH' && record.origin === 'legacy') {
        // A legacy session's bytes come as numbered chunks, each verified and counted by the facade.
        res.status(403).set('Tus-Resumable', '1.0.0').type('text/plain').send('Forbidden: this upload is written in numbered chunks through /api/v1\n');
        return;
      }
      if (record.state === 'complete' && record.sha256) context.responseHeaders['Repr-Digest'] = reprDigest(record.sha256);
      // tus: a client checks Upload-Expires before it resumes, and resuming starts with a HEAD.
      const expires = req.method === 'HEAD' ? store.expiresAt(record) : undefined;
      if (expires !== undefined) context.responseHeaders['Upload-Expires'] = new Date(expires).toUTCString();
      const length = req.method === 'PATCH' ? req.get('upload-length') : undefined;
      if (length !== undefined && record.size !== undefined) {
        // A deferred length is declared once; tus-js-client sends it again with every PATCH that
        // resumes after the one that declared it broke off. The same value again changes nothing.
        if (Number(length) !== record.size) {
          res.status(400).set('Tus-Resumable', '1.0.0').type('text/plain').send(`Bad Request: Upload-Length is already ${record.size} for this upload\n`);
          return;
        }
        replaceRequestHeader(req, 'Upload-Length', undefined);
      }
    }
    mergeContextHeaders(req, res, context, corsOrigins);
    if (req.method === 'OPTIONS') {
      context.responseHeaders['Tus-Checksum-Algorithm'] = CHECKSUM_ALGORITHMS.join(',');
      context.responseHeaders['Upload-Limit'] = uploadLimit(maxFileSize);
    }
    // A creation answered without a Location (an error, or a client gone before the answer) leaves
    // nothing: nobody could resume what it stored, and its quota slot is given back. If shared state
    // is away the slot expires with its set instead.
    const abandonCreation = (reason: 'size' | 'aborted') => {
      if (!context.admitted || !context.uploadId || !context.user) return false;
      void store.abandonCreation(context.uploadId, context.user, reason).catch(() => undefined);
      return true;
    };
    whenDropped(req, res, () => {
      // An abandoned creation is counted as failed by the store.
      if (!abandonCreation('aborted')) metrics.failed.inc({ reason: 'aborted' });
    });
    res.on('finish', () => {
      if (context.uploadId) req.uploadId = context.uploadId;
      if (res.statusCode >= 300) abandonCreation(res.statusCode === 413 ? 'size' : 'aborted');
    });
    attachContext(req, context);
    // @tus/server takes the upload id from the end of the whole URL, query included.
    const query = req.url.indexOf('?');
    if (query >= 0) req.url = req.url.slice(0, query);
    // Concatenation is answered in front of @tus/server, which refuses it.
    if (!(await concatenation.handle(req, res, context))) await handleTus(tus, req, res);
  });

  // A service the request needs is away (shared state, the JWT key set): answered in the protocol's
  // own terms, and a HEAD with 423, the one status tus-js-client retries a resume on (after any
  // other error it starts the upload again from byte 0).
  router.use((error: unknown, req: Request, res: Response, next: NextFunction) => {
    if (!isTemporary(error) || res.headersSent) return next(error);
    const body = (error as { body?: string }).body ?? 'Service Unavailable: retry shortly\n';
    if (req.get('upload-draft-interop-version') !== undefined) return new Problem(503, body.trim()).send(res);
    const [status, text] = req.method === 'HEAD' ? [RESUME_LATER.status_code, RESUME_LATER.body] : [503, body];
    res.status(status).set({ 'Retry-After': '1', 'Tus-Resumable': '1.0.0' }).type('text/plain').send(text);
  });

  return router;
}

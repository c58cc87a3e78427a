import type { ServerResponse } from 'node:http';
import type { Server as TusServer } from '@tus/server';
import { Router, type Request, type RequestHandler, type Response } from 'express';
import type { Metrics } from '../ops/metrics.js';
import { isTemporary, RESUME_LATER } from '../redis/unavailable.js';
import { CHECKSUM_ALGORITHMS, requestChecksum } from '../uploads/checksum.js';
import { reprDigest } from '../uploads/digest.js';
import { attachContext, type RequestContext } from '../uploads/request-context.js';
import type { VerifyingStore } from '../uploads/verifying-store.js';
import type { Concatenation } from './concat.js';
import { uploadLimit } from './ietf-fields.js';
import { methodOverride, tusPrecheck, tusResumableHeader } from './precheck.js';

/**
 * Adds headers that are known only after @tus/server has decided its response (a digest computed
 * at completion, the sliding expiry). srvx hands Node the tus headers as a flat array, which
 * overrides anything set earlier, so they are merged into that array.
 */
function mergeContextHeaders(request: Request, res: ServerResponse, context: RequestContext): void {
  const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
  (res as unknown as { writeHead: (...args: unknown[]) => ServerResponse }).writeHead = (...args: unknown[]) => {
    // The request log line is written on 'finish'; the upload a creation made is known by now.
    if (context.uploadId) request.uploadId = context.uploadId;
    // Node knows no reason phrase for 460; tus clients and tusd call it this.
    if (args[0] === 460 && !args[1]) args[1] = 'Checksum Mismatch';
    const extra = Object.entries(context.responseHeaders);
    const raw = args.find((arg): arg is string[] => Array.isArray(arg));
    if (raw) {
      const names = new Set(extra.map(([name]) => name.toLowerCase()));
      const kept: string[] = [];
      for (let i = 0; i + 1 < raw.length; i += 2) {
        if (!names.has(String(raw[i]).toLowerCase())) kept.push(raw[i]!, raw[i + 1]!);
      }
      for (const [name, value] of extra) kept.push(name, value);
      raw.splice(0, raw.length, ...kept);
    } else {
      for (const [name, value] of extra) res.setHeader(name, value);
    }
    return writeHead(...args);
  };
}

export interface TusDoorOptions {
  tus: TusServer;
  store: VerifyingStore;
  metrics: Metrics;
  concatenation: Concatenation;
  /** Answers IETF draft requests; passes tus ones on. */
  ietf: RequestHandler;
  authenticated: RequestHandler;
  maxFileSize: number;
}

/**
 * The tus endpoint: auth, the protocol corrections of the precheck, ownership (another user's
 * upload is a 404, like a missing one), then @tus/server inside the request's context.
 */
export function tusDoor(options: TusDoorOptions): Router {
  const { tus, store, metrics, concatenation, ietf, authenticated, maxFileSize } = options;
  const precheck = tusPrecheck(maxFileSize);
  const router = Router();
  const notFound = (res: Response) =>
    res.status(404).set('Tus-Resumable', '1.0.0').type('text/plain').send('The file for this url was not found\n');

  // Requests of the IETF resumable-uploads draft are answered by `ietf`; tus ones pass on.
  router.all(['/files', '/files/', '/files/:id'], methodOverride, tusResumableHeader, authenticated, ietf, precheck, async (req: Request, res: Response) => {
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
    if (id && req.method === 'POST') {
      res.status(405).set({ Allow: 'HEAD, PATCH, DELETE, OPTIONS', 'Tus-Resumable': '1.0.0' }).type('text/plain').send('Method Not Allowed\n');
      return;
    }
    if (id && req.method !== 'OPTIONS') {
      // Another user's upload is answered exactly like one that does not exist.
      req.uploadId = id;
      let record;
      try {
        record = await store.records.get(id);
      } catch (error) {
        if (req.method !== 'HEAD' || !isTemporary(error)) throw error;
        res.status(RESUME_LATER.status_code).set({ 'Retry-After': '1', 'Tus-Resumable': '1.0.0' }).type('text/plain').send(RESUME_LATER.body);
        return;
      }
      if (!record || record.owner !== context.user) return notFound(res);
      if (record.state === 'complete' && record.sha256) context.responseHeaders['Repr-Digest'] = reprDigest(record.sha256);
    }
    mergeContextHeaders(req, res, context);
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
    res.once('close', () => {
      if (res.writableFinished || (req.method !== 'PATCH' && req.method !== 'POST')) return;
      // An abandoned creation is counted as failed by the store.
      if (!abandonCreation('aborted')) metrics.failed.inc({ reason: 'aborted' });
    });
    res.on('finish', () => {
      if (context.uploadId) req.uploadId = context.uploadId;
      if (res.statusCode >= 300) abandonCreation(res.statusCode === 413 ? 'size' : 'aborted');
    });
    attachContext(req, context);
    // Concatenation is answered in front of @tus/server, which refuses it.
    if (!(await concatenation.handle(req, res, context))) await tus.handle(req, res);
  });

  return router;
}

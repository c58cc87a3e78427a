import { Router, type NextFunction, type Request, type Response } from 'express';
import type { TokenVerifier } from '../auth/verifier.js';
import type { FileAccess } from '../files/serve.js';
import { legacyTimestamp } from '../ops/health.js';
import { isAllowedOrigin } from '../ops/cors.js';
import { pythonJson, sendJson } from '../ops/json.js';
import type { RequestContext } from '../uploads/request-context.js';
import { isAdmin, legacyAuth, legacyIdentity } from './auth.js';
import { LegacyError, legacyErrorHandler, onlyMethod } from './errors.js';
import { fileUrl, legacyFileHandler } from './files.js';
import { LegacyService, type LegacyDeps } from './service.js';
import { progressPercent, remainingChunks } from './sessions.js';
import { parseChunkNumber, parseComplete, parseInitiate, readJsonBody } from './validation.js';

export interface LegacyApiOptions extends LegacyDeps {
  verify: TokenVerifier;
  files: FileAccess;
}

/** The original's default chunk size (legacy-api.md §4). */
const DEFAULT_CHUNK_SIZE = 1_048_576;

/** The original's progress is a float: Python writes a whole one as `50.0`. */
const FLOAT_FIELDS = new Set(['progress_percent']);
const sendWithFloats = (res: Response, body: object) => sendJson(res, pythonJson(body, FLOAT_FIELDS));

const onlyGet = onlyMethod('GET');

/** Marks a request as the legacy API's and names the 500 the original gave for its route. */
const route = (failure: string) => (req: Request, res: Response, next: NextFunction) => {
  // FastAPI's JSON routes did not answer HEAD (file downloads do here, as every download does).
  if (req.method === 'HEAD' && !req.path.startsWith('/api/v1/files/')) return onlyGet(req, res);
  res.locals.legacyFailure = failure;
  next();
};

/** The legacy 2Truths-1Lie `/api/v1` chunked-upload API (legacy-api.md), on tusgate's store. */
export async function createLegacyApi(options: LegacyApiOptions): Promise<{ router: Router; service: LegacyService }> {
  const service = new LegacyService(options);
  await service.init();
  const { config } = options;
  const router = Router();
  const auth = legacyAuth(options.verify);
  const user = (req: Request) => req.identity!.user;
  const sessionId = (req: Request) => {
    const id = req.params.session_id as string;
    req.uploadId = id;
    return id;
  };

  // CORS preflights (headers set by the app's cors middleware) are answered as Starlette did.
  router.use((req, res, next) => {
    const isLegacyPath = req.path === '/' || req.path.startsWith('/api/v1/');
    if (isLegacyPath && req.method === 'OPTIONS' && req.headers.origin && req.headers['access-control-request-method']) {
      const allowed = isAllowedOrigin(config.CORS_ORIGINS, req.headers.origin);
      res.status(allowed ? 200 : 400).type('text/plain').send(allowed ? 'OK' : 'Disallowed CORS origin');
      return;
    }
    next();
  });

  router.get('/', route('Internal Server Error'), (_req, res) => {
    res.json({ message: '2Truths-1Lie API is running', version: '1.0.0' });
  });

  router.post('/api/v1/upload/initiate', route('Failed to initiate upload'), auth, async (req, res) => {
    // A server configured for smaller chunks than the original's default hands out its own limit.
    const defaultChunkSize = Math.min(DEFAULT_CHUNK_SIZE, config.MAX_CHUNK_SIZE);
    const request = parseInitiate(await readJsonBody(req), { maxChunkSize: config.MAX_CHUNK_SIZE, defaultChunkSize });
    const { session, expiresAt } = await service.initiate(user(req), String(req.id), request, () => req.socket.destroyed);
    req.uploadId = session.session_id;
    res.json({
      session_id: session.session_id,
      upload_url: `/api/v1/upload/${session.session_id}/chunk`,
      chunk_size: session.chunk_size,
      total_chunks: session.total_chunks,
      expires_at: legacyTimestamp(expiresAt),
    });
  });

  router.post('/api/v1/upload/:session_id/chunk/:chunk_number', route('Failed to upload chunk'), auth, async (req, res) => {
    const id = sessionId(req);
    const chunk = parseChunkNumber(req.params.chunk_number as string);
    const result = await service.uploadChunk(user(req), id, chunk, req);
    sendWithFloats(res, {
      session_id: result.session.session_id,
      chunk_number: result.chunk,
      status: result.status,
      uploaded_chunks: result.session.uploaded_chunks,
      remaining_chunks: remainingChunks(result.session),
      progress_percent: progressPercent(result.session),
    });
  });

  router.post('/api/v1/upload/:session_id/complete', route('Failed to complete upload'), auth, async (req, res) => {
    const id = sessionId(req);
    const request = parseComplete(await readJsonBody(req));
    const context: RequestContext = { requestId: String(req.id), user: user(req), origin: 'legacy', uploadId: id, responseHeaders: {} };
    const session = await service.complete(user(req), id, request, context);
    res.set(context.responseHeaders).json({
      session_id: session.session_id,
      status: 'completed',
      file_url: fileUrl(session.session_id, session.filename),
      file_size: session.file_size,
      completed_at: legacyTimestamp(new Date(session.completed_at!)),
    });
  });

  router.get('/api/v1/upload/:session_id/status', route('Internal Server Error'), auth, async (req, res) => {
    const session = await service.status(user(req), sessionId(req));
    sendWithFloats(res, {
      session_id: session.session_id,
      status: session.status,
      progress_percent: progressPercent(session),
      uploaded_chunks: session.uploaded_chunks,
      remaining_chunks: remainingChunks(session),
      created_at: legacyTimestamp(new Date(session.created_at)),
      updated_at: legacyTimestamp(new Date(session.updated_at)),
      error_message: null,
    });
  });

  router.delete('/api/v1/upload/:session_id', route('Failed to cancel upload'), auth, async (req, res) => {
    await service.cancel(user(req), sessionId(req));
    res.json({ message: 'Upload cancelled successfully' });
  });

  router.get('/api/v1/files/:name', route('Internal Server Error'), legacyFileHandler(options.store, options.files, options.verify));

  router.post('/api/v1/admin/cleanup', route('Internal Server Error'), async (req, res) => {
    const identity = await legacyIdentity(options.verify, req.headers.authorization);
    req.identity = identity;
    if (!isAdmin(identity, config.ADMIN_USERS)) throw new LegacyError(403, 'Admin privileges required');
    const removed = await service.cleanupExpired();
    res.json({ message: `Cleaned up ${removed} expired sessions` });
  });

  for (const [paths, allowed] of [
    [['/', '/api/v1/upload/:session_id/status', '/api/v1/files/:name'], 'GET'],
    [['/api/v1/upload/initiate', '/api/v1/upload/:session_id/chunk/:chunk_number', '/api/v1/upload/:session_id/complete', '/api/v1/admin/cleanup'], 'POST'],
    [['/api/v1/upload/:session_id'], 'DELETE'],
  ] as const) {
    router.all([...paths], onlyMethod(allowed));
  }

  // Only the legacy routes' errors are answered here; anything else goes on to the app's handler.
  const handleLegacyError = legacyErrorHandler(options.logger);
  router.use((error: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.locals.legacyFailure === undefined) return next(error);
    handleLegacyError(error, req, res, next);
  });

  return { router, service };
}

import fs from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import path from 'node:path';
import { MemoryLocker, type Server as TusServer } from '@tus/server';
import type { Locker } from '@tus/utils';
import cors from 'cors';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { optionalBearer, requireBearer } from './auth/middleware.js';
import type { TokenVerifier } from './auth/verifier.js';
import type { Config } from './config.js';
import { uploadInfoHandler } from './files/info.js';
import { readableRecord, sendUpload } from './files/serve.js';
import { createLegacyApi } from './legacy/router.js';
import { demoRouter } from '../client-demo/serve.js';
import { HookDelivery } from './hooks/delivery.js';
import { preCreateHook } from './hooks/pre-create.js';
import { healthRouter } from './ops/health.js';
import { createLogger, requestLogger } from './ops/logging.js';
import { Metrics } from './ops/metrics.js';
import { TusgateFileStore } from './storage/file-store.js';
import { Concatenation } from './tus/concat.js';
import { ietfDraft } from './tus/ietf-draft.js';
import { uploadLimit } from './tus/ietf-fields.js';
import { methodOverride, tusPrecheck, tusResumableHeader } from './tus/precheck.js';
import { createTusServer, TUSGATE_EXPOSED_HEADERS } from './tus/tus-server.js';
import { CHECKSUM_ALGORITHMS, requestChecksum } from './uploads/checksum.js';
import { reprDigest } from './uploads/digest.js';
import { UploadEvents } from './uploads/events.js';
import { Tombstones } from './uploads/tombstones.js';
import { QuotaTracker } from './uploads/quota.js';
import { FileRecordStore } from './uploads/records.js';
import { runWithContext, type RequestContext } from './uploads/request-context.js';
import { RunningHashes } from './uploads/running-hash.js';
import { VerifyingStore } from './uploads/verifying-store.js';

export interface AppOptions {
  verify: TokenVerifier;
  logger?: Logger;
  /** Development mode: a signed token for the demo user, served at /demo/token. */
  devToken?: string;
}

export interface Tusgate {
  app: express.Express;
  store: VerifyingStore;
  quota: QuotaTracker;
  events: UploadEvents;
  metrics: Metrics;
  tus: TusServer;
  /** The lock manager @tus/server uses; every door that writes an upload takes its lock here. */
  locker: Locker;
  logger: Logger;
  /** Event deliveries to HOOKS_URL, when configured. */
  hooks?: HookDelivery;
  sweep(): Promise<number>;
  /** Stops background work (hook deliveries); the HTTP server is the caller's to close. */
  close(): void;
}

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

export async function createApp(config: Config, options: AppOptions): Promise<Tusgate> {
  const logger = options.logger ?? createLogger(config.LOG_LEVEL);
  const uploadsDir = path.resolve(config.DATA_DIR, 'uploads');
  const recordsDir = path.resolve(config.DATA_DIR, 'records');
  await fs.mkdir(uploadsDir, { recursive: true });

  const records = new FileRecordStore(recordsDir);
  await records.init();
  const quota = new QuotaTracker({ maxActive: config.MAX_ACTIVE_UPLOADS_PER_USER, perHour: config.UPLOADS_PER_HOUR_PER_USER });
  for (const record of await records.all()) {
    if (record.state !== 'complete') quota.restore(record.owner, record.id, Date.parse(record.createdAt));
  }
  const events = new UploadEvents();
  const tombstones = new Tombstones(path.resolve(config.DATA_DIR, 'tombstones'));
  await tombstones.init();
  const store = new VerifyingStore(new TusgateFileStore(uploadsDir), records, new RunningHashes(), quota, {
    expiryMs: config.UPLOAD_EXPIRY_SECONDS * 1000,
    events,
    tombstones,
    media: {
      maxImagePixels: config.MAX_IMAGE_PIXELS,
      maxDurationSeconds: config.MAX_MEDIA_DURATION_SECONDS,
      minDurationSeconds: config.MIN_MEDIA_DURATION_SECONDS,
    },
  });
  const preCreate = config.HOOKS_PRE_CREATE_URL
    ? preCreateHook({
        url: config.HOOKS_PRE_CREATE_URL,
        secret: config.HOOKS_SECRET!,
        timeoutMs: config.HOOKS_TIMEOUT_MS,
        failOpen: config.HOOKS_PRE_CREATE_FAIL_OPEN,
      })
    : undefined;
  const locker = new MemoryLocker();
  const tus = createTusServer({
    store,
    locker,
    quota,
    maxFileSize: config.MAX_FILE_SIZE,
    allowedTypes: config.ALLOWED_MIME_TYPES,
    corsOrigins: config.CORS_ORIGINS,
    logger,
    preCreate,
  });
  const policy = { store, locker, quota, maxFileSize: config.MAX_FILE_SIZE, allowedTypes: config.ALLOWED_MIME_TYPES, preCreate };
  const concatenation = new Concatenation(policy);
  const ietf = ietfDraft({ ...policy, expiryMs: config.UPLOAD_EXPIRY_SECONDS * 1000 });

  const metrics = new Metrics(events, () => quota.totalActive());
  const hooks = config.HOOKS_URL
    ? new HookDelivery(
        {
          url: config.HOOKS_URL,
          secret: config.HOOKS_SECRET!,
          events: config.HOOKS_EVENTS,
          timeoutMs: config.HOOKS_TIMEOUT_MS,
          maxAgeMs: config.HOOKS_MAX_AGE_SECONDS * 1000,
          retryBaseMs: config.HOOKS_RETRY_BASE_MS,
          outboxDir: path.resolve(config.DATA_DIR, 'outbox'),
          logger,
          onDropped: (type) => metrics.hookEventsDropped.inc({ type }),
        },
        events,
      )
    : undefined;
  hooks?.start();

  const app = express();
  app.disable('x-powered-by');
  app.use(requestLogger(logger));
  app.use(metrics.middleware());
  app.use((_req, res, next) => {
    res.set('X-Content-Type-Options', 'nosniff');
    next();
  });
  app.use(
    cors({
      origin: config.CORS_ORIGINS,
      credentials: true,
      exposedHeaders: ['Location', 'Upload-Offset', 'Upload-Length', 'Tus-Resumable', 'Tus-Version', ...TUSGATE_EXPOSED_HEADERS],
      // Preflights for /files are answered by @tus/server, which lists the tus headers.
      preflightContinue: true,
    }),
  );
  app.use(healthRouter({ dataDir: config.DATA_DIR, maxFileSize: config.MAX_FILE_SIZE }));
  app.get('/metrics', (req, res) => metrics.handler(req, res));

  if (options.devToken) {
    const devToken = options.devToken;
    app.get('/demo/token', (_req, res) => {
      res.set('Cache-Control', 'no-store').json({ token: devToken });
    });
  }
  // The browser demo (client-demo/): Uppy's Dashboard, bundled on first request.
  app.use(demoRouter({ maxFileSize: config.MAX_FILE_SIZE, allowedTypes: config.ALLOWED_MIME_TYPES, devMode: Boolean(options.devToken) }));

  const filesAccess = { filesPublic: config.FILES_PUBLIC };
  const anyone = optionalBearer(options.verify);
  const authenticated = requireBearer(options.verify);
  const precheck = tusPrecheck(config.MAX_FILE_SIZE);

  app.get('/files/:id/info', anyone, uploadInfoHandler(store, tombstones, filesAccess, config.UPLOAD_EXPIRY_SECONDS * 1000));

  // Downloads: GET, and HEAD without Tus-Resumable (or the IETF draft's header), of a completed upload.
  const isDownload = (req: Request) =>
    req.method === 'GET' ||
    (req.method === 'HEAD' && req.get('tus-resumable') === undefined && req.get('upload-draft-interop-version') === undefined);
  app.all('/files/:id', methodOverride, async (req: Request, res: Response, next: NextFunction) => {
    if (!isDownload(req)) return next();
    req.uploadId = req.params.id as string;
    if (!config.FILES_PUBLIC) await new Promise<void>((resolve) => anyone(req, res, () => resolve()));
    const record = await readableRecord(store, req.params.id as string, filesAccess, req.identity?.user);
    if (!record) {
      res.status(404).type('text/plain').send('Not Found\n');
      return;
    }
    sendUpload(req, res, store, record);
  });

  const notFound = (res: Response) =>
    res.status(404).set('Tus-Resumable', '1.0.0').type('text/plain').send('The file for this url was not found\n');

  // Requests of the IETF resumable-uploads draft are answered by `ietf`; tus ones pass on.
  app.all(['/files', '/files/', '/files/:id'], methodOverride, tusResumableHeader, authenticated, ietf, precheck, async (req: Request, res: Response) => {
    const id = req.params.id as string | undefined;
    const context: RequestContext = {
      requestId: String(req.id),
      user: req.identity?.user,
      uploadId: id,
      responseHeaders: {},
      checksum: requestChecksum(req.get('upload-checksum')),
    };
    if (req.method === 'GET') return notFound(res);
    if (id && req.method === 'POST') {
      res.status(405).set({ Allow: 'HEAD, PATCH, DELETE, OPTIONS', 'Tus-Resumable': '1.0.0' }).type('text/plain').send('Method Not Allowed\n');
      return;
    }
    if (id && req.method !== 'OPTIONS') {
      // Another user's upload is answered exactly like one that does not exist.
      req.uploadId = id;
      const record = await store.records.get(id);
      if (!record || record.owner !== context.user) return notFound(res);
      if (record.state === 'complete' && record.sha256) context.responseHeaders['Repr-Digest'] = reprDigest(record.sha256);
    }
    mergeContextHeaders(req, res, context);
    if (req.method === 'OPTIONS') {
      context.responseHeaders['Tus-Checksum-Algorithm'] = CHECKSUM_ALGORITHMS.join(',');
      context.responseHeaders['Upload-Limit'] = uploadLimit(config.MAX_FILE_SIZE);
    }
    res.once('close', () => {
      if (!res.writableFinished && (req.method === 'PATCH' || req.method === 'POST')) metrics.failed.inc({ reason: 'aborted' });
    });
    res.on('finish', () => {
      if (context.uploadId) req.uploadId = context.uploadId;
      if (context.admitted && res.statusCode >= 300 && context.uploadId) {
        const uploadId = context.uploadId;
        void store.records.get(uploadId).then((record) => {
          if (!record && context.user) quota.release(context.user, uploadId);
        });
      }
    });
    await runWithContext(context, async () => {
      // Concatenation is answered in front of @tus/server, which refuses it.
      if (!(await concatenation.handle(req, res, context))) await tus.handle(req, res);
    });
  });

  const legacy = await createLegacyApi({ config, store, locker, quota, events, logger, preCreate, verify: options.verify, files: filesAccess });
  app.use(legacy.router);

  app.use((_req: Request, res: Response) => {
    res.status(404).json({ detail: 'Not Found' });
  });
  app.use((error: Error & { status?: number; type?: string }, req: Request, res: Response, _next: NextFunction) => {
    if (error.status && error.status < 500) {
      res.status(error.status).json({ detail: error.message });
      return;
    }
    logger.error({ err: error, requestId: req.id }, 'unhandled error');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.status(500).json({ detail: 'Internal Server Error' });
  });

  return {
    app,
    store,
    quota,
    events,
    metrics,
    tus,
    locker,
    logger,
    hooks,
    sweep: () => store.sweepExpired(),
    close: () => hooks?.stop(),
  };
}

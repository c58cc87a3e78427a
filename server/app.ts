import path from 'node:path';
import type { Server as TusServer } from '@tus/server';
import type { Locker } from '@tus/utils';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { optionalBearer, requireBearer } from './auth/middleware.js';
import type { TokenVerifier } from './auth/verifier.js';
import type { Config } from './config.js';
import { fileRoutes } from './files/routes.js';
import { onlyMethod, undecodablePath } from './legacy/errors.js';
import { createLegacyApi } from './legacy/router.js';
import { demoRouter } from '../client-demo/serve.js';
import { HookDelivery } from './hooks/delivery.js';
import { preCreateHook } from './hooks/pre-create.js';
import { healthRouter } from './ops/health.js';
import { createLogger, requestLogger } from './ops/logging.js';
import { corsMiddleware } from './ops/cors.js';
import { jsonWithoutCharset } from './ops/json.js';
import { Metrics } from './ops/metrics.js';
import { answerRetryLater, isTemporary } from './redis/unavailable.js';
import { openByteStore, storageChecks } from './storage/byte-store.js';
import { scratchDirectory } from './storage/scratch.js';
import { Concatenation } from './tus/concat.js';
import { ietfDraft } from './tus/ietf-draft.js';
import { tusDoor } from './tus/door.js';
import { GuardedLocker } from './tus/guarded-locker.js';
import { createTusServer } from './tus/tus-server.js';
import { uploadState } from './state.js';
import { UploadEvents } from './uploads/events.js';
import { SweepingQuota, type Quota } from './uploads/quota.js';
import { RunningHashes } from './uploads/running-hash.js';
import { VerifyingStore } from './uploads/verifying-store.js';

export interface AppOptions {
  verify: TokenVerifier;
  logger?: Logger;
  /**
   * Development mode: a token for the demo user, served at /demo/token; a function signs a fresh
   * one for each request (the page asks again before its token expires).
   */
  devToken?: string | (() => Promise<string>);
}

export interface Tusgate {
  app: express.Express;
  store: VerifyingStore;
  quota: Quota;
  events: UploadEvents;
  metrics: Metrics;
  tus: TusServer;
  /** The lock manager @tus/server uses; every door that writes an upload takes its lock here. */
  locker: Locker;
  logger: Logger;
  /** Event deliveries to HOOKS_URL, when configured. */
  hooks?: HookDelivery;
  sweep(): Promise<number>;
  /** Stops background work (hook deliveries) and closes shared state; the HTTP server is the caller's to close. */
  close(): Promise<void>;
}

/** How long closing waits for this process's upload locks to be given back. */
const LOCK_RELEASE_WAIT_MS = 3000;

export async function createApp(config: Config, options: AppOptions): Promise<Tusgate> {
  const logger = options.logger ?? createLogger(config.LOG_LEVEL);
  const state = await uploadState(config, logger);
  const { records, tombstones } = state;
  const events = new UploadEvents();
  const bytes = await openByteStore(config, state.uploadMetadata);
  const store = new VerifyingStore(bytes, records, new RunningHashes(), state.quota, {
    expiryMs: config.UPLOAD_EXPIRY_SECONDS * 1000,
    events,
    tombstones,
    lockHeld: state.lockHeld,
    // Storage that cannot truncate gets checksummed requests only once verified; they wait here.
    spoolDir: bytes.truncate ? undefined : await scratchDirectory(config.DATA_DIR, 'spool'),
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
  const locker = new GuardedLocker(state.locker, (id) => store.writeSettled(id));
  // Several processes sweep the same records: each removal then holds the upload's lock.
  const sweepLocker = config.REDIS_URL ? locker : undefined;
  // A user at the limit of incomplete uploads gets the slots of their expired ones back at once.
  // (At most once per user every few seconds, and never less often than uploads can expire.)
  const quota = new SweepingQuota(
    state.quota,
    (user) => store.sweepExpired(Date.now(), sweepLocker, user),
    Math.min(5000, config.UPLOAD_EXPIRY_SECONDS * 1000),
  );
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
  const ietf = ietfDraft(policy);

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
  if (!state.lockHeld) {
    // After the hooks and metrics are listening: each removal is an upload that failed (aborted).
    const removed = await store.removeCutCreations();
    if (removed > 0) logger.warn({ removed }, 'removed uploads whose creation the end of the last run cut off');
  }

  const app = express();
  app.disable('x-powered-by');
  // No ETag on API answers: FastAPI sent none, and a 304 to a status poll would hide its body.
  app.set('etag', false);
  jsonWithoutCharset(app);
  app.use(requestLogger(logger));
  app.use(metrics.middleware());
  app.use((_req, res, next) => {
    res.set('X-Content-Type-Options', 'nosniff');
    next();
  });
  app.use(corsMiddleware(config.CORS_ORIGINS));
  app.use(healthRouter({ dataDir: config.DATA_DIR, maxFileSize: config.MAX_FILE_SIZE, readinessChecks: { ...state.readinessChecks, ...storageChecks(bytes) } }));
  app.get('/metrics', (req, res) => metrics.handler(req, res));
  app.all('/metrics', onlyMethod('GET'));

  if (options.devToken) {
    const devToken = options.devToken;
    app.get('/demo/token', async (_req, res) => {
      res.set('Cache-Control', 'no-store').json({ token: typeof devToken === 'string' ? devToken : await devToken() });
    });
  }
  // The browser demo (client-demo/): Uppy's Dashboard, bundled on first request.
  app.use(demoRouter({ maxFileSize: config.MAX_FILE_SIZE, allowedTypes: config.ALLOWED_MIME_TYPES, devMode: Boolean(options.devToken), filesPublic: config.FILES_PUBLIC }));

  const filesAccess = { filesPublic: config.FILES_PUBLIC };
  const anyone = optionalBearer(options.verify);
  const authenticated = requireBearer(options.verify);

  app.use(fileRoutes({ store, tombstones, access: filesAccess, anyone }));
  app.use(tusDoor({ tus, store, metrics, concatenation, ietf, authenticated, maxFileSize: config.MAX_FILE_SIZE, corsOrigins: config.CORS_ORIGINS }));

  const legacy = await createLegacyApi({
    config, store, locker, quota, events, logger, preCreate, sessions: state.sessions, tombstones, verify: options.verify, files: filesAccess,
  });
  app.use(legacy.router);

  app.use((_req: Request, res: Response) => {
    res.status(404).json({ detail: 'Not Found' });
  });
  app.use((error: Error & { status?: number; type?: string }, req: Request, res: Response, _next: NextFunction) => {
    if (error.status === 400 && error.message.startsWith('Failed to decode param')) return undecodablePath(req, res);
    if (error.status && error.status < 500) {
      res.status(error.status).json({ detail: error.message });
      return;
    }
    if (isTemporary(error) && !res.headersSent) {
      answerRetryLater(res);
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
    sweep: () => store.sweepExpired(Date.now(), sweepLocker),
    async close() {
      hooks?.stop();
      // Requests cut at shutdown give their locks back through shared state, which must still be open.
      await locker.released(LOCK_RELEASE_WAIT_MS);
      try {
        await bytes.close?.();
      } finally {
        await state.close();
      }
    },
  };
}

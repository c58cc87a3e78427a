import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Router } from 'express';
import { onlyMethod } from '../legacy/errors.js';

/** Naive UTC ISO-8601 with microseconds, as the legacy API wrote datetimes. */
export function legacyTimestamp(date = new Date()): string {
  return `${date.toISOString().slice(0, -1)}000`;
}

export interface HealthOptions {
  dataDir: string;
  maxFileSize: number;
  /** Extra readiness checks by name (Redis, when configured); each throws when not ready. */
  readinessChecks?: Record<string, () => Promise<void>>;
}

export function healthRouter(options: HealthOptions): Router {
  const router = Router();
  router.get('/health', (_req, res) => {
    res.json({
      status: 'healthy',
      timestamp: legacyTimestamp(),
      // The original named its upload directory setting here ("uploads" by default). Clients only
      // read the field; the server's real path is nobody's business without a token.
      upload_directory: 'uploads',
      max_file_size: options.maxFileSize,
    });
  });
  router.get('/ready', async (_req, res) => {
    const checks: Record<string, string> = {};
    let ready = true;
    const probe = path.join(options.dataDir, `.ready-${randomBytes(4).toString('hex')}`);
    try {
      await fs.writeFile(probe, 'ok');
      await fs.rm(probe);
      checks.storage = 'ok';
    } catch (error) {
      ready = false;
      // The error's code says what is wrong; its message would show the server's path to anyone.
      checks.storage = `not writable: ${(error as NodeJS.ErrnoException).code ?? 'error'}`;
    }
    for (const [name, check] of Object.entries(options.readinessChecks ?? {})) {
      try {
        await check();
        checks[name] = 'ok';
      } catch (error) {
        ready = false;
        checks[name] = (error as Error).message;
      }
    }
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', checks });
  });
  router.all(['/health', '/ready'], onlyMethod('GET'));
  return router;
}

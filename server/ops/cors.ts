import type { IncomingMessage } from 'node:http';
import cors, { type CorsOptions } from 'cors';
import type { RequestHandler } from 'express';
import { TUSGATE_EXPOSED_HEADERS } from '../tus/tus-server.js';

/** Whether browsers at `origin` may read answers: it is configured, or any origin is (`*`). */
export function isAllowedOrigin(allowed: readonly string[], origin: string | undefined): boolean {
  return origin !== undefined && (allowed.includes('*') || allowed.includes(origin));
}

/** What a browser may read: tus headers, and those a ranged or conditional download needs. */
const EXPOSED_HEADERS = [
  'Location', 'Upload-Offset', 'Upload-Length', 'Tus-Resumable', 'Tus-Version', ...TUSGATE_EXPOSED_HEADERS,
  'ETag', 'Content-Range', 'Accept-Ranges', 'Content-Disposition',
];

/**
 * CORS for every answer but tus preflights, which @tus/server makes with the tus headers listed
 * (the preflight of a download, a GET, is answered here). An allowed origin is echoed, `*` included:
 * browsers refuse a literal `*` on requests sent with credentials.
 */
export function corsMiddleware(allowed: readonly string[]): RequestHandler {
  const base: CorsOptions = {
    origin: allowed.includes('*') ? true : [...allowed],
    credentials: true,
    exposedHeaders: EXPOSED_HEADERS,
  };
  // Other preflights go on: @tus/server answers tus ones, the legacy router its own (as Starlette did).
  const passOn = { ...base, preflightContinue: true };
  const forDownloads = { ...base, methods: ['GET', 'HEAD'], preflightContinue: false };
  return cors((req: IncomingMessage, callback) => {
    const downloadPreflight =
      req.method === 'OPTIONS' && req.headers['access-control-request-method'] === 'GET' && /^\/files\/[^/?]+(\?|$)/.test(req.url ?? '');
    callback(null, downloadPreflight ? forDownloads : passOn);
  });
}

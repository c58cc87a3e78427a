import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import { answerRetryLater, isTemporary } from '../redis/unavailable.js';

/** One item of a FastAPI/pydantic-v1 422 body, the shape legacy clients were written against. */
export interface ValidationItem {
  loc: Array<string | number>;
  msg: string;
  type: string;
  ctx?: Record<string, unknown>;
}

/**
 * An answer the legacy API gives on purpose: FastAPI's `{"detail": ...}` envelope with its status.
 * Everything else that escapes a handler is a bug and becomes the route's generic 500.
 */
export class LegacyError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string | ValidationItem[],
    readonly headers: Record<string, string> = {},
  ) {
    super(typeof detail === 'string' ? detail : 'validation error');
  }
}

export function validationError(items: ValidationItem[]): LegacyError {
  return new LegacyError(422, items);
}

/** A known path with another method: FastAPI's 405 rather than a 404, naming `allowed` in `Allow` as Starlette did. */
export const onlyMethod = (allowed: string) => (_req: Request, res: Response) => {
  res.status(405).set('Allow', allowed).json({ detail: 'Method Not Allowed' });
};

/**
 * A path with a malformed escape (`%zz`): uvicorn passed such paths on as they were, so the route
 * looked for a session or file of that name and found none.
 */
export function undecodablePath(req: Request, res: Response): void {
  if (/^\/files\//.test(req.path)) {
    res.status(404).set('Tus-Resumable', '1.0.0').type('text/plain').send('The file for this url was not found\n');
    return;
  }
  const detail = req.path.startsWith('/api/v1/upload/') ? 'Upload session not found' : req.path.startsWith('/api/v1/files/') ? 'File not found' : 'Not Found';
  res.status(404).json({ detail });
}

export const notFound = () => new LegacyError(404, 'Upload session not found');
export const accessDenied = () => new LegacyError(403, 'Access denied');

/**
 * The original answered an unexpected failure with a per-route message ("Failed to upload chunk");
 * a route names its own in `res.locals.legacyFailure`.
 */
export function legacyErrorHandler(logger: Logger) {
  return (error: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) {
      if (!(error instanceof LegacyError)) logger.error({ err: error, requestId: req.id }, 'legacy request failed after answering');
      res.destroy();
      return;
    }
    if (error instanceof LegacyError) {
      res.status(error.status).set(error.headers).json({ detail: error.detail });
      return;
    }
    const status = (error as { status?: number }).status;
    if (status === 413) {
      res.status(413).json({ detail: 'Request body too large' });
      return;
    }
    if (status && status >= 400 && status < 500) return next(error);
    if (isTemporary(error)) {
      // Shared state away or the upload busy past the lock wait: nothing was changed; try again.
      answerRetryLater(res);
      return;
    }
    logger.error({ err: error, requestId: req.id, uploadId: req.uploadId }, 'legacy request failed');
    res.status(500).json({ detail: (res.locals.legacyFailure as string | undefined) ?? 'Internal Server Error' });
  };
}


import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { pino, type Level, type Logger } from 'pino';

export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'tusgate' } });
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** The line's `req` and `res` are built here, already in their logged shape. */
const asIs = (value: unknown) => value;

/**
 * One JSON line per request: request id (the caller's X-Request-Id when it is sane, else a new
 * one), method, path, status, duration, user and upload id. Headers are not logged, so no token is.
 *
 * The line is pino-http's (same fields and messages, written on the response's first `finish`,
 * `close` or `error`), made in one call when the response ends, and not made at all when its level
 * is off: pino-http made three child loggers per request, serializing their bindings up front.
 */
export function requestLogger(logger: Logger) {
  const log = logger.child({}, { serializers: { req: asIs, res: asIs } });
  return (req: Request, res: Response, next: NextFunction) => {
    if (!req.id) {
      const given = req.headers['x-request-id'];
      req.id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
      res.setHeader('X-Request-Id', req.id);
    }
    const id = req.id;
    // As the request arrived: routers and method overrides change these later.
    const method = req.method;
    const path = (req.originalUrl || req.url).split('?')[0];
    const started = Date.now();
    const done = (error?: Error) => {
      res.removeListener('close', done);
      res.removeListener('finish', done);
      res.removeListener('error', done);
      const level: Level = error || res.statusCode >= 500 ? 'error' : 'info';
      if (!log.isLevelEnabled(level)) return;
      const line = {
        reqId: id,
        req: { id, method, path },
        requestId: id,
        user: req.identity?.user,
        uploadId: req.uploadId,
        // pino's response serializer: no status before the head is sent.
        res: { status: res.headersSent ? res.statusCode : null },
      };
      const responseTime = Date.now() - started;
      const failure = error || res.err;
      if (failure || res.statusCode >= 500) {
        log[level]({ ...line, err: failure || new Error(`failed with status code ${res.statusCode}`), responseTime }, 'request errored');
      } else {
        log[level]({ ...line, responseTime }, !req.readableAborted && res.writableEnded ? 'request completed' : 'request aborted');
      }
    };
    res.on('close', done);
    res.on('finish', done);
    res.on('error', done);
    next();
  };
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The request id of the log line and the X-Request-Id response header. */
      id: string;
      uploadId?: string;
    }
    interface Response {
      /** An error to report in the request's log line (as pino-http reads it). */
      err?: Error;
    }
  }
}

import type { NextFunction, Request, Response } from 'express';
import { Metadata, TUS_RESUMABLE } from '@tus/utils';
import { parseUploadChecksum } from '../uploads/checksum.js';
import { parseUploadConcat } from './concat.js';
import { replaceRequestHeader } from './request-headers.js';

const OFFSET_CONTENT_TYPE = 'application/offset+octet-stream';
const DIGITS = /^\d+$/;

function refuse(res: Response, status: number, message: string, headers: Record<string, string> = {}) {
  res.status(status).set({ 'Tus-Resumable': TUS_RESUMABLE, ...headers }).type('text/plain').send(`${message}\n`);
}

/**
 * A tus number header as a safe integer, handed on to @tus/server in the plain spelling it accepts
 * (`012` is twelve to tus; @tus/server refuses leading zeros). Undefined when it is no integer, or
 * one too large to be exact.
 */
function normalizedNumber(req: Request, name: string, value: string): number | undefined {
  if (!DIGITS.test(value) || value.replace(/^0+(?=\d)/, '').length > 16) return undefined;
  const number = Number(value);
  if (!Number.isSafeInteger(number)) return undefined;
  if (String(number) !== value) replaceRequestHeader(req, name, String(number));
  return number;
}

/**
 * Answers, before @tus/server sees them, the requests it would answer against the protocol: an
 * unknown `Tus-Resumable` is 412 with `Tus-Version`, a PATCH of another content type is 415, and
 * malformed numbers or metadata are a plain 400, never a 5xx.
 */
export function tusPrecheck(maxFileSize: number) {
  return (req: Request, res: Response, next: NextFunction) => {
    if (req.method === 'OPTIONS') return next();
    const version = req.get('tus-resumable');
    if (version !== TUS_RESUMABLE) {
      return refuse(res, 412, `Precondition Failed: Tus-Resumable ${version ? `${version} is not supported` : 'header required'}`, {
        'Tus-Version': TUS_RESUMABLE,
      });
    }
    const offset = req.get('upload-offset');
    if (offset !== undefined && normalizedNumber(req, 'Upload-Offset', offset) === undefined) {
      return refuse(res, 400, 'Bad Request: Upload-Offset must be a non-negative integer');
    }
    const length = req.get('upload-length');
    if (length !== undefined) {
      const size = normalizedNumber(req, 'Upload-Length', length);
      // Digits too many to be exact are still a length, and over any limit.
      if (size === undefined && !DIGITS.test(length)) return refuse(res, 400, 'Bad Request: Upload-Length must be a non-negative integer');
      if (size === undefined || size > maxFileSize) return refuse(res, 413, `Request Entity Too Large: Upload-Length exceeds the maximum of ${maxFileSize} bytes`);
    }
    const defer = req.get('upload-defer-length');
    if (defer !== undefined && defer !== '1') return refuse(res, 400, 'Bad Request: Upload-Defer-Length must be 1');
    const metadata = req.get('upload-metadata');
    if (metadata !== undefined) {
      try {
        Metadata.parse(metadata);
      } catch {
        return refuse(res, 400, 'Bad Request: Upload-Metadata must be comma-separated "key base64value" pairs with unique keys');
      }
    }
    const checksum = req.get('upload-checksum');
    if (checksum !== undefined && (req.method === 'PATCH' || req.method === 'POST')) {
      const parsed = parseUploadChecksum(checksum);
      if (!parsed.ok) return refuse(res, 400, `Bad Request: ${parsed.message}`);
    }
    const concatHeader = req.get('upload-concat');
    const concat = concatHeader === undefined ? undefined : parseUploadConcat(concatHeader);
    if (req.method === 'POST' && concatHeader !== undefined) {
      if (!concat) return refuse(res, 400, 'Bad Request: Upload-Concat must be "partial" or "final;" followed by upload URLs');
      if (concat.kind === 'final' && defer !== undefined) return refuse(res, 400, 'Bad Request: a final upload takes its length from its parts');
    }
    // Media types are case-insensitive; @tus/server compares them exactly.
    const contentType = req.get('content-type');
    const offsetBody = contentType?.trim().toLowerCase() === OFFSET_CONTENT_TYPE;
    if (offsetBody && contentType !== OFFSET_CONTENT_TYPE) replaceRequestHeader(req, 'Content-Type', OFFSET_CONTENT_TYPE);
    if (req.method === 'PATCH') {
      if (offset === undefined) return refuse(res, 400, 'Bad Request: Upload-Offset header required');
      if (!offsetBody) return refuse(res, 415, `Unsupported Media Type: PATCH needs Content-Type: ${OFFSET_CONTENT_TYPE}`);
    }
    // A final upload's length is the sum of its parts'.
    if (req.method === 'POST' && length === undefined && defer === undefined && concat?.kind !== 'final') {
      return refuse(res, 400, 'Bad Request: Upload-Length or Upload-Defer-Length header required');
    }
    next();
  };
}

/**
 * tus: every response but OPTIONS carries `Tus-Resumable`, including those answered before
 * @tus/server (the 401 of a missing token). Requests of the IETF draft do not speak tus.
 */
export function tusResumableHeader(req: Request, res: Response, next: NextFunction) {
  if (req.get('upload-draft-interop-version') === undefined) res.set('Tus-Resumable', TUS_RESUMABLE);
  next();
}

const OVERRIDABLE = new Set(['PATCH', 'DELETE', 'HEAD', 'GET', 'OPTIONS']);

/**
 * An answer to a POST taken as a HEAD may have no body, but the client reads it as a POST's answer:
 * a Content-Length would have it wait for bytes that never come. Without one, Node frames the answer
 * by chunks, an empty body included.
 */
function framedWithoutLength(res: Response): void {
  const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => Response;
  (res as unknown as { writeHead: (...args: unknown[]) => Response }).writeHead = (...args: unknown[]) => {
    res.removeHeader('Content-Length');
    const raw = args.find((arg): arg is string[] => Array.isArray(arg));
    if (raw) {
      for (let i = raw.length - 2; i >= 0; i -= 2) if (String(raw[i]).toLowerCase() === 'content-length') raw.splice(i, 2);
    }
    return writeHead(...args);
  };
}

/** Honours `X-HTTP-Method-Override` on POST, for clients and proxies that only send GET and POST. */
export function methodOverride(req: Request, res: Response, next: NextFunction) {
  const override = req.get('x-http-method-override')?.trim().toUpperCase();
  if (req.method === 'POST' && override && OVERRIDABLE.has(override)) {
    req.method = override;
    if (override === 'HEAD') framedWithoutLength(res);
  }
  next();
}

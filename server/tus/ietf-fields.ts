import type { IncomingMessage } from 'node:http';
import type { Request, Response } from 'express';
import { parseUploadChecksum, type RequestChecksum } from '../uploads/checksum.js';
import type { RequestContext } from '../uploads/request-context.js';
import { Problem } from './problem.js';

/** Header fields of the IETF resumable-uploads draft, and what each interop version changes in them. */

const NON_NEGATIVE_INTEGER = /^\d{1,16}$/;

/** `Upload-Limit` of the endpoint (OPTIONS), or of one upload with its remaining lifetime. */
export function uploadLimit(maxFileSize: number, lifetime?: { seconds: number; key: 'expires' | 'max-age' }): string {
  const limits = [`min-size=0`, `max-size=${maxFileSize}`];
  if (lifetime) limits.push(`${lifetime.key}=${Math.max(0, lifetime.seconds)}`);
  return limits.join(', ');
}

/** A header field holding a non-negative Integer, or undefined when absent; anything else is 400. */
export function integerField(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!NON_NEGATIVE_INTEGER.test(value)) throw new Problem(400, `${name} must be a non-negative integer`);
  return Number(value);
}

/** The filename of a `Content-Disposition` value (`filename*=UTF-8''…` first, then `filename=`). */
export function dispositionFilename(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const extended = /filename\*\s*=\s*UTF-8''([^;\s]+)/i.exec(value);
  if (extended) {
    try {
      return decodeURIComponent(extended[1]!);
    } catch {
      // fall back to the plain parameter
    }
  }
  const plain = /filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(value);
  return plain ? (plain[1]?.replace(/\\(.)/g, '$1') ?? plain[2]) : undefined;
}

/** A request's body checksum: tus `Upload-Checksum`, or RFC 9530 `Content-Digest` (sha-256). */
export function bodyChecksum(req: Request): RequestChecksum | undefined {
  const tus = req.get('upload-checksum');
  if (tus !== undefined) {
    const parsed = parseUploadChecksum(tus);
    if (!parsed.ok) throw new Problem(400, parsed.message);
    return parsed.checksum;
  }
  const digest = req.get('content-digest');
  const sha256 = digest && /(?:^|,)\s*sha-256=:([A-Za-z0-9+/]+=*):/.exec(digest);
  if (!sha256) return undefined;
  const expected = Buffer.from(sha256[1]!, 'base64');
  if (expected.length !== 32) throw new Problem(400, 'Content-Digest: a sha-256 digest is 32 bytes');
  return { algorithm: 'sha256', expected };
}

/** The digest of an upload the request completed (the store leaves it in the context). */
export function digestOf(context: RequestContext): Record<string, string> {
  const digest = context.responseHeaders['Repr-Digest'];
  return digest ? { 'Repr-Digest': digest } : {};
}

/** What one request's interop version changes. */
export class Draft {
  constructor(readonly version: number) {}

  private get completeHeader(): string {
    return this.version === 3 ? 'Upload-Incomplete' : 'Upload-Complete';
  }

  /** Whether the request says it ends the upload; undefined when it does not say. */
  complete(req: Request): boolean | undefined {
    const value = req.get(this.completeHeader);
    if (value === undefined) return undefined;
    if (value !== '?0' && value !== '?1') throw new Problem(400, `${this.completeHeader} must be ?0 or ?1`);
    return (value === '?1') !== (this.version === 3);
  }

  completeness(done: boolean): Record<string, string> {
    return { [this.completeHeader]: (done !== (this.version === 3)) ? '?1' : '?0' };
  }

  hasCompleteness(req: Request): boolean {
    return req.get(this.completeHeader) !== undefined;
  }

  /** `Upload-Limit`, with the upload's remaining lifetime when it has an expiry (`expiresAt`, ms). */
  limit(maxFileSize: number, expiresAt?: number): Record<string, string> {
    if (this.version < 6) return {};
    const lifetime =
      expiresAt !== undefined
        ? { seconds: Math.floor((expiresAt - Date.now()) / 1000), key: this.version >= 7 ? ('max-age' as const) : ('expires' as const) }
        : undefined;
    return { 'Upload-Limit': uploadLimit(maxFileSize, lifetime) };
  }
}

/** Sends `104 Upload Resumption Supported` (Node has no API for arbitrary 1xx; this is how it sends 102 and 103). */
export function informational(res: Response, headers: Record<string, string>): void {
  const req = res.req as IncomingMessage;
  if (res.headersSent || req.httpVersion !== '1.1') return;
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  if (lines.some((line) => /[\r\n]/.test(line.slice(0, -2)))) return;
  (res as unknown as { _writeRaw(data: string, encoding: string): void })._writeRaw(`HTTP/1.1 104 Upload Resumption Supported\r\n${lines.join('')}\r\n`, 'latin1');
}

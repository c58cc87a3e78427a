import { STATUS_CODES } from 'node:http';
import type { Request, Response } from 'express';
import fresh from 'fresh';
import parseRange from 'range-parser';
import send from 'send';
import { reprDigest } from '../uploads/digest.js';
import type { UploadRecord } from '../uploads/records.js';
import type { VerifyingStore } from '../uploads/verifying-store.js';

/** Served content may be anything a user uploaded: it must never run as script on this origin. */
const CONTENT_SECURITY_POLICY = "default-src 'none'; media-src 'self'; img-src 'self'; style-src 'unsafe-inline'; sandbox";

/** RFC 8187 attr-chars are left as they are; encodeURIComponent also leaves ' ( ) * alone, which are not. */
function encodeExtValue(value: string): string {
  return encodeURIComponent(value).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** RFC 6266 / 8187: an ASCII fallback plus the exact UTF-8 name. */
export function contentDisposition(filename: string | undefined): string {
  if (!filename) return 'inline';
  // A name, never a path: separators become '_' in both forms (RFC 6266 §4.3 leaves stripping paths
  // to recipients; not every recipient does). Cut by code points, so that no surrogate pair is split
  // (encodeURIComponent throws on a lone surrogate).
  const characters = Array.from(filename.replace(/[\u0000-\u001f\u007f]/g, '').replace(/[/\\]/g, '_')).slice(0, 255);
  const clean = characters.join('');
  // One '_' per character (an emoji is two UTF-16 units but one character).
  const fallback = characters.map((c) => (/^[\x20-\x7e]$/.test(c) && !/["\\%]/.test(c) ? c : '_')).join('');
  return `inline; filename="${fallback}"; filename*=UTF-8''${encodeExtValue(clean)}`;
}

export interface FileAccess {
  filesPublic: boolean;
}

/**
 * Who may read a completed upload: anyone holding its (unguessable) URL when files are public,
 * otherwise only its owner. An incomplete upload is never served.
 */
export async function readableRecord(
  store: VerifyingStore,
  id: string,
  access: FileAccess,
  user: string | undefined,
): Promise<UploadRecord | undefined> {
  const record = await store.completedRecord(id);
  if (!record) return undefined;
  if (!access.filesPublic && record.owner !== user) return undefined;
  return record;
}

/**
 * Sends a completed upload with Range, conditional requests and safe headers. `disposition: false`
 * leaves out Content-Disposition (the legacy file route never sent one).
 */
export function sendUpload(req: Request, res: Response, store: VerifyingStore, record: UploadRecord, { disposition = true } = {}): void {
  normalizeRange(req, record.size ?? 0);
  setFileHeaders(res, record);
  if (!disposition) res.removeHeader('Content-Disposition');
  if (store.bytes.dataPath) sendFile(req, res, store.bytes.dataPath(record.id));
  else streamObject(req, res, store, record);
}

/**
 * Puts a request's Range in the terms RFC 9110 gives it where `send` and range-parser read it
 * otherwise: a suffix longer than the file is the whole file (range-parser refuses it), an
 * If-Range with a weak validator never matches, so the Range is ignored (`send` matched it), and an
 * invalid Range is ignored (range-parser calls `bytes=5-2` unsatisfiable, which is a 416).
 */
function normalizeRange(req: Request, size: number): void {
  if (req.get('If-Range')?.trim().startsWith('W/')) {
    delete req.headers.range;
    return;
  }
  const specs = /^\s*bytes\s*=(.*)$/i.exec(req.headers.range ?? '')?.[1]?.split(',');
  if (specs === undefined) return;
  // RFC 9110 §14.1.1: a range whose last position is before its first is invalid, and so is the
  // Range that holds it; §14.2 lets a server ignore such a Range, and the whole file (200) is what a
  // client that sent a broken Range can still use. Checked before the size: invalid on an empty file too.
  if (specs.some(endsBeforeStart)) {
    delete req.headers.range;
    return;
  }
  if (size === 0) return;
  const clamped = specs.map((spec) => {
    const suffix = /^\s*-(\d+)\s*$/.exec(spec)?.[1];
    return suffix !== undefined && Number(suffix) > size ? `-${size}` : spec.trim();
  });
  req.headers.range = `bytes=${clamped.join(',')}`;
}

/** `first-last` with last < first (spaces as range-parser allows them). */
function endsBeforeStart(spec: string): boolean {
  const positions = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(spec);
  return positions !== null && Number(positions[2]) < Number(positions[1]);
}

function setFileHeaders(res: Response, record: UploadRecord): void {
  res.set({
    'Content-Type': record.verifiedType ?? 'application/octet-stream',
    'Content-Disposition': contentDisposition(record.filename),
    'Content-Security-Policy': CONTENT_SECURITY_POLICY,
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-cache',
    ETag: `"${record.sha256}"`,
    'Repr-Digest': reprDigest(record.sha256!),
  });
}

/** A file on disk, through `send` (Range, conditional requests, HEAD). */
function sendFile(req: Request, res: Response, file: string): void {
  const stream = send(req, file, {
    etag: false,
    lastModified: true,
    acceptRanges: true,
    dotfiles: 'allow',
    index: false,
  });
  stream.on('error', (error: { status?: number; headers?: Record<string, string> }) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // `send` reports an unsatisfiable Range (416, with `Content-Range: bytes */size`) and a failed
    // If-Match / If-Unmodified-Since (412) as errors too: they are answers to the client, not 500s.
    const status = error.status === 404 || error.status === 412 || error.status === 416 ? error.status : 500;
    if (status === 404 || status === 500) withoutFileHeaders(res);
    else res.removeHeader('Content-Disposition');
    if (error.headers && status !== 500) res.set(error.headers);
    res.status(status).type('text/plain').send(`${STATUS_CODES[status]}\n`);
  });
  stream.pipe(res);
}

/** An answer that is not the file says nothing about it: no name, digest or validators. */
function withoutFileHeaders(res: Response): void {
  for (const name of ['Content-Disposition', 'Repr-Digest', 'ETag', 'Last-Modified']) res.removeHeader(name);
}

function answerPlain(res: Response, status: number): void {
  res.removeHeader('Content-Disposition');
  res.status(status).type('text/plain').send(`${STATUS_CODES[status]}\n`);
}

/**
 * An object in storage that has no local file (S3), streamed by range reads. Conditional requests
 * and a single Range as `send` answers them for a file; several ranges are answered with the whole
 * object (allowed by RFC 9110), as `send` also does.
 */
function streamObject(req: Request, res: Response, store: VerifyingStore, record: UploadRecord): void {
  const size = record.size ?? 0;
  const etag = `"${record.sha256}"`;
  const lastModified = new Date(record.completedAt ?? record.lastWriteAt);
  lastModified.setMilliseconds(0);
  res.set({ 'Accept-Ranges': 'bytes', 'Last-Modified': lastModified.toUTCString() });
  const ifMatch = req.get('If-Match');
  const ifUnmodifiedSince = Date.parse(req.get('If-Unmodified-Since') ?? '');
  if ((ifMatch && ifMatch.trim() !== '*' && !ifMatch.split(',').some((tag) => tag.trim() === etag)) || ifUnmodifiedSince < lastModified.getTime()) {
    answerPlain(res, 412);
    return;
  }
  if (fresh(req.headers, { etag, 'last-modified': lastModified.toUTCString() })) {
    res.status(304).end();
    return;
  }
  let start = 0;
  let end = size;
  const ifRange = req.get('If-Range');
  const rangeApplies = !ifRange || ifRange === etag || Date.parse(ifRange) >= lastModified.getTime();
  const header = req.get('Range');
  if (header && rangeApplies) {
    const ranges = parseRange(size, header, { combine: true });
    if (ranges === -1) {
      res.set('Content-Range', `bytes */${size}`);
      answerPlain(res, 416);
      return;
    }
    if (ranges !== -2 && ranges.type === 'bytes' && ranges.length === 1) {
      start = ranges[0]!.start;
      end = ranges[0]!.end + 1;
      res.status(206).set('Content-Range', `bytes ${start}-${end - 1}/${size}`);
    }
  }
  res.set('Content-Length', String(end - start));
  if (req.method === 'HEAD' || end === start) {
    res.end();
    return;
  }
  const body = store.bytes.readRange(record.id, start, end);
  body.once('error', (error) => {
    if (res.headersSent) return void res.destroy();
    // The object store away before the first byte: an answer the client can act on, not a cut.
    body.unpipe(res);
    withoutFileHeaders(res);
    for (const name of ['Content-Range', 'Accept-Ranges']) res.removeHeader(name);
    const text = (error as { body?: string }).body ?? 'Service Unavailable: the object store cannot be reached now; try again later\n';
    res.status(503).set('Retry-After', '1').type('text/plain').send(text);
  });
  body.pipe(res);
}

import type { Request, Response } from 'express';
import send from 'send';
import { reprDigest } from '../uploads/digest.js';
import type { UploadRecord } from '../uploads/records.js';
import type { VerifyingStore } from '../uploads/verifying-store.js';

/** Served content may be anything a user uploaded: it must never run as script on this origin. */
const CONTENT_SECURITY_POLICY = "default-src 'none'; media-src 'self'; img-src 'self'; style-src 'unsafe-inline'; sandbox";

/** RFC 6266 / 8187: an ASCII fallback plus the exact UTF-8 name. */
export function contentDisposition(filename: string | undefined): string {
  if (!filename) return 'inline';
  const clean = filename.replace(/[\u0000-\u001f\u007f]/g, '').slice(0, 255);
  const fallback = clean.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  return `inline; filename="${fallback}"; filename*=UTF-8''${encodeURIComponent(clean)}`;
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

/** Sends a completed upload with Range, conditional requests and safe headers (via `send`). */
export function sendUpload(req: Request, res: Response, store: VerifyingStore, record: UploadRecord): void {
  res.set({
    'Content-Type': record.verifiedType ?? 'application/octet-stream',
    'Content-Disposition': contentDisposition(record.filename),
    'Content-Security-Policy': CONTENT_SECURITY_POLICY,
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-cache',
    ETag: `"${record.sha256}"`,
    'Repr-Digest': reprDigest(record.sha256!),
  });
  const stream = send(req, store.bytes.dataPath(record.id), {
    etag: false,
    lastModified: true,
    acceptRanges: true,
    dotfiles: 'allow',
    index: false,
  });
  stream.on('error', (error: { status?: number }) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.removeHeader('Repr-Digest');
    res.removeHeader('ETag');
    res.status(error.status === 404 ? 404 : 500).type('text/plain').send(error.status === 404 ? 'Not Found\n' : 'Internal Server Error\n');
  });
  stream.pipe(res);
}

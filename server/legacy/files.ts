import type { Request, Response } from 'express';
import { identify, isFailure } from '../auth/middleware.js';
import type { TokenVerifier } from '../auth/verifier.js';
import { readableRecord, sendUpload, type FileAccess } from '../files/serve.js';
import type { VerifyingStore } from '../uploads/verifying-store.js';

/** `file_url` of a completed upload: its id, `_`, and its name as one percent-encoded segment. */
export function fileUrl(id: string, filename: string): string {
  return `/api/v1/files/${id}_${encodeURIComponent(filename)}`;
}

/**
 * `GET`/`HEAD /api/v1/files/<id>_<filename>`: the upload is found by its id alone (the part before
 * the first `_`: neither legacy UUIDs nor tus ids contain one); the name must be the one it was
 * uploaded with, so only the URL the server handed out works. Nothing on disk is named after the
 * client's filename. Readers are decided as for /files/<id>.
 */
export function legacyFileHandler(store: VerifyingStore, access: FileAccess, verify: TokenVerifier) {
  return async (req: Request, res: Response) => {
    const name = req.params.name as string;
    const split = name.indexOf('_');
    const id = split > 0 ? name.slice(0, split) : '';
    const rest = name.slice(split + 1);
    let user: string | undefined;
    if (!access.filesPublic) {
      const identity = await identify(verify, req.headers.authorization);
      if (!isFailure(identity)) user = identity.user;
    }
    const record = /^[A-Za-z0-9-]{1,128}$/.test(id) ? await readableRecord(store, id, access, user) : undefined;
    if (!record || record.filename === undefined || record.filename !== rest) {
      res.status(404).json({ detail: 'File not found' });
      return;
    }
    req.uploadId = id;
    sendUpload(req, res, store, record, { disposition: false });
  };
}

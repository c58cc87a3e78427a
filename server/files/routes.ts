import { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { methodOverride } from '../tus/precheck.js';
import type { Tombstones } from '../uploads/tombstones.js';
import type { VerifyingStore } from '../uploads/verifying-store.js';
import { uploadInfoHandler } from './info.js';
import { readableRecord, sendUpload, type FileAccess } from './serve.js';

export interface FileRoutesOptions {
  store: VerifyingStore;
  tombstones: Tombstones;
  access: FileAccess;
  /** Reads a token when one is sent, without requiring it. */
  anyone: RequestHandler;
}

/** `GET /files/<id>/info`, and downloads of completed uploads at `/files/<id>`. */
export function fileRoutes({ store, tombstones, access, anyone }: FileRoutesOptions): Router {
  const router = Router();
  router.get('/files/:id/info', anyone, uploadInfoHandler(store, tombstones, access));

  // Downloads: GET, and HEAD without Tus-Resumable (or the IETF draft's header), of a completed upload.
  const isDownload = (req: Request) =>
    req.method === 'GET' ||
    (req.method === 'HEAD' && req.get('tus-resumable') === undefined && req.get('upload-draft-interop-version') === undefined);
  router.all('/files/:id', methodOverride, async (req: Request, res: Response, next: NextFunction) => {
    if (!isDownload(req)) return next();
    req.uploadId = req.params.id as string;
    if (!access.filesPublic) await new Promise<void>((resolve) => anyone(req, res, () => resolve()));
    const record = await readableRecord(store, req.params.id as string, access, req.identity?.user);
    if (!record) {
      res.status(404).type('text/plain').send('Not Found\n');
      return;
    }
    sendUpload(req, res, store, record);
  });

  return router;
}

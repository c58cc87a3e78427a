import type { Request, Response } from 'express';
import { isPartial, type UploadRecord } from '../uploads/records.js';
import type { Tombstones } from '../uploads/tombstones.js';
import type { VerifyingStore } from '../uploads/verifying-store.js';
import type { FileAccess } from './serve.js';

/**
 * Who may read an upload's facts: whoever may read the file once it is complete, and its owner
 * at any time. Everyone else gets the same 404 as for an upload that does not exist.
 */
function mayReadInfo(record: UploadRecord, access: FileAccess, user: string | undefined): boolean {
  if (record.owner === user) return true;
  // A part of a concatenation is never served, so its facts are its owner's only.
  return record.state === 'complete' && !isPartial(record) && access.filesPublic;
}

/** `GET /files/<id>/info`: the upload's state, sizes, types, digest and media facts as JSON. */
export function uploadInfoHandler(store: VerifyingStore, tombstones: Tombstones, access: FileAccess) {
  return async (req: Request, res: Response) => {
    const id = req.params.id as string;
    req.uploadId = id;
    const record = await store.records.get(id);
    if (!record) {
      // A failed or expired upload is gone for everyone; its owner may still learn why.
      const tombstone = await tombstones.get(id);
      if (tombstone && tombstone.record.owner === req.identity?.user) {
        const { record: ended } = tombstone;
        res.set('Cache-Control', 'no-store').json({
          ...describe(ended, undefined),
          state: tombstone.state,
          reason: tombstone.reason ?? null,
          offset: null,
          sha256: null,
          expires_at: null,
          ended_at: tombstone.endedAt,
        });
        return;
      }
    }
    if (!record || !mayReadInfo(record, access, req.identity?.user)) {
      res.status(404).json({ detail: 'Not Found' });
      return;
    }
    const offset = record.state === 'complete' ? record.size : await store.bytes.storedBytes(id).catch(() => 0);
    res.set('Cache-Control', 'no-store').json({ ...describe(record, store.expiresAt(record)), offset });
  };
}

/** The facts every state shares, as JSON. */
function describe(record: UploadRecord, expires: number | undefined) {
  const complete = record.state === 'complete';
  // An incomplete upload past its expiry already answers 410 to tus, and is reported expired
  // before the sweep comes.
  const expired = !complete && expires !== undefined && expires <= Date.now();
  return {
    id: record.id,
    state: expired ? 'expired' : record.state,
    origin: record.origin,
    size: record.size ?? null,
    filename: record.filename ?? null,
    declared_type: record.declaredType ?? null,
    verified_type: record.verifiedType ?? null,
    sha256: complete ? record.sha256 : null,
    created_at: record.createdAt,
    completed_at: record.completedAt ?? null,
    expires_at: expires === undefined ? null : new Date(expires).toISOString(),
    media: record.media ?? null,
  };
}

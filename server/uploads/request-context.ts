import { AsyncLocalStorage } from 'node:async_hooks';
import type { RequestChecksum } from './checksum.js';

/**
 * What one HTTP request carries through code that is not handed the request itself: the store
 * wrapper learns who is creating an upload from here, and leaves response headers here that are
 * known only once the bytes are written (Repr-Digest, Upload-Expires).
 */
export interface RequestContext {
  requestId: string;
  user?: string;
  /** Which door created the upload; tus unless the legacy facade says otherwise. */
  origin?: 'tus' | 'legacy';
  uploadId?: string;
  responseHeaders: Record<string, string>;
  /**
   * Set once a tus creation has taken a quota slot, so a failed creation can give it back (and a
   * creation whose first bytes are refused leaves no upload behind: its answer has no Location).
   */
  admitted?: boolean;
  /** The request's `Upload-Checksum`: its body is kept only if it matches. */
  checksum?: RequestChecksum;
  /** `Upload-Concat` of the upload this request creates (`partial`, or `final;<urls>`), as received. */
  concat?: string;
}

const storage = new AsyncLocalStorage<RequestContext>();

export function runWithContext<T>(context: RequestContext, fn: () => T): T {
  return storage.run(context, fn);
}

export function currentContext(): RequestContext | undefined {
  return storage.getStore();
}

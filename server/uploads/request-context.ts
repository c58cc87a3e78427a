import type { IncomingMessage } from 'node:http';
import type { Lock, Locker, RequestRelease } from '@tus/utils';
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
  /** The request's `Content-Length`: a checksummed body that ends short of it was stopped, not damaged. */
  bodyLength?: number;
  /** `Upload-Concat` of the upload this request creates (`partial`, or `final;<urls>`), as received. */
  concat?: string;
}

const byRequest = new WeakMap<IncomingMessage, RequestContext>();

/** Makes `context` the one @tus/server's hooks find for `req`. */
export function attachContext(req: IncomingMessage, context: RequestContext): void {
  byRequest.set(req, context);
}

/**
 * The context of a request as @tus/server hands it to its hooks and lockers: a web Request made by
 * srvx, which keeps the Node request it came from.
 */
export function contextOfRequest(req: unknown): RequestContext | undefined {
  const node = nodeRequestOf(req);
  return node && byRequest.get(node);
}

/** The Node request under the web request @tus/server hands its hooks. */
export function nodeRequestOf(req: unknown): IncomingMessage | undefined {
  return (req as { runtime?: { node?: { req?: IncomingMessage } } } | undefined)?.runtime?.node?.req;
}

/**
 * Which request's context goes with each upload while a request holds the upload's lock in this
 * process. The store's methods are called under that lock and are given only an upload id, so they
 * find the request here. (An AsyncLocalStorage would carry it too, but its promise hooks cost every
 * promise in the process: 4–6 % of the CPU of a small upload, measured.)
 */
export class UploadContexts {
  private readonly holders = new Map<string, RequestContext>();

  of(id: string): RequestContext | undefined {
    return this.holders.get(id);
  }

  /** Runs `work` with `context` as upload `id`'s; the caller holds the upload's lock, or the id is new. */
  async during<T>(id: string, context: RequestContext, work: () => Promise<T>): Promise<T> {
    const previous = this.holders.get(id);
    this.holders.set(id, context);
    try {
      return await work();
    } finally {
      if (this.holders.get(id) === context) {
        if (previous) this.holders.set(id, previous);
        else this.holders.delete(id);
      }
    }
  }

  /** `locker` for one request: each lock it holds makes the upload's context `context`. */
  lockerFor(locker: Locker, context: RequestContext | undefined): Locker {
    if (!context) return locker;
    const holders = this.holders;
    return {
      newLock(id: string): Lock {
        const lock = locker.newLock(id);
        return {
          async lock(signal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
            await lock.lock(signal, requestRelease);
            holders.set(id, context);
          },
          async unlock(): Promise<void> {
            try {
              await lock.unlock();
            } finally {
              if (holders.get(id) === context) holders.delete(id);
            }
          },
        };
      },
    };
  }
}

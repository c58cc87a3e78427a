import { ERRORS, type Lock, type Locker, type RequestRelease } from '@tus/utils';
import { Unavailable } from '../redis/unavailable.js';

export const UPLOAD_LOCKED = {
  status_code: 423,
  body: 'Locked: another request is still writing this upload; retry shortly\n',
};

/**
 * Wraps the lock manager every door uses, for two things a bare Locker does not do:
 *
 * - A lock is released only once this process's write to the upload has settled. @tus/server may
 *   answer a PATCH whose body broke off (and unlock) while the store is still flushing it; with
 *   another process waiting, that process would read a stale offset and write over the tail.
 * - Failures get statuses clients act on: a lock wait that times out is 423 (tus-js-client retries
 *   it) instead of @tus/server's 500, and an unreachable lock service is 503.
 */
export class GuardedLocker implements Locker {
  constructor(
    private readonly inner: Locker,
    private readonly writeSettled: (id: string) => Promise<void>,
  ) {}

  newLock(id: string): Lock {
    const lock = this.inner.newLock(id);
    const writeSettled = this.writeSettled;
    return {
      async lock(signal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
        try {
          await lock.lock(signal, requestRelease);
        } catch (error) {
          if (error === ERRORS.ERR_LOCK_TIMEOUT) throw UPLOAD_LOCKED;
          if ((error as { status_code?: number } | null)?.status_code) throw error;
          throw new Unavailable(error);
        }
      },
      async unlock(): Promise<void> {
        await writeSettled(id);
        try {
          await lock.unlock();
        } catch {
          // The lock service is away: a Redis lease runs out by itself within its lease time.
        }
      },
    };
  }
}

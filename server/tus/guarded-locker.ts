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
  /** Locks held now in this process; shutting down waits for them to be given back. */
  private held = 0;
  private onAllReleased: Array<() => void> = [];

  constructor(
    private readonly inner: Locker,
    private readonly writeSettled: (id: string) => Promise<void>,
  ) {}

  /**
   * Resolves once this process holds no lock (or after `timeoutMs`): shared state must stay open
   * until then, or a lock cut off with its request stays taken in Redis for its whole lease.
   */
  released(timeoutMs: number): Promise<void> {
    if (this.held === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.onAllReleased.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  newLock(id: string): Lock {
    const lock = this.inner.newLock(id);
    const guard = this;
    let holding = false;
    return {
      async lock(signal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
        try {
          await lock.lock(signal, requestRelease);
        } catch (error) {
          if (error === ERRORS.ERR_LOCK_TIMEOUT) throw UPLOAD_LOCKED;
          if ((error as { status_code?: number } | null)?.status_code) throw error;
          throw new Unavailable(error);
        }
        holding = true;
        guard.held++;
      },
      async unlock(): Promise<void> {
        try {
          await guard.writeSettled(id);
          await lock.unlock();
        } catch {
          // The lock service is away: a Redis lease runs out by itself within its lease time.
        } finally {
          if (holding) {
            holding = false;
            if (--guard.held === 0) for (const resolve of guard.onAllReleased.splice(0)) resolve();
          }
        }
      },
    };
  }
}

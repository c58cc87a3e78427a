import type { Lock, Locker, RequestRelease } from '@tus/utils';

/**
 * Runs `task` holding the upload locks of `ids`, the same locks @tus/server takes. They are taken
 * in sorted order, so two callers locking overlapping sets cannot deadlock. `release` is called
 * when another request waits for one of them (@tus/server's handlers then stop their own request).
 */
export async function withLocks<T>(
  locker: Locker,
  ids: readonly string[],
  task: () => Promise<T>,
  release: RequestRelease = () => undefined,
): Promise<T> {
  const held: Lock[] = [];
  try {
    for (const id of [...new Set(ids)].sort()) {
      const lock = locker.newLock(id);
      await lock.lock(new AbortController().signal, release);
      held.push(lock);
    }
    return await task();
  } finally {
    for (const lock of held.reverse()) await lock.unlock();
  }
}

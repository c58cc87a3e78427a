import type { Locker } from '@tus/utils';
import type { VerifyingStore } from '../uploads/verifying-store.js';
import { batchedReadStream } from '../storage/batched-io.js';
import { KeyedSerializer } from '../storage/serial.js';
import type { LegacySession } from './sessions.js';
import type { Staging } from './staging.js';

const queues = new WeakMap<Locker, KeyedSerializer>();

/**
 * Runs `task` holding the upload's lock, the same lock the tus door takes for a PATCH.
 *
 * Legacy requests of one upload first queue here, in this process, so that only one of them at a
 * time waits in the locker: MemoryLocker waits by polling, and every poll adds to a promise chain
 * that lives until the lock is acquired, so ten parallel chunk requests polling while one appends
 * 100 MB grew the heap by over 100 MiB.
 */
export function withUploadLock<T>(locker: Locker, id: string, task: () => Promise<T>): Promise<T> {
  let queue = queues.get(locker);
  if (!queue) queues.set(locker, (queue = new KeyedSerializer()));
  return queue.run(id, async () => {
    const lock = locker.newLock(id);
    // Appending staged chunks takes moments and must not be cut short, so a request that wants
    // the lock simply waits for it (no release on request).
    await lock.lock(new AbortController().signal, () => undefined);
    try {
      return await task();
    } finally {
      await lock.unlock();
    }
  });
}

export interface AppendResult {
  /** Chunks that are now in the store (every chunk below the store's offset). */
  appended: number[];
  offset: number;
}

/**
 * Appends, through the store, every staged chunk that continues the upload, in order, and removes
 * each staged file once its bytes are in. The caller holds the upload's lock.
 *
 * It picks up wherever the store is: after a crash in the middle of an append the stored offset
 * falls inside a chunk, and the rest of that chunk is taken from its staged file. Staged files of
 * chunks already in the store (left by a crash after an append) are removed.
 */
export async function appendReady(store: VerifyingStore, staging: Staging, session: LegacySession): Promise<AppendResult> {
  const id = session.session_id;
  let { offset } = await store.getUpload(id);
  while (offset < session.file_size) {
    const chunk = Math.floor(offset / session.chunk_size);
    if (!(await staging.has(id, chunk))) break;
    const within = offset - chunk * session.chunk_size;
    const staged = batchedReadStream(staging.chunkPath(id, chunk), { start: within });
    let next: number;
    try {
      next = await store.write(staged, id, offset);
    } finally {
      // A write refused before it read (the upload gone) would leave the file open.
      staged.destroy();
    }
    if (next <= offset) break;
    offset = next;
    if (offset >= Math.min((chunk + 1) * session.chunk_size, session.file_size)) await staging.removeChunk(id, chunk);
  }
  const done = offset >= session.file_size ? session.total_chunks : Math.floor(offset / session.chunk_size);
  for (const stale of await staging.staged(id)) if (stale < done) await staging.removeChunk(id, stale);
  return { appended: Array.from({ length: done }, (_, chunk) => chunk), offset };
}

import type { DocStore } from '../storage/json-dir.js';
import type { FailureReason } from './events.js';
import type { UploadRecord } from './records.js';

export interface Tombstone {
  record: UploadRecord;
  state: 'failed' | 'expired';
  reason?: FailureReason;
  endedAt: string;
}

/**
 * What is left of an upload that failed verification or expired: its bytes and record are gone
 * (every door answers 404 for it), but its owner can still learn from `/info` what happened. Kept
 * for one expiry period, then swept.
 */
export class Tombstones {
  constructor(private readonly dir: DocStore<Tombstone>) {}

  init(): Promise<void> {
    return this.dir.init();
  }

  add(record: UploadRecord, state: Tombstone['state'], reason?: FailureReason): Promise<void> {
    return this.dir.set(record.id, { record, state, reason, endedAt: new Date().toISOString() });
  }

  get(id: string): Promise<Tombstone | undefined> {
    return this.dir.get(id);
  }

  remove(id: string): Promise<void> {
    return this.dir.delete(id);
  }

  async sweep(olderThanMs: number, now = Date.now()): Promise<void> {
    for (const id of await this.dir.keys()) {
      const tombstone = await this.dir.get(id).catch(() => undefined);
      if (!tombstone || Date.parse(tombstone.endedAt) + olderThanMs <= now) await this.dir.delete(id);
    }
  }
}

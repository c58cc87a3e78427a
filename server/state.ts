import path from 'node:path';
import { MemoryLocker } from '@tus/server';
import type { KvStore, Locker, Upload } from '@tus/utils';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { SessionStore, type LegacySession } from './legacy/sessions.js';
import { JsonDirectory } from './storage/json-dir.js';
import { Journal } from './storage/journal.js';
import { claimDirectory, markSharedState, refuseIfShared } from './storage/owner.js';
import { QuotaTracker, type Quota } from './uploads/quota.js';
import { UploadRecords, type UploadRecord } from './uploads/records.js';
import { Tombstones, type Tombstone } from './uploads/tombstones.js';

/**
 * Everything about uploads that is not their bytes: records, tombstones, legacy sessions, quotas and
 * locks. One process keeps it in DATA_DIR and memory; with REDIS_URL it lives in Redis, so every
 * process behind a load balancer sees the same uploads.
 */
export interface UploadState {
  records: UploadRecords;
  tombstones: Tombstones;
  sessions: SessionStore;
  quota: Quota;
  /** The lock manager before tusgate's guard (see GuardedLocker). */
  locker: Locker;
  /** With state shared by processes: whether any of them holds an upload's lock, without asking for it. */
  lockHeld?: (id: string) => Promise<boolean>;
  /** Where @tus/file-store keeps each upload's tus metadata; undefined: a journal of this process. */
  uploadMetadata?: KvStore<Upload>;
  /** Readiness checks for /ready beyond storage, by name. */
  readinessChecks: Record<string, () => Promise<void>>;
  close(): Promise<void>;
}

const RECORD_CACHE_ENTRIES = 10_000;

export function limitsOf(config: Config) {
  return { maxActive: config.MAX_ACTIVE_UPLOADS_PER_USER, perHour: config.UPLOADS_PER_HOUR_PER_USER };
}

export async function localState(config: Config): Promise<UploadState> {
  const dir = (name: string) => path.resolve(config.DATA_DIR, name);
  await refuseIfShared(path.resolve(config.DATA_DIR));
  const release = await claimDirectory(path.resolve(config.DATA_DIR));
  // Records are made with every upload: one journal file, not a file each (see Journal).
  const recordJournal = new Journal<UploadRecord>(path.join(dir('records'), 'journal.jsonl'), dir('records'));
  const records = new UploadRecords(recordJournal, RECORD_CACHE_ENTRIES);
  const tombstones = new Tombstones(new JsonDirectory<Tombstone>(dir('tombstones')));
  const sessions = new SessionStore(new JsonDirectory<LegacySession>(path.join(dir('legacy'), 'sessions')));
  try {
    await Promise.all([records.init(), tombstones.init(), sessions.init()]);
  } catch (error) {
    await recordJournal.close().catch(() => undefined);
    await release();
    throw error;
  }
  // The quota lives in memory: rebuild it from the incomplete uploads on disk.
  const quota = new QuotaTracker(limitsOf(config));
  for (const record of await records.expiryCandidates()) {
    if (record.state !== 'complete') quota.restore(record.owner, record.id, Date.parse(record.createdAt));
  }
  return {
    records, tombstones, sessions, quota, locker: new MemoryLocker(), readinessChecks: {},
    async close() {
      await recordJournal.close();
      await release();
    },
  };
}

export async function uploadState(config: Config, logger: Logger): Promise<UploadState> {
  if (!config.REDIS_URL) return localState(config);
  // Loaded only when configured: one process on local state never loads the Redis client.
  const { redisState } = await import('./redis/state.js');
  const state = await redisState(config, config.REDIS_URL, logger);
  // Uploads stored in DATA_DIR are only reachable through Redis now (on S3 it holds none).
  if (config.STORAGE === 'file') await markSharedState(path.resolve(config.DATA_DIR));
  return state;
}

import fs from 'node:fs/promises';
import path from 'node:path';
import { MemoryLocker } from '@tus/server';
import type { KvStore, Locker, Upload } from '@tus/utils';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { SessionStore, type LegacySession } from './legacy/sessions.js';
import { connectRedis } from './redis/connection.js';
import { RedisDocs } from './redis/docs.js';
import { RedisQuota } from './redis/quota.js';
import { JsonDirectory } from './storage/json-dir.js';
import { RedisLocker } from './storage/redis-locker.js';
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
  /** Where @tus/file-store keeps each upload's tus metadata; undefined: its JSON files beside the data. */
  uploadMetadata?: KvStore<Upload>;
  /** Readiness checks for /ready beyond storage, by name. */
  readinessChecks: Record<string, () => Promise<void>>;
  close(): Promise<void>;
}

const RECORD_CACHE_ENTRIES = 10_000;

function limitsOf(config: Config) {
  return { maxActive: config.MAX_ACTIVE_UPLOADS_PER_USER, perHour: config.UPLOADS_PER_HOUR_PER_USER };
}

export async function localState(config: Config): Promise<UploadState> {
  const dir = (name: string) => path.resolve(config.DATA_DIR, name);
  const records = new UploadRecords(new JsonDirectory<UploadRecord>(dir('records')), RECORD_CACHE_ENTRIES);
  const tombstones = new Tombstones(new JsonDirectory<Tombstone>(dir('tombstones')));
  const sessions = new SessionStore(new JsonDirectory<LegacySession>(path.join(dir('legacy'), 'sessions')));
  await Promise.all([records.init(), tombstones.init(), sessions.init()]);
  // The quota lives in memory: rebuild it from the incomplete uploads on disk.
  const quota = new QuotaTracker(limitsOf(config));
  for (const record of await records.all()) {
    if (record.state !== 'complete') quota.restore(record.owner, record.id, Date.parse(record.createdAt));
  }
  return { records, tombstones, sessions, quota, locker: new MemoryLocker(), readinessChecks: {}, close: async () => {} };
}

export const REDIS_PREFIX = 'tusgate:';

export async function redisState(config: Config, url: string, logger: Logger): Promise<UploadState> {
  const redis = await connectRedis(url, logger);
  const subscriber = await connectRedis(url, logger);
  const expiryMs = config.UPLOAD_EXPIRY_SECONDS * 1000;
  const docs = <T>(kind: string, ttlMs?: number) => new RedisDocs<T>(redis, `${REDIS_PREFIX}${kind}`, ttlMs);
  const locker = new RedisLocker(redis, subscriber, { prefix: REDIS_PREFIX });
  // Several processes write records: no process may trust a cached copy.
  const records = new UploadRecords(docs<UploadRecord>('record'), 0);
  // A tombstone is kept one expiry period; Redis drops it by itself then.
  const tombstones = new Tombstones(docs<Tombstone>('tombstone', expiryMs));
  const sessions = new SessionStore(docs<LegacySession>('session'), locker);
  // An incomplete upload counts against its owner until released, or for at most two expiry periods
  // and an hour after the owner's last creation if its release was lost.
  const quota = new RedisQuota(redis, limitsOf(config), 2 * expiryMs + 3600_000, REDIS_PREFIX);
  return {
    records,
    tombstones,
    sessions,
    quota,
    locker,
    uploadMetadata: kvStore(docs<Upload>('upload')),
    readinessChecks: { redis: () => pingRedis(redis) },
    async close() {
      await locker.close();
      await Promise.all([redis.quit().catch(() => redis.disconnect()), subscriber.quit().catch(() => subscriber.disconnect())]);
    },
  };
}

/** @tus/file-store's metadata interface over shared documents. */
function kvStore(docs: RedisDocs<Upload>): KvStore<Upload> {
  return {
    get: (key) => docs.get(key),
    set: (key, value) => docs.set(key, value),
    delete: (key) => docs.delete(key),
    list: () => docs.keys(),
  };
}

async function pingRedis(redis: Redis): Promise<void> {
  try {
    await redis.ping();
  } catch (error) {
    throw new Error(`redis unreachable: ${(error as Error).message}`);
  }
}

export async function uploadState(config: Config, logger: Logger): Promise<UploadState> {
  await fs.mkdir(path.resolve(config.DATA_DIR, 'uploads'), { recursive: true });
  return config.REDIS_URL ? redisState(config, config.REDIS_URL, logger) : localState(config);
}

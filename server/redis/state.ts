import type { KvStore, Upload } from '@tus/utils';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { SessionStore, type LegacySession } from '../legacy/sessions.js';
import { limitsOf, type UploadState } from '../state.js';
import { RedisLocker } from '../storage/redis-locker.js';
import { GuardedLocker } from '../tus/guarded-locker.js';
import { UploadRecords, type UploadRecord } from '../uploads/records.js';
import { Tombstones, type Tombstone } from '../uploads/tombstones.js';
import { connectRedis } from './connection.js';
import { RedisDocs } from './docs.js';
import { RedisQuota } from './quota.js';

export const REDIS_PREFIX = 'tusgate:';

/** Upload state shared by every process on one Redis (see UploadState). */
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
  // Session locks fail as upload locks do: Redis away is 503, a lock wait that times out 423.
  const sessions = new SessionStore(docs<LegacySession>('session'), new GuardedLocker(locker, async () => undefined));
  // An incomplete upload counts against its owner until released, or for at most two expiry periods
  // and an hour after the owner's last creation if its release was lost.
  const quota = new RedisQuota(redis, limitsOf(config), 2 * expiryMs + 3600_000, REDIS_PREFIX);
  return {
    records,
    tombstones,
    sessions,
    quota,
    locker,
    lockHeld: (id) => locker.isHeld(id),
    uploadMetadata: kvStore(docs<Upload>('upload')),
    readinessChecks: { redis: () => pingRedis(redis) },
    async close() {
      quota.close();
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


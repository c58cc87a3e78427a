import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ConfigError } from '../config.js';

/**
 * A connection that fails fast instead of queueing: while Redis is away every command rejects at
 * once (so requests answer 503 rather than hang), and a command that gets no answer within
 * `commandTimeoutMs` rejects too. It reconnects by itself.
 */
export async function connectRedis(url: string, logger: Logger, commandTimeoutMs = 2000): Promise<Redis> {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    connectTimeout: commandTimeoutMs,
    retryStrategy: (attempt) => Math.min(50 * attempt, 1000),
  });
  // One warning per outage, not one per reconnection attempt.
  let down = false;
  redis.on('error', (error) => {
    if (down) return;
    down = true;
    logger.warn({ err: error }, 'redis connection lost; requests that need shared state answer 503 until it is back');
  });
  redis.on('ready', () => {
    if (down) logger.info('redis connection is back');
    down = false;
  });
  const { hostname, port, pathname } = new URL(url);
  const db = pathname.slice(1);
  try {
    await redis.connect();
    // ioredis goes on in database 0 when the one asked for does not exist; tusgate must not.
    if (db) await redis.select(Number(db));
  } catch (error) {
    redis.disconnect();
    throw new ConfigError(`REDIS_URL: Redis at ${hostname}:${port || 6379}${db ? ` (database ${db})` : ''} cannot be used: ${(error as Error).message}`);
  }
  return redis;
}

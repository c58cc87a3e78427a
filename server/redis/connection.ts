import { Redis } from 'ioredis';
import type { Logger } from 'pino';

/**
 * Shared state could not be read or written: the request is refused before anything is stored, with
 * a status every client retries (tus-js-client retries any 5xx). Carries both the `status_code`/`body`
 * @tus/server answers with and the `status` express error handlers read.
 */
export class Unavailable extends Error {
  readonly status = 503;
  readonly status_code = 503;
  readonly body = 'Service Unavailable: shared state (Redis) is unreachable; retry shortly\n';

  constructor(cause?: unknown) {
    super('shared state (Redis) is unreachable', { cause });
  }
}

/** An error that says "not now" rather than "broken": shared state unreachable (503), upload locked (423). */
export function isTemporary(error: unknown): boolean {
  const status = (error as { status_code?: number } | null)?.status_code;
  return status === 503 || status === 423;
}

/** Runs one operation on shared state; any failure of it becomes `Unavailable`. */
export async function shared<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    throw error instanceof Unavailable ? error : new Unavailable(error);
  }
}

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
  await redis.connect();
  return redis;
}

import type { Redis } from 'ioredis';
import type { Admission, Quota, QuotaLimits } from '../uploads/quota.js';
import { failedStep } from './docs.js';
import { retryWhileAway, shared } from './unavailable.js';

const HOUR_MS = 3600_000;

// Atomic check-and-take of one slot, as QuotaTracker.admit: the user's incomplete uploads (a set) and
// creations in the sliding hour (a sorted set scored by time). Both keys expire when left alone.
const ADMIT = `
local activeKey, hourKey, allKey = KEYS[1], KEYS[2], KEYS[3]
local maxActive, perHour, now, id, hour, activeTtl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
if redis.call('scard', activeKey) >= maxActive then return {0, 'active', 60} end
redis.call('zremrangebyscore', hourKey, '-inf', now - hour)
if redis.call('zcard', hourKey) >= perHour then
  local oldest = tonumber(redis.call('zrange', hourKey, 0, 0, 'WITHSCORES')[2])
  return {0, 'rate', math.max(1, math.ceil((oldest + hour - now) / 1000))}
end
redis.call('zadd', hourKey, now, id)
redis.call('pexpire', hourKey, hour)
redis.call('sadd', activeKey, id)
redis.call('pexpire', activeKey, activeTtl)
redis.call('sadd', allKey, id)
redis.call('pexpire', allKey, activeTtl)
return {1, '', 0}`;

/**
 * Per-user limits kept in Redis, so every process counts the same uploads. The sets of incomplete
 * uploads expire `activeTtlMs` after a user's last creation: an upload that ends without a release
 * (a process killed at the wrong moment) stops counting then, instead of forever.
 */
export class RedisQuota implements Quota {
  /** Aborted on close: releases Redis has not taken are no longer tried. */
  private readonly closing = new AbortController();

  constructor(
    private readonly redis: Redis,
    private readonly limits: QuotaLimits,
    private readonly activeTtlMs: number,
    private readonly prefix = 'tusgate:',
  ) {}

  admit(user: string, uploadId: string): Promise<Admission> {
    return shared(async () => {
      const [ok, reason, retryAfterSeconds] = (await this.redis.eval(
        ADMIT, 3, this.activeKey(user), `${this.prefix}created:${user}`, this.allKey(),
        this.limits.maxActive, this.limits.perHour, Date.now(), uploadId, HOUR_MS, this.activeTtlMs,
      )) as [number, string, number];
      return ok === 1 ? { ok: true } : { ok: false, reason: reason as 'active' | 'rate', retryAfterSeconds };
    });
  }

  /**
   * Gives the slot back. Redis away: this process tries again until Redis takes it, every few
   * seconds (a user refused meanwhile is not held at the limit for the set's lifetime); should the
   * process stop first, the slot lasts until the user's set expires (activeTtlMs).
   */
  async release(user: string, uploadId: string): Promise<void> {
    const release = () => shared(() => this.redis.multi().srem(this.activeKey(user), uploadId).srem(this.allKey(), uploadId).exec().then(failedStep));
    await release().catch(() => retryWhileAway(release, { signal: this.closing.signal }));
  }

  /** Stops trying the releases Redis has not taken. */
  close(): void {
    this.closing.abort();
  }

  totalActive(): Promise<number> {
    return shared(() => this.redis.scard(this.allKey()));
  }

  activeCount(user: string): Promise<number> {
    return shared(() => this.redis.scard(this.activeKey(user)));
  }

  private activeKey(user: string): string {
    return `${this.prefix}active:${user}`;
  }

  private allKey(): string {
    return `${this.prefix}active`;
  }
}

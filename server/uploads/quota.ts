/**
 * Per-user limits at creation: how many incomplete uploads a user may hold, and how many uploads
 * a user may create in a sliding hour. A slot is taken synchronously by `admit`, so concurrent
 * creations cannot overshoot; it is given back with `release` when the upload completes, is
 * removed, expires, or its creation fails.
 */
export interface QuotaLimits {
  maxActive: number;
  perHour: number;
}

export type Admission = { ok: true } | { ok: false; reason: 'active' | 'rate'; retryAfterSeconds: number };

/** The per-user limits, counted in this process (QuotaTracker) or in Redis for several (RedisQuota). */
export interface Quota {
  admit(user: string, uploadId: string): Admission | Promise<Admission>;
  /** Gives a slot back. Never fails: a slot that cannot be given back expires with its set. */
  release(user: string, uploadId: string): void | Promise<void>;
  totalActive(): number | Promise<number>;
  /** A user's incomplete uploads. */
  activeCount(user: string): number | Promise<number>;
}

const HOUR_MS = 3600_000;

export class QuotaTracker implements Quota {
  private readonly active = new Map<string, Set<string>>();
  private readonly creations = new Map<string, number[]>();
  /** Users whose creation times may be out of order (restored ones, or a clock that went back). */
  private readonly unsorted = new Set<string>();

  constructor(private readonly limits: QuotaLimits, private readonly now: () => number = Date.now) {}

  /** Re-registers an incomplete upload found at start-up. */
  restore(user: string, uploadId: string, createdAt: number): void {
    this.activeSet(user).add(uploadId);
    if (this.now() - createdAt < HOUR_MS) this.record(user, this.creationTimes(user), createdAt);
  }

  admit(user: string, uploadId: string): Admission {
    const active = this.activeSet(user);
    if (active.size >= this.limits.maxActive) return { ok: false, reason: 'active', retryAfterSeconds: 60 };
    const times = this.creationTimes(user);
    const cutoff = this.now() - HOUR_MS;
    while (times.length > 0 && times[0]! <= cutoff) times.shift();
    if (times.length >= this.limits.perHour) {
      return { ok: false, reason: 'rate', retryAfterSeconds: Math.max(1, Math.ceil((times[0]! - cutoff) / 1000)) };
    }
    this.record(user, times, this.now());
    active.add(uploadId);
    return { ok: true };
  }

  release(user: string, uploadId: string): void {
    const active = this.active.get(user);
    if (!active) return;
    active.delete(uploadId);
    if (active.size === 0) this.active.delete(user);
  }

  totalActive(): number {
    let total = 0;
    for (const set of this.active.values()) total += set.size;
    return total;
  }

  activeCount(user: string): number {
    return this.active.get(user)?.size ?? 0;
  }

  private activeSet(user: string): Set<string> {
    let set = this.active.get(user);
    if (!set) this.active.set(user, (set = new Set()));
    return set;
  }

  /** The user's creation times in the last hour or so, oldest first. */
  private creationTimes(user: string): number[] {
    let times = this.creations.get(user);
    if (!times) this.creations.set(user, (times = []));
    if (this.unsorted.delete(user)) times.sort((a, b) => a - b);
    return times;
  }

  private record(user: string, times: number[], at: number): void {
    if (times.length > 0 && at < times[times.length - 1]!) this.unsorted.add(user);
    times.push(at);
  }
}

/**
 * A quota that, before refusing a user for holding too many incomplete uploads, removes those of
 * theirs that have expired since the last sweep (an expired upload already answers 410 to its
 * client, so it must not hold a slot until the next sweep).
 */
export class SweepingQuota implements Quota {
  /** When each user's uploads were last swept here: a user held at the limit does not get a sweep per request. */
  private readonly swept = new Map<string, number>();

  constructor(
    private readonly inner: Quota,
    /** Removes the user's expired uploads (giving their slots back); resolves to how many. */
    private readonly sweepUser: (user: string) => Promise<number>,
    private readonly minIntervalMs = 5000,
    private readonly now: () => number = Date.now,
  ) {}

  async admit(user: string, uploadId: string): Promise<Admission> {
    const admission = await this.inner.admit(user, uploadId);
    if (admission.ok || admission.reason !== 'active' || !this.maySweep(user) || (await this.sweepUser(user)) === 0) return admission;
    return this.inner.admit(user, uploadId);
  }

  private maySweep(user: string): boolean {
    const now = this.now();
    if (now - (this.swept.get(user) ?? -Infinity) < this.minIntervalMs) return false;
    this.swept.delete(user);
    if (this.swept.size >= 10_000) this.swept.delete(this.swept.keys().next().value!);
    this.swept.set(user, now);
    return true;
  }

  release(user: string, uploadId: string): void | Promise<void> {
    return this.inner.release(user, uploadId);
  }

  totalActive(): number | Promise<number> {
    return this.inner.totalActive();
  }

  activeCount(user: string): number | Promise<number> {
    return this.inner.activeCount(user);
  }
}

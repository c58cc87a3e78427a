import { randomUUID } from 'node:crypto';
import { ERRORS, type Lock, type Locker, type RequestRelease } from '@tus/utils';
import type { Redis } from 'ioredis';

export interface RedisLockerOptions {
  /** Namespace of everything this locker writes: keys are `<prefix>lock:<id>`. */
  prefix?: string;
  /** Lease of a lock in Redis. A holder renews it every leaseMs/3; a crashed holder frees it after at most leaseMs. */
  leaseMs?: number;
  /** How long `lock()` waits before failing with ERR_LOCK_TIMEOUT (as @tus/server's MemoryLocker). */
  acquireLockTimeout?: number;
  /** Longest pause between two attempts of a waiter. Pub/sub normally wakes it sooner; polling covers lost messages. */
  maxRetryDelayMs?: number;
}

// Take the lock, or tell the caller how long the current lease still runs (so a waiter behind a crashed
// holder retries right when the lease ends). One round trip either way.
const ACQUIRE = `if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, 0} end
return {0, redis.call('pttl', KEYS[1])}`;
// Renew / release only our own lease: after it expired someone else may hold the key.
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0`;
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0`;

/**
 * A @tus/server Locker whose locks live in Redis, so several tusgate processes on one store exclude
 * each other. Semantics follow MemoryLocker: a waiter asks the holder to let go (the holder's
 * `requestRelease`, which @tus/server turns into a drained cancel of its request), and gives up with
 * ERR_LOCK_TIMEOUT after `acquireLockTimeout` or when the request's signal aborts.
 *
 * Messages go over two pub/sub channels carrying the upload id: `<prefix>lock-release` (a waiter asks
 * the holder to stop) and `<prefix>lock-free` (a holder unlocked; waiters retry at once). The
 * subscriber connection is one per locker, i.e. per process.
 *
 * Not a fencing lock: a holder that stalls past its lease (GC pause, lost connection) is asked to stop
 * through `requestRelease`, but nothing prevents its writes already under way.
 */
export class RedisLocker implements Locker {
  readonly prefix: string;
  readonly leaseMs: number;
  readonly acquireLockTimeout: number;
  readonly maxRetryDelayMs: number;
  private readonly subscriber: Redis;
  private readonly ownsSubscriber: boolean;
  private readonly releaseChannel: string;
  private readonly freeChannel: string;
  private readonly subscribed: Promise<unknown>;
  /** Locks held through this locker, by upload id (normally at most one each). */
  private readonly holders = new Map<string, Set<RedisLock>>();
  /** Wake-up callbacks of waiters in this process, by upload id. */
  private readonly waiters = new Map<string, Set<() => void>>();
  private closed = false;

  /**
   * @param redis client for commands (shared with other users is fine)
   * @param subscriber a dedicated connection for pub/sub, or a factory for one (then `close()` quits it),
   *   e.g. `() => redis.duplicate()`
   */
  constructor(
    readonly redis: Redis,
    subscriber: Redis | (() => Redis),
    options: RedisLockerOptions = {},
  ) {
    this.prefix = options.prefix ?? 'tusgate:';
    this.leaseMs = options.leaseMs ?? 10_000;
    this.acquireLockTimeout = options.acquireLockTimeout ?? 30_000;
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? 250;
    if (!(this.leaseMs >= 30)) throw new Error('leaseMs must be at least 30 ms');
    this.ownsSubscriber = typeof subscriber === 'function';
    this.subscriber = typeof subscriber === 'function' ? subscriber() : subscriber;
    this.releaseChannel = `${this.prefix}lock-release`;
    this.freeChannel = `${this.prefix}lock-free`;
    this.subscriber.on('message', this.onMessage);
    this.subscribed = this.subscriber.subscribe(this.releaseChannel, this.freeChannel);
    // lock() awaits this and sees a failure there; don't let it surface as an unhandled rejection.
    this.subscribed.catch(() => undefined);
  }

  newLock(id: string): Lock {
    return new RedisLock(id, this);
  }

  /** Stops renewals and wakes waiters (their `lock()` rejects). Held leases then expire in Redis. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const locks of this.holders.values()) for (const lock of locks) lock.stopRenewing();
    this.holders.clear();
    for (const wakers of this.waiters.values()) for (const wake of wakers) wake();
    this.subscriber.off('message', this.onMessage);
    if (this.ownsSubscriber) {
      await this.subscriber.quit().catch(() => this.subscriber.disconnect());
    } else {
      await this.subscriber.unsubscribe(this.releaseChannel, this.freeChannel).catch(() => undefined);
    }
  }

  /** @internal */ key(id: string): string {
    return `${this.prefix}lock:${id}`;
  }

  /** Whether any process holds the upload's lock now, without asking for it. */
  async isHeld(id: string): Promise<boolean> {
    return (await this.redis.exists(this.key(id))) === 1;
  }

  /** @internal */ isClosed(): boolean {
    return this.closed;
  }

  /** @internal */ async ready(): Promise<void> {
    await this.subscribed;
  }

  /** @internal */ async acquire(id: string, token: string): Promise<{ acquired: boolean; pttl: number }> {
    const [acquired, pttl] = (await this.redis.eval(ACQUIRE, 1, this.key(id), token, this.leaseMs)) as [number, number];
    return { acquired: acquired === 1, pttl };
  }

  /** @internal */ async renew(id: string, token: string): Promise<boolean> {
    return (await this.redis.eval(RENEW, 1, this.key(id), token, this.leaseMs)) === 1;
  }

  /** @internal */ async release(id: string, token: string): Promise<boolean> {
    const released = (await this.redis.eval(RELEASE, 1, this.key(id), token)) === 1;
    // Wake waiters everywhere at once instead of on their next poll.
    if (released) await this.redis.publish(this.freeChannel, id);
    return released;
  }

  /** @internal */ async askToRelease(id: string): Promise<void> {
    await this.redis.publish(this.releaseChannel, id);
  }

  /** @internal */ addHolder(id: string, lock: RedisLock): void {
    let set = this.holders.get(id);
    if (!set) this.holders.set(id, (set = new Set()));
    set.add(lock);
  }

  /** @internal */ removeHolder(id: string, lock: RedisLock): void {
    const set = this.holders.get(id);
    if (!set) return;
    set.delete(lock);
    if (set.size === 0) this.holders.delete(id);
  }

  /** @internal */ addWaiter(id: string, wake: () => void): () => void {
    let set = this.waiters.get(id);
    if (!set) this.waiters.set(id, (set = new Set()));
    set.add(wake);
    return () => {
      set.delete(wake);
      if (set.size === 0 && this.waiters.get(id) === set) this.waiters.delete(id);
    };
  }

  private readonly onMessage = (channel: string, id: string): void => {
    if (channel === this.releaseChannel) {
      for (const lock of this.holders.get(id) ?? []) lock.requestRelease();
    } else if (channel === this.freeChannel) {
      for (const wake of this.waiters.get(id) ?? []) wake();
    }
  };
}

class RedisLock implements Lock {
  private readonly token = randomUUID();
  private held = false;
  private onRelease: RequestRelease | undefined;
  private renewTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly id: string,
    private readonly locker: RedisLocker,
  ) {}

  async lock(stopSignal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
    if (this.held) throw new Error(`lock ${this.id} is already held by this Lock`);
    const locker = this.locker;
    const deadline = Date.now() + locker.acquireLockTimeout;
    // Subscribe before the first attempt: a `free` message sent between a failed attempt and the wait
    // must not be lost. `woken` keeps a message that arrives while a Redis call is in flight.
    let woken = false;
    let wakeNow: (() => void) | undefined;
    const removeWaiter = locker.addWaiter(this.id, () => {
      woken = true;
      wakeNow?.();
    });
    try {
      await locker.ready();
      let delay = 10;
      for (;;) {
        if (locker.isClosed()) throw new Error('RedisLocker is closed');
        woken = false;
        const { acquired, pttl } = await locker.acquire(this.id, this.token);
        if (acquired) {
          this.held = true;
          this.onRelease = requestRelease;
          locker.addHolder(this.id, this);
          this.scheduleRenewal(Date.now());
          return;
        }
        // Like MemoryLocker, a busy lock is not taken from its holder but the holder is asked to finish.
        await locker.askToRelease(this.id);
        const left = deadline - Date.now();
        if (stopSignal.aborted || left <= 0) throw ERRORS.ERR_LOCK_TIMEOUT;
        // Jittered exponential backoff; never past the end of the current lease (a crashed holder) or the deadline.
        let wait = Math.min(delay * (0.5 + Math.random() / 2), left);
        if (pttl >= 0) wait = Math.min(wait, pttl + 1);
        delay = Math.min(delay * 2, locker.maxRetryDelayMs);
        if (woken) continue;
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            stopSignal.removeEventListener('abort', done);
            wakeNow = undefined;
            resolve();
          };
          const timer = setTimeout(done, wait);
          stopSignal.addEventListener('abort', done, { once: true });
          wakeNow = done;
        });
      }
    } finally {
      removeWaiter();
    }
  }

  async unlock(): Promise<void> {
    if (!this.held) throw new Error('Releasing an unlocked lock!');
    this.held = false;
    this.stopRenewing();
    this.locker.removeHolder(this.id, this);
    this.onRelease = undefined;
    // If the lease was lost meanwhile the key is someone else's and is left alone; the holder was told
    // through requestRelease when that was detected.
    await this.locker.release(this.id, this.token);
  }

  /** Called when a waiter (in any process) wants this lock. */
  requestRelease(): void {
    const release = this.onRelease;
    if (!release) return;
    Promise.resolve()
      .then(release)
      .catch(() => undefined);
  }

  stopRenewing(): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = undefined;
  }

  /** Renews every leaseMs/3, so two renewals can fail or be late before the lease ends. */
  private scheduleRenewal(lastRenewed: number): void {
    const timer = setTimeout(async () => {
      if (this.renewTimer !== timer) return;
      let renewed = false;
      try {
        renewed = await this.locker.renew(this.id, this.token);
      } catch {
        // Redis unreachable: keep trying while the lease may still be ours.
        if (this.renewTimer !== timer) return;
        if (Date.now() - lastRenewed < this.locker.leaseMs) return this.scheduleRenewal(lastRenewed);
      }
      if (this.renewTimer !== timer) return; // unlocked meanwhile
      if (renewed) {
        this.scheduleRenewal(Date.now());
      } else {
        // Lease lost (expired, or taken after expiry): this holder is no longer exclusive. Ask it to stop.
        this.renewTimer = undefined;
        this.requestRelease();
      }
    }, Math.floor(this.locker.leaseMs / 3));
    timer.unref();
    this.renewTimer = timer;
  }
}

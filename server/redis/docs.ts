import type { Redis } from 'ioredis';
import { visitCurrent, type DocStore, type DocVisitor } from '../storage/json-dir.js';
import { shared } from './unavailable.js';

/**
 * Small JSON documents in Redis: one string key each (`<namespace>:<key>`), plus a set of the keys
 * (`<namespace>`) to list them. With `ttlMs` a document lives that long after its last write; the
 * set forgets expired keys the next time it is listed.
 */
export class RedisDocs<T> implements DocStore<T> {
  constructor(
    private readonly redis: Redis,
    private readonly namespace: string,
    private readonly ttlMs?: number,
  ) {}

  async init(visit?: DocVisitor<T>): Promise<void> {
    if (visit) await visitCurrent(this, visit);
  }

  private key(key: string): string {
    return `${this.namespace}:${key}`;
  }

  get(key: string): Promise<T | undefined> {
    return shared(async () => {
      const json = await this.redis.get(this.key(key));
      return json === null ? undefined : (JSON.parse(json) as T);
    });
  }

  set(key: string, value: T): Promise<void> {
    return shared(async () => {
      const json = JSON.stringify(value);
      const write = this.redis.multi();
      if (this.ttlMs) write.set(this.key(key), json, 'PX', this.ttlMs);
      else write.set(this.key(key), json);
      await write.sadd(this.namespace, key).exec().then(failedStep);
    });
  }

  delete(key: string): Promise<void> {
    return shared(async () => {
      await this.redis.multi().del(this.key(key)).srem(this.namespace, key).exec().then(failedStep);
    });
  }

  keys(): Promise<string[]> {
    return shared(async () => {
      const keys = await this.redis.smembers(this.namespace);
      if (!this.ttlMs || keys.length === 0) return keys;
      const exists = this.redis.pipeline();
      for (const key of keys) exists.exists(this.key(key));
      const answers = (await exists.exec()) ?? [];
      const gone = keys.filter((_key, index) => answers[index]?.[1] === 0);
      if (gone.length > 0) await this.redis.srem(this.namespace, ...gone);
      return keys.filter((_key, index) => answers[index]?.[1] !== 0);
    });
  }
}

/** MULTI answers each step's error in place instead of rejecting; surface the first. */
export function failedStep(results: Array<[Error | null, unknown]> | null): void {
  if (!results) throw new Error('redis transaction was aborted');
  const failed = results.find(([error]) => error);
  if (failed) throw failed[0];
}

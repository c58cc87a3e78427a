// Child process for test/redis-locker.test.ts: takes one RedisLocker lock, says so on stdout, then
// keeps renewing it until it is killed (the test kills it with SIGKILL to play a crashed process).
import { Redis } from 'ioredis';
import { RedisLocker } from '../../server/storage/redis-locker.js';

const [url, id, leaseMs] = process.argv.slice(2);
const redis = new Redis(url!);
const locker = new RedisLocker(redis, () => redis.duplicate(), { leaseMs: Number(leaseMs) });
await locker.newLock(id!).lock(new AbortController().signal, () => undefined);
process.stdout.write('locked\n');
setInterval(() => undefined, 1_000);

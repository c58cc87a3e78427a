import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileStore } from '@tus/file-store';
import { Server } from '@tus/server';
import { ERRORS } from '@tus/utils';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { RedisLocker, type RedisLockerOptions } from '../server/storage/redis-locker.js';
import { startRedis, type RedisServer } from './helpers/redis.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const noop = () => undefined;

describe('RedisLocker (against a real redis-server)', function () {
  this.timeout(20_000);
  let redisServer: RedisServer;
  let admin: Redis;
  const cleanups: Array<() => Promise<unknown> | unknown> = [];

  before(async () => {
    redisServer = await startRedis();
    admin = new Redis(redisServer.url);
  });
  after(async () => {
    admin?.disconnect();
    await redisServer?.stop();
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** A locker with its own two connections, as one tusgate process would have. */
  function newLocker(options: RedisLockerOptions = {}): RedisLocker {
    const redis = new Redis(redisServer.url);
    const locker = new RedisLocker(redis, () => redis.duplicate(), options);
    cleanups.push(async () => {
      await locker.close();
      redis.disconnect();
    });
    return locker;
  }

  it('never lets two holders in at once, across two lockers with separate connections', async function () {
    this.timeout(15_000);
    const lockers = [newLocker(), newLocker()];
    const id = randomUUID();
    let inside = 0;
    let most = 0;
    let done = 0;
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const lock = lockers[i % 2]!.newLock(id);
        await lock.lock(new AbortController().signal, noop);
        inside++;
        most = Math.max(most, inside);
        await sleep(Math.random() * 5);
        inside--;
        done++;
        await lock.unlock();
      }),
    );
    expect(done).to.equal(40);
    expect(most).to.equal(1);
    expect(await admin.exists(`tusgate:lock:${id}`)).to.equal(0);
  });

  it('keeps a lock past its lease while the holder renews it', async function () {
    this.timeout(5_000);
    const [a, b] = [newLocker({ leaseMs: 300 }), newLocker({ leaseMs: 300, acquireLockTimeout: 1_200 })];
    const id = randomUUID();
    const held = a.newLock(id);
    await held.lock(new AbortController().signal, noop);
    const started = Date.now();
    const error = await b.newLock(id).lock(new AbortController().signal, noop).then(() => undefined, (e: unknown) => e);
    expect(error, 'waiter got the lock of a live holder').to.equal(ERRORS.ERR_LOCK_TIMEOUT);
    expect(Date.now() - started).to.be.at.least(1_150);
    await held.unlock();
  });

  it("calls the holder's requestRelease when a waiter in another locker asks, and hands the lock over", async function () {
    this.timeout(5_000);
    const [a, b] = [newLocker(), newLocker()];
    const id = randomUUID();
    const held = a.newLock(id);
    let asked = 0;
    await held.lock(new AbortController().signal, async () => {
      asked++;
      if (asked === 1) await held.unlock();
    });
    const started = Date.now();
    const waiter = b.newLock(id);
    await waiter.lock(new AbortController().signal, noop);
    expect(asked).to.be.at.least(1);
    expect(Date.now() - started).to.be.below(500);
    await waiter.unlock();
  });

  it('lets a waiter in promptly on unlock (pub/sub, not polling)', async function () {
    this.timeout(15_000);
    // Polling alone waits up to 5 s here, so only the `free` message can make every round fast.
    const [a, b] = [newLocker(), newLocker({ maxRetryDelayMs: 5_000 })];
    const id = randomUUID();
    for (let round = 0; round < 4; round++) {
      const held = a.newLock(id);
      await held.lock(new AbortController().signal, noop);
      const waiter = b.newLock(id);
      const acquired = waiter.lock(new AbortController().signal, noop).then(() => Date.now());
      await sleep(1_000);
      const unlocked = Date.now();
      await held.unlock();
      const delay = (await acquired) - unlocked;
      expect(delay, `round ${round}`).to.be.below(200);
      await waiter.unlock();
    }
  });

  it('stops a waiter when its AbortSignal aborts, without taking the lock later', async function () {
    this.timeout(5_000);
    const [a, b] = [newLocker(), newLocker()];
    const id = randomUUID();
    const held = a.newLock(id);
    await held.lock(new AbortController().signal, noop);
    const controller = new AbortController();
    const waiting = b.newLock(id).lock(controller.signal, noop).then(() => 'acquired', (e: unknown) => e);
    await sleep(200);
    const aborted = Date.now();
    controller.abort();
    expect(await waiting).to.equal(ERRORS.ERR_LOCK_TIMEOUT);
    expect(Date.now() - aborted).to.be.below(100);
    await held.unlock();
    await sleep(300);
    expect(await admin.exists(`tusgate:lock:${id}`)).to.equal(0);
  });

  it('fails with ERR_LOCK_TIMEOUT after acquireLockTimeout', async function () {
    this.timeout(5_000);
    const [a, b] = [newLocker(), newLocker({ acquireLockTimeout: 400 })];
    const id = randomUUID();
    const held = a.newLock(id);
    await held.lock(new AbortController().signal, noop); // ignores release requests
    const started = Date.now();
    const error = await b.newLock(id).lock(new AbortController().signal, noop).then(() => 'acquired', (e: unknown) => e);
    const elapsed = Date.now() - started;
    expect(error).to.equal(ERRORS.ERR_LOCK_TIMEOUT);
    expect(elapsed).to.be.within(390, 650);
    await held.unlock();
  });

  it('lets the next waiter in when the lease of a killed (-9) holder process ends, not sooner', async function () {
    this.timeout(15_000);
    const leaseMs = 1_500;
    const id = randomUUID();
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/redis-lock-holder.ts', redisServer.url, id, String(leaseMs)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + 10_000;
    while (!output.includes('locked')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`lock holder did not start:\n${output}`);
      await sleep(20);
    }
    await sleep(leaseMs + 500); // the lease would have ended by now without renewals
    expect(await admin.exists(`tusgate:lock:${id}`), 'holder did not renew its lease').to.equal(1);

    child.kill('SIGKILL');
    await exited;
    const killed = Date.now();
    const remaining = await admin.pttl(`tusgate:lock:${id}`);
    expect(remaining).to.be.within(leaseMs / 2, leaseMs); // renewed every leaseMs/3
    const waiter = newLocker().newLock(id);
    await waiter.lock(new AbortController().signal, noop);
    const waited = Date.now() - killed;
    expect(waited, 'got in before the lease ended').to.be.at.least(remaining - 20);
    expect(waited, 'waited much longer than the lease').to.be.below(remaining + 150);
    expect(waited).to.be.below(leaseMs + 150);
    await waiter.unlock();
  });

  it('calls requestRelease when the holder loses its lease, and unlock then leaves the new owner alone', async function () {
    this.timeout(5_000);
    const leaseMs = 600;
    const locker = newLocker({ leaseMs });
    const id = randomUUID();
    const held = locker.newLock(id);
    let releasedAt = 0;
    await held.lock(new AbortController().signal, () => {
      releasedAt ||= Date.now();
    });
    await sleep(50);
    // Someone else owns the key now (as after an expiry and a takeover).
    await admin.set(`tusgate:lock:${id}`, 'someone-else', 'PX', 5_000);
    const changed = Date.now();
    await sleep(leaseMs / 3 + 200);
    expect(releasedAt, 'requestRelease was not called').to.be.greaterThan(0);
    expect(releasedAt - changed).to.be.below(leaseMs / 3 + 100);
    await held.unlock();
    expect(await admin.get(`tusgate:lock:${id}`)).to.equal('someone-else');
  });

  describe('two @tus/server instances on one data directory', () => {
    it('lets exactly one of two conflicting concurrent PATCHes win, never mixing bytes (20 rounds)', async function () {
      this.timeout(30_000);
      const dir = mkdtempSync(path.join(os.tmpdir(), 'tusgate-redis-race-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      const urls: string[] = [];
      for (let i = 0; i < 2; i++) {
        const server = new Server({ path: '/files', datastore: new FileStore({ directory: dir }), locker: newLocker() });
        const listening = server.listen(0, '127.0.0.1');
        await new Promise((resolve) => listening.once('listening', resolve));
        cleanups.push(() => new Promise((resolve) => listening.close(resolve)));
        urls.push(`http://127.0.0.1:${(listening.address() as AddressInfo).port}/files`);
      }

      const size = 256 * 1024;
      for (let round = 0; round < 20; round++) {
        const created = await send('POST', urls[0]!, { 'Upload-Length': String(size) });
        expect(created.status, `round ${round}: create`).to.equal(201);
        const uploadId = created.location!.split('/').pop()!;
        const bodies = [randomBytes(size), randomBytes(size)];
        const results = await Promise.all(
          bodies.map((body, i) =>
            send('PATCH', `${urls[i]}/${uploadId}`, { 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream' }, body),
          ),
        );
        const winners = results.map((r, i) => (r.status === 204 ? i : -1)).filter((i) => i >= 0);
        expect(winners, `round ${round}: statuses ${results.map((r) => r.status)}`).to.have.length(1);
        const stored = readFileSync(path.join(dir, uploadId));
        expect(stored.equals(bodies[winners[0]!]!), `round ${round}: stored bytes are not the winner's`).to.equal(true);
      }
    });
  });
});

/** One request whose body goes out in 16 KiB pieces, so two bodies to one upload really interleave. */
function send(method: string, url: string, headers: Record<string, string>, body?: Buffer): Promise<{ status: number; location?: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method,
      headers: { 'Tus-Resumable': '1.0.0', ...(body ? { 'Content-Length': String(body.length) } : {}), ...headers },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, location: res.headers.location }));
    });
    if (!body) return req.end();
    let offset = 0;
    const writeMore = () => {
      while (offset < body.length) {
        const piece = body.subarray(offset, offset + 16 * 1024);
        offset += piece.length;
        if (!req.write(piece)) return req.once('drain', () => setImmediate(writeMore));
        return setImmediate(writeMore);
      }
      req.end();
    };
    writeMore();
  });
}

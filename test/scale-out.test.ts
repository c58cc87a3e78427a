import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import * as tusClient from 'tus-js-client';
import { newFileWithBytes } from './helpers/app-server.js';
import { startCluster, type Cluster } from './helpers/cluster.js';
import { spawnServer } from './helpers/process.js';
import { openCreation, openPatch, request, tus } from './helpers/http.js';
import { signToken } from './helpers/server.js';
import { startRedis } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';
import { legacyClient, sha256, chunksOf } from './legacy-client.js';
import { PNG } from './samples.js';

const digestOf = (data: Buffer) => createHash('sha256').update(data).digest();
/** A PNG header and random bytes: passes the content check, differs every time. */
const png = (size: number) => Buffer.concat([PNG, randomBytes(size - PNG.length)]);
const AS_PNG = { filetype: 'image/png' };

/** tus-js-client's own HTTP stack, sending every request to the next process in turn. */
class RoundRobinStack extends tusClient.DefaultHttpStack {
  sent: string[] = [];
  private next = 0;

  constructor(private readonly urls: string[]) {
    super({});
  }

  override createRequest(method: string, url: string) {
    const target = new URL(url);
    const base = new URL(this.urls[this.next++ % this.urls.length]!);
    target.host = base.host;
    this.sent.push(`${method} ${target.port}`);
    return super.createRequest(method, target.toString());
  }
}

describe('several processes on one Redis and one directory (REDIS_URL)', function () {
  this.timeout(120_000);
  let cluster: Cluster;
  let token: string;

  before(async () => {
    cluster = await startCluster(3, { MAX_ACTIVE_UPLOADS_PER_USER: '4' });
    token = await signToken('alice');
  });
  after(() => cluster?.stop());

  it('reports Redis on /ready', async () => {
    for (const url of cluster.urls) {
      const ready = await request(`${url}/ready`);
      expect(ready.status).to.equal(200);
      expect(JSON.parse(ready.text).checks).to.deep.equal({ storage: 'ok', redis: 'ok' });
    }
  });

  it('completes a tus-js-client upload that moves to another process at every request, byte-exact', async () => {
    const file = Buffer.concat([PNG, randomBytes(3 * 1024 * 1024)]);
    const stack = new RoundRobinStack(cluster.urls);
    const url = await new Promise<string>((resolve, reject) => {
      const upload: tusClient.Upload = new tusClient.Upload(file, {
        endpoint: `${cluster.urls[0]}/files/`,
        headers: { Authorization: `Bearer ${token}` },
        metadata: { filename: 'photo.png', filetype: 'image/png', sha256: digestOf(file).toString('hex') },
        chunkSize: 256 * 1024,
        httpStack: stack,
        retryDelays: [],
        onSuccess: () => resolve(upload.url!),
        onError: reject,
      });
      upload.start();
    });
    const ports = new Set(stack.sent.map((line) => line.split(' ')[1]));
    expect(ports.size, 'requests went to every process').to.equal(3);
    for (const base of cluster.urls) {
      const served = await request(`${base}${new URL(url).pathname}`, { headers: { Authorization: `Bearer ${token}` } });
      expect(served.status).to.equal(200);
      expect(served.body.equals(file), 'served bytes equal the file').to.equal(true);
      expect(served.headers['repr-digest']).to.equal(`sha-256=:${digestOf(file).toString('base64')}:`);
    }
  });

  it('gives exactly one winner when two processes get PATCHes for the same offset, never mixed bytes (30 rounds)', async () => {
    const size = 512 * 1024;
    for (let round = 0; round < 30; round++) {
      const created = await tus(cluster.urls[round % 3]!, token).create(size, AS_PNG);
      expect(created.status).to.equal(201);
      const path = new URL(created.headers.location!).pathname;
      const bodies = [png(size), png(size)];
      const answers = await Promise.all(
        bodies.map((body, index) => tus(cluster.urls[(round + 1 + index) % 3]!, token).patch(`${cluster.urls[(round + 1 + index) % 3]}${path}`, 0, body)),
      );
      const winners = answers.map((answer, index) => (answer.status === 204 ? index : -1)).filter((index) => index >= 0);
      expect(winners, `round ${round}: statuses ${answers.map((answer) => answer.status)}`).to.have.length(1);
      for (const answer of answers) expect(answer.status, `round ${round}`).to.be.oneOf([204, 409, 423]);
      const served = await request(`${cluster.urls[round % 3]}${path}`, { headers: { Authorization: `Bearer ${token}` } });
      expect(served.body.equals(bodies[winners[0]!]!), `round ${round}: stored bytes are the winner's`).to.equal(true);
      await tus(cluster.urls[0]!, token).delete(`${cluster.urls[0]}${path}`);
    }
  });

  it('a process killed with -9 while holding an upload lock delays the next request by at most the lease, and loses nothing', async () => {
    const file = png(2 * 1024 * 1024);
    const victim = await cluster.spawn();
    const client = tus(victim.url, token);
    const created = await client.create(file.length, { ...AS_PNG, sha256: sha256(file) });
    const path = new URL(created.headers.location!).pathname;
    const patch = openPatch(`${victim.url}${path}`, token, 0, file.length);
    patch.on('error', () => undefined);
    patch.write(file.subarray(0, 700 * 1024));
    // The victim holds the lock while it waits for the rest of the body.
    await new Promise((resolve) => setTimeout(resolve, 500));
    await victim.kill('SIGKILL');
    const started = Date.now();
    const head = await tus(cluster.urls[0]!, token).head(`${cluster.urls[0]}${path}`);
    const waited = Date.now() - started;
    expect(head.status).to.equal(200);
    // The lease is 10 s; the rest is slack for a loaded machine.
    expect(waited, 'waited for the lease of the dead process').to.be.below(13_000);
    const offset = Number(head.headers['upload-offset']);
    expect(offset).to.be.within(0, 700 * 1024);
    const rest = await tus(cluster.urls[1]!, token).patch(`${cluster.urls[1]}${path}`, offset, file.subarray(offset));
    expect(rest.status, rest.text).to.equal(204);
    const served = await request(`${cluster.urls[2]}${path}`, { headers: { Authorization: `Bearer ${token}` } });
    expect(served.body.equals(file)).to.equal(true);
  });

  it('removes, once its lease is over, an upload whose creation with data died with its process (kill -9), and frees its slot', async () => {
    const user = await signToken('cut-creation');
    const file = png(4 * 1024 * 1024);
    const creator = await cluster.spawn();
    // Another process sweeps every second (the others every minute).
    const sweeper = await cluster.spawn({ SWEEP_INTERVAL_SECONDS: '1' });
    const uploads = join(cluster.dataDir, 'uploads');
    const before = new Set(await fs.readdir(uploads).catch(() => []));
    const creation = openCreation(`${creator.url}/files/`, user, file.length, file.length, AS_PNG);
    creation.on('error', () => undefined);
    creation.write(file.subarray(0, 1024 * 1024));
    const orphan = await newFileWithBytes(uploads, before);
    await creator.kill('SIGKILL');
    creation.destroy();
    // Its lock lease (10 s) runs out, then the sweep finds the mark with nobody holding the lock.
    await waitFor(async () => ((await fs.readdir(uploads)).includes(orphan) ? undefined : true), 20_000, 'the sweep');
    const client = tus(sweeper.url, user);
    expect((await client.head(`${sweeper.url}/files/${orphan}`)).status).to.equal(404);
    // All of the user's active-upload slots (4 in this cluster) are free.
    for (let i = 0; i < 4; i++) {
      const created = await client.create(file.length, AS_PNG);
      expect(created.status, created.text).to.equal(201);
    }
  });

  it('a process stopped with SIGTERM during a PATCH gives the upload lock back: the next request does not wait', async () => {
    const file = png(2 * 1024 * 1024);
    const stopping = await cluster.spawn({ SHUTDOWN_GRACE_MS: '500' });
    const created = await tus(stopping.url, token).create(file.length, AS_PNG);
    const path = new URL(created.headers.location!).pathname;
    const patch = openPatch(`${stopping.url}${path}`, token, 0, file.length);
    patch.on('error', () => undefined);
    patch.write(file.subarray(0, 700 * 1024));
    await new Promise((resolve) => setTimeout(resolve, 500));
    // The grace period ends with the PATCH still waiting for its body: it is cut.
    expect(await stopping.kill('SIGTERM')).to.equal(0);
    const started = Date.now();
    const head = await tus(cluster.urls[0]!, token).head(`${cluster.urls[0]}${path}`);
    expect(head.status).to.equal(200);
    expect(Date.now() - started, 'waited for a lease').to.be.below(3000);
    const offset = Number(head.headers['upload-offset']);
    const rest = await tus(cluster.urls[1]!, token).patch(`${cluster.urls[1]}${path}`, offset, file.subarray(offset));
    expect(rest.status, rest.text).to.equal(204);
  });

  it('keeps a process without REDIS_URL off the shared directory, with one line saying why', async () => {
    const alone = await spawnServer({ DATA_DIR: cluster.dataDir }).then(
      (server) => server.kill('SIGKILL').then(() => 'started'),
      (error: Error) => error.message,
    );
    expect(alone).to.match(/holds uploads whose state is in Redis: start with REDIS_URL/);
  });

  it('counts quotas across processes', async () => {
    const quotaToken = await signToken('quota-user');
    const statuses: number[] = [];
    for (let n = 0; n < 5; n++) statuses.push((await tus(cluster.urls[n % 3]!, quotaToken).create(100, AS_PNG)).status);
    expect(statuses).to.deep.equal([201, 201, 201, 201, 429]);
  });

  it('runs a legacy session whose chunks go to different processes in parallel', async () => {
    const legacyToken = await signToken('legacy-user');
    const clients = cluster.urls.map((url) => legacyClient(url, legacyToken));
    const data = png(5 * 1024 * 1024 + 12345);
    const initiated = await clients[0]!.initiate({ filename: 'photo.png', file_size: data.length, chunk_size: 1024 * 1024, mime_type: 'image/png', file_hash: sha256(data) });
    expect(initiated.status, initiated.text).to.equal(200);
    const id = initiated.json.session_id as string;
    const chunks = chunksOf(data, 1024 * 1024);
    const sent = await Promise.all(chunks.map((chunk, n) => clients[(n * 2) % 3]!.chunk(id, n, chunk, { hash: true })));
    for (const answer of sent) expect(answer.status, answer.text).to.equal(200);
    const status = await clients[1]!.status(id);
    expect(status.json.uploaded_chunks).to.have.length(chunks.length);
    const completed = await clients[2]!.complete(id);
    expect(completed.status, completed.text).to.equal(200);
    const served = await request(`${cluster.urls[1]}/files/${id}`, { headers: { Authorization: `Bearer ${legacyToken}` } });
    expect(served.body.equals(data)).to.equal(true);
  });

  /** A 300 KiB upload with its first 100 KiB stored, made through the first process. */
  async function startUpload() {
    const file = png(300 * 1024);
    const client = tus(cluster.urls[0]!, token);
    const created = await client.create(file.length, AS_PNG);
    const path = new URL(created.headers.location!).pathname;
    expect((await client.patch(`${cluster.urls[0]}${path}`, 0, file.subarray(0, 100 * 1024))).status).to.equal(204);
    return { file, client, path };
  }

  it('answers 503 while Redis is away, changes nothing, and works again when it is back', async () => {
    const { file, client, path } = await startUpload();
    // A legacy session of another user (alice's active uploads are at their limit here).
    const legacy = legacyClient(cluster.urls[0]!, await signToken('lena'));
    const chunked = png(400);
    const session = (await legacy.initiate({ filename: 'b.png', file_size: chunked.length, chunk_size: 200, mime_type: 'image/png' })).json.session_id as string;
    const { port, dir } = cluster.redis;
    await cluster.redis.stop({ keepData: true });
    const during = await Promise.all([
      client.create(10, AS_PNG),
      tus(cluster.urls[1]!, token).head(`${cluster.urls[1]}${path}`),
      tus(cluster.urls[2]!, token).patch(`${cluster.urls[2]}${path}`, 100 * 1024, file.subarray(100 * 1024)),
      request(`${cluster.urls[1]}/ready`),
      legacyClient(cluster.urls[2]!, token).initiate({ filename: 'a.png', file_size: 10, mime_type: 'image/png' }),
      legacy.chunk(session, 0, chunked.subarray(0, 200)),
    ]);
    // A HEAD is 423, the one answer tus-js-client retries when it resumes (see the next test).
    expect(during.map((answer) => answer.status)).to.deep.equal([503, 423, 503, 503, 503, 503]);
    for (const index of [0, 1, 2, 4, 5]) expect(during[index]!.headers['retry-after'], `answer ${index}`).to.equal('1');
    expect(JSON.parse(during[3]!.text).checks.redis).to.match(/unreachable/);

    cluster.redis = await startRedis({ port, dir, appendOnly: true });
    // Each process reconnects on its own backoff (at most a second apart): wait until all are ready.
    for (const url of cluster.urls) {
      let ready = await request(`${url}/ready`);
      for (let tries = 0; ready.status !== 200 && tries < 50; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        ready = await request(`${url}/ready`);
      }
      expect(ready.status, `${url} ready again`).to.equal(200);
    }
    const head = await tus(cluster.urls[1]!, token).head(`${cluster.urls[1]}${path}`);
    expect(head.status).to.equal(200);
    expect(head.headers['upload-offset'], 'the refused PATCH stored nothing').to.equal(String(100 * 1024));
    const rest = await tus(cluster.urls[2]!, token).patch(`${cluster.urls[2]}${path}`, 100 * 1024, file.subarray(100 * 1024));
    expect(rest.status, rest.text).to.equal(204);
    const served = await request(`${cluster.urls[0]}${path}`, { headers: { Authorization: `Bearer ${token}` } });
    expect(served.body.equals(file)).to.equal(true);
    expect((await client.create(10, AS_PNG)).status).to.equal(201);
    for (const [n, chunk] of [chunked.subarray(0, 200), chunked.subarray(200)].entries()) {
      expect((await legacy.chunk(session, n, chunk)).status).to.equal(200);
    }
    expect((await legacy.complete(session)).status).to.equal(200);
  });

  it('answers a legacy chunk 503 when its session cannot be locked in Redis, and takes the chunk once it can', async () => {
    const legacy = legacyClient(cluster.urls[1]!, await signToken('lena'));
    const data = png(400);
    const session = (await legacy.initiate({ filename: 'c.png', file_size: data.length, chunk_size: 200, mime_type: 'image/png' })).json.session_id as string;
    // Locks are Lua scripts: with EVAL refused, reads and writes of documents still work, locks fail
    // (as when a connection drops under a lock request).
    const admin = new Redis(cluster.redis.url);
    await admin.call('ACL', 'SETUSER', 'default', '-eval');
    try {
      const refused = await legacy.chunk(session, 0, data.subarray(0, 200));
      expect(refused.status, refused.text).to.equal(503);
      expect(refused.headers['retry-after']).to.equal('1');
    } finally {
      await admin.call('ACL', 'SETUSER', 'default', '+eval');
      admin.disconnect();
    }
    for (const [n, chunk] of [data.subarray(0, 200), data.subarray(200)].entries()) {
      expect((await legacy.chunk(session, n, chunk)).status).to.equal(200);
    }
    expect((await legacy.complete(session)).status).to.equal(200);
  });

  // MULTI/EXEC refused: the quota's admission (a script) passes, the record cannot be written; its
  // slot's release fails too. With GET refused as well, the record cannot even be looked up.
  for (const refusedCommands of [['exec'], ['exec', 'get']]) {
    it(`gives back the quota slot of a creation refused when Redis failed under it, once Redis works again (${refusedCommands.join(', ')} refused)`, async () => {
      const user = `quinn-${refusedCommands.length}`;
      const client = tus(cluster.urls[2]!, await signToken(user));
      const admin = new Redis(cluster.redis.url);
      const slots = () => admin.scard(`tusgate:active:${user}`);
      const rules = (sign: '+' | '-') => refusedCommands.map((command) => `${sign}${command}`);
      try {
        await admin.call('ACL', 'SETUSER', 'default', ...rules('-'));
        const refused = await client.create(10, AS_PNG);
        expect(refused.status, refused.text).to.equal(503);
        expect(refused.headers.location).to.equal(undefined);
        // Its slot is given back after the answer; let that first try meet the failing Redis too.
        await new Promise((resolve) => setTimeout(resolve, 300));
        await admin.call('ACL', 'SETUSER', 'default', ...rules('+'));
        let taken = await slots();
        for (let tries = 0; taken > 0 && tries < 100; tries++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          taken = await slots();
        }
        expect(taken, 'slots still taken').to.equal(0);
      } finally {
        await admin.call('ACL', 'SETUSER', 'default', ...rules('+'));
        admin.disconnect();
      }
    });
  }

  it('lets tus-js-client resume an upload through a Redis outage instead of starting it over', async () => {
    const { file, path } = await startUpload();
    const { port, dir } = cluster.redis;
    await cluster.redis.stop({ keepData: true });
    const creations: string[] = [];
    const resumed = new Promise<string>((resolve, reject) => {
      const upload: tusClient.Upload = new tusClient.Upload(file, {
        uploadUrl: `${cluster.urls[1]}${path}`,
        endpoint: `${cluster.urls[1]}/files/`,
        headers: { Authorization: `Bearer ${token}` },
        metadata: AS_PNG,
        retryDelays: [300, 600, 1200, 2400, 4800],
        onBeforeRequest: (req) => void (req.getMethod() === 'POST' && creations.push(req.getURL())),
        onSuccess: () => resolve(upload.url!),
        onError: reject,
      });
      upload.start();
    });
    await new Promise((resolve) => setTimeout(resolve, 700));
    cluster.redis = await startRedis({ port, dir, appendOnly: true });
    expect(await resumed).to.equal(`${cluster.urls[1]}${path}`);
    expect(creations, 'no new upload was created').to.deep.equal([]);
    const served = await request(`${cluster.urls[2]}${path}`, { headers: { Authorization: `Bearer ${token}` } });
    expect(served.body.equals(file)).to.equal(true);
  });
});

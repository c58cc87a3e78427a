import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { expect } from 'chai';
import { creationHeaders, openCreation, openPatch, request, tus } from './helpers/http.js';
import { spawnServer, type ServerProcess } from './helpers/process.js';
import { newFileWithBytes } from './helpers/app-server.js';
import { makeDataDir, signToken } from './helpers/server.js';
import { PNG } from './samples.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts a PATCH and sends `data` slowly, so that the test can act while bytes are in flight. */
function slowPatch(location: string, token: string, offset: number, data: Buffer, piece = 64 * 1024, delayMs = 5, headers: Record<string, string> = {}) {
  const req = openPatch(location, token, offset, data.length, headers);
  const response = new Promise<number>((resolve) => {
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(-1));
  });
  let sent = 0;
  const pump = async () => {
    while (sent < data.length && !req.destroyed) {
      const end = Math.min(data.length, sent + piece);
      req.write(data.subarray(sent, end));
      sent = end;
      await sleep(delayMs);
    }
    if (!req.destroyed) req.end();
  };
  void pump();
  return { req, response, sent: () => sent };
}

async function resumeToEnd(client: ReturnType<typeof tus>, location: string, data: Buffer) {
  const head = await client.head(location);
  expect(head.status).to.equal(200);
  const offset = Number(head.headers['upload-offset']);
  const res = await client.patch(location, offset, data.subarray(offset));
  return { offset, res };
}

describe('resilience', function () {
  this.timeout(120_000);
  let dataDir: string;
  let token: string;
  let server: ServerProcess | undefined;

  beforeEach(async () => {
    dataDir = await makeDataDir();
    token = await signToken('alice');
  });
  afterEach(async () => {
    await server?.kill('SIGKILL');
    server = undefined;
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('survives kill -9 mid-PATCH, 20 rounds: HEAD offset ≤ stored bytes, resume gives the exact file and digest', async () => {
    const file = Buffer.concat([PNG, randomBytes(8 * 1024 * 1024)]);
    const digest = createHash('sha256').update(file).digest();
    server = await spawnServer({ DATA_DIR: dataDir });
    let client = tus(server.url, token);
    const created = await client.create(file.length, { filetype: 'image/png', sha256: digest.toString('hex') });
    const id = created.headers.location!.split('/').pop()!;
    for (let round = 0; round < 20; round++) {
      const location = `${server.url}/files/${id}`;
      const offset = Number((await client.head(location)).headers['upload-offset']);
      const patch = slowPatch(location, token, offset, file.subarray(offset));
      const target = 64 * 1024 + Math.floor(Math.random() * 256 * 1024);
      while (patch.sent() < Math.min(target, file.length - offset - 1)) await sleep(2);
      await server.kill('SIGKILL');
      patch.req.destroy();
      const stored = (await fs.stat(path.join(dataDir, 'uploads', id))).size;
      server = await spawnServer({ DATA_DIR: dataDir });
      client = tus(server.url, token);
      const head = await client.head(`${server.url}/files/${id}`);
      expect(head.status).to.equal(200);
      expect(Number(head.headers['upload-offset'])).to.be.at.most(stored).and.at.least(offset);
    }
    const location = `${server.url}/files/${id}`;
    const { res } = await resumeToEnd(client, location, file);
    expect(res.status, res.text).to.equal(204);
    expect(res.headers['repr-digest']).to.equal(`sha-256=:${digest.toString('base64')}:`);
    const served = await request(location);
    expect(served.body.equals(file)).to.equal(true);
  });

  it('keeps none of a checksummed PATCH cut off by kill -9: its bytes were never verified', async () => {
    const file = Buffer.concat([PNG, randomBytes(4 * 1024 * 1024)]);
    // What arrives is damaged in transit; the checksum is of the bytes the client meant to send.
    const damaged = Buffer.from(file);
    damaged.fill(0x41, 100, 200_000);
    const checksum = `sha256 ${createHash('sha256').update(file).digest('base64')}`;
    server = await spawnServer({ DATA_DIR: dataDir });
    let client = tus(server.url, token);
    const id = (await client.create(file.length, { filetype: 'image/png' })).headers.location!.split('/').pop()!;
    const patch = slowPatch(`${server.url}/files/${id}`, token, 0, damaged, 64 * 1024, 5, { 'Upload-Checksum': checksum });
    while (patch.sent() < 1024 * 1024) await sleep(5);
    await sleep(200);
    await server.kill('SIGKILL');
    patch.req.destroy();
    expect((await fs.stat(path.join(dataDir, 'uploads', id))).size).to.be.greaterThan(0);
    server = await spawnServer({ DATA_DIR: dataDir });
    client = tus(server.url, token);
    const location = `${server.url}/files/${id}`;
    const head = await client.head(location);
    expect(head.status).to.equal(200);
    expect(head.headers['upload-offset']).to.equal('0');
    expect((await fs.stat(path.join(dataDir, 'uploads', id))).size).to.equal(0);
    const { res } = await resumeToEnd(client, location, file);
    expect(res.status, res.text).to.equal(204);
    expect((await request(location)).body.equals(file)).to.equal(true);
  });

  it('removes at start-up an upload whose creation with data kill -9 cut off, and gives its owner the slot back', async () => {
    const file = Buffer.concat([PNG, randomBytes(4 * 1024 * 1024)]);
    const env = { DATA_DIR: dataDir, MAX_ACTIVE_UPLOADS_PER_USER: '1' };
    server = await spawnServer(env);
    const creation = openCreation(`${server.url}/files/`, token, file.length, file.length, { filetype: 'image/png' });
    creation.on('error', () => undefined);
    creation.write(file.subarray(0, 1024 * 1024));
    // The creation is answered only once its body is in: until then the client has no URL.
    const uploads = path.join(dataDir, 'uploads');
    const orphan = await newFileWithBytes(uploads);
    await server.kill('SIGKILL');
    creation.destroy();

    server = await spawnServer(env);
    expect(await fs.readdir(uploads)).to.not.include(orphan);
    const client = tus(server.url, token);
    expect((await client.head(`${server.url}/files/${orphan}`)).status).to.equal(404);
    // The one active-upload slot is free again.
    const next = await client.create(file.length, { filetype: 'image/png' });
    expect(next.status, next.text).to.equal(201);
  });

  it('keeps, across kill -9, a creation with data that was answered: its client has the URL', async () => {
    const file = Buffer.concat([PNG, randomBytes(100_000)]);
    server = await spawnServer({ DATA_DIR: dataDir });
    const created = await request(`${server.url}/files/`, { method: 'POST', headers: creationHeaders(token, file.length, 50_000, { filetype: 'image/png' }), body: file.subarray(0, 50_000) });
    expect(created.status, created.text).to.equal(201);
    expect(created.headers['upload-offset']).to.equal('50000');
    const id = created.headers.location!.split('/').pop()!;
    await server.kill('SIGKILL');
    server = await spawnServer({ DATA_DIR: dataDir });
    const client = tus(server.url, token);
    const { offset, res } = await resumeToEnd(client, `${server.url}/files/${id}`, file);
    expect(offset).to.equal(50_000);
    expect(res.status, res.text).to.equal(204);
    expect((await request(`${server.url}/files/${id}`)).body.equals(file)).to.equal(true);
  });

  it('keeps an upload across a restart between PATCHes', async () => {
    const file = Buffer.concat([PNG, randomBytes(100_000)]);
    server = await spawnServer({ DATA_DIR: dataDir });
    const created = await tus(server.url, token).create(file.length, { filetype: 'image/png' });
    const id = created.headers.location!.split('/').pop()!;
    await tus(server.url, token).patch(`${server.url}/files/${id}`, 0, file.subarray(0, 50_000));
    await server.kill('SIGTERM');
    server = await spawnServer({ DATA_DIR: dataDir });
    const client = tus(server.url, token);
    const { offset, res } = await resumeToEnd(client, `${server.url}/files/${id}`, file);
    expect(offset).to.equal(50_000);
    expect(res.status).to.equal(204);
    expect((await request(`${server.url}/files/${id}`)).body.equals(file)).to.equal(true);
  });

  it('is not taken down by many PATCHes and downloads dropped mid-body, and frees the locks', async () => {
    server = await spawnServer({ DATA_DIR: dataDir, MAX_ACTIVE_UPLOADS_PER_USER: '1000', UPLOADS_PER_HOUR_PER_USER: '1000' });
    const client = tus(server.url, token);
    const big = Buffer.concat([PNG, randomBytes(8 * 1024 * 1024)]);
    const done = await client.create(big.length, { filetype: 'image/png' });
    expect((await client.patch(done.headers.location!, 0, big)).status).to.equal(204);

    const locations: string[] = [];
    for (let i = 0; i < 20; i++) locations.push((await client.create(big.length, { filetype: 'image/png' })).headers.location!);

    const dropPatch = async (location: string) => {
      const offset = Number((await client.head(location)).headers['upload-offset']);
      const patch = slowPatch(location, token, offset, big.subarray(offset), 32 * 1024, 1);
      const cut = Math.floor(Math.random() * 200 * 1024);
      while (patch.sent() < cut && !patch.req.destroyed) await sleep(1);
      patch.req.destroy();
    };
    const dropDownload = (url: string) =>
      new Promise<void>((resolve) => {
        const req = http.get(url, { agent: false }, (res) => {
          let seen = 0;
          const limit = Math.floor(Math.random() * 2 * 1024 * 1024);
          res.on('data', (chunk: Buffer) => {
            seen += chunk.length;
            if (seen >= limit) req.destroy();
          });
          res.on('close', resolve);
        });
        req.on('error', () => resolve());
      });

    for (let round = 0; round < 10; round++) {
      await Promise.all([
        ...locations.map((location) => dropPatch(location)),
        ...Array.from({ length: 20 }, () => dropDownload(done.headers.location!)),
      ]);
    }
    expect(server.child.exitCode).to.equal(null);
    expect((await request(`${server.url}/health`)).status).to.equal(200);

    // Every dropped upload is consistent and its lock free: it resumes at once to the exact file.
    for (const location of locations.slice(0, 5)) {
      const started = Date.now();
      const { res } = await resumeToEnd(client, location, big);
      expect(res.status, res.text).to.equal(204);
      expect(Date.now() - started).to.be.below(5000);
      expect((await request(location)).body.equals(big)).to.equal(true);
    }
  });

  it('after SIGTERM, tells a resuming HEAD to come back (423) and other late requests 503, with Retry-After', async () => {
    server = await spawnServer({ DATA_DIR: dataDir, SHUTDOWN_GRACE_MS: '3000' });
    const { port } = new URL(server.url);
    // Requests whose heads are complete only once the server is stopping (a connection in the middle
    // of a request's head is not idle: it is not closed at once).
    const late = ['HEAD', 'POST'].map((method) => {
      const socket = net.connect(Number(port), '127.0.0.1');
      socket.write(`${method} /files/0123456789abcdef HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n`);
      let answer = '';
      socket.on('data', (data: Buffer) => (answer += data.toString()));
      socket.on('error', () => undefined);
      return { socket, answer: () => answer };
    });
    try {
      await sleep(200);
      server.child.kill('SIGTERM');
      await sleep(300);
      for (const { socket } of late) socket.write('Content-Length: 0\r\n\r\n');
      await sleep(500);
      const [head, post] = late.map(({ answer }) => answer());
      expect(head).to.match(/^HTTP\/1.1 423 /);
      expect(post).to.match(/^HTTP\/1.1 503 /);
      for (const answer of [head, post]) expect(answer).to.match(/\r\nRetry-After: 1\r\n/i);
    } finally {
      for (const { socket } of late) socket.destroy();
    }
    expect(await server.exited).to.equal(0);
  });

  it('after SIGTERM, closes a kept-alive connection once its running PATCH is answered, and takes nothing new on it', async () => {
    const file = Buffer.concat([PNG, randomBytes(512 * 1024)]);
    server = await spawnServer({ DATA_DIR: dataDir, SHUTDOWN_GRACE_MS: '5000' });
    const location = (await tus(server.url, token).create(file.length, { filetype: 'image/png' })).headers.location!;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const send = (method: string, headers: Record<string, string | number>, body?: Buffer) =>
      new Promise<http.IncomingMessage>((resolve, reject) => {
        const req = http.request(location, { method, agent, headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}`, ...headers } }, (res) => {
          res.resume();
          res.once('end', () => resolve(res));
        });
        req.once('error', reject);
        if (!body) return void req.end();
        req.write(body.subarray(0, 1024));
        // The rest goes after the signal.
        setTimeout(() => req.end(body.subarray(1024)), 500);
      });
    try {
      expect((await send('HEAD', {})).headers.connection).to.equal('keep-alive');
      const patching = send('PATCH', { 'Upload-Offset': 0, 'Content-Type': 'application/offset+octet-stream', 'Content-Length': file.length }, file);
      await sleep(200);
      server.child.kill('SIGTERM');
      const patched = await patching;
      expect(patched.statusCode).to.equal(204);
      expect(patched.headers.connection).to.equal('close');
      // The next request needs a new connection, which the stopping server no longer accepts.
      const next = await send('HEAD', {}).then((res) => res.statusCode, (error: NodeJS.ErrnoException) => error.code);
      // A HEAD that gets through is told to come back (423, which tus-js-client retries), not 503.
      expect(next).to.be.oneOf(['ECONNREFUSED', 'ECONNRESET', 423]);
      expect(await server.exited).to.equal(0);
    } finally {
      agent.destroy();
    }
  });

  it('exits 0 on SIGTERM during uploads, leaving offsets a restart can resume from', async () => {
    const file = Buffer.concat([PNG, randomBytes(2 * 1024 * 1024)]);
    server = await spawnServer({ DATA_DIR: dataDir, SHUTDOWN_GRACE_MS: '1000' });
    const created = await tus(server.url, token).create(file.length, { filetype: 'image/png' });
    const id = created.headers.location!.split('/').pop()!;
    const patch = slowPatch(`${server.url}/files/${id}`, token, 0, file, 32 * 1024, 20);
    while (patch.sent() < 256 * 1024) await sleep(5);
    expect(await server.kill('SIGTERM')).to.equal(0);
    patch.req.destroy();
    server = await spawnServer({ DATA_DIR: dataDir });
    const { offset, res } = await resumeToEnd(tus(server.url, token), `${server.url}/files/${id}`, file);
    expect(offset).to.be.greaterThan(0);
    expect(res.status).to.equal(204);
    expect((await request(`${server.url}/files/${id}`)).body.equals(file)).to.equal(true);
  });
});

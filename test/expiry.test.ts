import fs from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { openPatch, request, tus } from './helpers/http.js';
import { startServer, type TestServer } from './helpers/server.js';
import { TEXT } from './samples.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const exists = (file: string) => fs.stat(file).then(() => true, () => false);

describe('expiry of incomplete uploads', function () {
  this.timeout(20_000);
  let server: TestServer;
  let client: ReturnType<typeof tus>;
  beforeEach(async () => {
    server = await startServer({ UPLOAD_EXPIRY_SECONDS: 2 });
    client = tus(server.url, await server.token('alice'));
  });
  afterEach(() => server.close());

  it('slides with each write, answers 410 once passed, and the sweep removes data and metadata', async () => {
    const location = (await client.create(TEXT.length)).headers.location!;
    const id = location.split('/').pop()!;
    await client.patch(location, 0, TEXT.subarray(0, 10));
    await sleep(1300);
    const second = await client.patch(location, 10, TEXT.subarray(10, 20));
    expect(second.status).to.equal(204);
    const expires = Date.parse(String(second.headers['upload-expires']));
    expect(expires).to.be.within(Date.now() + 500, Date.now() + 2500);
    await sleep(1300);
    // 2.6 s after creation but only 1.3 s after the last write: still alive.
    expect((await client.head(location)).status).to.equal(200);
    await sleep(1200);
    expect((await client.head(location)).status).to.equal(410);
    expect((await client.patch(location, 20, TEXT.subarray(20))).status).to.equal(410);
    // Before the sweep, /info already says what tus says.
    const info = await request(`${location}/info`, { headers: { Authorization: `Bearer ${await server.token('alice')}` } });
    expect(JSON.parse(info.text)).to.include({ state: 'expired' });
    expect(await server.tusgate.sweep()).to.equal(1);
    expect((await client.head(location)).status).to.equal(404);
    expect(await exists(path.join(server.dataDir, 'uploads', id))).to.equal(false);
    expect(await exists(path.join(server.dataDir, 'uploads', `${id}.json`))).to.equal(false);
    expect(await server.tusgate.store.records.get(id)).to.equal(undefined);
  });

  it('reports an upload being written as not expired, however long its PATCH takes', async () => {
    const location = (await client.create(TEXT.length)).headers.location!;
    const token = await server.token('alice');
    const patch = openPatch(location, token, 0, TEXT.length);
    const answered = new Promise<number>((resolve) => patch.on('response', (res) => resolve(res.statusCode ?? 0)));
    patch.write(TEXT.subarray(0, 10));
    await sleep(2500);
    const info = JSON.parse((await request(`${location}/info`, { headers: { Authorization: `Bearer ${token}` } })).text);
    expect(info.state).to.equal('uploading');
    patch.end(TEXT.subarray(10));
    expect(await answered).to.equal(204);
  });

  it('never expires a finished upload', async () => {
    const location = (await client.create(TEXT.length)).headers.location!;
    expect((await client.patch(location, 0, TEXT)).status).to.equal(204);
    await sleep(2300);
    expect(await server.tusgate.sweep()).to.equal(0);
    expect((await client.head(location)).status).to.equal(200);
    const served = await request(location);
    expect(served.status).to.equal(200);
    expect(served.body.equals(TEXT)).to.equal(true);
  });

  it('gives the expired upload its quota slot back', async () => {
    const limited = await startServer({ UPLOAD_EXPIRY_SECONDS: 1, MAX_ACTIVE_UPLOADS_PER_USER: 1 });
    try {
      const c = tus(limited.url, await limited.token('bob'));
      expect((await c.create(TEXT.length)).status).to.equal(201);
      expect((await c.create(TEXT.length)).status).to.equal(429);
      await sleep(1200);
      await limited.tusgate.sweep();
      expect((await c.create(TEXT.length)).status).to.equal(201);
    } finally {
      await limited.close();
    }
  });

  it('does not count an expired upload against the limit before the sweep comes, on either door', async () => {
    const limited = await startServer({ UPLOAD_EXPIRY_SECONDS: 1, MAX_ACTIVE_UPLOADS_PER_USER: 1 });
    try {
      const token = await limited.token('carol');
      const c = tus(limited.url, token);
      const first = (await c.create(TEXT.length)).headers.location!;
      expect((await c.create(TEXT.length)).status).to.equal(429);
      await sleep(1200);
      const second = await c.create(TEXT.length);
      expect(second.status, second.text).to.equal(201);
      expect((await c.head(first)).status).to.be.oneOf([404, 410]);
      const initiate = () =>
        request(`${limited.url}/api/v1/upload/initiate`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ filename: 'a.txt', file_size: 10, mime_type: 'text/plain' }),
        });
      expect((await initiate()).status).to.equal(429);
      await sleep(1200);
      expect((await initiate()).status).to.equal(200);
    } finally {
      await limited.close();
    }
  });
});

import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';
import { expect } from 'chai';
import { metadata, openPatch, request, tus } from './helpers/http.js';
import { startServer, type TestServer } from './helpers/server.js';
import { PNG } from './samples.js';

const digest = (algorithm: string, data: Buffer) => createHash(algorithm).update(data).digest('base64');
const checksum = (algorithm: string, data: Buffer) => `${algorithm} ${digest(algorithm, data)}`;

/** tus 1.0.0, "Checksum" extension: https://tus.io/protocols/resumable-upload#checksum */
describe('tus 1.0.0 › Protocol Extensions › Checksum', () => {
  let server: TestServer;
  let token: string;
  let client: ReturnType<typeof tus>;
  const file = Buffer.concat([PNG, randomBytes(300_000)]);
  const idOf = (location: string) => location.split('/').pop()!;
  const stored = (location: string) => server.tusgate.store.bytes.storedBytes(idOf(location));

  before(async () => {
    server = await startServer({ MAX_ACTIVE_UPLOADS_PER_USER: 50, UPLOADS_PER_HOUR_PER_USER: 1000 });
    token = await server.token('alice');
    client = tus(server.url, token);
  });
  after(() => server.close());

  async function create(meta: Record<string, string> = { filetype: 'image/png' }) {
    const created = await client.create(file.length, meta);
    expect(created.status, created.text).to.equal(201);
    return created.headers.location!;
  }

  it('advertises `checksum` in Tus-Extension and sha1, md5, sha256 in Tus-Checksum-Algorithm (OPTIONS)', async () => {
    const res = await request(`${server.url}/files/`, { method: 'OPTIONS' });
    expect(res.status).to.equal(204);
    expect(String(res.headers['tus-extension']).split(',')).to.include('checksum');
    expect(String(res.headers['tus-checksum-algorithm']).split(',')).to.include.members(['sha1', 'md5', 'sha256']);
    const preflight = await request(`${server.url}/files/`, {
      method: 'OPTIONS',
      headers: { Origin: 'http://localhost:3000', 'Access-Control-Request-Method': 'PATCH', 'Access-Control-Request-Headers': 'upload-checksum' },
    });
    expect(String(preflight.headers['access-control-allow-headers']).toLowerCase()).to.include('upload-checksum');
  });

  for (const algorithm of ['sha1', 'md5', 'sha256']) {
    it(`accepts PATCHes whose ${algorithm} Upload-Checksum matches (204 No Content)`, async () => {
      const location = await create();
      const first = await client.patch(location, 0, file.subarray(0, 1000), { 'Upload-Checksum': checksum(algorithm, file.subarray(0, 1000)) });
      expect(first.status, first.text).to.equal(204);
      expect(first.headers['upload-offset']).to.equal('1000');
      const rest = await client.patch(location, 1000, file.subarray(1000), { 'Upload-Checksum': checksum(algorithm, file.subarray(1000)) });
      expect(rest.status, rest.text).to.equal(204);
      expect((await request(location)).body.equals(file)).to.equal(true);
    });
  }

  it('answers 460 to a mismatch and keeps no byte of it; the retry completes with the right SHA-256', async () => {
    const sha256 = createHash('sha256').update(file).digest();
    const location = await create({ filetype: 'image/png', sha256: sha256.toString('hex') });
    const head = file.subarray(0, 100_000);
    const middle = file.subarray(100_000, 200_000);
    expect((await client.patch(location, 0, head, { 'Upload-Checksum': checksum('sha1', head) })).status).to.equal(204);

    // Bytes damaged on the way: same length, checksum of what the client meant to send.
    const damaged = Buffer.from(middle);
    damaged[50_000] = damaged[50_000]! ^ 0xff;
    const refused = await client.patch(location, 100_000, damaged, { 'Upload-Checksum': checksum('sha1', middle) });
    expect(refused.status).to.equal(460);
    expect(refused.statusMessage).to.equal('Checksum Mismatch');
    expect((await client.head(location)).headers['upload-offset']).to.equal('100000');
    expect(await stored(location)).to.equal(100_000);

    expect((await client.patch(location, 100_000, middle, { 'Upload-Checksum': checksum('sha1', middle) })).status).to.equal(204);
    const last = await client.patch(location, 200_000, file.subarray(200_000), { 'Upload-Checksum': checksum('md5', file.subarray(200_000)) });
    // Had the damaged bytes reached the running SHA-256, the declared sha256 would now be refused (460).
    expect(last.status, last.text).to.equal(204);
    expect(last.headers['repr-digest']).to.equal(`sha-256=:${sha256.toString('base64')}:`);
    expect((await request(location)).body.equals(file)).to.equal(true);
  });

  it('counts refused PATCHes in tusgate_uploads_failed_total{reason="checksum"}', async () => {
    const location = await create();
    const before = (await server.tusgate.metrics.failed.get()).values.find((v) => v.labels.reason === 'checksum')?.value ?? 0;
    const refused = await client.patch(location, 0, file.subarray(0, 10), { 'Upload-Checksum': checksum('sha256', file.subarray(1, 11)) });
    expect(refused.status).to.equal(460);
    const after = (await server.tusgate.metrics.failed.get()).values.find((v) => v.labels.reason === 'checksum')?.value ?? 0;
    expect(after).to.equal(before + 1);
  });

  it('answers 400 to an unsupported algorithm and keeps nothing', async () => {
    const location = await create();
    for (const value of [`crc32 ${Buffer.alloc(4).toString('base64')}`, `SHA1 ${digest('sha1', file.subarray(0, 10))}`, `sha512 ${digest('sha512', file.subarray(0, 10))}`]) {
      const res = await client.patch(location, 0, file.subarray(0, 10), { 'Upload-Checksum': value });
      expect(res.status, value).to.equal(400);
      expect(res.text).to.match(/not supported/);
    }
    expect((await client.head(location)).headers['upload-offset']).to.equal('0');
    expect(await stored(location)).to.equal(0);
  });

  it('answers 400 to a malformed Upload-Checksum and keeps nothing', async () => {
    const location = await create();
    const good = digest('sha1', file.subarray(0, 10));
    for (const value of ['sha1', good, `sha1 ${good} extra`, 'sha1 !!!not-base64!!!', `sha1 ${digest('md5', file.subarray(0, 10))}`, `sha1  ${good}`]) {
      const res = await client.patch(location, 0, file.subarray(0, 10), { 'Upload-Checksum': value });
      expect(res.status, value).to.equal(400);
    }
    expect((await client.head(location)).headers['upload-offset']).to.equal('0');
  });

  it('verifies creation-with-upload: a match is kept (201), a mismatch answers 460 and leaves no upload behind', async () => {
    const post = (body: Buffer, value: string) =>
      request(`${server.url}/files/`, {
        method: 'POST',
        headers: {
          'Tus-Resumable': '1.0.0',
          Authorization: `Bearer ${token}`,
          'Upload-Length': file.length,
          'Upload-Metadata': metadata({ filetype: 'image/png' }),
          'Content-Type': 'application/offset+octet-stream',
          'Upload-Checksum': value,
        },
        body,
      });
    const chunk = file.subarray(0, 5000);
    const ok = await post(chunk, checksum('sha256', chunk));
    expect(ok.status, ok.text).to.equal(201);
    expect(ok.headers['upload-offset']).to.equal('5000');
    expect(await stored(ok.headers.location!)).to.equal(5000);

    const active = await server.tusgate.quota.activeCount('alice');
    const refused = await post(chunk, checksum('sha256', file.subarray(1, 5001)));
    expect(refused.status).to.equal(460);
    expect(refused.headers.location).to.equal(undefined);
    expect(await server.tusgate.quota.activeCount('alice')).to.equal(active);
    const records = await server.tusgate.store.records.all();
    expect(records.filter((r) => r.owner === 'alice' && r.state === 'uploading')).to.have.length(active);
  });

  it('keeps nothing of a checksummed PATCH whose body breaks off (it cannot be verified)', async () => {
    const location = await create();
    expect((await client.patch(location, 0, file.subarray(0, 1000))).status).to.equal(204);
    const whole = file.subarray(1000);
    await new Promise<void>((resolve) => {
      const req = openPatch(location, token, 1000, whole.length, { 'Upload-Checksum': checksum('sha256', whole) });
      req.on('error', () => resolve());
      req.write(whole.subarray(0, 150_000), () => setTimeout(() => req.destroy(), 100));
    });
    // HEAD waits for the broken PATCH to let go of the upload's lock.
    let offset = '';
    for (let i = 0; i < 50 && offset !== '1000'; i++) {
      offset = String((await client.head(location)).headers['upload-offset']);
      if (offset !== '1000') await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(offset).to.equal('1000');
    expect(await stored(location)).to.equal(1000);
    const rest = await client.patch(location, 1000, whole, { 'Upload-Checksum': checksum('sha256', whole) });
    expect(rest.status, rest.text).to.equal(204);
    expect((await request(location)).body.equals(file)).to.equal(true);
  });

  it('answers a checksummed PATCH stopped for a newer request with the offset it began at, not 460', async () => {
    const location = await create();
    expect((await client.patch(location, 0, file.subarray(0, 1000))).status).to.equal(204);
    const whole = file.subarray(1000);
    const stopped = new Promise<{ status: number; offset: string | string[] | undefined }>((resolve, reject) => {
      const req = openPatch(location, token, 1000, whole.length, { 'Upload-Checksum': checksum('sha256', whole) });
      req.on('response', (res) => {
        res.resume();
        resolve({ status: res.statusCode!, offset: res.headers['upload-offset'] });
      });
      req.on('error', reject);
      req.write(whole.subarray(0, 150_000));
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    // The HEAD asks the PATCH holding the upload's lock to let go (as a client resuming elsewhere does).
    const head = await client.head(location);
    expect(head.headers['upload-offset']).to.equal('1000');
    const answer = await stopped;
    expect(answer).to.deep.equal({ status: 204, offset: '1000' });
    expect(await stored(location)).to.equal(1000);
    const rest = await client.patch(location, 1000, whole, { 'Upload-Checksum': checksum('sha256', whole) });
    expect(rest.status, rest.text).to.equal(204);
    expect((await request(location)).body.equals(file)).to.equal(true);
  });

  it('keeps nothing of a checksummed write whose stream fails in the store (not only on a clean end)', async () => {
    const location = await create({ filetype: 'image/png', sha256: createHash('sha256').update(file).digest('hex') });
    expect((await client.patch(location, 0, file.subarray(0, 1000))).status).to.equal(204);
    const failing = new Readable({ read() {} });
    failing.push(file.subarray(1000, 50_000));
    setTimeout(() => failing.destroy(new Error('connection reset')), 50);
    const expected = createHash('sha1').update(file.subarray(1000)).digest();
    const context = { requestId: 'test', user: 'alice', responseHeaders: {}, checksum: { algorithm: 'sha1' as const, expected } };
    const { store } = server.tusgate;
    const outcome = await store.contexts.during(idOf(location), context, () => store.write(failing, idOf(location), 1000)).then(
      () => 'written',
      () => 'failed',
    );
    expect(outcome).to.equal('failed');
    expect(await stored(location)).to.equal(1000);
    // The SHA-256 state went back too: the declared digest still matches at completion.
    const rest = await client.patch(location, 1000, file.subarray(1000));
    expect(rest.status, rest.text).to.equal(204);
  });
});

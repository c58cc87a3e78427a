import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import * as tusClient from 'tus-js-client';
import type { Config } from '../server/config.js';
import { findCeph, MISSING_CEPH, startRadosgw, type Radosgw } from './helpers/ceph.js';
import { spawnServer, type ServerProcess } from './helpers/process.js';
import { openPatch, request, tus } from './helpers/http.js';
import { startRedis, type RedisServer } from './helpers/redis.js';
import { makeDataDir, signToken, startServer, type TestServer } from './helpers/server.js';
import { chunksOf, legacyClient, sha256 } from './legacy-client.js';
import { mp4WithMoovAtEnd, PNG, TEXT } from './samples.js';

const MiB = 1024 * 1024;
const png = (size: number) => Buffer.concat([PNG, randomBytes(size - PNG.length)]);
const AS_PNG = { filetype: 'image/png' };
const digestOf = (data: Buffer) => createHash('sha256').update(data).digest();

function tusUpload(endpoint: string, token: string, file: Buffer, options: Partial<tusClient.UploadOptions> = {}): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const upload: tusClient.Upload = new tusClient.Upload(file, {
      endpoint,
      headers: { Authorization: `Bearer ${token}` },
      metadata: { filename: 'photo.png', filetype: 'image/png', sha256: digestOf(file).toString('hex') },
      retryDelays: [],
      ...options,
      onSuccess: () => resolve(upload.url!),
      onError: reject,
    });
    upload.start();
  });
}

describe('STORAGE=s3 against a real Ceph radosgw', function () {
  this.timeout(120_000);
  let rgw: Radosgw;
  let s3: S3Client;
  let server: TestServer;
  let token: string;

  const s3Config = (): Partial<Config> => ({
    STORAGE: 's3',
    S3_BUCKET: rgw.bucket,
    S3_ENDPOINT: rgw.endpoint,
    S3_REGION: 'us-east-1',
    S3_ACCESS_KEY_ID: rgw.accessKeyId,
    S3_SECRET_ACCESS_KEY: rgw.secretAccessKey,
    S3_FORCE_PATH_STYLE: true,
  });

  async function objectsOf(id: string): Promise<string[]> {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: rgw.bucket, Prefix: id }));
    return (listed.Contents ?? []).map((object) => object.Key!);
  }

  before(async function () {
    if (!findCeph()) throw new Error(MISSING_CEPH);
    rgw = await startRadosgw();
    s3 = new S3Client({
      endpoint: rgw.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
    });
    server = await startServer({ ...s3Config(), ALLOWED_MIME_TYPES: ['image/png', 'video/mp4', 'text/plain'], MAX_MEDIA_DURATION_SECONDS: 10 });
    token = await server.token('alice');
  });
  after(async () => {
    await server?.close();
    s3?.destroy();
    await rgw?.stop();
  });

  it('reports the bucket on /ready', async () => {
    const ready = await request(`${server.url}/ready`);
    expect(ready.status, ready.text).to.equal(200);
    expect(JSON.parse(ready.text).checks.s3).to.equal('ok');
  });

  it('takes a tus-js-client upload in small chunks, and serves it byte-exact with Range and conditional requests', async () => {
    const file = png(3 * MiB + 777);
    const url = await tusUpload(`${server.url}/files/`, token, file, { chunkSize: 256 * 1024 });
    const id = new URL(url).pathname.split('/').pop()!;
    expect(await objectsOf(id)).to.include(id);
    const auth = { Authorization: `Bearer ${token}` };
    const whole = await request(url, { headers: auth });
    expect(whole.status).to.equal(200);
    expect(whole.body.equals(file)).to.equal(true);
    expect(whole.headers['repr-digest']).to.equal(`sha-256=:${digestOf(file).toString('base64')}:`);
    expect(whole.headers['content-type']).to.equal('image/png');
    const middle = await request(url, { headers: { ...auth, Range: 'bytes=1000000-1999999' } });
    expect(middle.status).to.equal(206);
    expect(middle.headers['content-range']).to.equal(`bytes 1000000-1999999/${file.length}`);
    expect(middle.body.equals(file.subarray(1_000_000, 2_000_000))).to.equal(true);
    const suffix = await request(url, { headers: { ...auth, Range: 'bytes=-100' } });
    expect(suffix.body.equals(file.subarray(-100))).to.equal(true);
    const beyond = await request(url, { headers: { ...auth, Range: `bytes=${file.length}-` } });
    expect(beyond.status).to.equal(416);
    expect(beyond.headers['content-range']).to.equal(`bytes */${file.length}`);
    // An invalid Range (its end before its start) is ignored: the whole object.
    const invalid = await request(url, { headers: { ...auth, Range: 'bytes=5-2' } });
    expect(invalid.status).to.equal(200);
    expect(invalid.body.equals(file)).to.equal(true);
    const cached = await request(url, { headers: { ...auth, 'If-None-Match': whole.headers.etag! } });
    expect(cached.status).to.equal(304);
    const head = await request(url, { method: 'HEAD', headers: auth });
    expect(head.headers['content-length']).to.equal(String(file.length));
  });

  it('builds a parallel upload (concatenation) from parts on S3', async () => {
    const file = png(6 * MiB + 999);
    const url = await tusUpload(`${server.url}/files/`, token, file, { parallelUploads: 3 });
    const served = await request(url, { headers: { Authorization: `Bearer ${token}` } });
    expect(served.body.equals(file)).to.equal(true);
    const info = await request(`${url}/info`, { headers: { Authorization: `Bearer ${token}` } });
    expect(JSON.parse(info.text)).to.include({ state: 'complete', size: file.length });
  });

  it('resumes after a PATCH dropped mid-body, keeping what arrived, with the right digest', async () => {
    const file = png(12 * MiB);
    const client = tus(server.url, token);
    const created = await client.create(file.length, { ...AS_PNG, sha256: sha256(file) });
    const location = created.headers.location!;
    const patch = openPatch(location, token, 0, file.length);
    patch.on('error', () => undefined);
    patch.write(file.subarray(0, 10 * MiB));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    patch.destroy();
    let offset = 0;
    for (let tries = 0; tries < 50; tries++) {
      const head = await client.head(location);
      offset = Number(head.headers['upload-offset']);
      if (head.status === 200 && offset > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(offset, 'bytes kept from the dropped PATCH').to.be.above(8 * MiB);
    const rest = await client.patch(location, offset, file.subarray(offset));
    expect(rest.status, rest.text).to.equal(204);
    const served = await request(location, { headers: { Authorization: `Bearer ${token}` } });
    expect(served.body.equals(file)).to.equal(true);
  });

  it('keeps nothing of a PATCH whose Upload-Checksum differs (460) and takes the right one', async () => {
    const file = png(2 * MiB);
    const client = tus(server.url, token);
    const location = (await client.create(file.length, AS_PNG)).headers.location!;
    const half = file.subarray(0, MiB);
    const wrong = await client.patch(location, 0, half, { 'Upload-Checksum': `sha1 ${createHash('sha1').update('other').digest('base64')}` });
    expect(wrong.status).to.equal(460);
    expect((await client.head(location)).headers['upload-offset']).to.equal('0');
    const right = await client.patch(location, 0, half, { 'Upload-Checksum': `sha1 ${createHash('sha1').update(half).digest('base64')}` });
    expect(right.status).to.equal(204);
    expect((await client.patch(location, MiB, file.subarray(MiB))).status).to.equal(204);
    expect((await request(location, { headers: { Authorization: `Bearer ${token}` } })).body.equals(file)).to.equal(true);
  });

  it('refuses a wrong digest (460) and a wrong type (415), leaving no object', async () => {
    const client = tus(server.url, token);
    const file = png(MiB);
    const wrongHash = await client.create(file.length, { ...AS_PNG, sha256: sha256('something else') });
    const wrongHashId = new URL(wrongHash.headers.location!).pathname.split('/').pop()!;
    expect((await client.patch(wrongHash.headers.location!, 0, file)).status).to.equal(460);
    const wrongType = await client.create(TEXT.length, AS_PNG);
    const wrongTypeId = new URL(wrongType.headers.location!).pathname.split('/').pop()!;
    expect((await client.patch(wrongType.headers.location!, 0, TEXT)).status).to.equal(415);
    expect(await objectsOf(wrongHashId)).to.deep.equal([]);
    expect(await objectsOf(wrongTypeId)).to.deep.equal([]);
  });

  it('completes a deferred-length upload, and terminates an unfinished one leaving no object', async () => {
    const client = tus(server.url, token);
    const file = png(6 * MiB);
    const location = (await client.create('defer', AS_PNG)).headers.location!;
    expect((await client.patch(location, 0, file.subarray(0, 4 * MiB))).status).to.equal(204);
    const last = await client.patch(location, 4 * MiB, file.subarray(4 * MiB), { 'Upload-Length': file.length });
    expect(last.status, last.text).to.equal(204);
    expect((await request(location, { headers: { Authorization: `Bearer ${token}` } })).body.equals(file)).to.equal(true);

    const unfinished = (await client.create(file.length, AS_PNG)).headers.location!;
    expect((await client.patch(unfinished, 0, file.subarray(0, MiB))).status).to.equal(204);
    const id = new URL(unfinished).pathname.split('/').pop()!;
    expect(await objectsOf(id)).to.not.deep.equal([]);
    expect((await client.delete(unfinished)).status).to.equal(204);
    expect(await objectsOf(id)).to.deep.equal([]);
  });

  it('reads the duration of an MP4 whose moov box comes last by range reads, and applies the limit (422)', async () => {
    const client = tus(server.url, token);
    for (const [seconds, status] of [[4, 204], [12.5, 422]] as const) {
      const video = mp4WithMoovAtEnd(seconds, 2 * MiB);
      const location = (await client.create(video.length, { filetype: 'video/mp4' })).headers.location!;
      const answer = await client.patch(location, 0, video);
      expect(answer.status, answer.text).to.equal(status);
    }
  });

  it('runs a legacy session with chunks out of order on S3', async () => {
    const legacy = legacyClient(server.url, token);
    const data = png(2 * MiB + 5000);
    const initiated = await legacy.initiate({ filename: 'photo.png', file_size: data.length, chunk_size: MiB, mime_type: 'image/png', file_hash: sha256(data) });
    expect(initiated.status, initiated.text).to.equal(200);
    const id = initiated.json.session_id as string;
    const chunks = chunksOf(data, MiB);
    for (const n of [2, 0, 1]) expect((await legacy.chunk(id, n, chunks[n]!, { hash: true })).status).to.equal(200);
    const completed = await legacy.complete(id);
    expect(completed.status, completed.text).to.equal(200);
    expect((await request(`${server.url}/files/${id}`, { headers: { Authorization: `Bearer ${token}` } })).body.equals(data)).to.equal(true);
  });

  it('answers a download 503 with Retry-After while the object store is away, and serves it again after', async () => {
    // A TCP proxy to radosgw that can be cut, for a tusgate of its own.
    const sockets = new Set<net.Socket>();
    let open = true;
    const target = new URL(rgw.endpoint);
    const proxy = net.createServer((client) => {
      if (!open) return void client.destroy();
      const upstream = net.connect(Number(target.port), target.hostname);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const via = await startServer({ ...s3Config(), S3_ENDPOINT: `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}` });
    try {
      const client = tus(via.url, await via.token('alice'));
      const location = (await client.create(TEXT.length)).headers.location!;
      expect((await client.patch(location, 0, TEXT)).status).to.equal(204);
      open = false;
      for (const socket of sockets) socket.destroy();
      for (const headers of [{}, { Range: 'bytes=0-9' }] as Array<Record<string, string>>) {
        const away = await request(location, { headers });
        expect(away.status, away.text).to.equal(503);
        expect(away.headers['retry-after']).to.equal('1');
      }
      open = true;
      expect((await request(location)).body.equals(TEXT)).to.equal(true);
    } finally {
      await via.close();
      for (const socket of sockets) socket.destroy();
      proxy.close();
    }
  });

  it('sweeps an expired upload from the bucket', async () => {
    const short = await startServer({ ...s3Config(), UPLOAD_EXPIRY_SECONDS: 1 });
    try {
      const shortToken = await short.token('alice');
      const client = tus(short.url, shortToken);
      const file = png(MiB);
      const location = (await client.create(file.length, AS_PNG)).headers.location!;
      expect((await client.patch(location, 0, file.subarray(0, 1000))).status).to.equal(204);
      const id = new URL(location).pathname.split('/').pop()!;
      await new Promise((resolve) => setTimeout(resolve, 1200));
      expect(await short.tusgate.sweep()).to.be.at.least(1);
      expect(await objectsOf(id)).to.deep.equal([]);
      expect((await client.head(location)).status).to.equal(404);
    } finally {
      await short.close();
    }
  });

  describe('two processes on S3 and one Redis', () => {
    let redis: RedisServer;
    let dataDir: string;
    const processes: ServerProcess[] = [];

    before(async () => {
      redis = await startRedis();
      // Staging and the outbox stay out of the repository's own data/.
      dataDir = await makeDataDir();
      const env = Object.fromEntries(Object.entries({ ...s3Config(), REDIS_URL: redis.url, DATA_DIR: dataDir }).map(([key, value]) => [key, String(value)]));
      for (let n = 0; n < 2; n++) processes.push(await spawnServer(env));
    });
    after(async () => {
      await Promise.all(processes.map((process) => process.kill('SIGKILL')));
      await redis?.stop();
      await fs.rm(dataDir, { recursive: true, force: true });
    });

    it('completes a tus-js-client upload that moves to the other process at every request, byte-exact and verified', async () => {
      const file = png(7 * MiB + 123);
      const urls = processes.map((process) => process.url);
      let next = 0;
      class Alternating extends tusClient.DefaultHttpStack {
        override createRequest(method: string, url: string) {
          const target = new URL(url);
          target.host = new URL(urls[next++ % urls.length]!).host;
          return super.createRequest(method, target.toString());
        }
      }
      const shared = await signToken('alice');
      const url = await tusUpload(`${urls[0]}/files/`, shared, file, { chunkSize: 2 * MiB, httpStack: new Alternating({}) });
      for (const base of urls) {
        const served = await request(`${base}${new URL(url).pathname}`, { headers: { Authorization: `Bearer ${shared}` } });
        expect(served.body.equals(file)).to.equal(true);
        expect(served.headers['repr-digest']).to.equal(`sha-256=:${digestOf(file).toString('base64')}:`);
      }
    });
  });
});

import { createHash, randomBytes } from 'node:crypto';
import { expect } from 'chai';
import * as tusClient from 'tus-js-client';
import { request } from './helpers/http.js';
import { startServer, type TestServer } from './helpers/server.js';
import { PNG } from './samples.js';

type ClientError = Error & { originalResponse?: { getStatus(): number } | null };

function upload(
  server: TestServer,
  token: string,
  data: Buffer,
  options: Partial<tusClient.UploadOptions> = {},
): { upload: tusClient.Upload; done: Promise<string> } {
  let instance!: tusClient.Upload;
  const done = new Promise<string>((resolve, reject) => {
    instance = new tusClient.Upload(data, {
      endpoint: `${server.url}/files/`,
      headers: { Authorization: `Bearer ${token}` },
      metadata: { filename: 'photo.png', filetype: 'image/png' },
      retryDelays: [0, 100, 200],
      ...options,
      onSuccess: () => resolve(instance.url!),
      onError: (error) => reject(error),
    });
  });
  instance.start();
  return { upload: instance, done };
}

describe('tus-js-client against tusgate', () => {
  let server: TestServer;
  let token: string;
  const file = Buffer.concat([PNG, randomBytes(3 * 1024 * 1024)]);
  const digest = createHash('sha256').update(file).digest();

  before(async () => {
    server = await startServer();
    token = await server.token('alice');
  });
  after(() => server.close());

  it('uploads in chunks with a declared sha256, and the served file is exact', async () => {
    const { done } = upload(server, token, file, {
      chunkSize: 256 * 1024,
      metadata: { filename: 'photo.png', filetype: 'image/png', sha256: digest.toString('hex') },
    });
    const url = await done;
    const served = await request(url);
    expect(served.status).to.equal(200);
    expect(served.body.equals(file)).to.equal(true);
    expect(served.headers['repr-digest']).to.equal(`sha-256=:${digest.toString('base64')}:`);
  });

  it('uploads with deferred length and data during creation together', async () => {
    const { done } = upload(server, token, file, { chunkSize: 1024 * 1024, uploadLengthDeferred: true, uploadDataDuringCreation: true });
    const served = await request(await done);
    expect(served.body.equals(file)).to.equal(true);
  });

  it('resumes from the stored URL after an abort, without sending the first part again', async () => {
    let resolveHalf!: () => void;
    const half = new Promise<void>((resolve) => (resolveHalf = resolve));
    const first = upload(server, token, file, {
      chunkSize: 128 * 1024,
      onChunkComplete: (_size, accepted) => {
        if (accepted >= file.length / 2) resolveHalf();
      },
    });
    first.done.catch(() => undefined);
    await half;
    await first.upload.abort();
    const url = first.upload.url!;
    const headOffset = Number(
      (await request(url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}` } })).headers['upload-offset'],
    );
    expect(headOffset).to.be.greaterThan(0).and.lessThan(file.length);

    let firstOffsetSent = -1;
    const resumed = upload(server, token, file, {
      uploadUrl: url,
      chunkSize: 128 * 1024,
      onBeforeRequest: (req) => {
        if (req.getMethod() === 'PATCH' && firstOffsetSent < 0) firstOffsetSent = Number(req.getHeader('Upload-Offset'));
      },
    });
    expect(await resumed.done).to.equal(url);
    expect(firstOffsetSent).to.equal(headOffset);
    expect((await request(url)).body.equals(file)).to.equal(true);
  });

  it('reports a 460 for a wrong sha256 as an error, without retrying into a false success', async () => {
    let patches = 0;
    const { done } = upload(server, token, file, {
      chunkSize: 1024 * 1024,
      metadata: { filename: 'photo.png', filetype: 'image/png', sha256: createHash('sha256').update('other').digest('hex') },
      onBeforeRequest: (req) => {
        if (req.getMethod() === 'PATCH') patches++;
      },
    });
    const error = (await done.then(
      () => expect.fail('upload should fail'),
      (e: unknown) => e,
    )) as ClientError;
    expect(error.originalResponse?.getStatus()).to.equal(460);
    expect(patches).to.equal(4); // 3 MiB + head in 1 MiB chunks, the last one refused, none retried
  });

  it('reports content that is not the declared type as a 415 error', async () => {
    const { done } = upload(server, token, randomBytes(4096), { metadata: { filename: 'x.png', filetype: 'image/png' } });
    const error = (await done.then(
      () => expect.fail('upload should fail'),
      (e: unknown) => e,
    )) as ClientError;
    expect(error.originalResponse?.getStatus()).to.equal(415);
  });
});

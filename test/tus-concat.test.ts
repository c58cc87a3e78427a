import { createHash, randomBytes } from 'node:crypto';
import { expect } from 'chai';
import * as tusClient from 'tus-js-client';
import { metadata, request, tus, type RawResponse } from './helpers/http.js';
import { startServer, type TestServer } from './helpers/server.js';
import { PNG } from './samples.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest();

/** tus 1.0.0, "Concatenation" extension: https://tus.io/protocols/resumable-upload#concatenation */
/** A final upload of PNG type made of `urls`, on another server than the suite's. */
function finalAt(baseUrl: string, token: string, urls: string[]): Promise<RawResponse> {
  return request(`${baseUrl}/files/`, {
    method: 'POST',
    headers: {
      'Tus-Resumable': '1.0.0',
      Authorization: `Bearer ${token}`,
      'Upload-Concat': `final;${urls.join(' ')}`,
      'Upload-Metadata': metadata({ filetype: 'image/png' }),
    },
  });
}

describe('tus 1.0.0 › Protocol Extensions › Concatenation', () => {
  let server: TestServer;
  let token: string;
  let client: ReturnType<typeof tus>;
  const file = Buffer.concat([PNG, randomBytes(200_000)]);

  before(async () => {
    server = await startServer({ MAX_FILE_SIZE: 1_000_000, MAX_ACTIVE_UPLOADS_PER_USER: 50, UPLOADS_PER_HOUR_PER_USER: 1000 });
    token = await server.token('alice');
    client = tus(server.url, token);
  });
  after(() => server.close());

  /** Creates a partial upload of `data` and uploads it whole; returns its URL. */
  async function partial(data: Buffer, as = client, upload = true): Promise<string> {
    const created = await as.create(data.length, {}, { 'Upload-Concat': 'partial' });
    expect(created.status, created.text).to.equal(201);
    const location = created.headers.location!;
    if (upload) expect((await as.patch(location, 0, data)).status).to.equal(204);
    return location;
  }

  function final(urls: string[], meta: Record<string, string> = { filetype: 'image/png' }, extra: Record<string, string | number> = {}, as = token): Promise<RawResponse> {
    const headers: Record<string, string | number> = {
      'Tus-Resumable': '1.0.0',
      Authorization: `Bearer ${as}`,
      'Upload-Concat': `final;${urls.join(' ')}`,
      ...extra,
    };
    if (Object.keys(meta).length > 0) headers['Upload-Metadata'] = metadata(meta);
    return request(`${server.url}/files/`, { method: 'POST', headers });
  }

  const parts = (data: Buffer, count: number) =>
    Array.from({ length: count }, (_, i) => data.subarray(Math.floor((i * data.length) / count), Math.floor(((i + 1) * data.length) / count)));

  it('advertises `concatenation` in Tus-Extension', async () => {
    const res = await request(`${server.url}/files/`, { method: 'OPTIONS' });
    expect(String(res.headers['tus-extension']).split(',')).to.include('concatenation');
  });

  it('creates partial uploads without a type, echoes Upload-Concat on HEAD and never serves them', async () => {
    const location = await partial(file.subarray(0, 1000), client, false);
    const head = await client.head(location);
    expect(head.headers['upload-concat']).to.equal('partial');
    expect(head.headers['upload-offset']).to.equal('0');
    expect((await client.patch(location, 0, file.subarray(0, 1000))).status).to.equal(204);
    const done = await client.head(location);
    expect(done.headers['upload-concat']).to.equal('partial');
    expect(done.headers['upload-offset']).to.equal('1000');
    expect((await request(location)).status).to.equal(404);
    expect((await request(location, { method: 'HEAD' })).status).to.equal(404);
    // Its facts are its owner's only, even with FILES_PUBLIC.
    expect((await request(`${location}/info`)).status).to.equal(404);
    expect((await request(`${location}/info`, { headers: { Authorization: `Bearer ${token}` } })).status).to.equal(200);
  });

  it('builds the final upload from absolute and relative partial URLs: exact bytes, Repr-Digest, HEAD echoes Upload-Concat', async () => {
    const [a, b, c] = parts(file, 3) as [Buffer, Buffer, Buffer];
    const urls = [await partial(a), new URL(await partial(b)).pathname, await partial(c)];
    const digest = sha256(file);
    const res = await final(urls, { filetype: 'image/png', filename: 'joined.png', sha256: digest.toString('hex') });
    expect(res.status, res.text).to.equal(201);
    expect(res.headers['repr-digest']).to.equal(`sha-256=:${digest.toString('base64')}:`);
    const location = res.headers.location!;
    const head = await client.head(location);
    expect(head.status).to.equal(200);
    expect(head.headers['upload-concat']).to.equal(`final;${urls.join(' ')}`);
    expect(head.headers['upload-offset']).to.equal(String(file.length));
    expect(head.headers['upload-length']).to.equal(String(file.length));
    const served = await request(location);
    expect(served.status).to.equal(200);
    expect(served.headers['content-type']).to.equal('image/png');
    expect(served.headers['repr-digest']).to.equal(`sha-256=:${digest.toString('base64')}:`);
    expect(served.body.equals(file)).to.equal(true);
  });

  it('answers 403 to a PATCH of a final upload and changes nothing', async () => {
    const [a, b] = parts(file, 2) as [Buffer, Buffer];
    const res = await final([await partial(a), await partial(b)]);
    expect(res.status, res.text).to.equal(201);
    const patched = await client.patch(res.headers.location!, file.length, Buffer.from('more'));
    expect(patched.status).to.equal(403);
    expect((await request(res.headers.location!)).body.equals(file)).to.equal(true);
  });

  it("does not transfer the partial uploads' metadata to the final upload", async () => {
    const created = await client.create(PNG.length, { filename: 'part.bin', secret: 'of the part' }, { 'Upload-Concat': 'partial' });
    await client.patch(created.headers.location!, 0, PNG);
    const res = await final([created.headers.location!], { filetype: 'image/png', filename: 'whole.png' });
    expect(res.status, res.text).to.equal(201);
    expect((await client.head(res.headers.location!)).headers['upload-metadata']).to.equal(metadata({ filetype: 'image/png', filename: 'whole.png' }));
    expect((await request(res.headers.location!)).headers['content-disposition']).to.include('whole.png');
  });

  it('lets a partial upload be used twice, in one final and in another', async () => {
    const head = await partial(PNG);
    const tail = await partial(Buffer.from('tail'));
    const twice = await final([head, tail, tail]);
    expect(twice.status, twice.text).to.equal(201);
    expect((await request(twice.headers.location!)).body.equals(Buffer.concat([PNG, Buffer.from('tailtail')]))).to.equal(true);
    const again = await final([head]);
    expect(again.status, again.text).to.equal(201);
    expect((await request(again.headers.location!)).body.equals(PNG)).to.equal(true);
  });

  it('answers 404 (never 500) to a final whose part is deleted while the final is created', async () => {
    const statuses: number[] = [];
    for (let round = 0; round < 30; round++) {
      const part = await partial(PNG);
      const deleted = client.delete(part);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
      const built = await final([part]);
      expect((await deleted).status).to.equal(204);
      statuses.push(built.status);
      if (built.status === 201) expect((await request(built.headers.location!)).body.equals(PNG)).to.equal(true);
      else expect(built.text).to.match(/^Not Found: partial upload .* does not exist/);
    }
    expect(statuses.filter((status) => status !== 201 && status !== 404), statuses.join(',')).to.deep.equal([]);
  });

  it("answers another user's partial upload exactly like a missing one (404), and creates nothing", async () => {
    const bob = tus(server.url, await server.token('bob'));
    const mine = await partial(PNG);
    const bobs = await partial(Buffer.from('bob secret'), bob);
    const before = (await server.tusgate.store.records.all()).length;
    const foreign = await final([mine, bobs]);
    const missing = await final([mine, `${server.url}/files/0123456789abcdef0123456789abcdef`]);
    expect(foreign.status).to.equal(404);
    expect(missing.status).to.equal(404);
    expect(foreign.text.replace(bobs, 'URL')).to.equal(missing.text.replace(`${server.url}/files/0123456789abcdef0123456789abcdef`, 'URL'));
    expect((await server.tusgate.store.records.all()).length).to.equal(before);
    // Bob's part is still his, untouched.
    expect((await bob.head(bobs)).headers['upload-offset']).to.equal('10');
  });

  it('answers 400 to a final upload whose parts are not complete partial uploads of this server', async () => {
    const incomplete = await partial(PNG, client, false);
    expect((await final([incomplete])).status).to.equal(400);
    const whole = await client.create(PNG.length, { filetype: 'image/png' });
    await client.patch(whole.headers.location!, 0, PNG);
    expect((await final([whole.headers.location!])).status).to.equal(400);
    expect((await final(['https://elsewhere.example/uploads/abc'])).status).to.equal(400);
    const malformed = await request(`${server.url}/files/`, {
      method: 'POST',
      headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}`, 'Upload-Concat': 'final;', 'Upload-Metadata': metadata({ filetype: 'image/png' }) },
    });
    expect(malformed.status).to.equal(400);
    const unknown = await client.create(10, {}, { 'Upload-Concat': 'partial-ish' });
    expect(unknown.status).to.equal(400);
  });

  it('answers 400 when Upload-Length is not the sum of the parts, and 413 when the sum passes MAX_FILE_SIZE', async () => {
    const [a, b] = parts(file, 2) as [Buffer, Buffer];
    const urls = [await partial(a), await partial(b)];
    const wrong = await final(urls, { filetype: 'image/png' }, { 'Upload-Length': file.length + 1 });
    expect(wrong.status).to.equal(400);
    expect(wrong.text).to.match(/Upload-Length/);
    const right = await final(urls, { filetype: 'image/png' }, { 'Upload-Length': file.length });
    expect(right.status, right.text).to.equal(201);
    const big = await partial(randomBytes(600_000));
    const tooBig = await final([big, big]);
    expect(tooBig.status).to.equal(413);
  });

  it('checks the final upload as any upload: type declared (415), content (415), declared sha256 (460); a failed final is removed', async () => {
    const [a, b] = parts(file, 2) as [Buffer, Buffer];
    const urls = [await partial(a), await partial(b)];
    const before = (await server.tusgate.store.records.all()).length;
    const active = await server.tusgate.quota.activeCount('alice');
    expect((await final(urls, {})).status).to.equal(415);
    const notJpeg = await final(urls, { filetype: 'image/jpeg' });
    expect(notJpeg.status).to.equal(415);
    expect(notJpeg.headers.location).to.equal(undefined);
    const wrongHash = await final(urls, { filetype: 'image/png', sha256: sha256(Buffer.from('other')).toString('hex') });
    expect(wrongHash.status).to.equal(460);
    expect((await server.tusgate.store.records.all()).length).to.equal(before);
    expect(await server.tusgate.quota.activeCount('alice')).to.equal(active);
    // The parts are still there for a corrected final.
    expect((await final(urls, { filetype: 'image/png', sha256: sha256(file).toString('hex') })).status).to.equal(201);
  });

  it('removes partial uploads, complete or not, once they expire; the final upload stays', async () => {
    const done = await partial(PNG);
    const pending = await partial(PNG, client, false);
    const res = await final([done]);
    expect(res.status).to.equal(201);
    await server.tusgate.sweep();
    expect((await client.head(done)).status).to.equal(200);
    await server.tusgate.store.sweepExpired(Date.now() + server.config.UPLOAD_EXPIRY_SECONDS * 1000 + 1000);
    expect((await client.head(done)).status).to.equal(404);
    expect((await client.head(pending)).status).to.equal(404);
    expect((await request(res.headers.location!)).body.equals(PNG)).to.equal(true);
  });

  describe('quotas', () => {
    let small: TestServer;
    before(async () => {
      small = await startServer({ MAX_ACTIVE_UPLOADS_PER_USER: 2, UPLOADS_PER_HOUR_PER_USER: 4 });
    });
    after(() => small.close());

    it('counts incomplete partial uploads as active and every creation against the hourly rate', async () => {
      const carol = tus(small.url, await small.token('carol'));
      const first = await carol.create(PNG.length, {}, { 'Upload-Concat': 'partial' });
      const second = await carol.create(4, {}, { 'Upload-Concat': 'partial' });
      expect([first.status, second.status]).to.deep.equal([201, 201]);
      const third = await carol.create(4, {}, { 'Upload-Concat': 'partial' });
      expect(third.status).to.equal(429);
      expect(third.headers['retry-after']).to.be.a('string');
      await carol.patch(first.headers.location!, 0, PNG);
      await carol.patch(second.headers.location!, 0, Buffer.from('tail'));
      const joined = await finalAt(small.url, await small.token('carol'), [first.headers.location!, second.headers.location!]);
      expect(joined.status, joined.text).to.equal(201);
      expect(await small.tusgate.quota.activeCount('carol')).to.equal(0);
      // Two partials and the final took three of the hour's four creations (a refused one takes none).
      expect((await carol.create(4, {}, { 'Upload-Concat': 'partial' })).status).to.equal(201);
      const fifth = await carol.create(4, {}, { 'Upload-Concat': 'partial' });
      expect(fifth.status).to.equal(429);
    });
  });

  describe('expiry of parts', () => {
    let short: TestServer;
    before(async () => {
      short = await startServer({ UPLOAD_EXPIRY_SECONDS: 1, SWEEP_INTERVAL_SECONDS: 3600 });
    });
    after(() => short.close());

    it('refuses a final upload of a part past its expiry (410), before the sweep has removed it', async () => {
      const dave = tus(short.url, await short.token('dave'));
      const location = (await dave.create(PNG.length, {}, { 'Upload-Concat': 'partial' })).headers.location!;
      const sent = Date.now();
      const finished = await dave.patch(location, 0, PNG);
      expect(finished.status).to.equal(204);
      // A finished part lives on only until its expiry (1 s after its last write), and says until when.
      // The header counts whole seconds, so it may read the very second the answer arrives in.
      expect(Date.parse(String(finished.headers['upload-expires']))).to.be.at.least(Math.floor((sent + 1000) / 1000) * 1000);
      expect((await dave.head(location)).status).to.equal(200);
      await new Promise((resolve) => setTimeout(resolve, 1200));
      const joined = await finalAt(short.url, await short.token('dave'), [location]);
      expect(joined.status, joined.text).to.equal(410);
      // The HEAD that a resuming client (tus-js-client's parallelUploads) makes first says so too:
      // it then uploads the part again instead of failing at the final.
      expect((await dave.head(location)).status).to.equal(410);
    });
  });

  describe('tus-js-client parallelUploads', () => {
    function upload(data: Buffer, options: Partial<tusClient.UploadOptions>): Promise<string> {
      return new Promise((resolve, reject) => {
        const instance = new tusClient.Upload(data, {
          endpoint: `${server.url}/files/`,
          headers: { Authorization: `Bearer ${token}` },
          retryDelays: [],
          ...options,
          onSuccess: () => resolve(instance.url!),
          onError: reject,
        });
        instance.start();
      });
    }

    for (const parallelUploads of [3, 4]) {
      it(`uploads a file in ${parallelUploads} parallel parts: byte-exact, with the right Repr-Digest`, async () => {
        const data = Buffer.concat([PNG, randomBytes(777_777)]);
        const digest = sha256(data);
        let partials = 0;
        const url = await upload(data, {
          parallelUploads,
          chunkSize: 64 * 1024,
          metadata: { filename: 'parallel.png', filetype: 'image/png', sha256: digest.toString('hex') },
          onBeforeRequest: (req) => {
            if (req.getMethod() === 'POST' && req.getHeader('Upload-Concat') === 'partial') partials++;
          },
        });
        expect(partials).to.equal(parallelUploads);
        const head = await client.head(url);
        expect(String(head.headers['upload-concat'])).to.match(/^final;/);
        expect(String(head.headers['upload-concat']).split(' ')).to.have.length(parallelUploads);
        const served = await request(url);
        expect(served.status).to.equal(200);
        expect(served.body.equals(data)).to.equal(true);
        expect(served.headers['repr-digest']).to.equal(`sha-256=:${digest.toString('base64')}:`);
      });
    }

    it('surfaces a wrong declared sha256 of a parallel upload as a 460 error', async () => {
      const data = Buffer.concat([PNG, randomBytes(100_000)]);
      const error = (await upload(data, {
        parallelUploads: 3,
        metadata: { filetype: 'image/png', sha256: sha256(Buffer.from('other')).toString('hex') },
      }).then(
        () => expect.fail('upload should fail'),
        (e: unknown) => e,
      )) as { originalResponse?: { getStatus(): number } };
      expect(error.originalResponse?.getStatus()).to.equal(460);
    });
  });
});

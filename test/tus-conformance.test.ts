import { expect } from 'chai';
import { metadata, request, tus, type RawResponse } from './helpers/http.js';
import { startServer, type TestServer } from './helpers/server.js';
import { PNG, TEXT } from './samples.js';

/**
 * tus 1.0.0 by the book (https://tus.io/protocols/resumable-upload): every MUST and SHOULD of the
 * core protocol and of the extensions tusgate advertises, each test named by its section. The
 * Checksum and Concatenation sections are walked in tus-checksum.test.ts and tus-concat.test.ts.
 */
describe('tus 1.0.0 conformance', () => {
  let server: TestServer;
  let token: string;
  let client: ReturnType<typeof tus>;
  const IMF_FIXDATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

  before(async () => {
    server = await startServer({ MAX_FILE_SIZE: 1_000_000, MAX_ACTIVE_UPLOADS_PER_USER: 100, UPLOADS_PER_HOUR_PER_USER: 1000 });
    token = await server.token('alice');
    client = tus(server.url, token);
  });
  after(() => server.close());

  const created = async (length: number | 'defer' = TEXT.length) => {
    const res = await client.create(length);
    expect(res.status, res.text).to.equal(201);
    return res.headers.location!;
  };
  const options = () => request(`${server.url}/files/`, { method: 'OPTIONS' });

  describe('Core Protocol › Headers', () => {
    it('Upload-Offset and Upload-Length: non-negative integers in responses; other values in requests are 400', async () => {
      const location = await created();
      const head = await client.head(location);
      expect(head.headers['upload-offset']).to.match(/^\d+$/);
      expect(head.headers['upload-length']).to.match(/^\d+$/);
      for (const offset of ['-1', '1.5', 'x', '']) expect((await client.patch(location, offset as unknown as number, 'a')).status, offset).to.equal(400);
      for (const length of ['-1', '1e3', 'ten']) expect((await client.create(length as unknown as number)).status, length).to.equal(400);
    });

    it('Tus-Version: the OPTIONS response lists the supported versions', async () => {
      expect((await options()).headers['tus-version']).to.equal('1.0.0');
    });

    it('Tus-Resumable: every response but OPTIONS carries it, errors included', async () => {
      const location = await created();
      const responses: [string, RawResponse][] = [
        ['POST 201', await client.create(TEXT.length)],
        ['HEAD 200', await client.head(location)],
        ['PATCH 204', await client.patch(location, 0, TEXT.subarray(0, 5))],
        ['PATCH 409', await client.patch(location, 0, TEXT.subarray(0, 5))],
        ['PATCH 415', await client.patch(location, 5, 'x', { 'Content-Type': 'text/plain' })],
        ['HEAD 404', await client.head(`${server.url}/files/0123456789abcdef0123456789abcdef`)],
        ['POST 413', await client.create(2_000_000)],
        ['POST 415', await client.create(10, { filetype: 'application/x-msdownload' })],
        ['POST 401', await request(`${server.url}/files/`, { method: 'POST', headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': 5 } })],
        ['DELETE 204', await client.delete(location)],
      ];
      for (const [what, res] of responses) expect(res.headers['tus-resumable'], what).to.equal('1.0.0');
    });

    it('Tus-Resumable: an unsupported version is 412 with Tus-Version, and the request is not processed', async () => {
      const location = await created();
      const res = await request(location, {
        method: 'PATCH',
        headers: { 'Tus-Resumable': '0.2.2', Authorization: `Bearer ${token}`, 'Upload-Offset': 0, 'Content-Type': 'application/offset+octet-stream' },
        body: TEXT,
      });
      expect(res.status).to.equal(412);
      expect(res.headers['tus-version']).to.equal('1.0.0');
      expect((await client.head(location)).headers['upload-offset']).to.equal('0');
    });

    it('Tus-Extension: a comma-separated list of what the server supports, each of which works (walked below)', async () => {
      const extensions = String((await options()).headers['tus-extension']).split(',');
      expect(extensions).to.have.members([
        'creation',
        'creation-with-upload',
        'creation-defer-length',
        'termination',
        'expiration',
        'checksum',
        'concatenation',
      ]);
    });

    it('Tus-Max-Size: a non-negative integer, set since there is a hard limit', async () => {
      expect((await options()).headers['tus-max-size']).to.equal('1000000');
    });

    it('X-HTTP-Method-Override: is taken as the method (PATCH and DELETE sent as POST)', async () => {
      const location = await created();
      const common = { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}` };
      const patched = await request(location, {
        method: 'POST',
        headers: { ...common, 'X-HTTP-Method-Override': 'PATCH', 'Upload-Offset': 0, 'Content-Type': 'application/offset+octet-stream' },
        body: TEXT.subarray(0, 7),
      });
      expect(patched.status).to.equal(204);
      expect(patched.headers['upload-offset']).to.equal('7');
      const deleted = await request(location, { method: 'POST', headers: { ...common, 'X-HTTP-Method-Override': 'DELETE' } });
      expect(deleted.status).to.equal(204);
      expect((await client.head(location)).status).to.equal(404);
    });
  });

  describe('Core Protocol › Requests › HEAD', () => {
    it('always includes Upload-Offset (0 at first, and once complete), Upload-Length when known, 200 or 204, Cache-Control: no-store', async () => {
      const location = await created();
      const first = await client.head(location);
      expect([200, 204]).to.include(first.status);
      expect(first.headers['upload-offset']).to.equal('0');
      expect(first.headers['upload-length']).to.equal(String(TEXT.length));
      expect(first.headers['cache-control']).to.equal('no-store');
      await client.patch(location, 0, TEXT);
      const done = await client.head(location);
      expect(done.headers['upload-offset']).to.equal(String(TEXT.length));
      expect(done.headers['cache-control']).to.equal('no-store');
    });

    it('answers an unknown resource with 404, 410 or 403 and no Upload-Offset', async () => {
      const res = await client.head(`${server.url}/files/0123456789abcdef0123456789abcdef`);
      expect([403, 404, 410]).to.include(res.status);
      expect(res.headers['upload-offset']).to.equal(undefined);
    });
  });

  describe('Core Protocol › Requests › PATCH', () => {
    it('applies the bytes at Upload-Offset and answers 204 with the new offset: the old one plus the bytes stored', async () => {
      const location = await created();
      const res = await client.patch(location, 0, TEXT.subarray(0, 33));
      expect(res.status).to.equal(204);
      expect(res.headers['upload-offset']).to.equal('33');
      const next = await client.patch(location, 33, TEXT.subarray(33, 40));
      expect(next.headers['upload-offset']).to.equal('40');
    });

    it('answers another Content-Type than application/offset+octet-stream with 415', async () => {
      const location = await created();
      expect((await client.patch(location, 0, 'abc', { 'Content-Type': 'application/octet-stream' })).status).to.equal(415);
      expect((await client.head(location)).headers['upload-offset']).to.equal('0');
    });

    it('answers a mismatching Upload-Offset with 409 and does not modify the upload', async () => {
      const location = await created();
      await client.patch(location, 0, TEXT.subarray(0, 10));
      for (const offset of [0, 5, 11]) expect((await client.patch(location, offset, TEXT.subarray(offset, offset + 5))).status).to.equal(409);
      expect((await client.head(location)).headers['upload-offset']).to.equal('10');
      expect((await client.patch(location, 10, TEXT.subarray(10))).status).to.equal(204);
      expect((await request(location)).body.equals(TEXT)).to.equal(true);
    });

    it('answers a PATCH to a resource that does not exist with 404', async () => {
      expect((await client.patch(`${server.url}/files/0123456789abcdef0123456789abcdef`, 0, 'abc')).status).to.equal(404);
    });
  });

  describe('Core Protocol › Requests › OPTIONS', () => {
    it('answers 204 or 200 with Tus-Version (and Tus-Extension, Tus-Max-Size), ignoring a Tus-Resumable in the request', async () => {
      const res = await request(`${server.url}/files/`, { method: 'OPTIONS', headers: { 'Tus-Resumable': '0.0.1' } });
      expect([200, 204]).to.include(res.status);
      expect(res.headers['tus-version']).to.equal('1.0.0');
      expect(res.headers['tus-extension']).to.be.a('string');
      expect(res.headers['tus-max-size']).to.equal('1000000');
    });
  });

  describe('Protocol Extensions › Creation', () => {
    it('POST: 201 Created with a Location; the new upload has offset 0', async () => {
      const res = await client.create(TEXT.length);
      expect(res.status).to.equal(201);
      const location = new URL(res.headers.location!, server.url).toString();
      expect((await client.head(location)).headers['upload-offset']).to.equal('0');
    });

    it('POST: needs Upload-Length or Upload-Defer-Length (400 without); Upload-Defer-Length other than 1 is 400', async () => {
      const common = { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}`, 'Upload-Metadata': metadata({ filetype: 'text/plain' }) };
      expect((await request(`${server.url}/files/`, { method: 'POST', headers: common })).status).to.equal(400);
      expect((await request(`${server.url}/files/`, { method: 'POST', headers: { ...common, 'Upload-Defer-Length': '2' } })).status).to.equal(400);
    });

    it('Upload-Defer-Length: HEAD says Upload-Defer-Length: 1 until a PATCH sets Upload-Length, which then cannot change', async () => {
      const location = await created('defer');
      const head = await client.head(location);
      expect(head.headers['upload-defer-length']).to.equal('1');
      expect(head.headers['upload-length']).to.equal(undefined);
      const first = await client.patch(location, 0, TEXT.subarray(0, 10), { 'Upload-Length': TEXT.length });
      expect(first.status).to.equal(204);
      const after = await client.head(location);
      expect(after.headers['upload-defer-length']).to.equal(undefined);
      expect(after.headers['upload-length']).to.equal(String(TEXT.length));
      expect((await client.patch(location, 10, TEXT.subarray(10, 20), { 'Upload-Length': TEXT.length + 5 })).status).to.equal(400);
      expect((await client.head(location)).headers['upload-length']).to.equal(String(TEXT.length));
    });

    it('Upload-Length: 0 is an empty file, complete at once without a PATCH', async () => {
      const location = await created(0);
      const head = await client.head(location);
      expect(head.headers['upload-offset']).to.equal('0');
      expect(head.headers['upload-length']).to.equal('0');
      const served = await request(location);
      expect(served.status).to.equal(200);
      expect(served.body.length).to.equal(0);
    });

    it('Upload-Metadata: HEAD responses include it as the client sent it', async () => {
      const sent = metadata({ filetype: 'text/plain', filename: 'notes.txt', note: 'ünïcode ✓' });
      const res = await request(`${server.url}/files/`, {
        method: 'POST',
        headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}`, 'Upload-Length': TEXT.length, 'Upload-Metadata': `${sent},flag` },
      });
      expect(res.status).to.equal(201);
      expect((await client.head(res.headers.location!)).headers['upload-metadata']).to.equal(`${sent},flag`);
    });

    it('answers an Upload-Length over Tus-Max-Size with 413', async () => {
      expect((await client.create(1_000_001)).status).to.equal(413);
    });
  });

  describe('Protocol Extensions › Creation With Upload', () => {
    it('accepts a body with Content-Type: application/offset+octet-stream and answers the new Upload-Offset', async () => {
      const res = await request(`${server.url}/files/`, {
        method: 'POST',
        headers: {
          'Tus-Resumable': '1.0.0',
          Authorization: `Bearer ${token}`,
          'Upload-Length': PNG.length,
          'Upload-Metadata': metadata({ filetype: 'image/png' }),
          'Content-Type': 'application/offset+octet-stream',
        },
        body: PNG.subarray(0, 40),
      });
      expect(res.status).to.equal(201);
      expect(res.headers['upload-offset']).to.equal('40');
      expect((await client.head(res.headers.location!)).headers['upload-offset']).to.equal('40');
    });
  });

  describe('Protocol Extensions › Expiration', () => {
    it('Upload-Expires: in the POST response and in every PATCH response while the upload is incomplete, as an RFC 9110 date', async () => {
      const res = await client.create(TEXT.length);
      expect(String(res.headers['upload-expires'])).to.match(IMF_FIXDATE);
      const patched = await client.patch(res.headers.location!, 0, TEXT.subarray(0, 10));
      expect(String(patched.headers['upload-expires'])).to.match(IMF_FIXDATE);
      expect(Date.parse(String(patched.headers['upload-expires']))).to.be.greaterThan(Date.now());
    });

    it('answers a request to an expired upload with 404 or 410', async () => {
      const short = await startServer({ UPLOAD_EXPIRY_SECONDS: 1 });
      try {
        const c = tus(short.url, await short.token('alice'));
        const location = (await c.create(TEXT.length)).headers.location!;
        await new Promise((resolve) => setTimeout(resolve, 1300));
        expect([404, 410]).to.include((await c.head(location)).status);
        expect([404, 410]).to.include((await c.patch(location, 0, TEXT)).status);
      } finally {
        await short.close();
      }
    });
  });

  describe('Protocol Extensions › Checksum (names)', () => {
    it('Tus-Checksum-Algorithm: names of ASCII characters without upper case, sha1 among them', async () => {
      const names = String((await options()).headers['tus-checksum-algorithm']).split(',');
      expect(names).to.include('sha1');
      for (const name of names) expect(name).to.match(/^[\x21-\x40\x5b-\x7e]+$/);
    });
  });

  describe('Protocol Extensions › Termination', () => {
    it('DELETE: 204 No Content, for unfinished and completed uploads; afterwards 404 or 410', async () => {
      const unfinished = await created();
      await client.patch(unfinished, 0, TEXT.subarray(0, 10));
      const finished = await created();
      await client.patch(finished, 0, TEXT);
      for (const location of [unfinished, finished]) {
        expect((await client.delete(location)).status).to.equal(204);
        expect([404, 410]).to.include((await client.head(location)).status);
        expect([404, 410]).to.include((await client.patch(location, 0, 'x')).status);
        expect([404, 410]).to.include((await client.delete(location)).status);
      }
      expect((await request(finished)).status).to.equal(404);
    });
  });
});

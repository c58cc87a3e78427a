import { createHash } from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';
import { expect } from 'chai';
import { openPatch, request, tus, metadata } from './helpers/http.js';
import { startServer, type TestServer } from './helpers/server.js';
import { flacHeader, JPEG, MP4, PNG, TEXT } from './samples.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest();

/** Runs `test` against a server of its own, configured by `config`, with a tus client of `user`. */
async function withOwnServer(config: Parameters<typeof startServer>[0], user: string, test: (client: ReturnType<typeof tus>, own: TestServer) => Promise<void>): Promise<void> {
  const own = await startServer(config);
  try {
    await test(tus(own.url, await own.token(user)), own);
  } finally {
    await own.close();
  }
}

describe('tus endpoint /files/', () => {
  let server: TestServer;
  let client: ReturnType<typeof tus>;
  before(async () => {
    server = await startServer({ MAX_FILE_SIZE: 1_000_000, MAX_ACTIVE_UPLOADS_PER_USER: 50, UPLOADS_PER_HOUR_PER_USER: 1000 });
    client = tus(server.url, await server.token('alice'));
  });
  after(() => server.close());

  /** A creation-with-upload POST of `body` (`length` may differ from it) as `user`, typed `filetype`. */
  async function createWithBody(user: string, length: number, filetype: string, body: Buffer) {
    return request(`${server.url}/files/`, {
      method: 'POST',
      headers: {
        'Tus-Resumable': '1.0.0',
        Authorization: `Bearer ${await server.token(user)}`,
        'Upload-Length': length,
        'Upload-Metadata': metadata({ filetype }),
        'Content-Type': 'application/offset+octet-stream',
      },
      body,
    });
  }

  async function createAndUpload(data: Buffer, meta: Record<string, string>) {
    const created = await client.create(data.length, meta);
    expect(created.status, created.text).to.equal(201);
    const location = created.headers.location!;
    return { location, patched: await client.patch(location, 0, data) };
  }

  describe('core protocol and extensions', () => {
    it('advertises versions, extensions and max size on OPTIONS without a token', async () => {
      const res = await request(`${server.url}/files/`, { method: 'OPTIONS' });
      expect(res.status).to.equal(204);
      expect(res.headers['tus-version']).to.equal('1.0.0');
      const extensions = String(res.headers['tus-extension']).split(',');
      expect(extensions).to.include.members(['creation', 'creation-with-upload', 'creation-defer-length', 'termination', 'expiration']);
      expect(res.headers['tus-max-size']).to.equal('1000000');
    });

    it('uploads in several PATCHes, reports offsets on HEAD and sets Upload-Expires', async () => {
      const created = await client.create(TEXT.length);
      expect(created.status).to.equal(201);
      expect(created.headers['upload-expires']).to.be.a('string');
      const location = created.headers.location!;
      const first = await client.patch(location, 0, TEXT.subarray(0, 50));
      expect(first.status).to.equal(204);
      expect(first.headers['upload-offset']).to.equal('50');
      expect(Date.parse(String(first.headers['upload-expires']))).to.be.greaterThan(Date.now());
      const head = await client.head(location);
      expect(head.status).to.equal(200);
      expect(head.headers['upload-offset']).to.equal('50');
      expect(head.headers['upload-length']).to.equal(String(TEXT.length));
      expect(head.headers['cache-control']).to.equal('no-store');
      const wrongOffset = await client.patch(location, 10, TEXT.subarray(10));
      expect(wrongOffset.status).to.equal(409);
      const last = await client.patch(location, 50, TEXT.subarray(50));
      expect(last.status).to.equal(204);
      expect(last.headers['repr-digest']).to.equal(`sha-256=:${sha256(TEXT).toString('base64')}:`);
      const done = await client.head(location);
      expect(done.headers['upload-offset']).to.equal(String(TEXT.length));
      expect(done.headers['repr-digest']).to.equal(`sha-256=:${sha256(TEXT).toString('base64')}:`);
      const file = await request(location);
      expect(file.body.equals(TEXT)).to.equal(true);
    });

    it('creates with upload (creation-with-upload)', async () => {
      const res = await client.create(PNG.length, { filetype: 'image/png' }, {});
      const location = res.headers.location!;
      expect((await client.head(location)).headers['upload-offset']).to.equal('0');
      const withBody = await createWithBody('alice', PNG.length, 'image/png', PNG);
      expect(withBody.status).to.equal(201);
      expect(withBody.headers['upload-offset']).to.equal(String(PNG.length));
      // Finished in its creation request: nothing left to expire.
      expect(withBody.headers['upload-expires']).to.equal(undefined);
      expect(withBody.headers['repr-digest']).to.be.a('string');
      const file = await request(withBody.headers.location!);
      expect(file.status).to.equal(200);
      expect(file.body.equals(PNG)).to.equal(true);
    });

    it('leaves nothing behind when a creation\'s body is longer than its Upload-Length (413, no Location)', async () => {
      const active = await server.tusgate.quota.activeCount('carol');
      const res = await createWithBody('carol', PNG.length - 10, 'image/png', PNG);
      expect(res.status).to.equal(413);
      expect(res.headers.location).to.equal(undefined);
      // Nobody could resume it: neither its record, nor its bytes, nor its owner's slot is kept.
      expect(await server.tusgate.quota.activeCount('carol')).to.equal(active);
      const records = await server.tusgate.store.records.all();
      expect(records.filter((record) => record.owner === 'carol' && record.state === 'uploading')).to.deep.equal([]);
    });

    it('accepts a deferred length declared with the last PATCH (creation-defer-length)', async () => {
      const created = await client.create('defer', { filetype: 'image/jpeg' });
      expect(created.status).to.equal(201);
      const location = created.headers.location!;
      const head = await client.head(location);
      expect(head.headers['upload-defer-length']).to.equal('1');
      expect(head.headers['upload-length']).to.equal(undefined);
      expect((await client.patch(location, 0, JPEG.subarray(0, 20))).status).to.equal(204);
      const last = await client.patch(location, 20, JPEG.subarray(20), { 'Upload-Length': JPEG.length });
      expect(last.status).to.equal(204);
      expect((await request(location)).body.equals(JPEG)).to.equal(true);
    });

    it('resumes a deferred-length upload whose declaring PATCH broke off, the length sent again', async () => {
      const created = await client.create('defer', { filetype: 'text/plain' });
      const location = created.headers.location!;
      // The PATCH that declares the length is cut off after 60 bytes.
      const cut = openPatch(location, await server.token('alice'), 0, TEXT.length, { 'Upload-Length': String(TEXT.length) });
      cut.on('error', () => undefined);
      cut.write(TEXT.subarray(0, 60));
      let head = await client.head(location);
      for (let tries = 0; head.headers['upload-offset'] !== '60' && tries < 50; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        head = await client.head(location);
      }
      cut.destroy();
      await new Promise((resolve) => setTimeout(resolve, 50));
      head = await client.head(location);
      expect(head.headers['upload-length']).to.equal(String(TEXT.length));
      const offset = Number(head.headers['upload-offset']);
      // tus-js-client sends the length with every PATCH of a deferred upload: the same value is no change.
      const other = await client.patch(location, offset, TEXT.subarray(offset), { 'Upload-Length': TEXT.length + 1 });
      expect(other.status).to.equal(400);
      expect(other.text).to.match(/Upload-Length is already 210/);
      const resumed = await client.patch(location, offset, TEXT.subarray(offset), { 'Upload-Length': TEXT.length });
      expect(resumed.status, resumed.text).to.equal(204);
      expect((await request(location)).body.equals(TEXT)).to.equal(true);
    });

    it('refuses a deferred-length PATCH whose Content-Length passes MAX_FILE_SIZE, keeping the upload', async () => {
      const created = await client.create('defer', { filetype: 'text/plain' });
      const location = created.headers.location!;
      const res = await client.patch(location, 0, Buffer.alloc(1_000_001, 'a'));
      expect(res.status).to.equal(413);
      // In tusgate's words, as its other 413s, not @tus/server's "upload's size exceeded".
      expect(res.text).to.equal("Request Entity Too Large: the body passes the upload's length or the maximum of 1000000 bytes\n");
      const head = await client.head(location);
      expect(head.status).to.equal(200);
      expect(head.headers['upload-offset']).to.equal('0');
    });

    it('cuts a streamed deferred-length upload off at MAX_FILE_SIZE with 413 and removes it', async () => {
      const created = await client.create('defer', { filetype: 'text/plain' });
      const location = created.headers.location!;
      // No Content-Length (chunked): the limit can only be found mid-stream.
      const body = Readable.from((function* () {
        for (let i = 0; i < 20; i++) yield Buffer.alloc(65_536, 'a');
      })());
      const res = await client.patch(location, 0, body);
      expect(res.status).to.equal(413);
      const head = await client.head(location);
      expect(head.status).to.equal(404);
    });

    it('terminates an upload (termination)', async () => {
      const created = await client.create(TEXT.length);
      const location = created.headers.location!;
      await client.patch(location, 0, TEXT.subarray(0, 10));
      expect((await client.delete(location)).status).to.equal(204);
      expect((await client.head(location)).status).to.equal(404);
      expect((await client.patch(location, 10, TEXT.subarray(10))).status).to.equal(404);
    });

    it('honours X-HTTP-Method-Override', async () => {
      const created = await client.create(TEXT.length);
      const location = created.headers.location!;
      const res = await request(location, {
        method: 'POST',
        headers: {
          'Tus-Resumable': '1.0.0',
          Authorization: `Bearer ${await server.token('alice')}`,
          'X-HTTP-Method-Override': 'PATCH',
          'Upload-Offset': 0,
          'Content-Type': 'application/offset+octet-stream',
        },
        body: TEXT,
      });
      expect(res.status).to.equal(204);
      expect(res.headers['upload-offset']).to.equal(String(TEXT.length));
    });

    it('answers a POST taken as a HEAD with a body-less answer the client can read to its end', async () => {
      const token = await server.token('alice');
      const asHead = (url: string) => request(url, { method: 'POST', headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}`, 'X-HTTP-Method-Override': 'HEAD' } });
      // Answers with an error status used to keep a Content-Length for a body never sent: the client hung.
      const unknown = await asHead(`${server.url}/files/0123456789abcdef0123456789abcdef`);
      expect(unknown.status).to.equal(404);
      expect(unknown.headers['content-length']).to.equal(undefined);
      const created = await client.create(TEXT.length);
      const head = await asHead(created.headers.location!);
      expect(head.status).to.equal(200);
      expect(head.headers['upload-offset']).to.equal('0');
    });

    it('announces Upload-Expires on the HEAD of an incomplete upload, which a resuming client reads', async () => {
      const created = await client.create(TEXT.length);
      const location = created.headers.location!;
      await client.patch(location, 0, TEXT.subarray(0, 10));
      const head = await client.head(location);
      expect(head.status).to.equal(200);
      const expires = Date.parse(String(head.headers['upload-expires']));
      expect(expires).to.be.greaterThan(Date.now());
      await client.patch(location, 10, TEXT.subarray(10));
      expect((await client.head(location)).headers['upload-expires']).to.equal(undefined);
    });

    it('gives every answer its reason phrase in the status line', async () => {
      const created = await client.create(TEXT.length);
      expect([created.status, created.statusMessage]).to.deep.equal([201, 'Created']);
      const location = created.headers.location!;
      const head = await client.head(location);
      expect([head.status, head.statusMessage]).to.deep.equal([200, 'OK']);
      const conflict = await client.patch(location, 10, TEXT.subarray(10));
      expect([conflict.status, conflict.statusMessage]).to.deep.equal([409, 'Conflict']);
      const { patched: refused } = await createAndUpload(PNG, { filetype: 'text/plain' });
      expect([refused.status, refused.statusMessage]).to.deep.equal([415, 'Unsupported Media Type']);
      const options = await request(`${server.url}/files/`, { method: 'OPTIONS' });
      expect([options.status, options.statusMessage]).to.deep.equal([204, 'No Content']);
    });

    it('takes an upload URL with a query string as the upload it names', async () => {
      const created = await client.create(TEXT.length);
      const location = `${created.headers.location!}?client=1`;
      expect((await client.patch(location, 0, TEXT)).status).to.equal(204);
      const head = await client.head(location);
      expect(head.status).to.equal(200);
      expect(head.headers['upload-offset']).to.equal(String(TEXT.length));
    });
  });

  describe('protocol errors are 4xx with a plain message, and change nothing', () => {
    let location: string;
    beforeEach(async () => {
      location = (await client.create(TEXT.length)).headers.location!;
      await client.patch(location, 0, TEXT.subarray(0, 10));
    });
    afterEach(async () => {
      const head = await client.head(location);
      expect(head.headers['upload-offset']).to.equal('10');
    });

    it('answers 412 with Tus-Version for a missing or unknown Tus-Resumable', async () => {
      const token = await server.token('alice');
      for (const version of [undefined, '0.2.2', '2.0.0']) {
        const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
        if (version) headers['Tus-Resumable'] = version;
        const res = await request(location, { method: 'HEAD', headers: { ...headers, 'Tus-Resumable': version ?? '' } });
        if (version) {
          expect(res.status, version).to.equal(412);
          expect(res.headers['tus-version']).to.equal('1.0.0');
        }
        const patch = await request(location, {
          method: 'PATCH',
          headers: { ...headers, 'Upload-Offset': '10', 'Content-Type': 'application/offset+octet-stream' },
          body: 'xxxxx',
        });
        expect(patch.status, String(version)).to.equal(412);
        expect(patch.headers['tus-version']).to.equal('1.0.0');
      }
    });

    it('answers 415 to a PATCH with the wrong Content-Type', async () => {
      for (const type of ['application/octet-stream', 'text/plain', '']) {
        const res = await client.patch(location, 10, 'xxxxx', { 'Content-Type': type });
        expect(res.status, type).to.equal(415);
      }
    });

    it('announces no expiry for a creation whose whole file is refused at once (415)', async () => {
      const res = await createWithBody('alice', TEXT.length, 'image/png', TEXT);
      expect(res.status).to.equal(415);
      expect(res.headers['upload-expires']).to.equal(undefined);
    });

    it('leaves nothing behind when a creation\'s client goes away in the middle of its body', async () => {
      const token = await server.token('dora');
      const body = Buffer.concat([PNG, Buffer.alloc(200_000)]);
      const req = http.request(`${server.url}/files/`, {
        method: 'POST',
        agent: false,
        headers: {
          'Tus-Resumable': '1.0.0',
          Authorization: `Bearer ${token}`,
          'Upload-Length': body.length,
          'Upload-Metadata': metadata({ filetype: 'image/png' }),
          'Content-Type': 'application/offset+octet-stream',
          'Content-Length': body.length,
        },
      });
      req.on('error', () => undefined);
      const uploading = async () => (await server.tusgate.store.records.all()).filter((r) => r.owner === 'dora' && r.state === 'uploading');
      req.write(body.subarray(0, 100_000));
      // The upload exists while its body streams in; then the client vanishes without an answer.
      for (let tries = 0; (await uploading()).length === 0 && tries < 100; tries++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await uploading()).to.have.length(1);
      req.destroy();
      for (let tries = 0; (await uploading()).length > 0 && tries < 100; tries++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await uploading(), 'nobody has its URL: it is gone').to.deep.equal([]);
      expect(await server.tusgate.quota.activeCount('dora')).to.equal(0);
    });

    it('takes numbers with leading zeros and the PATCH Content-Type in any case, as tus and HTTP allow', async () => {
      const created = await request(`${server.url}/files/`, {
        method: 'POST',
        headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${await server.token('alice')}`, 'Upload-Length': '0012', 'Upload-Metadata': metadata({ filetype: 'text/plain' }) },
      });
      expect(created.status, created.text).to.equal(201);
      const url = created.headers.location!;
      expect((await client.head(url)).headers['upload-length']).to.equal('12');
      const first = await client.patch(url, 0, TEXT.subarray(0, 5), { 'Upload-Offset': '00', 'Content-Type': 'Application/Offset+Octet-Stream' });
      expect(first.status, first.text).to.equal(204);
      expect(first.headers['upload-offset']).to.equal('5');
      const rest = await client.patch(url, 5, TEXT.subarray(5, 12), { 'Upload-Offset': '005', 'Content-Type': 'APPLICATION/OFFSET+OCTET-STREAM' });
      expect(rest.status, rest.text).to.equal(204);
      expect((await request(url)).body.equals(TEXT.subarray(0, 12))).to.equal(true);
    });

    it('answers 400 to malformed Upload-Offset', async () => {
      for (const offset of ['abc', '-1', '1.5', '1e3', '99999999999999999999', ' ']) {
        const res = await client.patch(location, 10, 'xxxxx', { 'Upload-Offset': offset });
        expect(res.status, offset).to.equal(400);
        expect(res.headers['content-type']).to.match(/^text\/plain/);
      }
    });

    it('answers 400 to malformed Upload-Length and Upload-Metadata at creation', async () => {
      const token = await server.token('alice');
      const base = { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}` };
      for (const length of ['abc', '-5', '1.5', '1e3', ' ']) {
        const res = await request(`${server.url}/files/`, { method: 'POST', headers: { ...base, 'Upload-Length': length, 'Upload-Metadata': metadata({ filetype: 'text/plain' }) } });
        expect(res.status, length).to.equal(400);
      }
      for (const meta of ['filetype', 'filetype !!!', 'a b,a b', 'key dGV4dA== extra', ',']) {
        const res = await request(`${server.url}/files/`, { method: 'POST', headers: { ...base, 'Upload-Length': '5', 'Upload-Metadata': meta } });
        expect(res.status, meta).to.be.oneOf([400, 415]);
      }
      const neither = await request(`${server.url}/files/`, { method: 'POST', headers: base });
      expect(neither.status).to.equal(400);
      const deferBad = await request(`${server.url}/files/`, { method: 'POST', headers: { ...base, 'Upload-Defer-Length': '2' } });
      expect(deferBad.status).to.equal(400);
    });

    it('answers 400 to a PATCH without Upload-Offset', async () => {
      const res = await request(location, {
        method: 'PATCH',
        headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${await server.token('alice')}`, 'Content-Type': 'application/offset+octet-stream' },
        body: 'xxxxx',
      });
      expect(res.status).to.equal(400);
    });

    it('answers 413 to a PATCH past the declared length', async () => {
      const res = await client.patch(location, 10, Buffer.alloc(TEXT.length, 'a'));
      expect(res.status).to.equal(413);
    });

    it('refuses a POST to an upload URL', async () => {
      const res = await request(location, {
        method: 'POST',
        headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${await server.token('alice')}`, 'Upload-Length': '5' },
      });
      expect(res.status).to.equal(405);
    });

    it('answers methods tus does not know with 405 and what is allowed', async () => {
      const headers = { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${await server.token('alice')}` };
      const put = await request(location, { method: 'PUT', headers, body: 'x' });
      expect(put.status).to.equal(405);
      expect(put.headers.allow).to.equal('HEAD, PATCH, DELETE, OPTIONS');
      const atCreation = await request(`${server.url}/files/`, { method: 'PUT', headers, body: 'x' });
      expect(atCreation.status).to.equal(405);
      expect(atCreation.headers.allow).to.equal('POST, OPTIONS');
    });
  });

  describe('creation answers', () => {
    it('give the offset of a creation without a body: 0 (tus-js-client reads it of deferred creations)', async () => {
      const created = await client.create('defer', { filetype: 'text/plain' });
      expect(created.status).to.equal(201);
      expect(created.headers['upload-offset']).to.equal('0');
      const withBody = await client.create(TEXT.length, { filetype: 'text/plain' }, { 'Content-Type': 'application/offset+octet-stream' });
      expect(withBody.headers['upload-offset']).to.equal('0');
    });
  });

  describe('auth and ownership', () => {
    it('needs a valid Bearer token for every method but OPTIONS', async () => {
      const location = (await client.create(TEXT.length)).headers.location!;
      for (const method of ['POST', 'HEAD', 'PATCH', 'DELETE', 'GET']) {
        const url = method === 'POST' ? `${server.url}/files/` : location;
        const res = await request(url, {
          method,
          headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': '5', 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream' },
        });
        if (method === 'GET') {
          expect(res.status).to.equal(404); // incomplete uploads are never served, token or not
          continue;
        }
        expect(res.status, method).to.equal(401);
        expect(String(res.headers['www-authenticate'])).to.match(/^Bearer/);
      }
    });

    it("answers another user's upload exactly like a missing one, and changes nothing", async () => {
      const location = (await client.create(TEXT.length)).headers.location!;
      await client.patch(location, 0, TEXT.subarray(0, 10));
      const mallory = tus(server.url, await server.token('mallory'));
      const missing = await mallory.head(`${server.url}/files/0123456789abcdef0123456789abcdef`);
      const head = await mallory.head(location);
      expect(head.status).to.equal(404);
      expect(missing.status).to.equal(404);
      expect(head.text).to.equal(missing.text);
      expect((await mallory.patch(location, 10, TEXT.subarray(10))).status).to.equal(404);
      expect((await mallory.delete(location)).status).to.equal(404);
      expect((await client.head(location)).headers['upload-offset']).to.equal('10');
    });

    it('takes the owner from the token, never from metadata, and never reveals it', async () => {
      const created = await client.create(TEXT.length, { filetype: 'text/plain', owner: 'mallory', user: 'mallory' });
      const location = created.headers.location!;
      const mallory = tus(server.url, await server.token('mallory'));
      expect((await mallory.head(location)).status).to.equal(404);
      const head = await client.head(location);
      expect(head.status).to.equal(200);
      expect(Buffer.from(String(head.headers['upload-metadata']).replace(/,/g, ' '), 'utf8').toString()).to.not.include('alice');
    });
  });

  describe('limits at creation', () => {
    it('answers 413 for Upload-Length over MAX_FILE_SIZE, also one with more digits than a safe integer', async () => {
      const res = await client.create(1_000_001, { filetype: 'video/mp4' });
      expect(res.status).to.equal(413);
      for (const length of ['9007199254740993', '123456789012345678901']) {
        const huge = await request(`${server.url}/files/`, {
          method: 'POST',
          headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${await server.token('alice')}`, 'Upload-Length': length, 'Upload-Metadata': metadata({ filetype: 'video/mp4' }) },
        });
        expect(huge.status, length).to.equal(413);
      }
    });

    it('answers 415 for a missing or disallowed type, and takes `type` when `filetype` is absent', async () => {
      expect((await client.create(10, {})).status).to.equal(415);
      expect((await client.create(10, { filename: 'x.exe' })).status).to.equal(415);
      expect((await client.create(10, { filetype: 'application/x-msdownload' })).status).to.equal(415);
      expect((await client.create(10, { filetype: 'text/html' })).status).to.equal(415);
      expect((await client.create(10, { type: 'video/mp4' })).status).to.equal(201);
      expect((await client.create(10, { filetype: 'video/webm; codecs=vp9' })).status).to.equal(201);
    });

    it('takes the other names browsers give an allowed format (Chromium: audio/x-m4a, video/x-msvideo)', async () => {
      await withOwnServer({ ALLOWED_MIME_TYPES: ['audio/mp4', 'video/avi', 'image/png'] }, 'bob', async (c) => {
        for (const filetype of ['audio/x-m4a', 'video/x-msvideo', 'audio/mp4', 'video/avi']) {
          expect((await c.create(10, { filetype })).status, filetype).to.equal(201);
        }
        // Only names of a listed format: MPEG audio is not MP4 audio.
        for (const filetype of ['audio/mpeg', 'audio/x-wav', 'image/jpg']) expect((await c.create(10, { filetype })).status, filetype).to.equal(415);
      });
    });

    it('supports type/* wildcards in ALLOWED_MIME_TYPES', async () => {
      await withOwnServer({ ALLOWED_MIME_TYPES: ['image/*'] }, 'bob', async (c) => {
        expect((await c.create(10, { filetype: 'image/heic' })).status).to.equal(201);
        expect((await c.create(10, { filetype: 'video/mp4' })).status).to.equal(415);
        // A wildcard allows types; declared, it names no file.
        expect((await c.create(10, { filetype: 'image/*' })).status).to.equal(415);
      });
    });

    it('completes a file declared by another name of its format under a wildcard (audio/x-flac for FLAC)', async () => {
      await withOwnServer({ ALLOWED_MIME_TYPES: ['audio/*'] }, 'bob', async (c) => {
        const flac = flacHeader();
        const created = await c.create(flac.length, { filetype: 'audio/x-flac' });
        expect(created.status).to.equal(201);
        const done = await c.patch(created.headers.location!, 0, flac);
        expect(done.status, done.text).to.equal(204);
        const info = JSON.parse((await request(`${created.headers.location}/info`)).text);
        expect(info).to.include({ verified_type: 'audio/flac' });
      });
    });

    it('answers 429 with Retry-After past MAX_ACTIVE_UPLOADS_PER_USER, and frees a slot on completion', async () => {
      await withOwnServer({ MAX_ACTIVE_UPLOADS_PER_USER: 2 }, 'carol', async (c, own) => {
        const first = await c.create(TEXT.length);
        expect((await c.create(TEXT.length)).status).to.equal(201);
        const third = await c.create(TEXT.length);
        expect(third.status).to.equal(429);
        expect(Number(third.headers['retry-after'])).to.be.greaterThan(0);
        expect((await tus(own.url, await own.token('dave')).create(TEXT.length)).status).to.equal(201);
        await c.patch(first.headers.location!, 0, TEXT);
        expect((await c.create(TEXT.length)).status).to.equal(201);
      });
    });

    it('answers 429 with Retry-After past UPLOADS_PER_HOUR_PER_USER', async () => {
      await withOwnServer({ UPLOADS_PER_HOUR_PER_USER: 3 }, 'erin', async (c) => {
        for (let i = 0; i < 3; i++) {
          const created = await c.create(TEXT.length);
          expect(created.status).to.equal(201);
          await c.delete(created.headers.location!);
        }
        const over = await c.create(TEXT.length);
        expect(over.status).to.equal(429);
        expect(Number(over.headers['retry-after'])).to.be.within(1, 3600);
      });
    });
  });

  describe('verification at completion', () => {
    it('accepts a declared sha256 in hex and in base64', async () => {
      const hex = await createAndUpload(PNG, { filetype: 'image/png', sha256: sha256(PNG).toString('hex') });
      expect(hex.patched.status).to.equal(204);
      const b64 = await createAndUpload(PNG, { filetype: 'image/png', sha256: sha256(PNG).toString('base64') });
      expect(b64.patched.status).to.equal(204);
    });

    it('answers 460 on a sha256 mismatch and removes the upload', async () => {
      const { location, patched } = await createAndUpload(PNG, { filetype: 'image/png', sha256: sha256(JPEG).toString('hex') });
      expect(patched.status).to.equal(460);
      expect((await client.head(location)).status).to.equal(404);
      expect((await request(location)).status).to.equal(404);
    });

    it('answers 400 at creation to a malformed sha256', async () => {
      expect((await client.create(PNG.length, { filetype: 'image/png', sha256: 'abc' })).status).to.equal(400);
    });

    it('answers 415 when the bytes are not the declared type, and removes the upload', async () => {
      const { location, patched } = await createAndUpload(JPEG, { filetype: 'image/png' });
      expect(patched.status).to.equal(415);
      expect((await client.head(location)).status).to.equal(404);
      const text = await createAndUpload(PNG, { filetype: 'text/plain' });
      expect(text.patched.status).to.equal(415);
    });

    it('takes UTF-8 text as text/plain even where it begins as a binary format\'s signature does', async () => {
      for (const line of ['BMI values for 2024:\n22.5\n', 'ID3 tags hold the title\n', 'MZ was the DOS header\n', 'GIF89a and GIF87a are the two\n', 'fLaC is lossless\n']) {
        const { location, patched } = await createAndUpload(Buffer.from(line.repeat(20)), { filetype: 'text/plain' });
        expect(patched.status, line).to.equal(204);
        expect((await request(location)).headers['content-type']).to.equal('text/plain; charset=utf-8');
      }
    });

    it('serves the verified type, not the declared spelling', async () => {
      const { location, patched } = await createAndUpload(MP4, { filetype: 'video/mp4' });
      expect(patched.status).to.equal(204);
      const file = await request(location);
      expect(file.headers['content-type']).to.equal('video/mp4');
    });

    it('computes the same digest after the running hash is lost (rebuilt from stored bytes)', async () => {
      const data = Buffer.concat([PNG, Buffer.alloc(5000, 9)]);
      const created = await client.create(data.length, { filetype: 'image/png', sha256: sha256(data).toString('hex') });
      const location = created.headers.location!;
      await client.patch(location, 0, data.subarray(0, 3000));
      // Simulate a restart or another process: this process forgets every running hash.
      (server.tusgate.store as unknown as { hashes: { forget(id: string): void } }).hashes.forget(location.split('/').pop()!);
      const last = await client.patch(location, 3000, data.subarray(3000));
      expect(last.status).to.equal(204);
      expect(last.headers['repr-digest']).to.equal(`sha-256=:${sha256(data).toString('base64')}:`);
    });
  });
});

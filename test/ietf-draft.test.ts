import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';
import { expect } from 'chai';
import * as tusClient from 'tus-js-client';
import { metadata, request, tus } from './helpers/http.js';
import { startServer, type TestServer } from './helpers/server.js';
import { JPEG, PNG } from './samples.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest();
const PROBLEM = 'https://iana.org/assignments/http-problem-types#';

interface Sent {
  status: number;
  statusMessage: string;
  headers: http.IncomingHttpHeaders;
  text: string;
  body: Buffer;
  /** Interim (1xx) responses received before the final one. */
  interim: { status: number; headers: http.IncomingHttpHeaders }[];
}

/** A raw request that also records interim responses (104 Upload Resumption Supported). */
function send(url: string, options: { method: string; headers?: Record<string, string | number>; body?: Buffer | Readable }): Promise<Sent> {
  return new Promise((resolve, reject) => {
    const interim: Sent['interim'] = [];
    const req = http.request(url, { method: options.method, headers: options.headers, agent: false });
    req.on('information', (info) => interim.push({ status: info.statusCode, headers: info.headers }));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, statusMessage: res.statusMessage ?? '', headers: res.headers, body, text: body.toString('utf8'), interim });
      });
    });
    req.on('error', reject);
    if (options.body instanceof Readable) options.body.pipe(req);
    else req.end(options.body);
  });
}

function problemOf(res: Sent): { type: string; title: string; status: number; detail: string; [key: string]: unknown } {
  expect(res.headers['content-type']).to.equal('application/problem+json');
  return JSON.parse(res.text);
}

/** Requests of one interop version of draft-ietf-httpbis-resumable-upload. */
function draft(server: TestServer, token: string, version: number) {
  const complete = (done: boolean): Record<string, string> =>
    version === 3 ? { 'Upload-Incomplete': done ? '?0' : '?1' } : { 'Upload-Complete': done ? '?1' : '?0' };
  const common = { Authorization: `Bearer ${token}`, 'Upload-Draft-Interop-Version': version };
  return {
    complete,
    isComplete: (res: Sent) => (version === 3 ? res.headers['upload-incomplete'] === '?0' : res.headers['upload-complete'] === '?1'),
    create(body: Buffer | undefined, done: boolean, headers: Record<string, string | number> = {}) {
      return send(`${server.url}/files/`, { method: 'POST', headers: { ...common, ...complete(done), ...headers }, body });
    },
    head(url: string, headers: Record<string, string | number> = {}) {
      return send(url, { method: 'HEAD', headers: { ...common, ...headers } });
    },
    append(url: string, offset: number, body: Buffer | Readable, done: boolean | undefined, headers: Record<string, string | number> = {}) {
      const type: Record<string, string> = version >= 6 ? { 'Content-Type': 'application/partial-upload' } : {};
      return send(url, {
        method: 'PATCH',
        headers: { ...common, ...type, 'Upload-Offset': offset, ...(done === undefined ? {} : complete(done)), ...headers },
        body,
      });
    },
    cancel(url: string, headers: Record<string, string | number> = {}) {
      return send(url, { method: 'DELETE', headers: { ...common, ...headers } });
    },
  };
}

/**
 * The IETF "Resumable Uploads for HTTP" draft on tusgate's /files/ endpoint. Sections are those of
 * draft-ietf-httpbis-resumable-upload-05 (interop version 6) unless a test names another draft.
 */
describe('IETF resumable uploads draft (Upload-Draft-Interop-Version)', () => {
  let server: TestServer;
  let token: string;
  let v6: ReturnType<typeof draft>;
  const file = Buffer.concat([PNG, randomBytes(100_000)]);
  const png = { 'Content-Type': 'image/png' };

  before(async () => {
    server = await startServer({ MAX_FILE_SIZE: 1_000_000, MAX_ACTIVE_UPLOADS_PER_USER: 50, UPLOADS_PER_HOUR_PER_USER: 1000 });
    token = await server.token('alice');
    v6 = draft(server, token, 6);
  });
  after(() => server.close());

  describe('§4 Upload Creation', () => {
    it('sends 104 Upload Resumption Supported with Location, the interop version and Upload-Limit, then 201 with the upload complete', async () => {
      const res = await v6.create(file, true, { ...png, 'Content-Disposition': 'attachment; filename="holiday photo.png"' });
      expect(res.status, res.text).to.equal(201);
      expect(res.interim).to.have.length(1);
      expect(res.interim[0]!.status).to.equal(104);
      expect(res.interim[0]!.headers.location).to.equal(res.headers.location);
      expect(res.interim[0]!.headers['upload-draft-interop-version']).to.equal('6');
      expect(res.interim[0]!.headers['upload-limit']).to.equal('min-size=0, max-size=1000000');
      expect(res.headers['upload-complete']).to.equal('?1');
      expect(res.headers['upload-offset']).to.equal(String(file.length));
      expect(res.headers['tus-resumable']).to.equal(undefined);
      expect(res.headers['repr-digest']).to.equal(`sha-256=:${sha256(file).toString('base64')}:`);
      const served = await request(res.headers.location!);
      expect(served.body.equals(file)).to.equal(true);
      expect(served.headers['content-type']).to.equal('image/png');
      expect(served.headers['content-disposition']).to.include('holiday photo.png');
    });

    it('creates an incomplete upload with part of the content (Upload-Complete: ?0), recording Upload-Length', async () => {
      const res = await v6.create(file.subarray(0, 25), false, { ...png, 'Upload-Length': file.length });
      expect(res.status, res.text).to.equal(201);
      expect(res.headers['upload-complete']).to.equal('?0');
      expect(res.headers['upload-offset']).to.equal('25');
      expect(res.headers['upload-limit']).to.match(/^min-size=0, max-size=1000000, expires=\d+$/);
      const head = await v6.head(res.headers.location!);
      expect(head.headers['upload-length']).to.equal(String(file.length));
      expect((await request(res.headers.location!)).status).to.equal(404); // incomplete: never served
    });

    it('takes the type, name and digest from tus Upload-Metadata when the client sends it', async () => {
      const res = await v6.create(file, true, { 'Upload-Metadata': metadata({ filetype: 'image/png', filename: 'a.png', sha256: sha256(file).toString('hex') }) });
      expect(res.status, res.text).to.equal(201);
      expect((await request(res.headers.location!)).headers['content-disposition']).to.include('a.png');
    });

    it('answers 400 (problem) to a creation without Upload-Complete or with Upload-Offset, and to inconsistent lengths', async () => {
      const missing = await send(`${server.url}/files/`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Upload-Draft-Interop-Version': 6, ...png }, body: file });
      expect(missing.status).to.equal(400);
      expect(problemOf(missing).status).to.equal(400);
      expect((await v6.create(file, true, { ...png, 'Upload-Offset': 0 })).status).to.equal(400);
      const inconsistent = await v6.create(file, true, { ...png, 'Upload-Length': file.length + 1 });
      expect(inconsistent.status).to.equal(400);
      expect(problemOf(inconsistent).type).to.equal(`${PROBLEM}inconsistent-upload-length`);
      expect((await v6.create(file, true, { ...png, 'Upload-Complete': 'yes' })).status).to.equal(400);
    });

    it('keeps the bytes of a creation whose connection breaks, resumable at the Location of the 104', async () => {
      const location = await new Promise<string>((resolve, reject) => {
        const req = http.request(`${server.url}/files/`, {
          method: 'POST',
          agent: false,
          headers: { Authorization: `Bearer ${token}`, 'Upload-Draft-Interop-Version': 6, 'Upload-Complete': '?1', 'Content-Length': file.length, ...png },
        });
        req.on('information', (info) => {
          const url = info.headers.location as string;
          req.write(file.subarray(0, 60_000), () => setTimeout(() => (req.destroy(), resolve(url)), 100));
        });
        req.on('error', () => undefined);
        req.on('response', () => reject(new Error('no final response expected')));
        req.flushHeaders();
      });
      let offset = 0;
      for (let i = 0; i < 50 && offset !== 60_000; i++) {
        offset = Number((await v6.head(location)).headers['upload-offset']);
        if (offset !== 60_000) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(offset).to.equal(60_000);
      const rest = await v6.append(location, offset, file.subarray(offset), true);
      expect(rest.status, rest.text).to.equal(204);
      expect((await request(location)).body.equals(file)).to.equal(true);
    });
  });

  describe('§5 Offset Retrieval', () => {
    it('answers HEAD with 204, Upload-Offset, Upload-Complete, Upload-Length, Upload-Limit and Cache-Control: no-store', async () => {
      const created = await v6.create(file.subarray(0, 1000), false, { ...png, 'Upload-Length': file.length });
      const head = await v6.head(created.headers.location!);
      expect(head.status).to.equal(204);
      expect(head.headers['upload-offset']).to.equal('1000');
      expect(head.headers['upload-complete']).to.equal('?0');
      expect(head.headers['upload-length']).to.equal(String(file.length));
      expect(head.headers['upload-limit']).to.match(/expires=\d+/);
      expect(head.headers['cache-control']).to.equal('no-store');
      await v6.append(created.headers.location!, 1000, file.subarray(1000), true);
      const done = await v6.head(created.headers.location!);
      expect(done.headers['upload-complete']).to.equal('?1');
      expect(done.headers['upload-offset']).to.equal(String(file.length));
      expect(done.headers['repr-digest']).to.equal(`sha-256=:${sha256(file).toString('base64')}:`);
    });

    it('answers 400 to a HEAD carrying Upload-Offset, Upload-Complete or Upload-Length', async () => {
      const created = await v6.create(Buffer.alloc(0), false, png);
      const forbidden: Record<string, string | number>[] = [{ 'Upload-Offset': 0 }, { 'Upload-Complete': '?0' }, { 'Upload-Length': 10 }];
      for (const header of forbidden) {
        expect((await v6.head(created.headers.location!, header)).status, JSON.stringify(header)).to.equal(400);
      }
    });

    it('ends an append still in progress, so that the offset it reports is accepted by the next append (Concurrency)', async () => {
      const created = await v6.create(Buffer.alloc(0), false, { ...png, 'Upload-Length': file.length });
      const location = created.headers.location!;
      const id = location.split('/').pop()!;
      const stalled = http.request(location, {
        method: 'PATCH',
        agent: false,
        headers: { Authorization: `Bearer ${token}`, 'Upload-Draft-Interop-Version': 6, 'Content-Type': 'application/partial-upload', 'Upload-Offset': 0, 'Upload-Complete': '?1', 'Content-Length': file.length },
      });
      stalled.on('error', () => undefined);
      const stalledAnswer = new Promise<{ status: number; text: string }>((resolve) =>
        stalled.on('response', (res) => {
          let text = '';
          res.on('data', (piece: Buffer) => (text += piece));
          res.on('end', () => resolve({ status: res.statusCode!, text }));
        }),
      );
      stalled.write(file.subarray(0, 40_000));
      for (let i = 0; i < 100 && (await server.tusgate.store.bytes.storedBytes(id)) < 40_000; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      const started = Date.now();
      const head = await v6.head(location);
      expect(Date.now() - started).to.be.lessThan(5000);
      expect(head.headers['upload-offset']).to.equal('40000');
      // The stopped append is told why, not that its lengths were inconsistent.
      const stopped = await stalledAnswer;
      expect(stopped.status).to.equal(400);
      expect(JSON.parse(stopped.text)).to.include({ detail: 'the append was stopped at offset 40000: another request for the upload arrived' });
      stalled.destroy();
      const rest = await v6.append(location, 40_000, file.subarray(40_000), true);
      expect(rest.status, rest.text).to.equal(204);
      expect((await request(location)).body.equals(file)).to.equal(true);
    });

    it('does not complete an upload of unknown length where its last append was cut short, by another request or by the client', async () => {
      for (const cut of ['another request', 'the client going away'] as const) {
        const created = await v6.create(Buffer.alloc(0), false, png);
        const location = created.headers.location!;
        const id = location.split('/').pop()!;
        // Upload-Complete: ?1 with a body of unknown length (chunked): the end of the body is the length.
        const stalled = http.request(location, {
          method: 'PATCH',
          agent: false,
          headers: { Authorization: `Bearer ${token}`, 'Upload-Draft-Interop-Version': 6, 'Content-Type': 'application/partial-upload', 'Upload-Offset': 0, 'Upload-Complete': '?1' },
        });
        stalled.on('error', () => undefined);
        stalled.on('response', (res) => res.resume());
        stalled.write(file.subarray(0, 40_000));
        for (let i = 0; i < 100 && (await server.tusgate.store.bytes.storedBytes(id)) < 40_000; i++) await new Promise((resolve) => setTimeout(resolve, 20));
        if (cut === 'the client going away') {
          stalled.destroy();
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        const head = await v6.head(location);
        expect(head.headers['upload-offset'], cut).to.equal('40000');
        expect(head.headers['upload-complete'], cut).to.equal('?0');
        stalled.destroy();
        const rest = await v6.append(location, 40_000, file.subarray(40_000), true);
        expect(rest.status, rest.text).to.equal(204);
        expect((await request(location)).body.equals(file)).to.equal(true);
      }
    });
  });

  describe('§6 Upload Append', () => {
    it('appends with application/partial-upload (204 and the new Upload-Offset) and completes with Upload-Complete: ?1', async () => {
      const created = await v6.create(Buffer.alloc(0), false, { ...png, 'Upload-Length': file.length });
      const location = created.headers.location!;
      const first = await v6.append(location, 0, file.subarray(0, 100), false);
      expect(first.status, first.text).to.equal(204);
      expect(first.headers['upload-offset']).to.equal('100');
      expect(first.headers['upload-complete']).to.equal('?0');
      const last = await v6.append(location, 100, file.subarray(100), true);
      expect(last.status, last.text).to.equal(204);
      expect(last.headers['upload-complete']).to.equal('?1');
      expect(last.headers['repr-digest']).to.equal(`sha-256=:${sha256(file).toString('base64')}:`);
      expect((await request(location)).body.equals(file)).to.equal(true);
    });

    it('answers 415 to an append without Content-Type: application/partial-upload (interop 6), changing nothing', async () => {
      const created = await v6.create(Buffer.alloc(0), false, png);
      const res = await v6.append(created.headers.location!, 0, file.subarray(0, 10), false, { 'Content-Type': 'application/offset+octet-stream' });
      expect(res.status).to.equal(415);
      // A failed append still reports the offset of the (active) upload and that it is not complete.
      expect(res.headers['upload-offset']).to.equal('0');
      expect(res.headers['upload-complete']).to.equal('?0');
      expect((await v6.head(created.headers.location!)).headers['upload-offset']).to.equal('0');
    });

    it('answers 409 (mismatching-upload-offset, with the right Upload-Offset) to a wrong offset', async () => {
      const created = await v6.create(file.subarray(0, 100), false, png);
      const res = await v6.append(created.headers.location!, 50, file.subarray(50, 150), false);
      expect(res.status).to.equal(409);
      expect(res.headers['upload-offset']).to.equal('100');
      expect(res.headers['upload-complete']).to.equal('?0');
      const problem = problemOf(res);
      expect(problem.type).to.equal(`${PROBLEM}mismatching-upload-offset`);
      expect(problem['expected-offset']).to.equal(100);
      expect(problem['provided-offset']).to.equal(50);
    });

    it('answers 400 (completed-upload) to an append to a complete upload, and acknowledges a repeated empty completion', async () => {
      const created = await v6.create(file, true, png);
      const more = await v6.append(created.headers.location!, file.length, Buffer.from('more'), true);
      expect(more.status).to.equal(400);
      expect(problemOf(more).type).to.equal(`${PROBLEM}completed-upload`);
      const again = await v6.append(created.headers.location!, file.length, Buffer.alloc(0), true);
      expect(again.status).to.equal(204);
      expect(again.headers['upload-complete']).to.equal('?1');
      expect((await request(created.headers.location!)).body.equals(file)).to.equal(true);
    });

    it('refuses bytes past the recorded length with 400 (inconsistent-upload-length) and keeps none of them', async () => {
      const created = await v6.create(Buffer.alloc(0), false, { ...png, 'Upload-Length': 1000 });
      const res = await v6.append(created.headers.location!, 0, file.subarray(0, 1001), false);
      expect(res.status).to.equal(400);
      expect(problemOf(res).type).to.equal(`${PROBLEM}inconsistent-upload-length`);
      expect((await v6.head(created.headers.location!)).headers['upload-offset']).to.equal('0');
    });

    it('learns the length of an upload created without one from Upload-Complete: ?1, with or without Content-Length', async () => {
      for (const streamed of [false, true]) {
        const created = await v6.create(file.subarray(0, 500), false, png);
        const location = created.headers.location!;
        expect((await v6.head(location)).headers['upload-length']).to.equal(undefined);
        const rest = file.subarray(500);
        const body = streamed ? Readable.from([rest.subarray(0, 30_000), rest.subarray(30_000)]) : rest;
        const last = await v6.append(location, 500, body, true);
        expect(last.status, last.text).to.equal(204);
        expect(last.headers['upload-complete']).to.equal('?1');
        const head = await v6.head(location);
        expect(head.headers['upload-length']).to.equal(String(file.length));
        expect((await request(location)).body.equals(file)).to.equal(true);
      }
    });

    it('keeps no byte of an append whose Content-Digest does not match (460; §15.2 Content Digests)', async () => {
      const created = await v6.create(Buffer.alloc(0), false, png);
      const chunk = file.subarray(0, 1000);
      const wrong = await v6.append(created.headers.location!, 0, chunk, false, { 'Content-Digest': `sha-256=:${sha256(file.subarray(1, 1001)).toString('base64')}:` });
      expect(wrong.status).to.equal(460);
      expect(wrong.statusMessage).to.equal('Checksum Mismatch');
      expect((await v6.head(created.headers.location!)).headers['upload-offset']).to.equal('0');
      const right = await v6.append(created.headers.location!, 0, chunk, false, { 'Content-Digest': `sha-256=:${sha256(chunk).toString('base64')}:` });
      expect(right.status).to.equal(204);
      expect(right.headers['upload-offset']).to.equal('1000');
    });
  });

  describe('§15.2 Content Digests', () => {
    it('refuses the content of a creation whose Content-Digest differs (460) but keeps the empty upload resumable', async () => {
      const res = await v6.create(file, true, { ...png, 'Content-Digest': `sha-256=:${sha256(JPEG).toString('base64')}:` });
      expect(res.status).to.equal(460);
      expect(res.headers['upload-complete']).to.equal('?0');
      expect(res.headers.location).to.equal(res.interim[0]!.headers.location);
      expect(res.headers['upload-offset']).to.equal('0');
      expect((await v6.head(res.headers.location!)).headers['upload-offset']).to.equal('0');
      const retry = await v6.append(res.headers.location!, 0, file, true, { 'Content-Digest': `sha-256=:${sha256(file).toString('base64')}:` });
      expect(retry.status, retry.text).to.equal(204);
      expect((await request(res.headers.location!)).body.equals(file)).to.equal(true);
    });

    it('answers 400 to a malformed Content-Digest or Upload-Checksum and creates nothing', async () => {
      const before = (await server.tusgate.store.records.all()).length;
      expect((await v6.create(file, true, { ...png, 'Content-Digest': 'sha-256=:AAAA:' })).status).to.equal(400);
      expect((await v6.create(file, true, { ...png, 'Upload-Checksum': 'crc32 AAAAAA==' })).status).to.equal(400);
      expect((await server.tusgate.store.records.all()).length).to.equal(before);
    });
  });

  describe('§7 Upload Cancellation', () => {
    it('answers DELETE with 204, after which the upload is gone (404)', async () => {
      const created = await v6.create(file.subarray(0, 10), false, png);
      const res = await v6.cancel(created.headers.location!);
      expect(res.status).to.equal(204);
      expect((await v6.head(created.headers.location!)).status).to.equal(404);
      expect((await v6.cancel(created.headers.location!)).status).to.equal(404);
    });

    it('answers 400 to a DELETE carrying Upload-Offset or Upload-Complete', async () => {
      const created = await v6.create(file.subarray(0, 10), false, png);
      expect((await v6.cancel(created.headers.location!, { 'Upload-Offset': 10 })).status).to.equal(400);
      expect((await v6.cancel(created.headers.location!, { 'Upload-Complete': '?0' })).status).to.equal(400);
      expect((await v6.head(created.headers.location!)).status).to.equal(204);
    });
  });

  describe('§8.2 Upload-Limit and OPTIONS', () => {
    it('announces Upload-Limit (at least min-size=0) on OPTIONS', async () => {
      const res = await request(`${server.url}/files/`, { method: 'OPTIONS', headers: { 'Upload-Draft-Interop-Version': '6' } });
      expect(res.headers['upload-limit']).to.equal('min-size=0, max-size=1000000');
    });
  });

  describe('interop versions', () => {
    it('7 (drafts -06 to -08): needs Upload-Complete on appends and says max-age in Upload-Limit', async () => {
      const v7 = draft(server, token, 7);
      const created = await v7.create(file.subarray(0, 100), false, png);
      expect(created.status).to.equal(201);
      expect(created.headers['upload-limit']).to.match(/max-age=\d+/);
      expect((await v7.append(created.headers.location!, 100, file.subarray(100), undefined)).status).to.equal(400);
      const done = await v7.append(created.headers.location!, 100, file.subarray(100), true);
      expect(done.status, done.text).to.equal(204);
      expect((await request(created.headers.location!)).body.equals(file)).to.equal(true);
    });

    for (const version of [4, 5]) {
      it(`${version} (draft -0${version - 2}): appends need no application/partial-upload, no Upload-Limit is sent`, async () => {
        const old = draft(server, token, version);
        const created = await old.create(file.subarray(0, 100), false, png);
        expect(created.headers['upload-limit']).to.equal(undefined);
        const done = await old.append(created.headers.location!, 100, file.subarray(100), true);
        expect(done.status, done.text).to.equal(204);
        expect(done.headers['upload-complete']).to.equal('?1');
        expect((await request(created.headers.location!)).body.equals(file)).to.equal(true);
      });
    }

    it('3 (draft -01): completeness is Upload-Incomplete, inverted', async () => {
      const v3 = draft(server, token, 3);
      const created = await v3.create(file.subarray(0, 100), false, png);
      expect(created.status, created.text).to.equal(201);
      expect(created.headers['upload-incomplete']).to.equal('?1');
      expect(created.headers['upload-complete']).to.equal(undefined);
      expect((await v3.head(created.headers.location!)).headers['upload-incomplete']).to.equal('?1');
      const done = await v3.append(created.headers.location!, 100, file.subarray(100), true);
      expect(done.headers['upload-incomplete']).to.equal('?0');
      expect(v3.isComplete(await v3.head(created.headers.location!))).to.equal(true);
    });

    it('answers 400 (problem) to an interop version it does not speak', async () => {
      const res = await draft(server, token, 99).create(file, true, png);
      expect(res.status).to.equal(400);
      expect(problemOf(res).detail).to.match(/3, 4, 5, 6, 7/);
    });
  });

  describe('the same uploads, auth, ownership, limits and verification as tus', () => {
    it('needs a valid Bearer token (401 with WWW-Authenticate)', async () => {
      const res = await send(`${server.url}/files/`, { method: 'POST', headers: { 'Upload-Draft-Interop-Version': 6, 'Upload-Complete': '?1', ...png }, body: file });
      expect(res.status).to.equal(401);
      expect(res.headers['www-authenticate']).to.match(/^Bearer/);
      // A problem document, as the draft's other errors are.
      expect(res.headers['content-type']).to.match(/^application\/problem\+json/);
      expect(JSON.parse(res.text)).to.include({ status: 401 });
    });

    it("answers another user's upload exactly like a missing one (404) and changes nothing", async () => {
      const created = await v6.create(file.subarray(0, 100), false, png);
      const bob = draft(server, await server.token('bob'), 6);
      const missing = `${server.url}/files/0123456789abcdef0123456789abcdef`;
      for (const [foreign, absent] of [
        [await bob.head(created.headers.location!), await bob.head(missing)],
        [await bob.append(created.headers.location!, 100, Buffer.from('x'), false), await bob.append(missing, 100, Buffer.from('x'), false)],
        [await bob.cancel(created.headers.location!), await bob.cancel(missing)],
      ] as const) {
        expect(foreign.status).to.equal(404);
        expect(foreign.text).to.equal(absent.text);
      }
      expect((await v6.head(created.headers.location!)).headers['upload-offset']).to.equal('100');
    });

    it('is one upload for both protocols: created by the draft, continued by tus, completed by the draft', async () => {
      const created = await v6.create(file.subarray(0, 100), false, { ...png, 'Upload-Length': file.length });
      const location = created.headers.location!;
      const tusClientRaw = tus(server.url, token);
      expect((await tusClientRaw.head(location)).headers['upload-offset']).to.equal('100');
      expect((await tusClientRaw.patch(location, 100, file.subarray(100, 5000))).status).to.equal(204);
      const done = await v6.append(location, 5000, file.subarray(5000), true);
      expect(done.status, done.text).to.equal(204);
      expect((await request(location)).body.equals(file)).to.equal(true);
    });

    it('applies the creation limits: 413 over MAX_FILE_SIZE, 415 for a missing or disallowed type', async () => {
      expect((await v6.create(undefined, false, { ...png, 'Upload-Length': 1_000_001 })).status).to.equal(413);
      expect((await v6.create(file, true)).status).to.equal(415);
      expect((await v6.create(file, true, { 'Content-Type': 'application/x-msdownload' })).status).to.equal(415);
    });

    it('answers 429 with Retry-After past the active uploads quota', async () => {
      const limited = await startServer({ MAX_ACTIVE_UPLOADS_PER_USER: 1 });
      try {
        const dave = draft(limited, await limited.token('dave'), 6);
        expect((await dave.create(file.subarray(0, 10), false, png)).status).to.equal(201);
        const refused = await dave.create(file.subarray(0, 10), false, png);
        expect(refused.status).to.equal(429);
        expect(refused.headers['retry-after']).to.be.a('string');
        expect(problemOf(refused).status).to.equal(429);
      } finally {
        await limited.close();
      }
    });

    it('verifies on completion: content not of the declared type is 415, a wrong Repr-Digest (§15.1) is 460; both remove the upload', async () => {
      const notPng = await v6.create(JPEG, true, png);
      expect(notPng.status).to.equal(415);
      const location = notPng.interim[0]!.headers.location as string;
      expect((await v6.head(location)).status).to.equal(404);
      const wrong = await v6.create(file, true, { ...png, 'Repr-Digest': `sha-256=:${sha256(JPEG).toString('base64')}:` });
      expect(wrong.status).to.equal(460);
      expect((await v6.head(wrong.interim[0]!.headers.location as string)).status).to.equal(404);
      const right = await v6.create(file, true, { ...png, 'Repr-Digest': `sha-256=:${sha256(file).toString('base64')}:` });
      expect(right.status).to.equal(201);
    });
  });

  describe('tus-js-client protocols', () => {
    for (const protocol of ['ietf-draft-03', 'ietf-draft-05'] as const) {
      it(`uploads with protocol ${protocol} in chunks, resumes after an abort, and the file is exact`, async () => {
        const data = Buffer.concat([PNG, randomBytes(400_000)]);
        const versions = new Set<string>();
        // tus-js-client 4 implements `protocol` but leaves it out of its type definitions.
        const run = (options: Partial<tusClient.UploadOptions>) => {
          let instance!: tusClient.Upload;
          const done = new Promise<string>((resolve, reject) => {
            instance = new tusClient.Upload(data, {
              endpoint: `${server.url}/files/`,
              ...({ protocol } as Partial<tusClient.UploadOptions>),
              chunkSize: 64 * 1024,
              headers: { Authorization: `Bearer ${token}` },
              metadata: { filename: 'draft.png', filetype: 'image/png', sha256: sha256(data).toString('hex') },
              retryDelays: [],
              onBeforeRequest: (req) => void versions.add(String(req.getHeader('Upload-Draft-Interop-Version'))),
              ...options,
              onSuccess: () => resolve(instance.url!),
              onError: reject,
            });
          });
          instance.start();
          return { instance, done };
        };
        let half!: () => void;
        const halfway = new Promise<void>((resolve) => (half = resolve));
        const first = run({ onChunkComplete: (_size, accepted) => accepted >= data.length / 2 && half() });
        first.done.catch(() => undefined);
        await halfway;
        await first.instance.abort();
        const url = first.instance.url!;
        const offset = Number((await draft(server, token, protocol === 'ietf-draft-03' ? 5 : 6).head(url)).headers['upload-offset']);
        expect(offset).to.be.greaterThan(0).and.lessThan(data.length);
        const resumed = run({ uploadUrl: url });
        expect(await resumed.done).to.equal(url);
        expect([...versions]).to.deep.equal([protocol === 'ietf-draft-03' ? '5' : '6']);
        const served = await request(url);
        expect(served.body.equals(data)).to.equal(true);
        expect(served.headers['repr-digest']).to.equal(`sha-256=:${sha256(data).toString('base64')}:`);
      });
    }
  });
});

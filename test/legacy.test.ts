import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { expect } from 'chai';
import { SignJWT } from 'jose';
import { request, tus } from './helpers/http.js';
import { startServer, TEST_SECRET, type TestServer } from './helpers/server.js';
import { EmptyFilenamePatch } from '../server/legacy/empty-filename.js';
import { chunksOf, legacyClient, multipart, sha256, uploadWhole, type LegacyClient } from './legacy-client.js';
import { GIF, JPEG, PNG, TEXT } from './samples.js';

// The legacy /api/v1 facade against legacy-api.md (§ numbers below) and SPEC §4, over real HTTP.

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const NAIVE_DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/;

/** A text body of `size` bytes that passes the text/plain content check. */
function textOf(size: number, seed = 'x'): Buffer {
  const line = Buffer.from(`${seed} legacy chunk data 0123456789\n`);
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i += line.length) line.copy(out, i, 0, Math.min(line.length, size - i));
  return out;
}

function reprDigestOf(data: Buffer): string {
  return `sha-256=:${Buffer.from(sha256(data), 'hex').toString('base64')}:`;
}

async function exists(file: string): Promise<boolean> {
  return fs.stat(file).then(
    () => true,
    () => false,
  );
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('legacy /api/v1 facade', () => {
  let server: TestServer;
  let alice: LegacyClient;
  let bob: LegacyClient;
  before(async () => {
    // Many tests leave sessions incomplete on purpose; the quotas have their own tests below.
    server = await startServer({ MAX_ACTIVE_UPLOADS_PER_USER: 10_000, UPLOADS_PER_HOUR_PER_USER: 10_000 });
    alice = legacyClient(server.url, await server.token('alice'));
    bob = legacyClient(server.url, await server.token('bob'));
  });
  after(() => server.close());

  /** Initiates a text/plain session for alice. */
  async function initiate(fileSize: number, chunkSize: number, extra: Record<string, unknown> = {}) {
    const res = await alice.initiate({ filename: 'notes.txt', file_size: fileSize, chunk_size: chunkSize, mime_type: 'text/plain', ...extra });
    expect(res.status, res.text).to.equal(200);
    return res.json.session_id as string;
  }

  describe('§1, §5.7 conventions and extra routes', () => {
    it('GET / answers the legacy banner', async () => {
      const res = await alice.get('/');
      expect(res.status).to.equal(200);
      expect(res.json).to.deep.equal({ message: '2Truths-1Lie API is running', version: '1.0.0' });
      // As FastAPI sent it: JSON has no charset parameter.
      expect(res.headers['content-type']).to.equal('application/json');
    });

    it('GET /health has the legacy shape with a naive timestamp', async () => {
      const res = await alice.get('/health');
      expect(res.status).to.equal(200);
      expect(res.json.status).to.equal('healthy');
      expect(res.json.timestamp).to.match(NAIVE_DATETIME);
      expect(res.json.max_file_size).to.equal(100_000_000);
    });

    it('answers unknown routes 404 "Not Found" and known paths with another method 405', async () => {
      const missing = await alice.get('/api/v1/nothing');
      expect(missing.status).to.equal(404);
      expect(missing.json).to.deep.equal({ detail: 'Not Found' });
      const wrongMethod = await request(`${server.url}/api/v1/upload/initiate`, { method: 'GET' });
      expect(wrongMethod.status).to.equal(405);
      expect(wrongMethod.headers.allow).to.equal('POST');
      expect(JSON.parse(wrongMethod.text)).to.deep.equal({ detail: 'Method Not Allowed' });
      const head = await request(`${server.url}/api/v1/upload/00000000-0000-4000-8000-000000000000/status`, { method: 'HEAD' });
      expect(head.status).to.equal(405);
      expect(head.headers.allow).to.equal('GET');
      const slash = await alice.get('/api/v1/files/a/b');
      expect(slash.status).to.equal(404);
    });

    it('answers a path with a malformed escape as one naming nothing that exists (404)', async () => {
      expect((await alice.get('/api/v1/files/abc_per%cent.txt')).json).to.deep.equal({ detail: 'File not found' });
      const status = await alice.get('/api/v1/upload/%zz/status');
      expect(status.status).to.equal(404);
      expect(status.json).to.deep.equal({ detail: 'Upload session not found' });
      const viaTus = await request(`${server.url}/files/%ZZ`, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${await server.token('alice')}` } });
      expect(viaTus.status).to.equal(404);
    });

    it('answers status polls whole: no ETag, so no 304', async () => {
      const id = await initiate(10, 10);
      const first = await alice.status(id);
      expect(first.headers.etag).to.equal(undefined);
    });

    it('takes a JSON null body as no body, as FastAPI did', async () => {
      const res = await alice.initiate(null);
      expect(res.status).to.equal(422);
      expect(res.json).to.deep.equal({ detail: [{ loc: ['body'], msg: 'field required', type: 'value_error.missing' }] });
    });

    it('refuses a CORS preflight from another origin with 400, as Starlette did', async () => {
      const res = await request(`${server.url}/api/v1/upload/initiate`, {
        method: 'OPTIONS',
        headers: { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'POST' },
      });
      expect(res.status).to.equal(400);
      expect(res.text).to.equal('Disallowed CORS origin');
      expect(res.headers['access-control-allow-origin']).to.equal(undefined);
    });

    it('answers a CORS preflight from an allowed origin', async () => {
      const res = await request(`${server.url}/api/v1/upload/initiate`, {
        method: 'OPTIONS',
        headers: { Origin: 'http://localhost:3000', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' },
      });
      expect(res.status).to.equal(200);
      expect(res.headers['access-control-allow-origin']).to.equal('http://localhost:3000');
      expect(res.headers['access-control-allow-credentials']).to.equal('true');
    });
  });

  describe('§2 auth on every /api/v1/upload route', () => {
    const routes = [
      { method: 'POST', path: () => '/api/v1/upload/initiate', body: '{"filename":"a.txt","file_size":1,"mime_type":"text/plain"}' },
      { method: 'POST', path: () => '/api/v1/upload/00000000-0000-4000-8000-000000000000/chunk/0', body: '' },
      { method: 'POST', path: () => '/api/v1/upload/00000000-0000-4000-8000-000000000000/complete', body: '{}' },
      { method: 'GET', path: () => '/api/v1/upload/00000000-0000-4000-8000-000000000000/status' },
      { method: 'DELETE', path: () => '/api/v1/upload/00000000-0000-4000-8000-000000000000' },
    ];

    for (const route of routes) {
      it(`${route.method} ${route.path().replace(/0{8}-0{4}-4000-8000-0{12}/, '{id}')}: 403 without a credential, 403 for another scheme, 401 for a bad token`, async () => {
        const call = (headers: Record<string, string>) =>
          request(`${server.url}${route.path()}`, {
            method: route.method,
            headers: { 'Content-Type': 'application/json', ...headers },
            body: route.body,
          });
        const variants: Array<Record<string, string>> = [{}, { Authorization: '' }, { Authorization: 'Bearer' }, { Authorization: 'Bearer ' }, { Authorization: 'Basic' }];
        for (const headers of variants) {
          const res = await call(headers);
          expect(res.status, JSON.stringify(headers)).to.equal(403);
          expect(JSON.parse(res.text)).to.deep.equal({ detail: 'Not authenticated' });
        }
        const basic = await call({ Authorization: 'Basic YWxpY2U6cGFzcw==' });
        expect(basic.status).to.equal(403);
        expect(JSON.parse(basic.text)).to.deep.equal({ detail: 'Invalid authentication credentials' });

        const wrongKey = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').sign(Buffer.from('another-secret-another-secret-0123'));
        const expired = await new SignJWT({})
          .setProtectedHeader({ alg: 'HS256' })
          .setSubject('alice')
          .setExpirationTime(Math.floor(Date.now() / 1000) - 3600)
          .sign(Buffer.from(TEST_SECRET));
        const noSub = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from(TEST_SECRET));
        for (const token of ['not-a-jwt', wrongKey, expired, noSub]) {
          const res = await call({ Authorization: `Bearer ${token}` });
          expect(res.status).to.equal(401);
          expect(res.headers['www-authenticate']).to.equal('Bearer');
          expect(JSON.parse(res.text)).to.deep.equal({ detail: 'Invalid authentication credentials' });
        }
      });
    }

    it('matches the scheme case-insensitively and accepts a token without exp', async () => {
      const noExp = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('carol').sign(Buffer.from(TEST_SECRET));
      const res = await request(`${server.url}/api/v1/upload/initiate`, {
        method: 'POST',
        headers: { Authorization: `bEaReR ${noExp}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ filename: 'a.txt', file_size: 10, mime_type: 'text/plain' }),
      });
      expect(res.status, res.text).to.equal(200);
    });

    it('checks auth before the body: a bad token with a bad body is 401, a good token with a bad body 422', async () => {
      const bad = legacyClient(server.url, 'garbage');
      expect((await bad.initiate({ file_size: -1 })).status).to.equal(401);
      expect((await alice.initiate({ file_size: -1 })).status).to.equal(422);
    });
  });

  describe('§5.1 POST /api/v1/upload/initiate', () => {
    it('answers the session with a UUIDv4, upload_url, chunk grid and a naive expires_at', async () => {
      const before = Date.now();
      const res = await alice.initiate({ filename: 'clip.mp4', file_size: 2_500_000, mime_type: 'video/mp4', chunk_size: 1_000_000 });
      expect(res.status).to.equal(200);
      expect(Object.keys(res.json).sort()).to.deep.equal(['chunk_size', 'expires_at', 'session_id', 'total_chunks', 'upload_url']);
      expect(res.json.session_id).to.match(UUID_V4);
      expect(res.json.upload_url).to.equal(`/api/v1/upload/${res.json.session_id}/chunk`);
      expect(res.json.chunk_size).to.equal(1_000_000);
      expect(res.json.total_chunks).to.equal(3);
      expect(res.json.expires_at).to.match(NAIVE_DATETIME);
      const expires = Date.parse(`${res.json.expires_at}Z`);
      expect(expires).to.be.within(before + 86_400_000 - 1000, Date.now() + 86_400_000 + 1000);
    });

    it('defaults chunk_size to 1048576 and ignores extra fields', async () => {
      const res = await alice.initiate({ filename: 'a.txt', file_size: 3_000_000, mime_type: 'text/plain', surprise: true });
      expect(res.status).to.equal(200);
      expect(res.json.chunk_size).to.equal(1_048_576);
      expect(res.json.total_chunks).to.equal(3);
    });

    it('coerces "10" and 10.5 to ints, and numbers to strings, as pydantic v1 did', async () => {
      const res = await alice.initiate({ filename: 12345, file_size: '10', chunk_size: 4.9, mime_type: 'text/plain' });
      expect(res.status, res.text).to.equal(200);
      expect(res.json.chunk_size).to.equal(4);
      expect(res.json.total_chunks).to.equal(3);
    });

    const invalid: Array<[string, unknown, Array<string | number>, string, string]> = [
      ['file_size 0', { filename: 'a.txt', file_size: 0, mime_type: 'text/plain' }, ['body', 'file_size'], 'ensure this value is greater than 0', 'value_error.number.not_gt'],
      ['file_size -5', { filename: 'a.txt', file_size: -5, mime_type: 'text/plain' }, ['body', 'file_size'], 'ensure this value is greater than 0', 'value_error.number.not_gt'],
      ['file_size "ten"', { filename: 'a.txt', file_size: 'ten', mime_type: 'text/plain' }, ['body', 'file_size'], 'value is not a valid integer', 'type_error.integer'],
      ['file_size missing', { filename: 'a.txt', mime_type: 'text/plain' }, ['body', 'file_size'], 'field required', 'value_error.missing'],
      ['filename missing', { file_size: 1, mime_type: 'text/plain' }, ['body', 'filename'], 'field required', 'value_error.missing'],
      ['mime_type missing', { filename: 'a.txt', file_size: 1 }, ['body', 'mime_type'], 'field required', 'value_error.missing'],
      ['filename empty', { filename: '', file_size: 1, mime_type: 'text/plain' }, ['body', 'filename'], 'ensure this value has at least 1 characters', 'value_error.any_str.min_length'],
      ['filename of 256 characters', { filename: 'é'.repeat(256), file_size: 1, mime_type: 'text/plain' }, ['body', 'filename'], 'ensure this value has at most 255 characters', 'value_error.any_str.max_length'],
      ['filename an object', { filename: {}, file_size: 1, mime_type: 'text/plain' }, ['body', 'filename'], 'str type expected', 'type_error.str'],
      ['filename null', { filename: null, file_size: 1, mime_type: 'text/plain' }, ['body', 'filename'], 'none is not an allowed value', 'type_error.none.not_allowed'],
      ['chunk_size over MAX_CHUNK_SIZE', { filename: 'a.txt', file_size: 1, chunk_size: 10_485_761, mime_type: 'text/plain' }, ['body', 'chunk_size'], 'ensure this value is less than or equal to 10485760', 'value_error.number.not_le'],
      ['chunk_size 0', { filename: 'a.txt', file_size: 1, chunk_size: 0, mime_type: 'text/plain' }, ['body', 'chunk_size'], 'ensure this value is greater than 0', 'value_error.number.not_gt'],
      ['metadata a list', { filename: 'a.txt', file_size: 1, mime_type: 'text/plain', metadata: 'x' }, ['body', 'metadata'], 'value is not a valid dict', 'type_error.dict'],
    ];
    for (const [name, body, loc, msg, type] of invalid) {
      it(`answers 422 for ${name}`, async () => {
        const res = await alice.initiate(body);
        expect(res.status).to.equal(422);
        expect(res.json.detail).to.be.an('array').with.lengthOf(1);
        expect(res.json.detail[0]).to.include({ msg, type });
        expect(res.json.detail[0].loc).to.deep.equal(loc);
      });
    }

    it('lists every invalid field in one 422', async () => {
      const res = await alice.initiate({ file_size: 0, chunk_size: 'big' });
      expect(res.status).to.equal(422);
      expect(res.json.detail.map((item: { loc: string[] }) => item.loc[1])).to.deep.equal(['filename', 'file_size', 'chunk_size', 'mime_type']);
    });

    it('answers 422 for invalid JSON, a missing body and a body that is not an object', async () => {
      const broken = await alice.initiate('{"filename": ');
      expect(broken.status).to.equal(422);
      expect(broken.json.detail[0].loc[0]).to.equal('body');
      expect(broken.json.detail[0].type).to.equal('value_error.jsondecode');
      const empty = await request(`${server.url}/api/v1/upload/initiate`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${await server.token('alice')}` },
      });
      expect(empty.status).to.equal(422);
      expect(JSON.parse(empty.text).detail).to.deep.equal([{ loc: ['body'], msg: 'field required', type: 'value_error.missing' }]);
      const list = await alice.initiate([1, 2]);
      expect(list.status).to.equal(422);
      expect(list.json.detail[0]).to.deep.include({ loc: ['body'], type: 'type_error.dict' });
    });

    it('answers 413 over MAX_FILE_SIZE, with the service message', async () => {
      const res = await alice.initiate({ filename: 'big.mp4', file_size: 100_000_001, mime_type: 'video/mp4' });
      expect(res.status).to.equal(413);
      expect(res.json).to.deep.equal({ detail: 'File size 100000001 exceeds maximum allowed size of 100000000 bytes' });
      const atLimit = await alice.initiate({ filename: 'big.mp4', file_size: 100_000_000, mime_type: 'video/mp4' });
      expect(atLimit.status).to.equal(200);
      await alice.cancel(atLimit.json.session_id);
    });

    it('answers 400 "MIME type X is not allowed": exact, case-sensitive, no parameters', async () => {
      for (const type of ['application/pdf', 'TEXT/PLAIN', 'text/plain; charset=utf-8', 'video/webm;codecs=vp9', '']) {
        const res = await alice.initiate({ filename: 'a', file_size: 10, mime_type: type });
        expect(res.status, type).to.equal(400);
        expect(res.json).to.deep.equal({ detail: `MIME type ${type} is not allowed` });
      }
      for (const type of ['video/mov', 'audio/mp3', 'image/webp', 'video/quicktime']) {
        const res = await alice.initiate({ filename: 'a', file_size: 10, mime_type: type });
        expect(res.status, type).to.equal(200);
        await alice.cancel(res.json.session_id);
      }
    });

    it('bounds the chunk count, so that a 1-byte chunk size cannot make huge chunk lists', async () => {
      const res = await alice.initiate({ filename: 'a.txt', file_size: 1_000_000, chunk_size: 1, mime_type: 'text/plain' });
      expect(res.status).to.equal(422);
      expect(res.json.detail[0]).to.deep.include({ loc: ['body', 'chunk_size'], type: 'value_error.number.not_ge' });
    });
  });

  describe('§5.2 POST /api/v1/upload/{id}/chunk/{n}', () => {
    it('accepts a chunk with its chunk_hash and reports progress unrounded', async () => {
      const data = textOf(70);
      const id = await initiate(70, 10);
      const res = await alice.chunk(id, 0, data.subarray(0, 10), { hash: true });
      expect(res.status).to.equal(200);
      expect(res.json).to.deep.equal({
        session_id: id,
        chunk_number: 0,
        status: 'uploaded',
        uploaded_chunks: [0],
        remaining_chunks: [1, 2, 3, 4, 5, 6],
        progress_percent: 14.285714285714285,
      });
      const status = await alice.status(id);
      expect(status.json.status).to.equal('in_progress');
    });

    it('accepts chunks without chunk_hash, with an empty one, with an upper-case one, and with the hash after the file', async () => {
      const data = textOf(40);
      const id = await initiate(40, 10);
      const chunks = chunksOf(data, 10);
      expect((await alice.chunk(id, 0, chunks[0]!)).json.status).to.equal('uploaded');
      expect((await alice.chunk(id, 1, chunks[1]!, { hash: '' })).json.status).to.equal('uploaded');
      expect((await alice.chunk(id, 2, chunks[2]!, { hash: sha256(chunks[2]!).toUpperCase() })).json.status).to.equal('uploaded');
      expect((await alice.chunk(id, 3, chunks[3]!, { hash: true, hashAfter: true })).json.status).to.equal('uploaded');
      const done = await alice.complete(id);
      expect(done.status).to.equal(200);
      expect((await alice.get(done.json.file_url)).body.equals(data)).to.equal(true);
    });

    it('answers 404 for an unknown session and 403 for another user\'s', async () => {
      const unknown = await alice.chunk('00000000-0000-4000-8000-000000000000', 0, Buffer.from('x'));
      expect(unknown.status).to.equal(404);
      expect(unknown.json).to.deep.equal({ detail: 'Upload session not found' });
      const notUuid = await alice.chunk('not-a-session', 0, Buffer.from('x'));
      expect(notUuid.status).to.equal(404);
      const id = await initiate(10, 10);
      const foreign = await bob.chunk(id, 0, textOf(10));
      expect(foreign.status).to.equal(403);
      expect(foreign.json).to.deep.equal({ detail: 'Access denied' });
      expect((await alice.status(id)).json.uploaded_chunks).to.deep.equal([]);
    });

    it('answers 422 for a chunk number that is not an int', async () => {
      const id = await initiate(10, 10);
      for (const n of ['abc', '1.5', '']) {
        const res = await alice.chunk(id, n, textOf(10));
        if (n === '') {
          expect(res.status).to.be.oneOf([404, 405]);
          continue;
        }
        expect(res.status, n).to.equal(422);
        expect(res.json.detail[0]).to.deep.include({ loc: ['path', 'chunk_number'], msg: 'value is not a valid integer', type: 'type_error.integer' });
      }
    });

    it('answers 422 "field required" for a missing file part, a part of another name, or a raw body', async () => {
      const id = await initiate(10, 10);
      const expected = { loc: ['body', 'file'], msg: 'field required', type: 'value_error.missing' };
      const onlyHash = await alice.chunkRaw(id, 0, [{ name: 'chunk_hash', value: sha256('x') }]);
      expect(onlyHash.status).to.equal(422);
      expect(onlyHash.json.detail).to.deep.equal([expected]);
      const otherName = await alice.chunkRaw(id, 0, [{ name: 'data', value: textOf(10), filename: 'c' }]);
      expect(otherName.status).to.equal(422);
      expect(otherName.json.detail).to.deep.equal([expected]);
      const raw = await request(`${server.url}/api/v1/upload/${id}/chunk/0`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${await server.token('alice')}`, 'Content-Type': 'application/octet-stream' },
        body: textOf(10),
      });
      expect(raw.status).to.equal(422);
      expect(JSON.parse(raw.text).detail).to.deep.equal([expected]);
      // A chunk_hash sent as a file is no string (the chunk would go unchecked): FastAPI's 422.
      const hashAsFile = await alice.chunkRaw(id, 0, [
        { name: 'file', value: textOf(10), filename: 'c' },
        { name: 'chunk_hash', value: sha256('x'), filename: 'h' },
      ]);
      expect(hashAsFile.status).to.equal(422);
      expect(hashAsFile.json.detail).to.deep.equal([{ loc: ['body', 'chunk_hash'], msg: 'str type expected', type: 'type_error.str' }]);
      expect((await alice.status(id)).json.uploaded_chunks).to.deep.equal([]);
      const spaced = await alice.chunk(id, 0, textOf(10), { hash: ` ${sha256(textOf(10))} ` });
      expect(spaced.status).to.equal(400);
      expect(spaced.json).to.deep.equal({ detail: 'Chunk hash mismatch for chunk 0' });
      // The form is read before the session: an unknown session with no file is a 422 too.
      const unknown = await alice.chunkRaw('00000000-0000-4000-8000-000000000000', 0, [{ name: 'chunk_hash', value: '' }]);
      expect(unknown.status).to.equal(422);
      expect((await alice.status(id)).json.uploaded_chunks).to.deep.equal([]);
    });

    it('answers 422 "Expected UploadFile" for a file field without a filename, whatever its type', async () => {
      const id = await initiate(10, 10);
      const expected = { loc: ['body', 'file'], msg: "Expected UploadFile, received: <class 'str'>", type: 'value_error' };
      for (const contentType of [undefined, 'application/octet-stream']) {
        const res = await alice.chunkRaw(id, 0, [{ name: 'file', value: textOf(10), contentType }]);
        expect(res.status, String(contentType)).to.equal(422);
        expect(res.json.detail).to.deep.equal([expected]);
      }
      expect((await alice.status(id)).json.uploaded_chunks).to.deep.equal([]);
    });

    it('takes a file part with an empty filename for the file, as Starlette did (OkHttp, Python requests)', async () => {
      const data = textOf(20, 'unnamed');
      const id = await initiate(20, 10);
      const first = await alice.chunkRaw(id, 0, [{ name: 'file', value: data.subarray(0, 10), filename: '' }]);
      expect(first.status, first.text).to.equal(200);
      const second = await alice.chunkRaw(id, 1, [
        { name: 'chunk_hash', value: sha256(data.subarray(10)) },
        { name: 'file', value: data.subarray(10), filename: '', contentType: 'application/octet-stream' },
      ]);
      expect(second.status, second.text).to.equal(200);
      const done = await alice.complete(id, { session_id: id, file_hash: sha256(data) });
      expect(done.status, done.text).to.equal(200);
      expect((await alice.get(done.json.file_url)).body.equals(data)).to.equal(true);
    });

    it('answers 400 for a malformed multipart body', async () => {
      const id = await initiate(10, 10);
      const res = await request(`${server.url}/api/v1/upload/${id}/chunk/0`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${await server.token('alice')}`, 'Content-Type': 'multipart/form-data; boundary=xyz' },
        body: '--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nunterminated',
      });
      expect(res.status).to.equal(400);
      expect((await alice.status(id)).json.uploaded_chunks).to.deep.equal([]);
    });

    it('answers 400 for a chunk number out of range, negative ones included', async () => {
      const id = await initiate(30, 10);
      for (const n of [3, -1, 99999999999999999999]) {
        const res = await alice.chunk(id, n === 99999999999999999999 ? '99999999999999999999' : n, textOf(10));
        expect(res.status).to.equal(400);
        expect(res.json).to.deep.equal({ detail: `Invalid chunk number ${n === 99999999999999999999 ? '99999999999999999999' : n}. Expected 0-2` });
      }
    });

    it('answers 400 "Chunk hash mismatch" and keeps nothing', async () => {
      const id = await initiate(20, 10);
      const data = textOf(20);
      const res = await alice.chunk(id, 0, data.subarray(0, 10), { hash: sha256('something else') });
      expect(res.status).to.equal(400);
      expect(res.json).to.deep.equal({ detail: 'Chunk hash mismatch for chunk 0' });
      expect((await alice.status(id)).json.uploaded_chunks).to.deep.equal([]);
      expect(await fs.readdir(path.join(server.dataDir, 'legacy/staging', id))).to.deep.equal([]);
    });

    it('answers 400 for a chunk of the wrong size, the last chunk being the rest', async () => {
      const id = await initiate(25, 10);
      const short = await alice.chunk(id, 0, textOf(9));
      expect(short.status).to.equal(400);
      expect(short.json).to.deep.equal({ detail: 'Invalid chunk size for chunk 0. Expected 10, got 9' });
      const long = await alice.chunk(id, 1, textOf(11));
      expect(long.json).to.deep.equal({ detail: 'Invalid chunk size for chunk 1. Expected 10, got 11' });
      const lastFull = await alice.chunk(id, 2, textOf(10));
      expect(lastFull.json).to.deep.equal({ detail: 'Invalid chunk size for chunk 2. Expected 5, got 10' });
      expect((await alice.chunk(id, 2, textOf(5))).status).to.equal(200);
      expect((await alice.status(id)).json.uploaded_chunks).to.deep.equal([2]);
    });

    it('checks the hash before the size, as the original did (legacy-api.md §5.2)', async () => {
      const id = await initiate(25, 10);
      for (const data of [textOf(9), textOf(11), textOf(64 * 1024)]) {
        const wrongHash = await alice.chunk(id, 0, data, { hash: sha256('something else') });
        expect(wrongHash.json).to.deep.equal({ detail: 'Chunk hash mismatch for chunk 0' });
        const rightHash = await alice.chunk(id, 0, data, { hash: sha256(data) });
        expect(rightHash.json).to.deep.equal({ detail: `Invalid chunk size for chunk 0. Expected 10, got ${data.length}` });
      }
      expect((await alice.status(id)).json.uploaded_chunks).to.deep.equal([]);
    });

    it('names the real size of a chunk far over its size, staging nothing', async () => {
      const id = await initiate(2000, 1000);
      const res = await alice.chunk(id, 0, textOf(2 * 1024 * 1024));
      expect(res.status).to.equal(400);
      expect(res.json).to.deep.equal({ detail: 'Invalid chunk size for chunk 0. Expected 1000, got 2097152' });
      expect(await fs.readdir(path.join(server.dataDir, 'legacy/staging', id))).to.deep.equal([]);
      // The connection was drained, not cut: the next request works.
      expect((await alice.chunk(id, 0, textOf(1000))).status).to.equal(200);
    });

    it('keeps neither a staged file nor an open file of a chunk whose client went away mid-body', async function () {
      if (process.platform !== 'linux') this.skip();
      const id = await initiate(2 * 1024 * 1024, 1024 * 1024);
      const token = await server.token('alice');
      const openFiles = async () => (await fs.readdir('/proc/self/fd')).length;
      const before = await openFiles();
      const form = multipart([{ name: 'file', value: textOf(1024 * 1024), filename: 'blob' }]);
      for (let i = 0; i < 5; i++) {
        const req = http.request(`${server.url}/api/v1/upload/${id}/chunk/0`, {
          method: 'POST',
          agent: false,
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': form.contentType, 'Content-Length': form.body.length },
        });
        req.on('error', () => undefined);
        req.write(form.body.subarray(0, form.body.length / 2));
        await sleep(50);
        req.destroy();
      }
      await sleep(200);
      expect(await openFiles()).to.be.at.most(before);
      expect(await fs.readdir(path.join(server.dataDir, 'legacy/staging', id))).to.deep.equal([]);
      expect((await alice.status(id)).json.uploaded_chunks).to.deep.equal([]);
    });

    it('answers already_exists for a repeated chunk before checking hash or size, and keeps the first bytes', async () => {
      const data = textOf(20, 'first');
      const id = await initiate(20, 10);
      expect((await alice.chunk(id, 1, data.subarray(10), { hash: true })).json.status).to.equal('uploaded');
      const again = await alice.chunk(id, 1, Buffer.from('different and longer'), { hash: sha256('nope') });
      expect(again.status).to.equal(200);
      expect(again.json).to.deep.equal({
        session_id: id,
        chunk_number: 1,
        status: 'already_exists',
        uploaded_chunks: [1],
        remaining_chunks: [0],
        progress_percent: 50,
      });
      expect(again.text).to.include('"progress_percent":50.0}');
      expect((await alice.chunk(id, 0, data.subarray(0, 10))).status).to.equal(200);
      const done = await alice.complete(id, { session_id: id, file_hash: sha256(data) });
      expect(done.status, done.text).to.equal(200);
    });

    it('refuses chunks for completed and cancelled sessions with 400 "not active", even repeats', async () => {
      const data = textOf(10);
      const { id } = await uploadWhole(alice, data, { filename: 'a.txt', mime_type: 'text/plain', chunk_size: 10 });
      const repeat = await alice.chunk(id, 0, data);
      expect(repeat.status).to.equal(400);
      expect(repeat.json).to.deep.equal({ detail: `Upload session ${id} is not active (status: completed)` });
      const other = await initiate(20, 10);
      await alice.cancel(other);
      const cancelled = await alice.chunk(other, 0, textOf(10));
      expect(cancelled.status).to.equal(400);
      expect(cancelled.json).to.deep.equal({ detail: `Upload session ${other} is not active (status: cancelled)` });
    });

    it('answers chunks that were streaming when the session was cancelled "not active", never "expired"', async () => {
      const chunkSize = 256 * 1024;
      const token = await server.token('alice');
      /** Sends chunk `n` in 32 KiB pieces, 10 ms apart; resolves with the status and detail. */
      const slowChunk = (id: string, n: number) =>
        new Promise<{ status: number; detail: string }>((resolve, reject) => {
          const form = multipart([{ name: 'file', value: textOf(chunkSize, String(n)), filename: 'blob', contentType: 'application/octet-stream' }]);
          const req = http.request(`${server.url}/api/v1/upload/${id}/chunk/${n}`, {
            method: 'POST',
            headers: { Authorization: `Bearer ${token}`, 'Content-Type': form.contentType, 'Content-Length': form.body.length },
          });
          req.on('response', (res) => {
            let text = '';
            res.on('data', (piece: Buffer) => (text += piece));
            res.on('end', () => resolve({ status: res.statusCode!, detail: String(JSON.parse(text).detail ?? JSON.parse(text).status) }));
          });
          req.on('error', reject);
          void (async () => {
            for (let at = 0; at < form.body.length; at += 32 * 1024) {
              req.write(form.body.subarray(at, at + 32 * 1024));
              await sleep(10);
            }
            req.end();
          })();
        });
      const answers: Array<{ status: number; detail: string }> = [];
      for (let round = 0; round < 20; round++) {
        const id = await initiate(6 * chunkSize, chunkSize);
        expect((await alice.chunk(id, 0, textOf(chunkSize))).status).to.equal(200);
        const streaming = [1, 2, 3, 4, 5].map((n) => slowChunk(id, n));
        await sleep(20 + Math.random() * 80);
        expect((await alice.cancel(id)).status).to.equal(200);
        answers.push(...(await Promise.all(streaming)));
        expect((await alice.status(id)).json.status).to.equal('cancelled');
      }
      const wrong = answers.filter(({ status, detail }) => status !== 200 && !(status === 400 && /is not active \(status: cancelled\)/.test(detail)));
      expect(wrong).to.deep.equal([]);
    });
  });

  describe('§5.3 POST /api/v1/upload/{id}/complete', () => {
    it('completes: the shape, Repr-Digest, and the file at file_url and at /files/<id>', async () => {
      const data = textOf(2500);
      const id = await initiate(2500, 1000);
      for (const [n, chunk] of chunksOf(data, 1000).entries()) await alice.chunk(id, n, chunk, { hash: true });
      const res = await alice.complete(id, { session_id: id });
      expect(res.status, res.text).to.equal(200);
      expect(Object.keys(res.json).sort()).to.deep.equal(['completed_at', 'file_size', 'file_url', 'session_id', 'status']);
      expect(res.json).to.include({ session_id: id, status: 'completed', file_url: `/api/v1/files/${id}_notes.txt`, file_size: 2500 });
      expect(res.json.completed_at).to.match(NAIVE_DATETIME);
      expect(res.headers['repr-digest']).to.equal(reprDigestOf(data));
      const status = await alice.status(id);
      expect(status.json.status).to.equal('completed');
      const byUrl = await alice.get(res.json.file_url);
      expect(byUrl.status).to.equal(200);
      expect(byUrl.body.equals(data)).to.equal(true);
      const byId = await request(`${server.url}/files/${id}`);
      expect(byId.status).to.equal(200);
      expect(byId.body.equals(data)).to.equal(true);
      expect(byId.headers['repr-digest']).to.equal(reprDigestOf(data));
      expect(await exists(path.join(server.dataDir, 'legacy/staging', id))).to.equal(false);
    });

    it('answers 422 for a missing body or a body without session_id', async () => {
      const id = await initiate(10, 10);
      const none = await request(`${server.url}/api/v1/upload/${id}/complete`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${await server.token('alice')}` },
      });
      expect(none.status).to.equal(422);
      expect(JSON.parse(none.text).detail).to.deep.equal([{ loc: ['body'], msg: 'field required', type: 'value_error.missing' }]);
      const noId = await alice.complete(id, { file_hash: null });
      expect(noId.status).to.equal(422);
      expect(noId.json.detail).to.deep.equal([{ loc: ['body', 'session_id'], msg: 'field required', type: 'value_error.missing' }]);
    });

    it('answers 404 for an unknown session and 403 for another user\'s', async () => {
      const unknown = await alice.complete('00000000-0000-4000-8000-000000000000');
      expect(unknown.status).to.equal(404);
      expect(unknown.json).to.deep.equal({ detail: 'Upload session not found' });
      const id = await initiate(10, 10);
      await alice.chunk(id, 0, textOf(10));
      const foreign = await bob.complete(id);
      expect(foreign.status).to.equal(403);
      expect(foreign.json).to.deep.equal({ detail: 'Access denied' });
      expect((await alice.status(id)).json.status).to.equal('in_progress');
    });

    it('answers 400 "not in progress" for a pending session, a second complete and a cancelled session', async () => {
      const pending = await initiate(10, 10);
      const res = await alice.complete(pending);
      expect(res.status).to.equal(400);
      expect(res.json).to.deep.equal({ detail: `Upload session ${pending} is not in progress` });
      const { id } = await uploadWhole(alice, textOf(10), { filename: 'a.txt', mime_type: 'text/plain', chunk_size: 10 });
      expect((await alice.complete(id)).json).to.deep.equal({ detail: `Upload session ${id} is not in progress` });
      const cancelled = await initiate(10, 10);
      await alice.chunk(cancelled, 0, textOf(10));
      await alice.cancel(cancelled);
      expect((await alice.complete(cancelled)).json).to.deep.equal({ detail: `Upload session ${cancelled} is not in progress` });
    });

    it('answers 400 "Missing chunks: [2, 3]" as a Python list', async () => {
      const id = await initiate(50, 10);
      for (const n of [0, 1, 4]) await alice.chunk(id, n, textOf(10));
      const res = await alice.complete(id);
      expect(res.status).to.equal(400);
      expect(res.json).to.deep.equal({ detail: 'Missing chunks: [2, 3]' });
    });

    it('answers 400 "Final file hash mismatch", keeps the session in progress, and succeeds on a retry with the right hash', async () => {
      const data = textOf(30);
      const id = await initiate(30, 10);
      for (const [n, chunk] of chunksOf(data, 10).entries()) await alice.chunk(id, n, chunk);
      const wrong = await alice.complete(id, { session_id: id, file_hash: sha256('not the file') });
      expect(wrong.status).to.equal(400);
      expect(wrong.json).to.deep.equal({ detail: 'Final file hash mismatch' });
      const status = await alice.status(id);
      expect(status.json.status).to.equal('in_progress');
      expect(status.json.uploaded_chunks).to.deep.equal([0, 1, 2]);
      expect((await alice.get(`/api/v1/files/${id}_notes.txt`)).status).to.equal(404);
      expect((await request(`${server.url}/files/${id}`)).status).to.equal(404);
      // Compared exactly, but for case: spaces around it, or base64, are another hash (as in the original).
      for (const file_hash of [` ${sha256(data)}`, Buffer.from(sha256(data), 'hex').toString('base64')]) {
        const other = await alice.complete(id, { session_id: id, file_hash });
        expect(other.status, file_hash).to.equal(400);
        expect(other.json).to.deep.equal({ detail: 'Final file hash mismatch' });
      }
      const right = await alice.complete(id, { session_id: id, file_hash: sha256(data).toUpperCase() });
      expect(right.status, right.text).to.equal(200);
      expect((await alice.get(right.json.file_url)).body.equals(data)).to.equal(true);
    });

    it('checks the file_hash given at initiate; the body\'s file_hash wins over it', async () => {
      const data = textOf(20);
      const id = await initiate(20, 10, { file_hash: sha256('wrong') });
      for (const [n, chunk] of chunksOf(data, 10).entries()) await alice.chunk(id, n, chunk);
      expect((await alice.complete(id)).json).to.deep.equal({ detail: 'Final file hash mismatch' });
      expect((await alice.complete(id, { session_id: id, file_hash: '' })).json).to.deep.equal({ detail: 'Final file hash mismatch' });
      const res = await alice.complete(id, { session_id: id, file_hash: sha256(data) });
      expect(res.status).to.equal(200);
      const good = await initiate(20, 10, { file_hash: sha256(data) });
      for (const [n, chunk] of chunksOf(data, 10).entries()) await alice.chunk(good, n, chunk);
      expect((await alice.complete(good)).status).to.equal(200);
    });

    it('answers 415 when the content is not the declared type, marks the session failed and serves nothing', async () => {
      const res = await alice.initiate({ filename: 'fake.png', file_size: TEXT.length, chunk_size: 100, mime_type: 'image/png' });
      const id = res.json.session_id as string;
      for (const [n, chunk] of chunksOf(TEXT, 100).entries()) expect((await alice.chunk(id, n, chunk)).status).to.equal(200);
      const done = await alice.complete(id);
      expect(done.status).to.equal(415);
      expect(done.json.detail).to.be.a('string').that.includes('image/png');
      expect((await alice.status(id)).json.status).to.equal('failed');
      expect((await request(`${server.url}/files/${id}`)).status).to.equal(404);
      expect((await alice.get(`/api/v1/files/${id}_fake.png`)).status).to.equal(404);
      expect(await server.tusgate.store.records.get(id)).to.equal(undefined);
    });

    it('verifies magic numbers of media: a PNG, a JPEG and a GIF pass', async () => {
      for (const [data, type, name] of [
        [PNG, 'image/png', 'p.png'],
        [JPEG, 'image/jpeg', 'j.jpg'],
        [GIF, 'image/gif', 'g.gif'],
      ] as const) {
        const { completed } = await uploadWhole(alice, data, { filename: name, mime_type: type, chunk_size: 16 });
        expect(completed.status, completed.text).to.equal(200);
        const got = await alice.get(completed.json.file_url);
        expect(got.headers['content-type']).to.equal(type);
        expect(got.body.equals(data)).to.equal(true);
      }
    });
  });

  describe('§5.4 GET /api/v1/upload/{id}/status', () => {
    it('answers the status shape with naive datetimes and a null error_message', async () => {
      const id = await initiate(30, 10);
      await alice.chunk(id, 1, textOf(10));
      const res = await alice.status(id);
      expect(res.status).to.equal(200);
      expect(Object.keys(res.json).sort()).to.deep.equal(
        ['created_at', 'error_message', 'progress_percent', 'remaining_chunks', 'session_id', 'status', 'updated_at', 'uploaded_chunks'],
      );
      expect(res.json).to.include({ session_id: id, status: 'in_progress', progress_percent: (1 / 3) * 100, error_message: null });
      expect(res.json.uploaded_chunks).to.deep.equal([1]);
      expect(res.json.remaining_chunks).to.deep.equal([0, 2]);
      expect(res.json.created_at).to.match(NAIVE_DATETIME);
      expect(res.json.updated_at).to.match(NAIVE_DATETIME);
      expect(Date.parse(`${res.json.updated_at}Z`)).to.be.at.least(Date.parse(`${res.json.created_at}Z`));
      const pending = await alice.status(await initiate(10, 10));
      expect(pending.json).to.include({ status: 'pending', progress_percent: 0 });
      // A float to Python clients, whole or not.
      expect(pending.text).to.include('"progress_percent":0.0,');
      expect(pending.headers['content-type']).to.equal('application/json');
    });

    it('answers 404 and 403', async () => {
      const unknown = await alice.status('00000000-0000-4000-8000-000000000000');
      expect(unknown.status).to.equal(404);
      expect(unknown.json).to.deep.equal({ detail: 'Upload session not found' });
      const foreign = await bob.status(await initiate(10, 10));
      expect(foreign.status).to.equal(403);
      expect(foreign.json).to.deep.equal({ detail: 'Access denied' });
    });
  });

  describe('§5.5 DELETE /api/v1/upload/{id}', () => {
    it('cancels idempotently, keeps the session as cancelled, and removes its upload and staged chunks', async () => {
      const id = await initiate(30, 10);
      await alice.chunk(id, 0, textOf(10));
      await alice.chunk(id, 2, textOf(10));
      expect(await fs.readdir(path.join(server.dataDir, 'legacy/staging', id))).to.deep.equal(['2']);
      const res = await alice.cancel(id);
      expect(res.status).to.equal(200);
      expect(res.json).to.deep.equal({ message: 'Upload cancelled successfully' });
      expect((await alice.cancel(id)).json).to.deep.equal({ message: 'Upload cancelled successfully' });
      const status = await alice.status(id);
      expect(status.json.status).to.equal('cancelled');
      expect(await exists(path.join(server.dataDir, 'legacy/staging', id))).to.equal(false);
      expect(await server.tusgate.store.records.get(id)).to.equal(undefined);
      expect(await exists(path.join(server.dataDir, 'uploads', id))).to.equal(false);
    });

    it('answers 404 and 403, and changes nothing for another user', async () => {
      const unknown = await alice.cancel('00000000-0000-4000-8000-000000000000');
      expect(unknown.status).to.equal(404);
      expect(unknown.json).to.deep.equal({ detail: 'Upload session not found' });
      const id = await initiate(10, 10);
      const foreign = await bob.cancel(id);
      expect(foreign.status).to.equal(403);
      expect(foreign.json).to.deep.equal({ detail: 'Access denied' });
      expect((await alice.status(id)).json.status).to.equal('pending');
    });

    it('cancels a completed session but keeps its file served, as the original', async () => {
      const data = textOf(15);
      const { id, completed } = await uploadWhole(alice, data, { filename: 'kept.txt', mime_type: 'text/plain', chunk_size: 10 });
      expect((await alice.cancel(id)).status).to.equal(200);
      expect((await alice.status(id)).json.status).to.equal('cancelled');
      expect((await alice.get(completed.json.file_url)).body.equals(data)).to.equal(true);
      expect((await request(`${server.url}/files/${id}`)).status).to.equal(200);
    });
  });

  describe('§5.6 GET /api/v1/files/{name}', () => {
    let data: Buffer;
    let id: string;
    let fileUrl: string;
    before(async () => {
      data = textOf(5000);
      const result = await uploadWhole(alice, data, { filename: 'report final.txt', mime_type: 'text/plain', chunk_size: 1024 });
      id = result.id;
      fileUrl = result.completed.json.file_url;
    });

    it('serves the file without auth, with type, length, validators, nosniff and a CSP', async () => {
      expect(fileUrl).to.equal(`/api/v1/files/${id}_report%20final.txt`);
      const res = await request(`${server.url}${fileUrl}`);
      expect(res.status).to.equal(200);
      expect(res.body.equals(data)).to.equal(true);
      expect(res.headers['content-type']).to.equal('text/plain; charset=utf-8');
      expect(res.headers['content-length']).to.equal(String(data.length));
      expect(res.headers.etag).to.be.a('string');
      expect(res.headers['last-modified']).to.be.a('string');
      expect(res.headers['x-content-type-options']).to.equal('nosniff');
      expect(res.headers['content-security-policy']).to.include('sandbox');
      expect(res.headers['repr-digest']).to.equal(reprDigestOf(data));
    });

    it('answers HEAD, Range and If-None-Match', async () => {
      const head = await request(`${server.url}${fileUrl}`, { method: 'HEAD' });
      expect(head.status).to.equal(200);
      expect(head.headers['content-length']).to.equal(String(data.length));
      expect(head.body.length).to.equal(0);
      const range = await request(`${server.url}${fileUrl}`, { headers: { Range: 'bytes=10-19' } });
      expect(range.status).to.equal(206);
      expect(range.body.equals(data.subarray(10, 20))).to.equal(true);
      const unsatisfiable = await request(`${server.url}${fileUrl}`, { headers: { Range: 'bytes=999999-' } });
      expect(unsatisfiable.status).to.equal(416);
      // An invalid Range (its end before its start) is ignored.
      const invalid = await request(`${server.url}${fileUrl}`, { headers: { Range: 'bytes=19-10' } });
      expect(invalid.status).to.equal(200);
      expect(invalid.body.equals(data)).to.equal(true);
      const cached = await request(`${server.url}${fileUrl}`, { headers: { 'If-None-Match': String(head.headers.etag) } });
      expect(cached.status).to.equal(304);
    });

    it('answers 404 "File not found" for another name, an unknown id, or an incomplete upload', async () => {
      for (const url of [
        `/api/v1/files/${id}_other.txt`,
        `/api/v1/files/${id}_report final.txt.bak`,
        `/api/v1/files/${id}`,
        `/api/v1/files/${id}_`,
        '/api/v1/files/00000000-0000-4000-8000-000000000000_report%20final.txt',
        '/api/v1/files/..%2F..%2Fetc%2Fpasswd',
      ]) {
        const res = await alice.get(url);
        expect(res.status, url).to.equal(404);
        expect(res.json, url).to.deep.equal({ detail: 'File not found' });
      }
      const incomplete = await initiate(20, 10);
      await alice.chunk(incomplete, 0, textOf(10));
      expect((await alice.get(`/api/v1/files/${incomplete}_notes.txt`)).status).to.equal(404);
    });

    it('serves an upload made through tus at its legacy URL too', async () => {
      const client = tus(server.url, await server.token('alice'));
      const created = await client.create(PNG.length, { filetype: 'image/png', filename: 'via tus.png' });
      await client.patch(created.headers.location!, 0, PNG);
      const tusId = created.headers.location!.split('/').pop()!;
      const res = await alice.get(`/api/v1/files/${tusId}_${encodeURIComponent('via tus.png')}`);
      expect(res.status).to.equal(200);
      expect(res.body.equals(PNG)).to.equal(true);
    });
  });

  describe('a legacy session seen through the tus door', () => {
    it('takes no tus PATCH: its bytes come only as numbered, verified chunks', async () => {
      const data = textOf(20, 'legacy');
      const id = await initiate(20, 10, { file_hash: sha256(data) });
      const client = tus(server.url, await server.token('alice'));
      const location = `${server.url}/files/${id}`;
      const patch = await client.patch(location, 0, 'XXXXXXXXXX');
      expect(patch.status).to.equal(403);
      expect(patch.headers['tus-resumable']).to.equal('1.0.0');
      expect((await client.head(location)).headers['upload-offset']).to.equal('0');
      await alice.chunk(id, 0, data.subarray(0, 10), { hash: true });
      await alice.chunk(id, 1, data.subarray(10), { hash: true });
      const done = await alice.complete(id);
      expect(done.status, done.text).to.equal(200);
      expect((await alice.get(done.json.file_url)).body.equals(data)).to.equal(true);
    });

    it('is cancelled by a tus DELETE by the time the DELETE is answered, active or completed', async () => {
      const client = tus(server.url, await server.token('alice'));
      const data = textOf(20, 'gone');
      const active = await initiate(20, 10);
      await alice.chunk(active, 0, data.subarray(0, 10), { hash: true });
      const completed = await initiate(20, 10);
      for (const [n, chunk] of chunksOf(data, 10).entries()) await alice.chunk(completed, n, chunk, { hash: true });
      const fileUrl = (await alice.complete(completed)).json.file_url as string;
      for (const id of [active, completed]) {
        expect((await client.delete(`${server.url}/files/${id}`)).status).to.equal(204);
        expect((await alice.status(id)).json.status, id === active ? 'active session' : 'completed session').to.equal('cancelled');
      }
      expect((await alice.chunk(active, 1, data.subarray(10), { hash: true })).status).to.equal(400);
      expect((await alice.get(fileUrl)).status).to.equal(404);
    });
  });

  describe('chunks in any order and in parallel (SPEC §4)', () => {
    it('assembles out-of-order chunks into the exact file, early ones waiting in staging', async () => {
      const data = textOf(95, 'ooo');
      const id = await initiate(95, 10);
      const chunks = chunksOf(data, 10);
      const staging = path.join(server.dataDir, 'legacy/staging', id);
      for (const n of [9, 3, 7]) await alice.chunk(id, n, chunks[n]!, { hash: true });
      expect((await fs.readdir(staging)).sort()).to.deep.equal(['3', '7', '9']);
      expect((await server.tusgate.store.getUpload(id)).offset).to.equal(0);
      for (const n of [0, 1, 2]) await alice.chunk(id, n, chunks[n]!, { hash: true });
      // 0, 1, 2 and then the waiting 3 were appended.
      expect((await server.tusgate.store.getUpload(id)).offset).to.equal(40);
      expect((await fs.readdir(staging)).sort()).to.deep.equal(['7', '9']);
      for (const n of [8, 6, 5, 4]) await alice.chunk(id, n, chunks[n]!, { hash: true });
      expect((await server.tusgate.store.getUpload(id)).offset).to.equal(95);
      const done = await alice.complete(id, { session_id: id, file_hash: sha256(data) });
      expect(done.status, done.text).to.equal(200);
      expect((await alice.get(done.json.file_url)).body.equals(data)).to.equal(true);
    });

    it('gives the exact file when ten clients send the chunks of one session at once, in shuffled order', async () => {
      const data = Buffer.concat([PNG, textOf(40 * 4096 - PNG.length, 'par')]);
      const chunkSize = 4096;
      const res = await alice.initiate({ filename: 'parallel.png', file_size: data.length, chunk_size: chunkSize, mime_type: 'image/png', file_hash: sha256(data) });
      const id = res.json.session_id as string;
      const chunks = chunksOf(data, chunkSize);
      const order = chunks.map((_, i) => i).sort(() => Math.random() - 0.5);
      const token = await server.token('alice');
      const results = await Promise.all(
        Array.from({ length: 10 }, async (_, worker) => {
          const client = legacyClient(server.url, token);
          const statuses: string[] = [];
          for (let i = worker; i < order.length; i += 10) {
            const sent = await client.chunk(id, order[i]!, chunks[order[i]!]!, { hash: true });
            expect(sent.status, sent.text).to.equal(200);
            statuses.push(sent.json.status);
          }
          return statuses;
        }),
      );
      expect(results.flat().filter((status) => status === 'uploaded')).to.have.lengthOf(chunks.length);
      expect((await alice.status(id)).json.uploaded_chunks).to.have.lengthOf(chunks.length);
      const done = await alice.complete(id);
      expect(done.status, done.text).to.equal(200);
      const got = await alice.get(done.json.file_url);
      expect(got.body.equals(data)).to.equal(true);
      expect(got.headers['repr-digest']).to.equal(reprDigestOf(data));
    });

    it('lists every chunk staged by parallel clients (no lost session update)', async () => {
      const data = textOf(31 * 100, 'staged');
      const id = await initiate(data.length, 100);
      const chunks = chunksOf(data, 100);
      // Chunk 0 is held back, so all of these wait in staging and only the session lists them.
      const answers = await Promise.all(chunks.slice(1).map((chunk, i) => alice.chunk(id, i + 1, chunk, { hash: true })));
      expect(answers.every((a) => a.status === 200 && a.json.status === 'uploaded')).to.equal(true);
      expect((await alice.status(id)).json.uploaded_chunks).to.deep.equal(chunks.slice(1).map((_, i) => i + 1));
      expect((await server.tusgate.store.getUpload(id)).offset).to.equal(0);
      expect((await alice.chunk(id, 0, chunks[0]!)).json.remaining_chunks).to.deep.equal([]);
      expect((await server.tusgate.store.getUpload(id)).offset).to.equal(data.length);
      const done = await alice.complete(id, { session_id: id, file_hash: sha256(data) });
      expect(done.status, done.text).to.equal(200);
    });

    it('records a chunk sent by several clients at once exactly once', async () => {
      const data = textOf(30, 'dup');
      const id = await initiate(30, 10);
      const chunks = chunksOf(data, 10);
      const answers = await Promise.all(Array.from({ length: 6 }, () => alice.chunk(id, 1, chunks[1]!, { hash: true })));
      expect(answers.map((a) => a.status)).to.deep.equal([200, 200, 200, 200, 200, 200]);
      expect(answers.filter((a) => a.json.status === 'uploaded')).to.have.lengthOf(1);
      await Promise.all([alice.chunk(id, 0, chunks[0]!), alice.chunk(id, 2, chunks[2]!), alice.chunk(id, 0, chunks[0]!)]);
      const done = await alice.complete(id, { session_id: id, file_hash: sha256(data) });
      expect(done.status, done.text).to.equal(200);
    });
  });

  describe('the original client flow ([E] example_client.py)', () => {
    it('initiates, sends every chunk with chunk_hash, checks status, completes with file_hash, fetches file_url', async () => {
      const content = Buffer.from('This is a test file for chunked upload demonstration. '.repeat(200));
      const fileHash = sha256(content);
      const initiated = await alice.initiate({
        filename: 'test_upload.txt',
        file_size: content.length,
        mime_type: 'text/plain',
        chunk_size: 1024,
        file_hash: fileHash,
      });
      expect(initiated.status).to.equal(200);
      const { session_id: sessionId, total_chunks: totalChunks } = initiated.json;
      expect(totalChunks).to.equal(11);
      let progress = 0;
      for (let n = 0; n < totalChunks; n++) {
        const chunk = content.subarray(n * 1024, Math.min((n + 1) * 1024, content.length));
        const form = multipart([
          { name: 'file', value: chunk, filename: `chunk_${n}`, contentType: 'application/octet-stream' },
          { name: 'chunk_hash', value: sha256(chunk) },
        ]);
        const res = await request(`${server.url}/api/v1/upload/${sessionId}/chunk/${n}`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${await server.token('alice')}`, 'Content-Type': form.contentType },
          body: form.body,
        });
        expect(res.status, res.text).to.equal(200);
        const result = JSON.parse(res.text);
        expect(result.status).to.equal('uploaded');
        expect(result.progress_percent).to.be.greaterThan(progress);
        progress = result.progress_percent;
      }
      expect(progress).to.equal(100);
      expect((await alice.status(sessionId)).json.status).to.equal('in_progress');
      const completed = await alice.complete(sessionId, { session_id: sessionId, file_hash: fileHash });
      expect(completed.status).to.equal(200);
      expect(completed.json.file_url).to.equal(`/api/v1/files/${sessionId}_test_upload.txt`);
      expect(completed.json.file_size).to.equal(content.length);
      const file = await request(`${server.url}${completed.json.file_url}`);
      expect(file.status).to.equal(200);
      expect(file.body.equals(content)).to.equal(true);
      const tusFile = await request(`${server.url}/files/${sessionId}`);
      expect(tusFile.body.equals(content)).to.equal(true);
      expect(tusFile.headers['repr-digest']).to.equal(reprDigestOf(content));
    });
  });

  describe('file names are data, never paths (issue 4 §6)', () => {
    const names = [
      '../../../etc/passwd',
      '..\\..\\windows\\win.ini',
      'vidéo 🎬 «final».txt',
      'x'.repeat(251) + '.txt',
      'nul\u0000byte.txt',
      'lone\ud800surrogate.txt',
      '100% #1 ?a=b&c.txt',
      '..',
      '"quoted"\r\nX-Injected: yes',
    ];
    for (const name of names) {
      it(`stores and serves ${JSON.stringify(name.length > 40 ? `${name.slice(0, 20)}…(${name.length})` : name)}`, async () => {
        const data = textOf(64, 'name');
        const { id, completed } = await uploadWhole(alice, data, { filename: name, mime_type: 'text/plain', chunk_size: 32 });
        expect(completed.status, completed.text).to.equal(200);
        const stored = name.replace('\ud800', '\ufffd');
        expect(completed.json.file_url).to.equal(`/api/v1/files/${id}_${encodeURIComponent(stored)}`);
        const got = await request(`${server.url}${completed.json.file_url}`);
        expect(got.status).to.equal(200);
        expect(got.body.equals(data)).to.equal(true);
        expect(got.headers['x-injected']).to.equal(undefined);
        // The legacy route sends no Content-Disposition (legacy-api.md §5.6); the tus one names the file safely.
        expect(got.headers['content-disposition']).to.equal(undefined);
        const viaTus = await request(`${server.url}/files/${id}`);
        expect(viaTus.headers['x-injected']).to.equal(undefined);
        expect(viaTus.headers['content-disposition']).to.match(/^inline; filename="[^"\r\n]*"; filename\*=UTF-8''/);
        // Nothing outside DATA_DIR, and no path inside it, was named after the client's name.
        const all = await fs.readdir(server.dataDir, { recursive: true });
        expect(all.filter((entry) => /passwd|win\.ini|vid|nul|lone|quoted|%|xxxx/.test(String(entry)))).to.deep.equal([]);
      });
    }

    it('never wrote outside DATA_DIR', async () => {
      expect(await exists(path.resolve(server.dataDir, '../etc/passwd'))).to.equal(false);
      expect(await exists(path.resolve(server.dataDir, 'legacy/etc'))).to.equal(false);
    });
  });

  describe('quotas are shared with the tus door (SPEC §4: 429)', () => {
    let limited: TestServer;
    afterEach(() => limited?.close());

    it('answers 429 with Retry-After past MAX_ACTIVE_UPLOADS_PER_USER, counting tus uploads, and frees slots on complete and cancel', async () => {
      limited = await startServer({ MAX_ACTIVE_UPLOADS_PER_USER: 2 });
      const token = await limited.token('dave');
      const client = legacyClient(limited.url, token);
      const body = { filename: 'q.txt', file_size: 10, chunk_size: 10, mime_type: 'text/plain' };
      const first = await client.initiate(body);
      expect(first.status).to.equal(200);
      const viaTus = await tus(limited.url, token).create(10);
      expect(viaTus.status).to.equal(201);
      const refused = await client.initiate(body);
      expect(refused.status).to.equal(429);
      expect(refused.headers['retry-after']).to.match(/^\d+$/);
      expect(refused.json.detail).to.be.a('string');
      await client.chunk(first.json.session_id, 0, textOf(10));
      expect((await client.complete(first.json.session_id)).status).to.equal(200);
      const second = await client.initiate(body);
      expect(second.status).to.equal(200);
      expect((await client.initiate(body)).status).to.equal(429);
      await client.cancel(second.json.session_id);
      expect((await client.initiate(body)).status).to.equal(200);
    });

    it('answers 429 past UPLOADS_PER_HOUR_PER_USER', async () => {
      limited = await startServer({ UPLOADS_PER_HOUR_PER_USER: 2 });
      const client = legacyClient(limited.url, await limited.token('erin'));
      const body = { filename: 'q.txt', file_size: 10, mime_type: 'text/plain' };
      expect((await client.initiate(body)).status).to.equal(200);
      expect((await client.initiate(body)).status).to.equal(200);
      const third = await client.initiate(body);
      expect(third.status).to.equal(429);
      expect(Number(third.headers['retry-after'])).to.be.greaterThan(0);
    });
  });

  describe('configuration', () => {
    let custom: TestServer;
    afterEach(() => custom?.close());

    it('supports type/* entries in ALLOWED_MIME_TYPES and the configured MAX_FILE_SIZE / MAX_CHUNK_SIZE', async () => {
      custom = await startServer({ ALLOWED_MIME_TYPES: ['image/*', 'text/plain'], MAX_FILE_SIZE: 1000, MAX_CHUNK_SIZE: 100 });
      const client = legacyClient(custom.url, await custom.token());
      expect((await client.initiate({ filename: 'a', file_size: 10, mime_type: 'image/anything' })).status).to.equal(200);
      expect((await client.initiate({ filename: 'a', file_size: 10, mime_type: 'video/mp4' })).status).to.equal(400);
      expect((await client.initiate({ filename: 'a', file_size: 10, mime_type: 'IMAGE/png' })).status).to.equal(400);
      // A wildcard allows types; as a file's type it names none.
      const wildcard = await client.initiate({ filename: 'a', file_size: 10, mime_type: 'image/*' });
      expect([wildcard.status, wildcard.json.detail]).to.deep.equal([400, 'MIME type image/* is not allowed']);
      expect((await client.initiate({ filename: 'a', file_size: 1001, mime_type: 'text/plain' })).status).to.equal(413);
      const big = await client.initiate({ filename: 'a', file_size: 1000, chunk_size: 101, mime_type: 'text/plain' });
      expect(big.status).to.equal(422);
      expect(big.json.detail[0].msg).to.equal('ensure this value is less than or equal to 100');
      const fine = await client.initiate({ filename: 'a', file_size: 1000, mime_type: 'text/plain' });
      expect(fine.status).to.equal(200);
      // The original's default chunk size (1 MiB) is over this server's limit: the limit is handed out.
      expect(fine.json.chunk_size).to.equal(100);
      expect(fine.json.total_chunks).to.equal(10);
    });

    it('names the size of a chunk sent at twice MAX_CHUNK_SIZE (400), and answers a far larger one 413, not a reset', async () => {
      custom = await startServer({ MAX_CHUNK_SIZE: 2 * 1024 * 1024 });
      const client = legacyClient(custom.url, await custom.token());
      const id = (await client.initiate({ filename: 'a.txt', file_size: 4 * 1024 * 1024, chunk_size: 2 * 1024 * 1024, mime_type: 'text/plain' })).json.session_id;
      const twice = await client.chunk(id, 0, textOf(3.5 * 1024 * 1024));
      expect(twice.status).to.equal(400);
      expect(twice.json).to.deep.equal({ detail: `Invalid chunk size for chunk 0. Expected 2097152, got ${3.5 * 1024 * 1024}` });
      await custom.close();
      custom = await startServer({ MAX_CHUNK_SIZE: 1000 });
      const small = legacyClient(custom.url, await custom.token());
      const smallId = (await small.initiate({ filename: 'a.txt', file_size: 2000, chunk_size: 1000, mime_type: 'text/plain' })).json.session_id;
      const huge = await small.chunk(smallId, 0, textOf(3 * 1024 * 1024));
      expect(huge.status).to.equal(413);
    });

    it('does not read a chunk request far larger than MAX_CHUNK_SIZE to its end (413)', async () => {
      custom = await startServer({ MAX_CHUNK_SIZE: 1000 });
      const client = legacyClient(custom.url, await custom.token());
      const id = (await client.initiate({ filename: 'a.txt', file_size: 2000, chunk_size: 1000, mime_type: 'text/plain' })).json.session_id;
      const junk = await client.chunkRaw(id, 0, [
        { name: 'padding', value: Buffer.alloc(1536 * 1024, 1), filename: 'junk' },
        { name: 'file', value: textOf(1000), filename: 'blob' },
      ]);
      expect(junk.status).to.equal(413);
      const unknown = await client.chunk('00000000-0000-4000-8000-000000000000', 0, Buffer.alloc(1536 * 1024, 1));
      expect(unknown.status).to.equal(413);
      expect((await client.chunk(id, 0, textOf(1000))).status).to.equal(200);
    });

    it('with FILES_PUBLIC=false serves file_url to its owner only', async () => {
      custom = await startServer({ FILES_PUBLIC: false });
      const owner = legacyClient(custom.url, await custom.token('alice'));
      const data = textOf(20);
      const { completed } = await uploadWhole(owner, data, { filename: 'private.txt', mime_type: 'text/plain', chunk_size: 10 });
      expect((await request(`${custom.url}${completed.json.file_url}`)).status).to.equal(404);
      const other = await request(`${custom.url}${completed.json.file_url}`, { headers: { Authorization: `Bearer ${await custom.token('bob')}` } });
      expect(other.status).to.equal(404);
      const mine = await request(`${custom.url}${completed.json.file_url}`, { headers: { Authorization: `Bearer ${await custom.token('alice')}` } });
      expect(mine.status).to.equal(200);
      expect(mine.body.equals(data)).to.equal(true);
    });
  });
});

describe('legacy sessions expire (sliding UPLOAD_EXPIRY_SECONDS)', () => {
  let server: TestServer;
  let client: LegacyClient;
  beforeEach(async () => {
    server = await startServer({ UPLOAD_EXPIRY_SECONDS: 1, ADMIN_USERS: ['root'] });
    client = legacyClient(server.url, await server.token('alice'));
  });
  afterEach(() => server.close());

  async function start(size = 30) {
    const res = await client.initiate({ filename: 'e.txt', file_size: size, chunk_size: 10, mime_type: 'text/plain' });
    return res.json.session_id as string;
  }

  it('answers 410 to a chunk for an expired session, which becomes cancelled and loses its upload', async () => {
    const id = await start();
    await client.chunk(id, 2, textOf(10));
    await sleep(1200);
    const res = await client.chunk(id, 0, textOf(10));
    expect(res.status).to.equal(410);
    expect(res.json).to.deep.equal({ detail: `Upload session ${id} has expired` });
    expect((await client.status(id)).json.status).to.equal('cancelled');
    expect(await server.tusgate.store.records.get(id)).to.equal(undefined);
    expect(await exists(path.join(server.dataDir, 'legacy/staging', id))).to.equal(false);
    const again = await client.chunk(id, 0, textOf(10));
    expect(again.status).to.equal(400);
    expect(again.json.detail).to.equal(`Upload session ${id} is not active (status: cancelled)`);
  });

  it('slides: each accepted chunk, appended or staged, pushes expiry back', async () => {
    const id = await start(50);
    // 4 and 3 both wait in staging: without their touches the sweep would take the upload at 3.
    for (const n of [4, 3, 0, 2]) {
      await sleep(600);
      const res = await client.chunk(id, n, textOf(10));
      expect(res.status, `chunk ${n}`).to.equal(200);
      // The sweep agrees: the upload's last write moved with the staged chunk too.
      expect(await server.tusgate.sweep()).to.equal(0);
    }
    await sleep(600);
    expect((await client.chunk(id, 1, textOf(10))).status).to.equal(200);
    expect((await client.complete(id)).status).to.equal(200);
  });

  it('the sweep removes an expired session with its upload and staged chunks', async () => {
    const id = await start();
    await client.chunk(id, 1, textOf(10));
    await sleep(1200);
    expect(await server.tusgate.sweep()).to.be.at.least(1);
    await sleep(50);
    expect((await client.status(id)).status).to.equal(404);
    expect(await exists(path.join(server.dataDir, 'legacy/staging', id))).to.equal(false);
    expect(await exists(path.join(server.dataDir, 'legacy/sessions', `${id}.json`))).to.equal(false);
  });

  it('still answers 410 to its owner after the sweep removed the expired session; 404 to anyone else', async () => {
    const id = await start();
    expect((await client.chunk(id, 0, textOf(10))).status).to.equal(200);
    await sleep(1200);
    expect(await server.tusgate.sweep()).to.be.at.least(1);
    await sleep(50);
    // The sweep deleted the session, as the original's cleanup did: status no longer finds it.
    expect((await client.status(id)).status).to.equal(404);
    const res = await client.chunk(id, 1, textOf(10));
    expect(res.status).to.equal(410);
    expect(res.json).to.deep.equal({ detail: `Upload session ${id} has expired` });
    const bob = legacyClient(server.url, await server.token('bob'));
    const foreign = await bob.chunk(id, 1, textOf(10));
    expect(foreign.status).to.equal(404);
    expect(foreign.json).to.deep.equal({ detail: 'Upload session not found' });
    expect((await client.status(id)).status).to.equal(404);
  });

  describe('POST /api/v1/admin/cleanup', () => {
    it('answers 403 without a token, 401 for a bad token, and 403 "Admin privileges required" for a non-admin', async () => {
      const none = await request(`${server.url}/api/v1/admin/cleanup`, { method: 'POST' });
      expect(none.status).to.equal(403);
      expect(JSON.parse(none.text)).to.deep.equal({ detail: 'Not authenticated' });
      const bad = await request(`${server.url}/api/v1/admin/cleanup`, { method: 'POST', headers: { Authorization: 'Bearer nope' } });
      expect(bad.status).to.equal(401);
      const id = await start();
      await sleep(1200);
      for (const token of [await server.token('alice'), await server.token('mallory', { role: 'user', roles: ['editor'] })]) {
        const res = await request(`${server.url}/api/v1/admin/cleanup`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
        expect(res.status).to.equal(403);
        expect(JSON.parse(res.text)).to.deep.equal({ detail: 'Admin privileges required' });
      }
      expect((await client.status(id)).status).to.equal(200);
    });

    it('removes expired pending and in-progress sessions for an ADMIN_USERS admin, keeping the rest', async () => {
      const pending = await start();
      const inProgress = await start();
      await client.chunk(inProgress, 2, textOf(10));
      const { id: completed } = await uploadWhole(client, textOf(10), { filename: 'done.txt', mime_type: 'text/plain', chunk_size: 10 });
      await sleep(1200);
      const fresh = await start();
      const res = await request(`${server.url}/api/v1/admin/cleanup`, { method: 'POST', headers: { Authorization: `Bearer ${await server.token('root')}` } });
      expect(res.status).to.equal(200);
      expect(JSON.parse(res.text)).to.deep.equal({ message: 'Cleaned up 2 expired sessions' });
      expect((await client.status(pending)).status).to.equal(404);
      expect((await client.status(inProgress)).status).to.equal(404);
      // The original deleted the session: a chunk then finds none (404), where one swept by expiry gets 410.
      const late = await client.chunk(inProgress, 0, textOf(10));
      expect(late.status).to.equal(404);
      expect(late.json).to.deep.equal({ detail: 'Upload session not found' });
      expect(await exists(path.join(server.dataDir, 'legacy/staging', inProgress))).to.equal(false);
      expect(await server.tusgate.store.records.get(inProgress)).to.equal(undefined);
      expect((await client.status(completed)).json.status).to.equal('completed');
      expect((await client.status(fresh)).json.status).to.equal('pending');
    });

    it('accepts a token with role "admin" or "admin" in roles', async () => {
      for (const claims of [{ role: 'admin' }, { roles: ['viewer', 'admin'] }]) {
        const res = await request(`${server.url}/api/v1/admin/cleanup`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${await server.token('ops', claims)}` },
        });
        expect(res.status).to.equal(200);
        expect(JSON.parse(res.text)).to.deep.equal({ message: 'Cleaned up 0 expired sessions' });
      }
    });
  });
});

describe('EmptyFilenamePatch: a multipart body whose file part has filename=""', () => {
  async function through(body: Buffer, boundary: string, piece: number): Promise<string> {
    const patch = new EmptyFilenamePatch(boundary);
    const out: Buffer[] = [];
    patch.on('data', (data: Buffer) => out.push(data));
    const ended = new Promise((resolve) => patch.once('end', resolve));
    for (let i = 0; i < body.length; i += piece) patch.write(body.subarray(i, i + piece));
    patch.end();
    await ended;
    return Buffer.concat(out).toString('latin1');
  }

  it('names the file part, however the body is cut, and changes nothing else', async () => {
    const { body, contentType } = multipart([
      { name: 'chunk_hash', value: 'abc' },
      { name: 'file', value: 'filename="" stays in the data', filename: '' },
    ]);
    const boundary = contentType.split('boundary=')[1]!;
    const expected = body.toString('latin1').replace('name="file"; filename=""', 'name="file"; filename="upload"');
    for (const piece of [1, 7, 64, body.length]) expect(await through(body, boundary, piece), `pieces of ${piece}`).to.equal(expected);
    const named = multipart([{ name: 'file', value: 'x', filename: 'a.txt' }]);
    expect(await through(named.body, named.contentType.split('boundary=')[1]!, 5)).to.equal(named.body.toString('latin1'));
  });
});

import fs from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import fc from 'fast-check';
import { request, tus, type RawResponse } from './helpers/http.js';
import { startServer, type TestServer } from './helpers/server.js';
import { multipart } from './legacy-client.js';
import { TEXT } from './samples.js';

// Property tests: whatever a client sends, tusgate answers without a 5xx, without changing stored
// data unless it accepted the request, and without dying. Each property runs a bounded number of
// random cases; a case fast-check finds failing is shrunk and then kept below as a regular test.

/** Strings Node's HTTP client can send as a header value. */
const headerValue = fc.oneof(
  fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 80 }),
  fc.integer().map(String),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map(String),
  fc.constantFrom('', ' ', '0', '-0', '1e3', '0x10', '1.0.0', '1', 'partial', 'final;', 'sha1 AAAA', 'application/offset+octet-stream', 'NaN', 'Infinity'),
);
const TUS_HEADERS = [
  'Tus-Resumable',
  'Upload-Offset',
  'Upload-Length',
  'Upload-Defer-Length',
  'Upload-Metadata',
  'Upload-Concat',
  'Upload-Checksum',
  'Content-Type',
  'X-HTTP-Method-Override',
  'Upload-Draft-Interop-Version',
  'Upload-Complete',
  'Upload-Incomplete',
] as const;
const headers = fc.dictionary(fc.constantFrom(...TUS_HEADERS), headerValue, { maxKeys: 6 });
const method = fc.constantFrom('POST', 'HEAD', 'PATCH', 'DELETE', 'OPTIONS', 'GET', 'PUT');

const RUNS = 250;

describe('properties: bad input never yields a 5xx or changes stored data', function () {
  this.timeout(120_000);
  let server: TestServer;
  let token: string;
  let location: string;
  let id: string;

  const storedState = async () => {
    const data = await fs.readFile(path.join(server.dataDir, 'uploads', id));
    const record = (await server.tusgate.store.records.get(id))!;
    return { data: data.toString('hex'), state: record.state, size: record.size };
  };

  before(async () => {
    server = await startServer({ MAX_ACTIVE_UPLOADS_PER_USER: 100_000, UPLOADS_PER_HOUR_PER_USER: 1_000_000 });
    token = await server.token('alice');
    const client = tus(server.url, token);
    location = (await client.create(TEXT.length)).headers.location!;
    id = location.split('/').pop()!;
    await client.patch(location, 0, TEXT.subarray(0, 10));
  });
  after(() => server.close());

  async function sendTus(m: string, h: Record<string, string>, body: Uint8Array, target: string): Promise<RawResponse> {
    return request(target, {
      method: m,
      headers: { Authorization: `Bearer ${token}`, ...h },
      body: m === 'GET' || m === 'HEAD' ? undefined : Buffer.from(body),
    });
  }

  it('arbitrary tus headers on the upload URL', async () => {
    await fc.assert(
      fc.asyncProperty(method, headers, fc.uint8Array({ maxLength: 64 }), async (m, h, body) => {
        const before = await storedState();
        const res = await sendTus(m, h, body, location);
        expect(res.status, `${m} ${JSON.stringify(h)} → ${res.status} ${res.text}`).to.be.below(500);
        const after = await storedState().catch(() => undefined);
        if (res.status >= 400) expect(after, `${m} ${JSON.stringify(h)} changed the upload`).to.deep.equal(before);
        if (res.status < 400 && JSON.stringify(after) !== JSON.stringify(before)) {
          // An accepted request may change the upload; put the reference back for the next case.
          await fs.rm(path.join(server.dataDir, 'uploads', id), { force: true });
          const client = tus(server.url, token);
          location = (await client.create(TEXT.length)).headers.location!;
          id = location.split('/').pop()!;
          await client.patch(location, 0, TEXT.subarray(0, 10));
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('arbitrary tus headers on the creation URL', async () => {
    await fc.assert(
      fc.asyncProperty(method, headers, fc.uint8Array({ maxLength: 64 }), async (m, h, body) => {
        const res = await sendTus(m, h, body, `${server.url}/files/`);
        expect(res.status, `${m} ${JSON.stringify(h)} → ${res.status} ${res.text}`).to.be.below(500);
      }),
      { numRuns: RUNS },
    );
  });

  it('random Upload-Metadata strings', async () => {
    await fc.assert(
      fc.asyncProperty(headerValue, async (meta) => {
        const res = await request(`${server.url}/files/`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${token}`, 'Tus-Resumable': '1.0.0', 'Upload-Length': '10', 'Upload-Metadata': meta },
        });
        expect(res.status, `${JSON.stringify(meta)} → ${res.status} ${res.text}`).to.be.oneOf([201, 400, 415]);
      }),
      { numRuns: RUNS },
    );
  });

  it('random tokens are refused with 401 on every door', async () => {
    await fc.assert(
      fc.asyncProperty(headerValue, fc.constantFrom('/files/', '/api/v1/upload/initiate'), async (auth, door) => {
        const res = await request(`${server.url}${door}`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${auth}`, 'Tus-Resumable': '1.0.0', 'Upload-Length': '10', 'Content-Type': 'application/json' },
          body: '{}',
        });
        expect(res.status, `${JSON.stringify(auth)} → ${res.status}`).to.be.oneOf([401, 403]);
      }),
      { numRuns: RUNS },
    );
  });

  it('random legacy JSON bodies to initiate and complete', async () => {
    const legacyBody = fc.oneof(
      fc.json(),
      fc.record(
        {
          filename: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
          file_size: fc.oneof(fc.integer(), fc.double(), fc.string(), fc.constant(null)),
          chunk_size: fc.oneof(fc.integer(), fc.double(), fc.string()),
          mime_type: fc.oneof(fc.constantFrom('text/plain', 'video/mp4', 'TEXT/PLAIN'), fc.string()),
          file_hash: fc.oneof(fc.string(), fc.constant(null)),
          metadata: fc.oneof(fc.object(), fc.string(), fc.constant(null)),
        },
        { requiredKeys: [] },
      ).map((value) => JSON.stringify(value)),
    );
    await fc.assert(
      fc.asyncProperty(legacyBody, fc.constantFrom('initiate', 'complete'), async (body, endpoint) => {
        const url = endpoint === 'initiate' ? '/api/v1/upload/initiate' : '/api/v1/upload/00000000-0000-4000-8000-000000000000/complete';
        const res = await request(`${server.url}${url}`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
          body,
        });
        expect(res.status, `${body} → ${res.status} ${res.text}`).to.be.below(500);
        expect(() => JSON.parse(res.text), res.text).to.not.throw();
      }),
      { numRuns: RUNS },
    );
  });

  it('random multipart shapes to a chunk upload change nothing unless accepted', async () => {
    const initiated = await request(`${server.url}/api/v1/upload/initiate`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ filename: 'p.txt', file_size: 40, chunk_size: 10, mime_type: 'text/plain' }),
    });
    const session = JSON.parse(initiated.text).session_id as string;
    const statusOf = async () => JSON.parse((await request(`${server.url}/api/v1/upload/${session}/status`, { headers: { Authorization: `Bearer ${token}` } })).text);
    const part = fc.record({
      name: fc.oneof(fc.constantFrom('file', 'chunk_hash', 'other'), fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)).filter((c) => c !== '"'), maxLength: 10 })),
      value: fc.oneof(fc.uint8Array({ maxLength: 30 }).map((b) => Buffer.from(b)), fc.string({ maxLength: 70 })),
      filename: fc.option(fc.constantFrom('a.txt', '../x', ''), { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(part, { maxLength: 4 }), fc.integer({ min: -2, max: 5 }), fc.boolean(), async (parts, chunk, mangle) => {
        const before = await statusOf();
        const form = multipart(parts);
        const res = await request(`${server.url}/api/v1/upload/${session}/chunk/${chunk}`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': mangle ? 'multipart/form-data; boundary=nope' : form.contentType },
          body: form.body,
        });
        expect(res.status, `${JSON.stringify(parts)} → ${res.status} ${res.text}`).to.be.below(500);
        if (res.status >= 400) expect((await statusOf()).uploaded_chunks).to.deep.equal(before.uploaded_chunks);
      }),
      { numRuns: RUNS },
    );
  });

  it('is still serving after all of the above', async () => {
    expect((await request(`${server.url}/health`)).status).to.equal(200);
  });
});

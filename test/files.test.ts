import { createHash } from 'node:crypto';
import http from 'node:http';
import { expect } from 'chai';
import { startApp, type AppServer } from './helpers/app-server.js';
import { request, tus, type RawResponse } from './helpers/http.js';
import { signToken, TEST_SECRET } from './helpers/server.js';
import { PNG, TEXT } from './samples.js';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes);
const reprDigestOf = (bytes: Buffer) => `sha-256=:${sha256(bytes).digest('base64')}:`;

/** A text file long enough for the range tests, with every byte position distinguishable. */
const BODY = Buffer.from(Array.from({ length: 40 }, (_, i) => `line ${String(i).padStart(2, '0')}\n`).join(''), 'utf8');

/** GET of a path exactly as written, dot segments and all. */
function rawPathRequest(base: string, rawPath: string): Promise<{ status: number; body: Buffer }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, path: rawPath, method: 'GET', agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

interface Uploaded {
  location: string;
}

async function upload(
  server: AppServer,
  token: string,
  bytes: Buffer,
  meta: Record<string, string> = { filetype: 'text/plain', filename: 'notes.txt' },
): Promise<Uploaded> {
  const client = tus(server.url, token);
  const created = await client.create(bytes.length, meta);
  expect(created.status, created.text).to.equal(201);
  const location = new URL(created.headers.location!, server.url).href;
  const patched = await client.patch(location, 0, bytes);
  expect(patched.status, patched.text).to.equal(204);
  return { location };
}

/** The RFC 6266 parameters of a Content-Disposition value. */
function dispositionParams(value: string | undefined): { type: string; filename?: string; filenameStar?: string } {
  expect(value, 'Content-Disposition').to.be.a('string');
  const [type, ...rest] = value!.split(';').map((part) => part.trim());
  const result: { type: string; filename?: string; filenameStar?: string } = { type: type! };
  // filename="..." (quoted-string without escapes, as the server writes it) and filename*=UTF-8''...
  const quoted = /(?:^|;)\s*filename="([^"\\]*)"/.exec(value!);
  if (quoted) result.filename = quoted[1];
  const star = /(?:^|;)\s*filename\*=([^;]*)/.exec(value!);
  if (star) result.filenameStar = star[1]!.trim();
  expect(rest.length).to.be.greaterThan(0);
  return result;
}

/** RFC 8187 ext-value: charset'lang'pct-encoded, where only attr-chars may appear unencoded. */
function decodeExtValue(value: string): string {
  const match = /^UTF-8''([A-Za-z0-9!#$&+\-.^_`|~%]*)$/i.exec(value);
  expect(match, `RFC 8187 ext-value: ${value}`).to.not.equal(null);
  return decodeURIComponent(match![1]!);
}

function expectDownloadHeaders(response: RawResponse, bytes: Buffer, type: string) {
  expect(response.headers['content-type']).to.match(new RegExp(`^${type.replace('/', '\\/')}(;|$)`));
  expect(response.headers['content-length']).to.equal(String(bytes.length));
  const etag = response.headers.etag;
  expect(etag, 'strong ETag').to.match(/^"[^"]+"$/);
  const lastModified = response.headers['last-modified'];
  expect(lastModified).to.be.a('string');
  expect(Number.isNaN(Date.parse(lastModified!))).to.equal(false);
  expect(Math.abs(Date.parse(lastModified!) - Date.now())).to.be.lessThan(60_000);
  expect(response.headers['accept-ranges']).to.equal('bytes');
  expect(response.headers['x-content-type-options']).to.equal('nosniff');
  const csp = response.headers['content-security-policy'];
  expect(csp).to.be.a('string');
  expect(csp).to.match(/(^|;)\s*sandbox(\s*;|\s*$)/);
  expect(csp).to.match(/(^|;)\s*default-src 'none'/);
  expect(csp).not.to.match(/script-src/);
  expect(response.headers['repr-digest']).to.equal(reprDigestOf(bytes));
}

describe('file serving: GET and HEAD /files/<id>', () => {
  let server: AppServer;
  let alice: string;
  let text: Uploaded;
  before(async () => {
    server = await startApp({ config: { JWT_SECRET: TEST_SECRET } });
    alice = await signToken('alice');
    text = await upload(server, alice, BODY);
  });
  after(() => server.close());

  it('GET serves the completed file with its verified type and safe headers, to anyone', async () => {
    const response = await request(text.location);
    expect(response.status).to.equal(200);
    expect(response.body.equals(BODY)).to.equal(true);
    expectDownloadHeaders(response, BODY, 'text/plain');
    expect(response.headers['tus-resumable'], 'a download is not a tus response').to.equal(undefined);
  });

  it('HEAD without Tus-Resumable answers like GET, without a body', async () => {
    const get = await request(text.location);
    const head = await request(text.location, { method: 'HEAD' });
    expect(head.status).to.equal(200);
    expect(head.body.length).to.equal(0);
    expectDownloadHeaders(head, BODY, 'text/plain');
    expect(head.headers.etag).to.equal(get.headers.etag);
    expect(head.headers['last-modified']).to.equal(get.headers['last-modified']);
  });

  it('serves an image with its verified type', async () => {
    const png = await upload(server, alice, PNG, { filetype: 'image/png', filename: 'pixel.png' });
    const response = await request(png.location);
    expect(response.status).to.equal(200);
    expect(response.body.equals(PNG)).to.equal(true);
    expectDownloadHeaders(response, PNG, 'image/png');
  });

  it('Range bytes=0-9 → 206 with Content-Range and exactly those bytes', async () => {
    const response = await request(text.location, { headers: { Range: 'bytes=0-9' } });
    expect(response.status).to.equal(206);
    expect(response.headers['content-range']).to.equal(`bytes 0-9/${BODY.length}`);
    expect(response.headers['content-length']).to.equal('10');
    expect(response.body.equals(BODY.subarray(0, 10))).to.equal(true);
    expect(response.headers['x-content-type-options']).to.equal('nosniff');
    expect(response.headers['content-security-policy']).to.include('sandbox');
  });

  it('a suffix range bytes=-5 gives the last five bytes', async () => {
    const response = await request(text.location, { headers: { Range: 'bytes=-5' } });
    expect(response.status).to.equal(206);
    expect(response.headers['content-range']).to.equal(`bytes ${BODY.length - 5}-${BODY.length - 1}/${BODY.length}`);
    expect(response.body.equals(BODY.subarray(BODY.length - 5))).to.equal(true);
  });

  it('a suffix longer than the file is the whole file (RFC 9110 14.1.3), not 416', async () => {
    const response = await request(text.location, { headers: { Range: `bytes=-${BODY.length + 100}` } });
    expect(response.status).to.equal(206);
    expect(response.headers['content-range']).to.equal(`bytes 0-${BODY.length - 1}/${BODY.length}`);
    expect(response.body.equals(BODY)).to.equal(true);
  });

  it('If-Range with a weak validator never matches: the whole file, 200', async () => {
    const etag = (await request(text.location)).headers.etag!;
    const strong = await request(text.location, { headers: { Range: 'bytes=0-3', 'If-Range': etag } });
    expect(strong.status).to.equal(206);
    const weak = await request(text.location, { headers: { Range: 'bytes=0-3', 'If-Range': `W/${etag}` } });
    expect(weak.status).to.equal(200);
    expect(weak.body.equals(BODY)).to.equal(true);
  });

  it('an open-ended range bytes=10- gives the rest of the file', async () => {
    const response = await request(text.location, { headers: { Range: 'bytes=10-' } });
    expect(response.status).to.equal(206);
    expect(response.headers['content-range']).to.equal(`bytes 10-${BODY.length - 1}/${BODY.length}`);
    expect(response.body.equals(BODY.subarray(10))).to.equal(true);
  });

  it('a range past the end is clamped to the file', async () => {
    const response = await request(text.location, { headers: { Range: `bytes=${BODY.length - 3}-${BODY.length + 100}` } });
    expect(response.status).to.equal(206);
    expect(response.body.equals(BODY.subarray(BODY.length - 3))).to.equal(true);
  });

  it('an unsatisfiable range → 416 with Content-Range: bytes */size', async () => {
    const response = await request(text.location, { headers: { Range: `bytes=${BODY.length}-` } });
    expect(response.status).to.equal(416);
    expect(response.headers['content-range']).to.equal(`bytes */${BODY.length}`);
  });

  it('an invalid range (bytes=5-2, its end before its start) is ignored: the whole file, 200 (RFC 9110 14.2)', async () => {
    for (const range of ['bytes=5-2', 'bytes=0-3,5-2', `bytes=${BODY.length + 5}-${BODY.length + 2}`]) {
      const response = await request(text.location, { headers: { Range: range } });
      expect(response.status, range).to.equal(200);
      expect(response.headers['content-range'], range).to.equal(undefined);
      expect(response.body.equals(BODY), range).to.equal(true);
    }
    // Valid but past the end is still unsatisfiable.
    const beyond = await request(text.location, { headers: { Range: `bytes=${BODY.length + 2}-${BODY.length + 5}` } });
    expect(beyond.status).to.equal(416);
    expect(beyond.headers['content-range']).to.equal(`bytes */${BODY.length}`);
  });

  it('If-None-Match with the ETag → 304 without a body; another ETag → 200', async () => {
    const { etag } = (await request(text.location, { method: 'HEAD' })).headers;
    const notModified = await request(text.location, { headers: { 'If-None-Match': etag! } });
    expect(notModified.status).to.equal(304);
    expect(notModified.body.length).to.equal(0);
    expect(notModified.headers.etag).to.equal(etag);
    const weak = await request(text.location, { headers: { 'If-None-Match': `W/${etag}` } });
    expect(weak.status, 'If-None-Match uses the weak comparison').to.equal(304);
    const listed = await request(text.location, { headers: { 'If-None-Match': `"other", ${etag}` } });
    expect(listed.status).to.equal(304);
    const other = await request(text.location, { headers: { 'If-None-Match': '"something-else"' } });
    expect(other.status).to.equal(200);
    expect(other.body.equals(BODY)).to.equal(true);
  });

  it('If-Match with another ETag → 412; with the ETag → 200', async () => {
    const { etag } = (await request(text.location, { method: 'HEAD' })).headers;
    const failed = await request(text.location, { headers: { 'If-Match': '"something-else"' } });
    expect(failed.status).to.equal(412);
    const matched = await request(text.location, { headers: { 'If-Match': etag! } });
    expect(matched.status).to.equal(200);
  });

  it('the ETag changes with the content', async () => {
    const other = await upload(server, alice, Buffer.concat([BODY, Buffer.from('one more line\n')]));
    const a = (await request(text.location, { method: 'HEAD' })).headers.etag;
    const b = (await request(other.location, { method: 'HEAD' })).headers.etag;
    expect(a).to.not.equal(b);
  });

  it('never serves an incomplete upload, not even to its owner', async () => {
    const client = tus(server.url, alice);
    const created = await client.create(BODY.length, { filetype: 'text/plain' });
    const location = new URL(created.headers.location!, server.url).href;
    expect((await client.patch(location, 0, BODY.subarray(0, 10))).status).to.equal(204);
    const callers: Array<Record<string, string>> = [{}, { Authorization: `Bearer ${alice}` }];
    for (const headers of callers) {
      expect((await request(location, { headers })).status).to.equal(404);
      expect((await request(location, { method: 'HEAD', headers })).status).to.equal(404);
      expect((await request(location, { headers: { ...headers, Range: 'bytes=0-4' } })).status).to.equal(404);
    }
    // An upload created with no byte yet, too.
    const empty = await client.create(BODY.length, { filetype: 'text/plain' });
    expect((await request(new URL(empty.headers.location!, server.url).href)).status).to.equal(404);
  });

  it('answers 404 for an id that does not exist, and for odd ids', async () => {
    expect((await request(`${server.url}/files/0123456789abcdef0123456789abcdef`)).status).to.equal(404);
    expect((await request(`${server.url}/files/0123456789abcdef0123456789abcdef`, { method: 'HEAD' })).status).to.equal(404);
    // Sent as written: a URL parser would resolve the dot segments before they reach the server.
    for (const id of ['..', '%2e%2e', '..%2F..%2Fpackage.json', '%2Fetc%2Fpasswd', '.', 'records', '..%2Frecords']) {
      const response = await rawPathRequest(server.url, `/files/${id}`);
      expect(response.status, id).to.equal(404);
    }
  });

  it('HEAD with Tus-Resumable is the tus offset request, with Repr-Digest once complete', async () => {
    const done = await tus(server.url, alice).head(text.location);
    expect(done.status).to.equal(200);
    expect(done.headers['upload-offset']).to.equal(String(BODY.length));
    expect(done.headers['upload-length']).to.equal(String(BODY.length));
    expect(done.headers['tus-resumable']).to.equal('1.0.0');
    expect(done.headers['cache-control']).to.equal('no-store');
    expect(done.headers['repr-digest']).to.equal(reprDigestOf(BODY));

    const client = tus(server.url, alice);
    const created = await client.create(BODY.length, { filetype: 'text/plain' });
    const location = new URL(created.headers.location!, server.url).href;
    await client.patch(location, 0, BODY.subarray(0, 7));
    const partial = await client.head(location);
    expect(partial.status).to.equal(200);
    expect(partial.headers['upload-offset']).to.equal('7');
    expect(partial.headers['repr-digest'], 'no digest before completion').to.equal(undefined);
  });

  it('the tus offset request still needs the owner\'s token', async () => {
    const anonymous = await request(text.location, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } });
    expect(anonymous.status).to.equal(401);
    const bob = await tus(server.url, await signToken('bob')).head(text.location);
    expect(bob.status).to.equal(404);
  });
});

describe('file serving: Content-Disposition', () => {
  let server: AppServer;
  let alice: string;
  before(async () => {
    server = await startApp({ config: { JWT_SECRET: TEST_SECRET } });
    alice = await signToken('alice');
  });
  after(() => server.close());

  const dispositionFor = async (filename: string) => {
    const { location } = await upload(server, alice, TEXT, { filetype: 'text/plain', filename });
    const response = await request(location);
    expect(response.status).to.equal(200);
    return dispositionParams(response.headers['content-disposition']);
  };

  it('keeps path separators out of a name like ../../etc/passwd', async () => {
    const params = await dispositionFor('../../etc/passwd');
    expect(params.filename).to.be.a('string');
    expect(params.filename).not.to.match(/[/\\]/);
    const decoded = decodeExtValue(params.filenameStar!);
    expect(decoded).not.to.match(/[/\\]/);
    expect(decoded).to.include('passwd');
    const windows = await dispositionFor('..\\..\\boot.ini');
    expect(windows.filename).not.to.match(/[/\\]/);
    expect(decodeExtValue(windows.filenameStar!)).not.to.match(/[/\\]/);
  });

  it('carries a unicode name exactly in filename*, with an ASCII fallback', async () => {
    const name = 'résumé — 日本語 😀.txt';
    const params = await dispositionFor(name);
    // One '_' for each character the fallback cannot carry, the emoji included.
    expect(params.filename).to.equal('r_sum_ _ ___ _.txt');
    expect(decodeExtValue(params.filenameStar!)).to.equal(name);
  });

  it("encodes RFC 8187's reserved characters (' ( ) *) and quotes safely", async () => {
    const name = `it's (final) *v2* "draft".txt`;
    const params = await dispositionFor(name);
    expect(decodeExtValue(params.filenameStar!)).to.equal(name);
    expect(params.filename).not.to.include('"');
  });

  it('cuts a very long name without splitting a character', async () => {
    const params = await dispositionFor(`${'a'.repeat(254)}😀😀.txt`);
    const decoded = decodeExtValue(params.filenameStar!);
    expect(decoded.startsWith('a'.repeat(254))).to.equal(true);
    expect(Buffer.from(decoded, 'utf8').toString('utf8'), 'well-formed UTF-16').to.equal(decoded);
    expect(decoded).to.equal(`${'a'.repeat(254)}😀`);
  });

  it('cannot inject a header through control characters in the name', async () => {
    const { location } = await upload(server, alice, TEXT, { filetype: 'text/plain', filename: 'a\r\nSet-Cookie: x=1\r\n.txt' });
    const response = await request(location);
    expect(response.status).to.equal(200);
    expect(response.headers['set-cookie']).to.equal(undefined);
    expect(response.headers['content-disposition']).not.to.match(/[\r\n]/);
  });

  it('is inline without a filename when none was given', async () => {
    const { location } = await upload(server, alice, TEXT, { filetype: 'text/plain' });
    const response = await request(location);
    expect(response.headers['content-disposition']).to.equal('inline');
  });
});

describe('file serving: FILES_PUBLIC=false', () => {
  let server: AppServer;
  let alice: string;
  let uploaded: Uploaded;
  before(async () => {
    server = await startApp({ config: { JWT_SECRET: TEST_SECRET, FILES_PUBLIC: false } });
    alice = await signToken('alice');
    uploaded = await upload(server, alice, BODY);
  });
  after(() => server.close());

  it('serves the owner (Bearer token), with ranges', async () => {
    const headers = { Authorization: `Bearer ${alice}` };
    const response = await request(uploaded.location, { headers });
    expect(response.status).to.equal(200);
    expect(response.body.equals(BODY)).to.equal(true);
    expectDownloadHeaders(response, BODY, 'text/plain');
    const head = await request(uploaded.location, { method: 'HEAD', headers });
    expect(head.status).to.equal(200);
    const range = await request(uploaded.location, { headers: { ...headers, Range: 'bytes=0-9' } });
    expect(range.status).to.equal(206);
    expect(range.body.equals(BODY.subarray(0, 10))).to.equal(true);
  });

  it('answers 404 to another user, to anonymous callers and to bad tokens', async () => {
    const bob = await signToken('bob');
    const expired = await signToken('alice', {}, TEST_SECRET, Math.floor(Date.now() / 1000) - 120);
    const forged = await signToken('alice', {}, 'a-different-secret-of-some-length');
    const fileEtag = (await request(uploaded.location, { method: 'HEAD', headers: { Authorization: `Bearer ${alice}` } })).headers.etag;
    expect(fileEtag).to.be.a('string');
    const callers: Array<[string, Record<string, string>]> = [
      ['bob', { Authorization: `Bearer ${bob}` }],
      ['anonymous', {}],
      ['expired alice', { Authorization: `Bearer ${expired}` }],
      ['forged alice', { Authorization: `Bearer ${forged}` }],
      ['garbage', { Authorization: 'Bearer garbage' }],
    ];
    for (const [who, headers] of callers) {
      for (const method of ['GET', 'HEAD']) {
        const response = await request(uploaded.location, { method, headers });
        expect(response.status, `${method} as ${who}`).to.equal(404);
        expect(response.headers.etag, `${method} as ${who}: not the file's ETag`).to.not.equal(fileEtag);
        expect(response.headers['repr-digest'], `${method} as ${who}: no digest`).to.equal(undefined);
      }
    }
    // Exactly as for an id that does not exist.
    const missing = await request(`${server.url}/files/0123456789abcdef0123456789abcdef`, { headers: { Authorization: `Bearer ${bob}` } });
    const foreign = await request(uploaded.location, { headers: { Authorization: `Bearer ${bob}` } });
    expect(foreign.status).to.equal(missing.status);
    expect(foreign.text).to.equal(missing.text);
    expect(foreign.headers['content-type']).to.equal(missing.headers['content-type']);
  });
});

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { exportJWK, exportPKCS8, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { startApp, type AppServer } from './helpers/app-server.js';
import { request, tus, type RawResponse } from './helpers/http.js';
import { signToken, TEST_SECRET } from './helpers/server.js';
import { TEXT } from './samples.js';

const nowSeconds = () => Math.floor(Date.now() / 1000);
const b64url = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');

/** Signs `claims` (sub defaults to alice, exp to one hour) with any key and algorithm. */
async function sign(
  key: CryptoKey | Uint8Array | KeyObject,
  alg: string,
  claims: JWTPayload = {},
  header: Record<string, unknown> = {},
): Promise<string> {
  const payload: JWTPayload = { sub: 'alice', iat: nowSeconds(), exp: nowSeconds() + 3600, ...claims };
  for (const name of Object.keys(payload)) if (payload[name] === undefined) delete payload[name];
  return new SignJWT(payload).setProtectedHeader({ alg, ...header }).sign(key);
}

const secret = Buffer.from(TEST_SECRET, 'utf8');

/** These tests create many uploads per user; the quotas are not what they test. */
const LIBERAL_QUOTAS = { MAX_ACTIVE_UPLOADS_PER_USER: 1000, UPLOADS_PER_HOUR_PER_USER: 1000 };

function expect401(response: RawResponse, what: string): void {
  expect(response.status, `${what}: status`).to.equal(401);
  expect(response.headers['www-authenticate'], `${what}: WWW-Authenticate`).to.match(/^Bearer\b/);
}

/** Creates a small text upload with `token` and returns its URL. */
async function createUpload(url: string, token: string): Promise<string> {
  const created = await tus(url, token).create(TEXT.length, { filetype: 'text/plain', filename: 'a.txt' });
  expect(created.status, `creation: ${created.text}`).to.equal(201);
  return new URL(created.headers.location!, url).href;
}

/** The four authenticated tus requests, each with the given Authorization header (or none). */
function tusRequests(url: string, location: string, authorization: string | undefined) {
  const auth: Record<string, string> = authorization === undefined ? {} : { Authorization: authorization };
  const base = { 'Tus-Resumable': '1.0.0', ...auth };
  return {
    POST: () =>
      request(`${url}/files/`, {
        method: 'POST',
        headers: { ...base, 'Upload-Length': TEXT.length, 'Upload-Metadata': `filetype ${Buffer.from('text/plain').toString('base64')}` },
      }),
    HEAD: () => request(location, { method: 'HEAD', headers: base }),
    PATCH: () =>
      request(location, {
        method: 'PATCH',
        headers: { ...base, 'Upload-Offset': 0, 'Content-Type': 'application/offset+octet-stream' },
        body: TEXT,
      }),
    DELETE: () => request(location, { method: 'DELETE', headers: base }),
  };
}

/** Asserts every tus method is refused with 401 for `authorization`, and that nothing changed. */
async function expectRefusedEverywhere(server: AppServer, goodToken: string, authorization: string | undefined, what: string) {
  const location = await createUpload(server.url, goodToken);
  const requests = tusRequests(server.url, location, authorization);
  for (const [method, send] of Object.entries(requests)) expect401(await send(), `${what} ${method}`);
  // The refused PATCH wrote nothing, the refused DELETE removed nothing.
  const head = await tus(server.url, goodToken).head(location);
  expect(head.status, `${what}: upload still there`).to.equal(200);
  expect(head.headers['upload-offset'], `${what}: offset unchanged`).to.equal('0');
}

/** Asserts that `token` is accepted (creation answers 201). */
async function expectAccepted(url: string, token: string, what: string): Promise<string> {
  const created = await tus(url, token).create(TEXT.length);
  expect(created.status, `${what}: ${created.text}`).to.equal(201);
  return new URL(created.headers.location!, url).href;
}

async function expectRejected(url: string, token: string, what: string): Promise<void> {
  expect401(await tus(url, token).create(TEXT.length), what);
}

describe('auth: HS256 shared secret', () => {
  let server: AppServer;
  let good: string;
  before(async () => {
    server = await startApp({ config: { ...LIBERAL_QUOTAS, JWT_SECRET: TEST_SECRET } });
    good = await signToken('alice');
  });
  after(() => server.close());

  it('accepts a valid HS256 token on POST, HEAD, PATCH and DELETE', async () => {
    const location = await createUpload(server.url, good);
    const client = tus(server.url, good);
    expect((await client.head(location)).status).to.equal(200);
    expect((await client.patch(location, 0, TEXT)).status).to.equal(204);
    const other = await createUpload(server.url, good);
    expect((await client.delete(other)).status).to.equal(204);
  });

  it('OPTIONS /files/ needs no token', async () => {
    const response = await request(`${server.url}/files/`, { method: 'OPTIONS' });
    expect(response.status).to.equal(204);
    expect(response.headers['tus-version']).to.include('1.0.0');
  });

  it('refuses a missing Authorization header with 401 + WWW-Authenticate: Bearer', async () => {
    await expectRefusedEverywhere(server, good, undefined, 'missing header');
  });

  it('refuses an empty Authorization header and a bare "Bearer"', async () => {
    await expectRefusedEverywhere(server, good, '', 'empty header');
    await expectRefusedEverywhere(server, good, 'Bearer', 'bare Bearer');
  });

  it('refuses other schemes, even carrying a valid token', async () => {
    await expectRefusedEverywhere(server, good, `Basic ${Buffer.from('alice:pw').toString('base64')}`, 'Basic');
    await expectRefusedEverywhere(server, good, `Token ${good}`, 'Token scheme');
    await expectRefusedEverywhere(server, good, good, 'no scheme');
  });

  it('accepts the Bearer scheme case-insensitively', async () => {
    const created = await tus(server.url, good).create(TEXT.length, { filetype: 'text/plain' }, { Authorization: `bearer ${good}` });
    expect(created.status).to.equal(201);
  });

  it('refuses garbage tokens', async () => {
    await expectRefusedEverywhere(server, good, 'Bearer garbage', 'garbage');
    await expectRefusedEverywhere(server, good, 'Bearer a.b.c', 'a.b.c');
    await expectRefusedEverywhere(server, good, `Bearer ${good}.extra`, 'four parts');
  });

  it('refuses an expired token (60 s ago) but tolerates a little clock skew (2 s ago)', async () => {
    const expired = await sign(secret, 'HS256', { iat: nowSeconds() - 3600, exp: nowSeconds() - 60 });
    await expectRefusedEverywhere(server, good, `Bearer ${expired}`, 'expired 60 s ago');
    const justExpired = await sign(secret, 'HS256', { iat: nowSeconds() - 3600, exp: nowSeconds() - 2 });
    await expectAccepted(server.url, justExpired, 'expired 2 s ago is within the 5 s tolerance');
  });

  it('refuses a token that is not valid yet (nbf one minute ahead)', async () => {
    await expectRejected(server.url, await sign(secret, 'HS256', { nbf: nowSeconds() + 60 }), 'nbf in the future');
  });

  it('refuses a bad signature', async () => {
    const otherSecret = await signToken('alice', {}, 'another-secret-that-is-long-enough');
    await expectRefusedEverywhere(server, good, `Bearer ${otherSecret}`, 'wrong secret');
    // The right header and payload, another token's signature.
    const [h, p] = good.split('.');
    const forged = `${h}.${b64url({ sub: 'mallory', exp: nowSeconds() + 3600 })}.${good.split('.')[2]}`;
    await expectRejected(server.url, forged, 'payload swapped');
    await expectRejected(server.url, `${h}.${p}.${'A'.repeat(43)}`, 'signature replaced');
  });

  it('refuses an unsigned token (alg: none)', async () => {
    const payload = { sub: 'alice', iat: nowSeconds(), exp: nowSeconds() + 3600 };
    for (const alg of ['none', 'None', 'NONE']) {
      const unsigned = `${b64url({ alg, typ: 'JWT' })}.${b64url(payload)}.`;
      await expectRefusedEverywhere(server, good, `Bearer ${unsigned}`, `alg ${alg}`);
    }
  });

  it('refuses HS384 / HS512 even with the right secret', async () => {
    await expectRejected(server.url, await sign(secret, 'HS512'), 'HS512');
    await expectRejected(server.url, await sign(secret, 'HS384'), 'HS384');
  });

  it('refuses a token without sub, or with an empty or non-string sub', async () => {
    await expectRefusedEverywhere(server, good, `Bearer ${await sign(secret, 'HS256', { sub: undefined })}`, 'no sub');
    await expectRejected(server.url, await sign(secret, 'HS256', { sub: '' }), 'empty sub');
    await expectRejected(server.url, await sign(secret, 'HS256', { sub: 42 } as unknown as JWTPayload), 'numeric sub');
  });

  it('a token whose cache entry would outlive exp is refused once expired', async function () {
    this.timeout(20_000);
    const shortLived = await sign(secret, 'HS256', { exp: nowSeconds() + 2 });
    const location = await expectAccepted(server.url, shortLived, 'before exp');
    expect((await tus(server.url, shortLived).head(location)).status, 'cached and still valid').to.equal(200);
    // exp + 5 s tolerance + margin: the cached verification must not be reused.
    await new Promise((resolve) => setTimeout(resolve, 8_500));
    expect401(await tus(server.url, shortLived).head(location), 'HEAD after exp + tolerance');
    await expectRejected(server.url, shortLived, 'POST after exp + tolerance');
  });
});

describe('auth: PEM public keys', () => {
  const cases = [
    { alg: 'RS256', options: { modulusLength: 2048 } },
    { alg: 'ES256', options: {} },
    { alg: 'EdDSA', options: { crv: 'Ed25519' } },
  ] as const;

  for (const { alg, options } of cases) {
    describe(alg, () => {
      let server: AppServer;
      let privateKey: CryptoKey;
      let pem: string;
      let good: string;
      before(async () => {
        const pair = await generateKeyPair(alg, { ...options, extractable: true });
        privateKey = pair.privateKey;
        pem = await exportSPKI(pair.publicKey);
        // No JWT_SECRET: only the public key is configured.
        server = await startApp({ config: { ...LIBERAL_QUOTAS, JWT_PUBLIC_KEY: pem } });
        good = await sign(privateKey, alg);
      });
      after(() => server.close());

      it(`accepts a valid ${alg} token on every tus method`, async () => {
        const location = await createUpload(server.url, good);
        const client = tus(server.url, good);
        expect((await client.head(location)).status).to.equal(200);
        expect((await client.patch(location, 0, TEXT)).status).to.equal(204);
        expect((await client.delete(await createUpload(server.url, good))).status).to.equal(204);
      });

      it('refuses a token signed by another key of the same type', async () => {
        const other = await generateKeyPair(alg, { ...options });
        await expectRefusedEverywhere(server, good, `Bearer ${await sign(other.privateKey, alg)}`, 'other key');
      });

      it('refuses HS256 signed with the public key PEM as the secret (algorithm confusion)', async () => {
        for (const text of [pem, pem.trim()]) {
          const confused = await sign(Buffer.from(text, 'utf8'), 'HS256');
          await expectRefusedEverywhere(server, good, `Bearer ${confused}`, 'HS256 with the PEM');
        }
      });

      it('refuses alg none, expired tokens and tokens without sub', async () => {
        const unsigned = `${b64url({ alg: 'none' })}.${b64url({ sub: 'alice', exp: nowSeconds() + 3600 })}.`;
        await expectRejected(server.url, unsigned, 'alg none');
        await expectRejected(server.url, await sign(privateKey, alg, { exp: nowSeconds() - 60 }), 'expired');
        await expectRejected(server.url, await sign(privateKey, alg, { sub: undefined }), 'no sub');
      });

      if (alg === 'RS256') {
        it('pins RS256: PS256 / RS512 with the same key are refused', async () => {
          // A KeyObject may sign with any RSA algorithm (a CryptoKey is bound to one).
          const keyObject = createPrivateKey(await exportPKCS8(privateKey));
          await expectAccepted(server.url, await sign(keyObject, 'RS256'), 'RS256 with the KeyObject');
          await expectRejected(server.url, await sign(keyObject, 'PS256'), 'PS256');
          await expectRejected(server.url, await sign(keyObject, 'RS512'), 'RS512');
        });
      }
    });
  }
});

/** A JWKS endpoint on loopback answering with `respond`, and a tusgate app that fetches its keys there. */
async function withJwks(respond: http.RequestListener): Promise<{ server: AppServer; close(): Promise<void> }> {
  const jwks = http.createServer(respond);
  await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
  const { port } = jwks.address() as AddressInfo;
  const server = await startApp({ config: { ...LIBERAL_QUOTAS, JWT_JWKS_URL: `http://127.0.0.1:${port}/.well-known/jwks.json` } });
  return {
    server,
    async close() {
      await server.close();
      jwks.closeAllConnections();
      await new Promise<void>((resolve) => jwks.close(() => resolve()));
    },
  };
}

describe('auth: JWKS URL', () => {
  let jwks: Awaited<ReturnType<typeof withJwks>>;
  let server: AppServer;
  let rsa: CryptoKey;
  let ec: CryptoKey;
  let jwksRequests = 0;

  before(async () => {
    const rsaPair = await generateKeyPair('RS256', { extractable: true });
    const ecPair = await generateKeyPair('ES256', { extractable: true });
    rsa = rsaPair.privateKey;
    ec = ecPair.privateKey;
    const keys = [
      { ...(await exportJWK(rsaPair.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
      { ...(await exportJWK(ecPair.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' },
    ];
    jwks = await withJwks((req, res) => {
      jwksRequests++;
      if (req.url !== '/.well-known/jwks.json') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ keys }));
    });
    server = jwks.server;
  });
  after(() => jwks?.close());

  it('accepts tokens signed by any key of the set, picked by kid', async () => {
    await expectAccepted(server.url, await sign(rsa, 'RS256', {}, { kid: 'rsa-1' }), 'RS256 kid rsa-1');
    await expectAccepted(server.url, await sign(ec, 'ES256', {}, { kid: 'ec-1' }), 'ES256 kid ec-1');
    expect(jwksRequests, 'the JWKS was fetched').to.be.greaterThan(0);
  });

  it('refuses a token from a key that is not in the set', async () => {
    const stranger = await generateKeyPair('RS256');
    await expectRejected(server.url, await sign(stranger.privateKey, 'RS256', {}, { kid: 'rsa-1' }), 'unknown key, known kid');
    await expectRejected(server.url, await sign(stranger.privateKey, 'RS256', {}, { kid: 'nope' }), 'unknown kid');
  });

  it('refuses HS256, alg none and expired tokens', async () => {
    const location = await createUpload(server.url, await sign(rsa, 'RS256', {}, { kid: 'rsa-1' }));
    const hs = await sign(Buffer.from(TEST_SECRET), 'HS256', {}, { kid: 'rsa-1' });
    expect401(await tus(server.url, hs).head(location), 'HS256');
    const unsigned = `${b64url({ alg: 'none', kid: 'rsa-1' })}.${b64url({ sub: 'alice', exp: nowSeconds() + 3600 })}.`;
    expect401(await tus(server.url, unsigned).head(location), 'alg none');
    const expired = await sign(rsa, 'RS256', { exp: nowSeconds() - 60 }, { kid: 'rsa-1' });
    expect401(await tus(server.url, expired).head(location), 'expired');
  });
});

describe('auth: JWKS outage', () => {
  let jwks: Awaited<ReturnType<typeof withJwks>>;
  let server: AppServer;
  let rsa: CryptoKey;
  let answer: 'refuse' | 'error' | 'garbage' | 'keys' = 'refuse';

  before(async () => {
    const pair = await generateKeyPair('RS256', { extractable: true });
    rsa = pair.privateKey;
    const keys = [{ ...(await exportJWK(pair.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' }];
    jwks = await withJwks((_req, res) => {
      if (answer === 'refuse') return void res.socket?.destroy();
      if (answer === 'error') return void res.writeHead(500).end();
      if (answer === 'garbage') return void res.writeHead(200, { 'Content-Type': 'application/json' }).end('<html>');
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ keys }));
    });
    server = jwks.server;
  });
  after(() => jwks?.close());

  it('answers 503 with Retry-After while the key set cannot be fetched, then accepts the token', async () => {
    const token = await sign(rsa, 'RS256', {}, { kid: 'rsa-1' });
    for (const mode of ['refuse', 'error', 'garbage'] as const) {
      answer = mode;
      const created = await tus(server.url, token).create(TEXT.length, { filetype: 'text/plain' });
      expect(created.status, `${mode}: ${created.text}`).to.equal(503);
      expect(created.headers['retry-after'], mode).to.be.a('string');
      expect(created.headers['content-type'], mode).to.match(/^text\/plain/);
      expect(created.headers['tus-resumable'], mode).to.equal('1.0.0');
      // A resume's HEAD: 423, which tus-js-client retries (after a 503 it would start over from byte 0).
      const head = await tus(server.url, token).head(`${server.url}/files/${'a'.repeat(32)}`);
      expect(head.status, mode).to.equal(423);
      expect(head.headers['retry-after'], mode).to.equal('1');
      const legacy = await request(`${server.url}/api/v1/upload/initiate`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ filename: 'a.txt', file_size: 10, chunk_size: 10, mime_type: 'text/plain' }),
      });
      expect(legacy.status, `${mode}, legacy: ${legacy.text}`).to.equal(503);
    }
    answer = 'keys';
    await expectAccepted(server.url, token, 'once the key set answers');
    // A key set that answers but has no key for the token is the token's fault.
    const stranger = await generateKeyPair('RS256');
    await expectRejected(server.url, await sign(stranger.privateKey, 'RS256', {}, { kid: 'other' }), 'unknown kid');
  });
});

describe('auth: JWT_ISSUER and JWT_AUDIENCE', () => {
  let server: AppServer;
  before(async () => {
    server = await startApp({ config: { ...LIBERAL_QUOTAS, JWT_SECRET: TEST_SECRET, JWT_ISSUER: 'https://issuer.example', JWT_AUDIENCE: 'tusgate' } });
  });
  after(() => server.close());

  it('accepts a token with the configured iss and aud', async () => {
    await expectAccepted(server.url, await sign(secret, 'HS256', { iss: 'https://issuer.example', aud: 'tusgate' }), 'iss + aud');
    await expectAccepted(server.url, await sign(secret, 'HS256', { iss: 'https://issuer.example', aud: ['other', 'tusgate'] }), 'aud array');
  });

  it('refuses a wrong or missing iss', async () => {
    await expectRejected(server.url, await sign(secret, 'HS256', { iss: 'https://evil.example', aud: 'tusgate' }), 'wrong iss');
    await expectRejected(server.url, await sign(secret, 'HS256', { aud: 'tusgate' }), 'no iss');
  });

  it('refuses a wrong or missing aud', async () => {
    await expectRejected(server.url, await sign(secret, 'HS256', { iss: 'https://issuer.example', aud: 'someone-else' }), 'wrong aud');
    await expectRejected(server.url, await sign(secret, 'HS256', { iss: 'https://issuer.example' }), 'no aud');
  });
});

describe('auth: without JWT_ISSUER / JWT_AUDIENCE', () => {
  let server: AppServer;
  before(async () => (server = await startApp({ config: { ...LIBERAL_QUOTAS, JWT_SECRET: TEST_SECRET } })));
  after(() => server.close());

  it('does not check iss', async () => {
    await expectAccepted(server.url, await sign(secret, 'HS256', { iss: 'https://anyone.example' }), 'any iss');
  });
});

describe('auth: JWT_USER_CLAIM', () => {
  let server: AppServer;
  before(async () => (server = await startApp({ config: { ...LIBERAL_QUOTAS, JWT_SECRET: TEST_SECRET, JWT_USER_CLAIM: 'email' } })));
  after(() => server.close());

  it('names the user by the configured claim, not by sub', async () => {
    const owner = await sign(secret, 'HS256', { sub: 'same-sub', email: 'alice@example.com' });
    const location = await createUpload(server.url, owner);
    // Same sub, another email: another user, who gets 404 like for a missing upload.
    const otherEmail = await sign(secret, 'HS256', { sub: 'same-sub', email: 'bob@example.com' });
    expect((await tus(server.url, otherEmail).head(location)).status).to.equal(404);
    // Another sub, same email: the same user.
    const sameEmail = await sign(secret, 'HS256', { sub: 'different-sub', email: 'alice@example.com' });
    expect((await tus(server.url, sameEmail).head(location)).status).to.equal(200);
  });

  it('refuses a token without the configured claim, even with a sub', async () => {
    await expectRejected(server.url, await sign(secret, 'HS256', { sub: 'alice' }), 'no email claim');
  });
});

import { expect } from 'chai';
import { request, tus } from './helpers/http.js';
import { startServer, type TestServer } from './helpers/server.js';
import { TEXT } from './samples.js';

// CORS as a browser page at another origin meets it: tus, downloads, /info and the legacy API.

async function uploadText(server: TestServer, token: string): Promise<string> {
  const client = tus(server.url, token);
  const location = (await client.create(TEXT.length)).headers.location!;
  expect((await client.patch(location, 0, TEXT)).status).to.equal(204);
  return location;
}

describe('CORS', () => {
  describe('with CORS_ORIGINS=*', () => {
    let server: TestServer;
    let token: string;
    before(async () => {
      server = await startServer({ CORS_ORIGINS: ['*'] });
      token = await server.token('alice');
    });
    after(() => server.close());

    it('lets any origin read every kind of answer, its own origin echoed', async () => {
      const origin = 'https://any.example';
      const location = await uploadText(server, token);
      const answers = [
        await request(location, { headers: { Origin: origin } }),
        await request(`${location}/info`, { headers: { Origin: origin } }),
        await request(`${server.url}/api/v1/upload/x/status`, { headers: { Origin: origin, Authorization: `Bearer ${token}` } }),
        await request(`${server.url}/files/`, { method: 'POST', headers: { Origin: origin, 'Tus-Resumable': '1.0.0', 'Upload-Length': 1 } }),
        await tus(server.url, token).head(location, { Origin: origin }),
      ];
      expect(answers.map((res) => res.status)).to.deep.equal([200, 200, 404, 401, 200]);
      for (const res of answers) expect(res.headers['access-control-allow-origin']).to.equal(origin);
    });
  });

  describe('with configured origins', () => {
    let server: TestServer;
    let token: string;
    const allowed = 'http://localhost:3000';
    before(async () => {
      server = await startServer({ CORS_ORIGINS: [allowed, 'http://127.0.0.1:3000'] });
      token = await server.token('alice');
    });
    after(() => server.close());

    it('answers a download preflight with GET and the headers asked for, and exposes the range and validator headers', async () => {
      const location = await uploadText(server, token);
      const preflight = await request(location, {
        method: 'OPTIONS',
        headers: { Origin: allowed, 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization,range,if-none-match' },
      });
      expect(preflight.status).to.equal(204);
      expect(preflight.headers['access-control-allow-origin']).to.equal(allowed);
      expect(preflight.headers['access-control-allow-methods']).to.include('GET');
      expect(preflight.headers['access-control-allow-headers']).to.equal('authorization,range,if-none-match');
      const ranged = await request(location, { headers: { Origin: allowed, Range: 'bytes=0-9' } });
      expect(ranged.status).to.equal(206);
      const exposed = String(ranged.headers['access-control-expose-headers']).split(/\s*,\s*/);
      expect(exposed).to.include.members(['ETag', 'Content-Range', 'Accept-Ranges', 'Content-Disposition']);
    });

    it('lets a page read the challenge of a 401', async () => {
      const refused = await request(`${server.url}/files/`, { method: 'POST', headers: { Origin: allowed, 'Tus-Resumable': '1.0.0', 'Upload-Length': 1 } });
      expect(refused.status).to.equal(401);
      expect(refused.headers['www-authenticate']).to.be.a('string');
      expect(String(refused.headers['access-control-expose-headers']).split(/\s*,\s*/)).to.include('WWW-Authenticate');
    });

    it('allows the request id header tus-js-client adds, and the digest headers, in a tus preflight', async () => {
      const preflight = await request(`${server.url}/files/`, {
        method: 'OPTIONS',
        headers: { Origin: allowed, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'tus-resumable,upload-length,x-request-id' },
      });
      expect(preflight.status).to.equal(204);
      const allowedHeaders = String(preflight.headers['access-control-allow-headers']).toLowerCase().split(/\s*,\s*/);
      expect(allowedHeaders).to.include.members(['x-request-id', 'upload-checksum', 'repr-digest', 'content-digest']);
    });

    it('names no origin to a tus request from another origin, or from none', async () => {
      const client = tus(server.url, token);
      const location = (await client.create(TEXT.length)).headers.location!;
      for (const headers of [{ Origin: 'http://evil.example' }, {}] as Array<Record<string, string>>) {
        const head = await client.head(location, headers);
        expect(head.status).to.equal(200);
        expect(head.headers['access-control-allow-origin']).to.equal(undefined);
      }
      expect((await client.head(location, { Origin: 'http://127.0.0.1:3000' })).headers['access-control-allow-origin']).to.equal('http://127.0.0.1:3000');
    });
  });
});

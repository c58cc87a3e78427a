import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { request, tus } from './helpers/http.js';
import { startServer, type TestServer } from './helpers/server.js';
import { PNG } from './samples.js';

describe('GET /files/<id>/info', () => {
  for (const filesPublic of [true, false]) {
    describe(`with FILES_PUBLIC=${filesPublic}`, () => {
      let server: TestServer;
      before(async () => (server = await startServer({ FILES_PUBLIC: filesPublic })));
      after(() => server.close());

      it('shows the owner an incomplete upload, hides it from others, then describes the verified file', async () => {
        const alice = await server.token('alice');
        const client = tus(server.url, alice);
        const location = (await client.create(PNG.length, { filetype: 'image/png', filename: 'p.png' })).headers.location!;
        await client.patch(location, 0, PNG.subarray(0, 20));
        const info = `${location}/info`;
        const asOwner = await request(info, { headers: { Authorization: `Bearer ${alice}` } });
        expect(asOwner.status).to.equal(200);
        const partial = JSON.parse(asOwner.text);
        expect(partial).to.include({ state: 'uploading', offset: 20, size: PNG.length, declared_type: 'image/png', sha256: null, verified_type: null });
        expect(Date.parse(partial.expires_at)).to.be.greaterThan(Date.now());
        expect(JSON.stringify(partial)).to.not.include('alice');
        expect((await request(info)).status).to.equal(404);
        expect((await request(info, { headers: { Authorization: `Bearer ${await server.token('mallory')}` } })).status).to.equal(404);

        await client.patch(location, 20, PNG.subarray(20));
        const anonymous = await request(info);
        expect(anonymous.status).to.equal(filesPublic ? 200 : 404);
        const done = JSON.parse((await request(info, { headers: { Authorization: `Bearer ${alice}` } })).text);
        expect(done).to.include({
          state: 'complete',
          offset: PNG.length,
          verified_type: 'image/png',
          filename: 'p.png',
          sha256: createHash('sha256').update(PNG).digest('hex'),
          expires_at: null,
        });
      });
    });
  }

  it('tells the owner, and only the owner, that an upload failed or expired, and why', async () => {
    const server = await startServer({ UPLOAD_EXPIRY_SECONDS: 1 });
    try {
      const alice = await server.token('alice');
      const client = tus(server.url, alice);
      const asOwner = async (location: string) => JSON.parse((await request(`${location}/info`, { headers: { Authorization: `Bearer ${alice}` } })).text);
      const failed = (await client.create(PNG.length, { filetype: 'image/png', sha256: 'c'.repeat(64) })).headers.location!;
      expect((await client.patch(failed, 0, PNG)).status).to.equal(460);
      expect(await asOwner(failed)).to.include({ state: 'failed', reason: 'hash', sha256: null });
      expect((await request(`${failed}/info`)).status).to.equal(404);
      expect((await client.head(failed)).status).to.equal(404);
      const stale = (await client.create(PNG.length, { filetype: 'image/png' })).headers.location!;
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await server.tusgate.sweep();
      expect(await asOwner(stale)).to.include({ state: 'expired', offset: null });
      expect((await request(`${stale}/info`, { headers: { Authorization: `Bearer ${await server.token('mallory')}` } })).status).to.equal(404);
    } finally {
      await server.close();
    }
  });
});

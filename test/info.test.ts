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
});

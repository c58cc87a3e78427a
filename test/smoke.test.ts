import { expect } from 'chai';
import { startServer, type TestServer } from './helpers/server.js';
import { request, tus } from './helpers/http.js';
import { PNG } from './samples.js';

describe('smoke', () => {
  let server: TestServer;
  before(async () => (server = await startServer()));
  after(() => server.close());

  it('creates, uploads and serves a PNG', async () => {
    const client = tus(server.url, await server.token());
    const created = await client.create(PNG.length, { filetype: 'image/png', filename: 'a.png' });
    expect(created.status).to.equal(201);
    const location = created.headers.location!;
    const patched = await client.patch(location, 0, PNG);
    expect(patched.status).to.equal(204);
    const got = await request(location);
    expect(got.status).to.equal(200);
    expect(got.headers['content-type']).to.equal('image/png');
    expect(got.body.equals(PNG)).to.equal(true);
  });
});

import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { buildServer } from '../scripts/build.js';
import { request, tus } from './helpers/http.js';
import { signToken, TEST_SECRET } from './helpers/server.js';
import { freePort, REPO_ROOT, runServer, type RunningServer } from './helpers/spawn.js';
import { PNG } from './samples.js';

// The production build (scripts/build.ts, `npm run build`): one bundle that plain Node runs, without
// tsx. The bundle lives in the repository (its dependencies are imported from node_modules), and it
// finds the demo page's browser files relative to itself.

describe('production build', function () {
  this.timeout(60_000);
  let buildDir: string;
  let dataDir: string;
  let server: RunningServer | undefined;
  let base: string;

  before(async () => {
    await fs.mkdir(path.join(REPO_ROOT, '.tmp'), { recursive: true });
    buildDir = await fs.mkdtemp(path.join(REPO_ROOT, '.tmp', 'build-test-'));
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tusgate-build-data-'));
    const bundle = await buildServer(path.join(buildDir, 'nested', 'tusgate.mjs'));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = runServer({ PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'warn' }, [bundle]);
    await server.waitForStdout(/tusgate listening/);
  });
  after(async () => {
    await server?.stop('SIGTERM').catch(() => undefined);
    await fs.rm(buildDir, { recursive: true, force: true });
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('runs on plain Node: health, an upload with its digest, and the download', async () => {
    expect((await request(`${base}/health`)).status).to.equal(200);
    const client = tus(base, await signToken('bundle-user'));
    const created = await client.create(PNG.length, { filetype: 'image/png', filename: 'a.png' });
    expect(created.status).to.equal(201);
    const location = new URL(created.headers.location!, base).href;
    const patched = await client.patch(location, 0, PNG);
    expect(patched.status).to.equal(204);
    expect(patched.headers['repr-digest']).to.equal(`sha-256=:${createHash('sha256').update(PNG).digest('base64')}:`);
    const got = await request(location);
    expect(got.status).to.equal(200);
    expect(got.body.equals(PNG)).to.equal(true);
  });

  it('serves the demo page, built from the browser files next to the sources', async () => {
    const page = await request(`${base}/demo/`);
    expect(page.status).to.equal(200);
    expect(page.text).to.include('<html');
    const script = await request(`${base}/demo/app.js`);
    expect(script.status).to.equal(200);
    expect(script.headers['content-type']).to.match(/javascript/);
    expect(script.body.length).to.be.greaterThan(10_000);
  });
});

import fs from 'node:fs/promises';
import http from 'node:http';
import { expect } from 'chai';
import { makeDataDir, signToken, TEST_SECRET } from './helpers/server.js';
import { memoryLogger, startApp, type AppServer } from './helpers/app-server.js';
import { waitFor } from './helpers/wait.js';
import { openPatch, request, tus } from './helpers/http.js';
import { TEXT } from './samples.js';

describe('ops: GET /health', () => {
  let server: AppServer;
  before(async () => (server = await startApp({ config: { JWT_SECRET: TEST_SECRET } })));
  after(() => server.close());

  it('answers the legacy shape without auth', async () => {
    const response = await request(`${server.url}/health`);
    expect(response.status).to.equal(200);
    expect(response.headers['content-type']).to.match(/^application\/json/);
    const body = JSON.parse(response.text) as Record<string, unknown>;
    expect(Object.keys(body)).to.deep.equal(['status', 'timestamp', 'upload_directory', 'max_file_size']);
    expect(body.status).to.equal('healthy');
    // Naive UTC ISO-8601 with microseconds, as the legacy API wrote it: no Z, no offset.
    expect(body.timestamp).to.match(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/);
    expect(Math.abs(Date.parse(`${body.timestamp as string}Z`) - Date.now())).to.be.lessThan(60_000);
    expect(body.upload_directory).to.equal('uploads');
    expect(response.text).not.to.include(server.dataDir);
    expect(body.max_file_size).to.equal(100_000_000);
  });

  it('answers another method on /health, /ready and /metrics with 405, as the legacy API did', async () => {
    for (const path of ['/health', '/ready', '/metrics']) {
      for (const method of ['POST', 'PUT', 'DELETE']) {
        const response = await request(`${server.url}${path}`, { method });
        expect(response.status, `${method} ${path}`).to.equal(405);
        expect(JSON.parse(response.text)).to.deep.equal({ detail: 'Method Not Allowed' });
      }
    }
  });

  it('reports the configured MAX_FILE_SIZE', async () => {
    const small = await startApp({ config: { JWT_SECRET: TEST_SECRET, MAX_FILE_SIZE: 12345 } });
    try {
      const body = JSON.parse((await request(`${small.url}/health`)).text) as Record<string, unknown>;
      expect(body.max_file_size).to.equal(12345);
    } finally {
      await small.close();
    }
  });

  it('ignores a bad Authorization header', async () => {
    const response = await request(`${server.url}/health`, { headers: { Authorization: 'Bearer garbage' } });
    expect(response.status).to.equal(200);
  });
});

describe('ops: GET /ready', () => {
  let server: AppServer;
  let dataDir: string;
  before(async () => {
    dataDir = await makeDataDir();
    server = await startApp({ config: { JWT_SECRET: TEST_SECRET, DATA_DIR: dataDir } });
  });
  after(async () => {
    await server.close();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('is 200 while DATA_DIR is writable, without auth', async () => {
    const response = await request(`${server.url}/ready`);
    expect(response.status).to.equal(200);
    expect(JSON.parse(response.text)).to.include({ status: 'ready' });
    // The probe leaves nothing behind.
    expect((await fs.readdir(dataDir)).filter((name) => name.startsWith('.ready'))).to.deep.equal([]);
  });

  it('is 503 when DATA_DIR is gone, or is a file, and 200 again once it is back', async () => {
    const moved = `${dataDir}.moved`;
    await fs.rename(dataDir, moved);
    try {
      const gone = await request(`${server.url}/ready`);
      expect(gone.status, 'directory removed').to.equal(503);
      expect(JSON.parse(gone.text)).to.include({ status: 'not ready' });
      // What is wrong, without the server's path (the route needs no token).
      expect(JSON.parse(gone.text).checks).to.deep.equal({ storage: 'not writable: ENOENT' });
      expect(gone.text).not.to.include(dataDir);

      await fs.writeFile(dataDir, 'not a directory');
      const file = await request(`${server.url}/ready`);
      expect(file.status, 'a file in its place').to.equal(503);
      expect(JSON.parse(file.text)).to.include({ status: 'not ready' });
      await fs.rm(dataDir);
    } finally {
      await fs.rename(moved, dataDir);
    }
    expect((await request(`${server.url}/ready`)).status).to.equal(200);
  });
});

interface LogLine {
  level: number;
  requestId?: string;
  user?: string;
  uploadId?: string;
  req?: { method: string; path: string };
  res?: { status: number };
  [key: string]: unknown;
}

describe('ops: request logging', () => {
  let server: AppServer;
  let lines: string[];
  let token: string;
  before(async () => {
    const memory = memoryLogger();
    lines = memory.lines;
    server = await startApp({ config: { JWT_SECRET: TEST_SECRET }, logger: memory.logger });
    token = await signToken('alice-log');
  });
  after(() => server.close());

  const parsed = () => lines.map((line) => JSON.parse(line) as LogLine);
  /** The request log lines of one request id, once the line has been written. */
  const linesFor = async (requestId: string) => {
    await waitFor(() => (parsed().some((line) => line.requestId === requestId) ? true : undefined), 3000, `log line of ${requestId}`);
    // Give a second line (there must be none) a moment to appear.
    await new Promise((resolve) => setTimeout(resolve, 50));
    return parsed().filter((line) => line.requestId === requestId);
  };
  const oneLineFor = async (requestId: string) => {
    const found = await linesFor(requestId);
    expect(found, `log lines of ${requestId}: ${JSON.stringify(found)}`).to.have.length(1);
    return found[0]!;
  };

  it('echoes a sane caller X-Request-Id and logs it', async () => {
    const response = await request(`${server.url}/health`, { headers: { 'X-Request-Id': 'ops-test-health-1' } });
    expect(response.headers['x-request-id']).to.equal('ops-test-health-1');
    const line = await oneLineFor('ops-test-health-1');
    expect(line.req).to.deep.include({ method: 'GET', path: '/health' });
    expect(line.res).to.deep.equal({ status: 200 });
  });

  it('makes its own request id when the caller sends none, or an unsafe one', async () => {
    const plain = await request(`${server.url}/health`);
    const id = plain.headers['x-request-id'] as string;
    expect(id).to.match(/^[A-Za-z0-9._-]{8,64}$/);
    await oneLineFor(id);

    const unsafe = await request(`${server.url}/health`, { headers: { 'X-Request-Id': 'evil id with spaces and "quotes"' } });
    const replaced = unsafe.headers['x-request-id'] as string;
    expect(replaced).to.not.include('evil');
    await oneLineFor(replaced);
  });

  it('logs user and upload id for PATCH, HEAD, GET and DELETE, one line each, echoing X-Request-Id', async () => {
    const client = tus(server.url, token);
    const created = await client.create(TEXT.length, { filetype: 'text/plain' }, { 'X-Request-Id': 'ops-create' });
    expect(created.status).to.equal(201);
    expect(created.headers['x-request-id']).to.equal('ops-create');
    const location = new URL(created.headers.location!, server.url).href;
    const uploadId = location.split('/').pop()!;

    const creation = await oneLineFor('ops-create');
    expect(creation.user).to.equal('alice-log');
    expect(creation.res).to.deep.equal({ status: 201 });

    const patched = await client.patch(location, 0, TEXT, { 'X-Request-Id': 'ops-patch' });
    expect(patched.status).to.equal(204);
    expect(patched.headers['x-request-id']).to.equal('ops-patch');
    expect(await oneLineFor('ops-patch')).to.include({ user: 'alice-log', uploadId });

    const head = await client.head(location, { 'X-Request-Id': 'ops-head' });
    expect(head.headers['x-request-id']).to.equal('ops-head');
    expect(await oneLineFor('ops-head')).to.include({ user: 'alice-log', uploadId });

    const download = await request(location, { headers: { 'X-Request-Id': 'ops-get' } });
    expect(download.status).to.equal(200);
    expect((await oneLineFor('ops-get')).uploadId).to.equal(uploadId);

    const other = await client.create(TEXT.length, { filetype: 'text/plain' });
    const otherLocation = new URL(other.headers.location!, server.url).href;
    const deleted = await request(otherLocation, {
      method: 'DELETE',
      headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}`, 'X-Request-Id': 'ops-delete' },
    });
    expect(deleted.status).to.equal(204);
    expect(await oneLineFor('ops-delete')).to.include({ user: 'alice-log', uploadId: otherLocation.split('/').pop() });
  });

  it('logs the id of the upload a creation made', async () => {
    const created = await tus(server.url, token).create(TEXT.length, { filetype: 'text/plain' }, { 'X-Request-Id': 'ops-create-id' });
    expect(created.status).to.equal(201);
    const uploadId = new URL(created.headers.location!, server.url).pathname.split('/').pop();
    const line = await oneLineFor('ops-create-id');
    expect(line.user).to.equal('alice-log');
    expect(line.uploadId, 'creation names the upload it made').to.equal(uploadId);
  });

  it('logs refused requests once, without a user', async () => {
    const refused = await request(`${server.url}/files/`, {
      method: 'POST',
      headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': 10, Authorization: 'Bearer not-a-token', 'X-Request-Id': 'ops-401' },
    });
    expect(refused.status).to.equal(401);
    const line = await oneLineFor('ops-401');
    expect(line.user).to.equal(undefined);
    expect(line.res).to.deep.equal({ status: 401 });
  });

  it('logs a PATCH the client drops mid-body exactly once', async () => {
    const client = tus(server.url, token);
    const created = await client.create(100_000, { filetype: 'text/plain' });
    const location = new URL(created.headers.location!, server.url);
    await new Promise<void>((resolve) => {
      const req = openPatch(location, token, 0, 100_000, { 'X-Request-Id': 'ops-dropped' });
      req.on('error', () => resolve());
      req.on('close', () => resolve());
      req.write(Buffer.alloc(10_000, 'a'), () => setTimeout(() => req.destroy(), 100));
    });
    const line = await oneLineFor('ops-dropped');
    expect(line.user).to.equal('alice-log');
    expect(line.uploadId).to.equal(location.pathname.split('/').pop());
  });

  it('never logs a token or an Authorization header', async () => {
    // A few more requests whose tokens would be easy to spot.
    const marker = await signToken('token-leak-check', { note: 'zzz-marker-zzz' });
    await tus(server.url, marker).create(TEXT.length);
    await request(`${server.url}/files/?access_token=${marker}`, { headers: { Authorization: `Bearer ${marker}` } });
    await request(`${server.url}/health`, { headers: { Authorization: `Bearer ${marker}` } });
    await waitFor(() => (parsed().some((line) => line.user === 'token-leak-check') ? true : undefined), 3000, 'log lines');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(lines.length).to.be.greaterThan(3);
    const signatures = [token, marker].map((t) => t.split('.')[2]!);
    for (const line of lines) {
      expect(line.toLowerCase()).not.to.include('authorization');
      expect(line).not.to.include('Bearer');
      for (const signature of signatures) expect(line).not.to.include(signature);
      expect(line).not.to.include(token.split('.')[1]!);
    }
  });

  it('wrote every line as JSON, exactly one per request id, across the whole run', () => {
    for (const line of lines) expect(() => JSON.parse(line), line).not.to.throw();
    const counts = new Map<string, number>();
    for (const line of parsed()) if (line.requestId) counts.set(line.requestId, (counts.get(line.requestId) ?? 0) + 1);
    expect(counts.size).to.be.greaterThan(3);
    for (const [id, count] of counts) expect(count, id).to.equal(1);
  });
});

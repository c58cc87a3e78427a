import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { verifySignature } from '../server/hooks/signature.js';
import { request, tus } from './helpers/http.js';
import { spawnServer } from './helpers/process.js';
import { makeDataDir, signToken, startServer, type TestServer } from './helpers/server.js';
import { legacyClient, sha256 as legacySha256 } from './legacy-client.js';
import { PNG, TEXT } from './samples.js';

const SECRET = 'hooks-test-secret-0123456789';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Received {
  id: string;
  type: string;
  time: string;
  data: Record<string, unknown>;
  signed: boolean;
  eventId?: string | string[];
}

/** A real receiver on loopback; `answer` decides each response. */
async function startReceiver(answer: (event: Received, attempt: number) => number | Promise<number> = () => 200) {
  const deliveries: Received[] = [];
  const attempts = new Map<string, number>();
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', async () => {
      const event = { ...JSON.parse(body), signed: verifySignature(SECRET, req.headers['tusgate-signature'] as string, body) } as Received;
      const attempt = (attempts.get(event.id) ?? 0) + 1;
      attempts.set(event.id, attempt);
      deliveries.push(event);
      const status = await answer(event, attempt);
      res.writeHead(status, { 'Content-Type': 'text/plain' }).end(status < 300 ? 'ok' : 'no');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return {
    url,
    deliveries,
    acknowledged: (type: string) => deliveries.filter((d) => d.type === type),
    async waitFor(predicate: () => boolean, timeoutMs = 10_000) {
      const started = Date.now();
      while (!predicate()) {
        if (Date.now() - started > timeoutMs) throw new Error(`receiver: timed out; got ${JSON.stringify(deliveries.map((d) => d.type))}`);
        await sleep(25);
      }
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('event hooks', function () {
  this.timeout(30_000);

  describe('signed deliveries of every event type', () => {
    let receiver: Awaited<ReturnType<typeof startReceiver>>;
    let server: TestServer;
    before(async () => {
      receiver = await startReceiver();
      server = await startServer({ HOOKS_URL: receiver.url, HOOKS_SECRET: SECRET, UPLOAD_EXPIRY_SECONDS: 1 });
    });
    after(async () => {
      await server.close();
      await receiver.close();
    });

    it('sends created, completed, failed, terminated and expired, each signed and with its facts', async () => {
      const client = tus(server.url, await server.token('alice'));
      const done = await client.create(PNG.length, { filetype: 'image/png', filename: 'p.png', note: 'hello' });
      await client.patch(done.headers.location!, 0, PNG);
      const bad = await client.create(PNG.length, { filetype: 'image/png', sha256: 'b'.repeat(64) });
      await client.patch(bad.headers.location!, 0, PNG);
      const gone = await client.create(TEXT.length);
      await client.delete(gone.headers.location!);
      const stale = await client.create(TEXT.length);
      await sleep(1100);
      await server.tusgate.sweep();

      await receiver.waitFor(() => receiver.deliveries.length >= 8);
      expect(receiver.deliveries.every((d) => d.signed)).to.equal(true);
      expect(new Set(receiver.deliveries.map((d) => d.id)).size).to.equal(receiver.deliveries.length);
      const completed = receiver.acknowledged('upload.completed');
      expect(completed).to.have.length(1);
      expect(completed[0]!.data).to.include({
        id: done.headers.location!.split('/').pop(),
        owner: 'alice',
        verified_type: 'image/png',
        sha256: createHash('sha256').update(PNG).digest('hex'),
        size: PNG.length,
        filename: 'p.png',
      });
      expect(completed[0]!.data.metadata).to.include({ note: 'hello' });
      expect(completed[0]!.data.media).to.deep.equal({ width: 1, height: 1 });
      expect(receiver.acknowledged('upload.failed')[0]!.data).to.include({ reason: 'hash' });
      expect(receiver.acknowledged('upload.terminated')[0]!.data).to.include({ id: gone.headers.location!.split('/').pop() });
      expect(receiver.acknowledged('upload.expired')[0]!.data).to.include({ id: stale.headers.location!.split('/').pop() });
      expect(receiver.acknowledged('upload.created')).to.have.length(4);
      expect(Date.parse(receiver.deliveries[0]!.time)).to.be.closeTo(Date.now(), 30_000);
    });

    it('sends events for uploads made through the legacy API too', async () => {
      const token = await server.token('bob');
      const res = await request(`${server.url}/api/v1/upload/initiate`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ filename: 'a.txt', file_size: 10, mime_type: 'text/plain' }),
      });
      const session = JSON.parse(res.text).session_id as string;
      await receiver.waitFor(() => receiver.acknowledged('upload.created').some((d) => d.data.id === session));
      expect(receiver.acknowledged('upload.created').find((d) => d.data.id === session)!.data).to.include({ origin: 'legacy', owner: 'bob' });
    });

    it('sends the events of files only: none for a concatenation\'s parts, none for a legacy hash retried', async () => {
      const token = await server.token('carol');
      const ofCarol = (type: string) => receiver.acknowledged(type).filter((d) => d.data.owner === 'carol');
      const parts: string[] = [];
      for (const half of [TEXT.subarray(0, 100), TEXT.subarray(100)]) {
        const part = await request(`${server.url}/files/`, {
          method: 'POST',
          headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}`, 'Upload-Length': half.length, 'Upload-Concat': 'partial', 'Content-Type': 'application/offset+octet-stream' },
          body: half,
        });
        expect(part.status).to.equal(201);
        parts.push(new URL(part.headers.location!, server.url).pathname);
      }
      const final = await request(`${server.url}/files/`, {
        method: 'POST',
        headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}`, 'Upload-Concat': `final;${parts.join(' ')}`, 'Upload-Metadata': `filetype ${Buffer.from('text/plain').toString('base64')}` },
      });
      expect(final.status, final.text).to.equal(201);
      const finalId = final.headers.location!.split('/').pop();

      const legacy = legacyClient(server.url, token);
      const data = Buffer.from('legacy bytes');
      const session = (await legacy.initiate({ filename: 'l.txt', file_size: data.length, mime_type: 'text/plain', chunk_size: 1024 })).json.session_id as string;
      expect((await legacy.chunk(session, 0, data, { hash: true })).status).to.equal(200);
      expect((await legacy.complete(session, { session_id: session, file_hash: 'c'.repeat(64) })).status).to.equal(400);
      expect((await legacy.complete(session, { session_id: session, file_hash: legacySha256(data) })).status).to.equal(200);

      await receiver.waitFor(() => ofCarol('upload.completed').length >= 2);
      await sleep(300);
      expect(ofCarol('upload.created').map((d) => d.data.id)).to.have.members([finalId, session]);
      expect(ofCarol('upload.completed').map((d) => d.data.id)).to.have.members([finalId, session]);
      expect(ofCarol('upload.failed')).to.deep.equal([]);
    });
  });

  it('retries a receiver that fails with backoff, keeping the event id, until acknowledged', async () => {
    const receiver = await startReceiver((_event, attempt) => (attempt <= 3 ? 500 : 200));
    const server = await startServer({ HOOKS_URL: receiver.url, HOOKS_SECRET: SECRET, HOOKS_EVENTS: ['upload.created'], HOOKS_RETRY_BASE_MS: 50 });
    try {
      await tus(server.url, await server.token()).create(TEXT.length);
      await receiver.waitFor(() => receiver.deliveries.length >= 4);
      await sleep(300);
      expect(receiver.deliveries).to.have.length(4);
      expect(new Set(receiver.deliveries.map((d) => d.id)).size).to.equal(1);
      expect(server.tusgate.hooks!.pending()).to.equal(0);
    } finally {
      await server.close();
      await receiver.close();
    }
  });

  it('delivers an event recorded before a kill -9, after the restart', async () => {
    let up = false;
    const receiver = await startReceiver(() => (up ? 200 : 503));
    const dataDir = await makeDataDir();
    const env = { DATA_DIR: dataDir, HOOKS_URL: receiver.url, HOOKS_SECRET: SECRET, HOOKS_EVENTS: 'upload.completed', HOOKS_RETRY_BASE_MS: '60000' };
    let server = await spawnServer(env);
    try {
      const client = tus(server.url, await signToken('alice'));
      const created = await client.create(TEXT.length);
      expect((await client.patch(created.headers.location!, 0, TEXT)).status).to.equal(204);
      await receiver.waitFor(() => receiver.deliveries.length >= 1);
      await server.kill('SIGKILL');
      up = true;
      server = await spawnServer(env);
      await receiver.waitFor(() => receiver.deliveries.length >= 2);
      expect(receiver.deliveries[1]!.id).to.equal(receiver.deliveries[0]!.id);
      expect(receiver.deliveries[1]!.type).to.equal('upload.completed');
    } finally {
      await server.kill('SIGKILL');
      await receiver.close();
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });

  describe('the blocking pre-create hook', () => {
    it('allows, refuses with the receiver’s status and message, and answers 503 on a timeout', async () => {
      let mode: 'allow' | 'refuse' | 'slow' = 'allow';
      const seen: Received[] = [];
      const receiver = http.createServer((req, res) => {
        let body = '';
        req.on('data', (chunk: Buffer) => (body += chunk));
        req.on('end', () => {
          seen.push({ ...JSON.parse(body), signed: verifySignature(SECRET, req.headers['tusgate-signature'] as string, body), eventId: req.headers['tusgate-event-id'] });
          if (mode === 'allow') res.writeHead(204).end();
          else if (mode === 'refuse') res.writeHead(403, { 'Content-Type': 'text/plain' }).end('uploads are closed on Sundays');
          else setTimeout(() => res.writeHead(204).end(), 2000);
        });
      });
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/pre`;
      const server = await startServer({ HOOKS_PRE_CREATE_URL: url, HOOKS_SECRET: SECRET, HOOKS_TIMEOUT_MS: 300 });
      const open = await startServer({ HOOKS_PRE_CREATE_URL: url, HOOKS_SECRET: SECRET, HOOKS_TIMEOUT_MS: 300, HOOKS_PRE_CREATE_FAIL_OPEN: true });
      try {
        const client = tus(server.url, await server.token('alice'));
        expect((await client.create(TEXT.length, { filetype: 'text/plain', filename: 'x.txt' })).status).to.equal(201);
        expect(seen[0]).to.include({ type: 'upload.pre-create', signed: true, eventId: seen[0]!.id });
        expect(seen[0]!.data).to.deep.include({ owner: 'alice', origin: 'tus', length: TEXT.length });
        expect((seen[0]!.data.metadata as Record<string, string>).filename).to.equal('x.txt');

        mode = 'refuse';
        const refused = await client.create(TEXT.length);
        expect(refused.status).to.equal(403);
        expect(refused.text).to.include('uploads are closed on Sundays');
        const legacy = await request(`${server.url}/api/v1/upload/initiate`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${await server.token('alice')}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ filename: 'a.txt', file_size: 10, mime_type: 'text/plain' }),
        });
        expect(legacy.status).to.equal(403);
        expect(legacy.text).to.include('uploads are closed on Sundays');

        // A partial upload of a concatenation is asked about too, and says it is one.
        mode = 'allow';
        const partial = await request(`${server.url}/files/`, {
          method: 'POST',
          headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${await server.token('alice')}`, 'Upload-Length': 5, 'Upload-Concat': 'partial' },
        });
        expect(partial.status).to.equal(201);
        expect(seen.at(-1)!.data).to.deep.include({ owner: 'alice', partial: true });
        expect(seen[0]!.data).to.deep.include({ partial: false });
        mode = 'refuse';
        const refusedPart = await request(`${server.url}/files/`, {
          method: 'POST',
          headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${await server.token('alice')}`, 'Upload-Length': 5, 'Upload-Concat': 'partial' },
        });
        expect(refusedPart.status).to.equal(403);

        mode = 'slow';
        const away = await client.create(TEXT.length);
        expect(away.status).to.equal(503);
        expect(away.headers['retry-after']).to.equal('1');
        expect((await tus(open.url, await open.token('alice')).create(TEXT.length)).status).to.equal(201);
      } finally {
        await server.close();
        await open.close();
        receiver.closeAllConnections();
        await new Promise<void>((resolve) => receiver.close(() => resolve()));
      }
    });

    it('gives a tus client the receiver’s refusal with its type when JSON or plain text, anything else as plain text', async () => {
      let refusal = { type: 'application/json', body: '{"error":"quota","limit":3}' };
      const receiver = http.createServer((req, res) => {
        let body = '';
        req.on('data', (chunk: Buffer) => (body += chunk));
        req.on('end', () => {
          // Partial uploads are let through, so that a concatenation's final upload is the one refused.
          if (JSON.parse(body).data.partial) res.writeHead(204).end();
          else res.writeHead(422, { 'Content-Type': refusal.type }).end(refusal.body);
        });
      });
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/pre`;
      const server = await startServer({ HOOKS_PRE_CREATE_URL: url, HOOKS_SECRET: SECRET });
      try {
        const token = await server.token('alice');
        const client = tus(server.url, token);
        const refused = async (type: string, body: string) => {
          refusal = { type, body };
          const answer = await client.create(TEXT.length);
          expect(answer.status, type).to.equal(422);
          return answer;
        };
        const json = await refused('application/json', '{"error":"quota","limit":3}');
        expect(json.headers['content-type']).to.equal('application/json; charset=utf-8');
        expect(JSON.parse(json.text)).to.deep.equal({ error: 'quota', limit: 3 });
        const problem = await refused('application/problem+json', '{"type":"about:blank","title":"Quota","status":422}');
        expect(problem.headers['content-type']).to.equal('application/problem+json; charset=utf-8');
        expect(JSON.parse(problem.text)).to.deep.include({ title: 'Quota' });
        const words = await refused('Text/Plain; charset="UTF-8"', 'uploads are closed on Sundays – sorry');
        expect(words.headers['content-type']).to.equal('text/plain; charset=utf-8');
        expect(words.text).to.equal('uploads are closed on Sundays – sorry\n');
        // Markup is never passed on as such; a body in another charset was read as UTF-8, and a body cut
        // at 1000 characters is no longer the receiver's JSON: all three are plain text.
        for (const [type, body] of [
          ['text/html', '<b>no</b>'],
          ['application/json; charset=iso-8859-1', '{"error":"quota"}'],
          ['application/json', JSON.stringify({ error: 'x'.repeat(1200) })],
        ]) {
          const plain = await refused(type!, body!);
          expect(plain.headers['content-type'], type).to.match(/^text\/plain; ?charset=utf-8$/i);
          expect(plain.text, type).to.include(body!.slice(0, 9));
        }

        // A concatenation's final upload is refused the same way.
        const part = await request(`${server.url}/files/`, {
          method: 'POST',
          headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}`, 'Upload-Length': TEXT.length, 'Upload-Concat': 'partial' },
        });
        expect(part.status, part.text).to.equal(201);
        const partUrl = new URL(part.headers.location!, server.url).href;
        expect((await client.patch(partUrl, 0, TEXT)).status).to.equal(204);
        refusal = { type: 'application/json', body: '{"error":"quota"}' };
        const final = await request(`${server.url}/files/`, {
          method: 'POST',
          headers: {
            'Tus-Resumable': '1.0.0',
            Authorization: `Bearer ${token}`,
            'Upload-Concat': `final;${partUrl}`,
            'Upload-Metadata': `filetype ${Buffer.from('text/plain').toString('base64')}`,
          },
        });
        expect(final.status, final.text).to.equal(422);
        expect(final.headers['content-type']).to.equal('application/json; charset=utf-8');
        expect(JSON.parse(final.text)).to.deep.equal({ error: 'quota' });

        // The legacy facade keeps its own envelope: the receiver's body is the detail string.
        const legacy = await request(`${server.url}/api/v1/upload/initiate`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ filename: 'a.txt', file_size: 10, mime_type: 'text/plain' }),
        });
        expect(legacy.status).to.equal(422);
        expect(legacy.headers['content-type']).to.match(/^application\/json/);
        expect(JSON.parse(legacy.text)).to.deep.equal({ detail: '{"error":"quota"}' });
      } finally {
        await server.close();
        receiver.closeAllConnections();
        await new Promise<void>((resolve) => receiver.close(() => resolve()));
      }
    });

    it('creates nothing for a client that goes away while the hook decides (tus and legacy)', async () => {
      const receiver = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => setTimeout(() => res.writeHead(204).end(), 600));
      });
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/pre`;
      const server = await startServer({ HOOKS_PRE_CREATE_URL: url, HOOKS_SECRET: SECRET, HOOKS_TIMEOUT_MS: 3000, MAX_ACTIVE_UPLOADS_PER_USER: 1 });
      try {
        const token = await server.token('alice');
        /** Sends a creation and closes the connection before the hook has answered. */
        const abandon = (path: string, headers: Record<string, string | number>, body = '') =>
          new Promise<void>((resolve) => {
            const req = http.request(`${server.url}${path}`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, ...headers } });
            req.on('error', () => resolve());
            req.end(body);
            setTimeout(() => {
              req.destroy();
              resolve();
            }, 200);
          });
        await abandon('/files/', { 'Tus-Resumable': '1.0.0', 'Upload-Length': TEXT.length, 'Upload-Metadata': `filetype ${Buffer.from('text/plain').toString('base64')}` });
        const initiate = JSON.stringify({ filename: 'a.txt', file_size: 10, mime_type: 'text/plain' });
        await abandon('/api/v1/upload/initiate', { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(initiate) }, initiate);
        await sleep(1000);
        // Neither holds the user's one slot for incomplete uploads.
        const client = tus(server.url, token);
        const kept = await client.create(TEXT.length, { filetype: 'text/plain' });
        expect(kept.status, kept.text).to.equal(201);
        expect(await fs.readdir(path.join(server.dataDir, 'uploads'))).to.deep.equal([path.basename(kept.headers.location!)]);
      } finally {
        await server.close();
        receiver.closeAllConnections();
        await new Promise<void>((resolve) => receiver.close(() => resolve()));
      }
    });
  });
});

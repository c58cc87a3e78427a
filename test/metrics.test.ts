import http from 'node:http';
import { expect } from 'chai';
import { waitFor } from './helpers/wait.js';
import { metadata, openPatch, request, tus } from './helpers/http.js';
import { startServer, type TestServer } from './helpers/server.js';
import { legacyClient } from './legacy-client.js';
import { PNG, TEXT } from './samples.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function value(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('/metrics', () => {
  let server: TestServer;
  before(async () => (server = await startServer()));
  after(() => server.close());

  const scrape = async () => (await request(`${server.url}/metrics`)).text;

  /** The parts of a parallel upload (tus concatenation), each sent whole, and its final upload. */
  async function parallelUpload(token: string, parts: Buffer[]) {
    const common = { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}` };
    const urls: string[] = [];
    for (const part of parts) {
      const res = await request(`${server.url}/files/`, {
        method: 'POST',
        headers: { ...common, 'Upload-Length': part.length, 'Upload-Concat': 'partial', 'Content-Type': 'application/offset+octet-stream' },
        body: part,
      });
      expect(res.status).to.equal(201);
      urls.push(res.headers.location!);
    }
    const final = await request(`${server.url}/files/`, {
      method: 'POST',
      headers: { ...common, 'Upload-Concat': `final;${urls.join(' ')}`, 'Upload-Metadata': metadata({ filetype: 'text/plain' }) },
    });
    expect(final.status).to.equal(201);
    return { parts: urls, final: final.headers.location! };
  }

  it('counts created, completed, failed-by-reason uploads, bytes, active uploads and request durations', async () => {
    const client = tus(server.url, await server.token('alice'));
    const ok = await client.create(TEXT.length);
    await client.patch(ok.headers.location!, 0, TEXT);
    const wrongType = await client.create(TEXT.length, { filetype: 'image/png' });
    expect((await client.patch(wrongType.headers.location!, 0, TEXT)).status).to.equal(415);
    const wrongHash = await client.create(PNG.length, { filetype: 'image/png', sha256: 'a'.repeat(64) });
    expect((await client.patch(wrongHash.headers.location!, 0, PNG)).status).to.equal(460);
    await client.create(TEXT.length); // stays active

    const res = await request(`${server.url}/metrics`);
    expect(res.status).to.equal(200);
    expect(res.headers['content-type']).to.match(/^text\/plain/);
    expect(value(res.text, 'tusgate_uploads_created_total', 'origin="tus"')).to.equal(4);
    expect(value(res.text, 'tusgate_uploads_completed_total', 'origin="tus"')).to.equal(1);
    expect(value(res.text, 'tusgate_uploads_failed_total', 'reason="type"')).to.equal(1);
    expect(value(res.text, 'tusgate_uploads_failed_total', 'reason="hash"')).to.equal(1);
    expect(value(res.text, 'tusgate_bytes_received_total')).to.equal(2 * TEXT.length + PNG.length);
    expect(value(res.text, 'tusgate_active_uploads')).to.equal(1);
    expect(res.text).to.match(/tusgate_http_request_duration_seconds_count\{method="PATCH",route="\/files\/:id",status="204"\} 1/);
  });

  it('counts a request refused for its checksum as failed (checksum), a tus PATCH and a legacy chunk alike', async () => {
    const token = await server.token('carol');
    const before = value(await scrape(), 'tusgate_uploads_failed_total', 'reason="checksum"');
    const client = tus(server.url, token);
    const created = await client.create(TEXT.length);
    const refused = await client.patch(created.headers.location!, 0, TEXT, { 'Upload-Checksum': `sha1 ${Buffer.alloc(20).toString('base64')}` });
    expect(refused.status).to.equal(460);
    const legacy = legacyClient(server.url, token);
    const session = (await legacy.initiate({ filename: 'c.txt', file_size: TEXT.length, chunk_size: TEXT.length, mime_type: 'text/plain' })).json.session_id as string;
    expect((await legacy.chunk(session, 0, TEXT, { hash: 'b'.repeat(64) })).status).to.equal(400);
    expect(value(await scrape(), 'tusgate_uploads_failed_total', 'reason="checksum"') - before).to.equal(2);
  });

  it('counts a request dropped mid-body as failed (aborted), a tus PATCH and an IETF draft append alike', async () => {
    const token = await server.token('dave');
    const aborted = async () => value(await scrape(), 'tusgate_uploads_failed_total', 'reason="aborted"');
    const before = await aborted();
    const client = tus(server.url, token);
    /** Sends the first 64 KiB of a 1 MiB body, then drops the connection. */
    const dropMidBody = async (req: http.ClientRequest) => {
      req.on('error', () => {});
      req.write(Buffer.alloc(64 * 1024));
      await sleep(200);
      req.destroy();
    };
    const tusUpload = (await client.create(1024 * 1024)).headers.location!;
    await dropMidBody(openPatch(tusUpload, token, 0, 1024 * 1024));
    const draftUpload = (await client.create(1024 * 1024)).headers.location!;
    await dropMidBody(http.request(draftUpload, {
      method: 'PATCH',
      agent: false,
      headers: { Authorization: `Bearer ${token}`, 'Upload-Draft-Interop-Version': 6, 'Upload-Offset': 0, 'Upload-Complete': '?1', 'Content-Type': 'application/partial-upload', 'Content-Length': 1024 * 1024 },
    }));
    await waitFor(async () => ((await aborted()) - before >= 2 ? true : undefined), 5000, 'two requests counted as aborted');
    expect((await aborted()) - before).to.equal(2);
  });

  it('labels requests by route pattern, also when an error handler answers, so unknown ids add no series', async () => {
    const token = await server.token('alice');
    const ids = ['11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222'];
    for (const id of ids) {
      const status = await request(`${server.url}/api/v1/upload/${id}/status`, { headers: { Authorization: `Bearer ${token}` } });
      expect(status.status).to.equal(404);
      const chunk = await request(`${server.url}/api/v1/upload/${id}/chunk/x${id.slice(0, 4)}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}` },
      });
      expect(chunk.status).to.equal(422);
    }
    const text = (await request(`${server.url}/metrics`)).text;
    const routes = new Set([...text.matchAll(/tusgate_http_request_duration_seconds_count\{[^}]*route="([^"]*)"/g)].map((m) => m[1]));
    for (const id of ids) expect([...routes].filter((route) => route!.includes(id.slice(0, 8)))).to.deep.equal([]);
    expect(routes).to.include('/api/v1/upload/:session_id/status');
    expect(routes).to.include('/api/v1/upload/:session_id/chunk/:chunk_number');
  });

  it('counts the bytes of a parallel upload once: its final upload copies its parts and receives nothing', async () => {
    const before = value(await scrape(), 'tusgate_bytes_received_total');
    await parallelUpload(await server.token('alice'), [TEXT.subarray(0, 100), TEXT.subarray(100)]);
    expect(value(await scrape(), 'tusgate_bytes_received_total') - before).to.equal(TEXT.length);
  });

  it('counts an unfinished part of a parallel upload that expires as expired, a finished one removed at its expiry as nothing', async () => {
    const token = await server.token('paula');
    await parallelUpload(token, [TEXT.subarray(0, 100), TEXT.subarray(100)]);
    const abandoned = await tus(server.url, token).create(TEXT.length, {}, { 'Upload-Concat': 'partial' });
    expect(abandoned.status).to.equal(201);
    const before = await scrape();
    const later = Date.now() + server.config.UPLOAD_EXPIRY_SECONDS * 1000 + 1000;
    expect(await server.tusgate.store.sweepExpired(later, undefined, 'paula')).to.equal(3);
    const after = await scrape();
    const expired = (text: string) => value(text, 'tusgate_uploads_failed_total', 'reason="expired"');
    expect(expired(after) - expired(before)).to.equal(1);
    expect(value(after, 'tusgate_active_uploads') - value(before, 'tusgate_active_uploads')).to.equal(-1);
  });

  it('has every upload and hook series at 0 from the start, so that increase() sees a first failure', async () => {
    const fresh = await startServer();
    try {
      const text = (await request(`${fresh.url}/metrics`)).text;
      const series = [
        ...['tus', 'legacy'].flatMap((origin) => [`tusgate_uploads_created_total{origin="${origin}"}`, `tusgate_uploads_completed_total{origin="${origin}"}`]),
        ...['hash', 'type', 'media', 'size', 'expired', 'aborted', 'checksum'].map((reason) => `tusgate_uploads_failed_total{reason="${reason}"}`),
        ...['created', 'completed', 'failed', 'terminated', 'expired'].map((type) => `tusgate_hook_events_dropped_total{type="upload.${type}"}`),
        'tusgate_uploads_terminated_total',
        'tusgate_bytes_received_total',
        'tusgate_active_uploads',
      ];
      for (const name of series) expect(text.split('\n'), name).to.include(`${name} 0`);
    } finally {
      await fresh.close();
    }
  });
});

describe('/metrics: legacy sessions past their expiry', () => {
  let server: TestServer;
  before(async () => (server = await startServer({ UPLOAD_EXPIRY_SECONDS: 1, ADMIN_USERS: ['root'] })));
  after(() => server.close());

  it('counts a session expired when a chunk comes after its expiry, or by the admin cleanup, as failed (expired), not terminated', async () => {
    const client = legacyClient(server.url, await server.token('alice'));
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const initiated = await client.initiate({ filename: 'e.txt', file_size: 20, chunk_size: 10, mime_type: 'text/plain' });
      ids.push(initiated.json.session_id as string);
      expect((await client.chunk(ids[i]!, 0, TEXT.subarray(0, 10))).status).to.equal(200);
    }
    await sleep(1200);
    expect((await client.chunk(ids[0]!, 1, TEXT.subarray(10, 20))).status).to.equal(410);
    const cleanup = await request(`${server.url}/api/v1/admin/cleanup`, { method: 'POST', headers: { Authorization: `Bearer ${await server.token('root')}` } });
    expect(JSON.parse(cleanup.text)).to.deep.equal({ message: 'Cleaned up 1 expired sessions' });
    const text = (await request(`${server.url}/metrics`)).text;
    expect(value(text, 'tusgate_uploads_failed_total', 'reason="expired"')).to.equal(2);
    expect(value(text, 'tusgate_uploads_terminated_total')).to.equal(0);
    expect(value(text, 'tusgate_active_uploads')).to.equal(0);
    // The session a chunk found expired keeps its document, as the original kept it.
    expect((await client.status(ids[0]!)).json.status).to.equal('cancelled');
  });
});

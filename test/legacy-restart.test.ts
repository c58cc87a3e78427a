import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { expect } from 'chai';
import { lastVersion } from '../server/storage/json-dir.js';
import { request } from './helpers/http.js';
import { spawnServer, type ServerProcess } from './helpers/process.js';
import { makeDataDir, signToken, startServer, type TestServer } from './helpers/server.js';
import { chunksOf, legacyClient, multipart, sha256 } from './legacy-client.js';

// Nothing is lost when the server stops between or during chunk uploads (SPEC §4, issue 4 §5).

function textOf(size: number, seed: string): Buffer {
  const line = Buffer.from(`${seed}: restart test line 0123456789abcdef\n`);
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i += line.length) line.copy(out, i, 0, Math.min(line.length, size - i));
  return out;
}

async function readSession(dataDir: string, id: string) {
  return lastVersion<{ uploaded_chunks: number[] }>(await fs.readFile(path.join(dataDir, 'legacy/sessions', `${id}.json`), 'utf8'))!;
}

/** Rewrites a session document as a crash after recording `chunks` (but before appending) leaves it. */
async function recordChunks(dataDir: string, id: string, chunks: number[]): Promise<void> {
  const file = path.join(dataDir, 'legacy/sessions', `${id}.json`);
  const doc = lastVersion<{ uploaded_chunks: number[] }>(await fs.readFile(file, 'utf8'))!;
  doc.uploaded_chunks = chunks;
  await fs.writeFile(file, JSON.stringify(doc));
}

describe('legacy sessions across restarts', () => {
  let dataDir: string;
  let server: TestServer | undefined;
  beforeEach(async () => (dataDir = await makeDataDir()));
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('carries on from status after a restart, with early chunks still waiting in staging', async () => {
    const data = textOf(100, 'carry-on');
    const chunks = chunksOf(data, 10);
    server = await startServer({ DATA_DIR: dataDir });
    let client = legacyClient(server.url, await server.token('alice'));
    const id = (await client.initiate({ filename: 'r.txt', file_size: 100, chunk_size: 10, mime_type: 'text/plain', file_hash: sha256(data) })).json
      .session_id as string;
    for (const n of [0, 1, 6, 9]) expect((await client.chunk(id, n, chunks[n]!, { hash: true })).status).to.equal(200);
    await server.close();

    server = await startServer({ DATA_DIR: dataDir });
    client = legacyClient(server.url, await server.token('alice'));
    const status = await client.status(id);
    expect(status.status).to.equal(200);
    expect(status.json.status).to.equal('in_progress');
    expect(status.json.uploaded_chunks).to.deep.equal([0, 1, 6, 9]);
    for (const n of status.json.remaining_chunks as number[]) {
      expect((await client.chunk(id, n, chunks[n]!, { hash: true })).status).to.equal(200);
    }
    const done = await client.complete(id);
    expect(done.status, done.text).to.equal(200);
    expect((await client.get(done.json.file_url)).body.equals(data)).to.equal(true);
    const byId = await request(`${server.url}/files/${id}`);
    expect(byId.body.equals(data)).to.equal(true);
  });

  it('appends at complete a chunk that was staged and recorded but not appended when the process died', async () => {
    const data = textOf(50, 'died-before-append');
    const chunks = chunksOf(data, 10);
    server = await startServer({ DATA_DIR: dataDir });
    let client = legacyClient(server.url, await server.token('alice'));
    const id = (await client.initiate({ filename: 'd.txt', file_size: 50, chunk_size: 10, mime_type: 'text/plain' })).json.session_id as string;
    for (const n of [1, 2, 3, 4]) await client.chunk(id, n, chunks[n]!);
    await server.close();
    // The state a crash leaves right after chunk 0 was staged and listed, before its append.
    await fs.writeFile(path.join(dataDir, 'legacy/staging', id, '0'), chunks[0]!);
    await recordChunks(dataDir, id, [0, 1, 2, 3, 4]);

    server = await startServer({ DATA_DIR: dataDir });
    client = legacyClient(server.url, await server.token('alice'));
    const done = await client.complete(id, { session_id: id, file_hash: sha256(data) });
    expect(done.status, done.text).to.equal(200);
    expect((await client.get(done.json.file_url)).body.equals(data)).to.equal(true);
    expect(await fs.stat(path.join(dataDir, 'legacy/staging', id)).catch(() => undefined)).to.equal(undefined);
  });

  it('finishes a chunk whose append was cut off mid-way, from its staged file', async () => {
    const data = textOf(40, 'cut-mid-append');
    const chunks = chunksOf(data, 10);
    server = await startServer({ DATA_DIR: dataDir });
    let client = legacyClient(server.url, await server.token('alice'));
    const id = (await client.initiate({ filename: 'm.txt', file_size: 40, chunk_size: 10, mime_type: 'text/plain' })).json.session_id as string;
    for (const n of [0, 1, 3]) await client.chunk(id, n, chunks[n]!);
    await server.close();
    // A crash while chunk 2 was being appended: 4 of its bytes are in the store, all of it staged.
    await fs.appendFile(path.join(dataDir, 'uploads', id), chunks[2]!.subarray(0, 4));
    await fs.writeFile(path.join(dataDir, 'legacy/staging', id, '2'), chunks[2]!);
    await recordChunks(dataDir, id, [0, 1, 2, 3]);

    server = await startServer({ DATA_DIR: dataDir });
    client = legacyClient(server.url, await server.token('alice'));
    const done = await client.complete(id, { session_id: id, file_hash: sha256(data) });
    expect(done.status, done.text).to.equal(200);
    expect((await client.get(done.json.file_url)).body.equals(data)).to.equal(true);
  });

  it('lists a chunk that reached the store though the process died before recording it', async () => {
    const data = textOf(30, 'unlisted');
    const chunks = chunksOf(data, 10);
    server = await startServer({ DATA_DIR: dataDir });
    let client = legacyClient(server.url, await server.token('alice'));
    const id = (await client.initiate({ filename: 'u.txt', file_size: 30, chunk_size: 10, mime_type: 'text/plain' })).json.session_id as string;
    await client.chunk(id, 1, chunks[1]!);
    await server.close();
    // Chunk 0 was staged (renamed into place) but the process died before listing it.
    await fs.writeFile(path.join(dataDir, 'legacy/staging', id, '0'), chunks[0]!);

    server = await startServer({ DATA_DIR: dataDir });
    client = legacyClient(server.url, await server.token('alice'));
    expect((await client.status(id)).json.uploaded_chunks).to.deep.equal([1]);
    const sent = await client.chunk(id, 2, chunks[2]!);
    expect(sent.status).to.equal(200);
    // Sending chunk 2 appended the staged 0 and 1 and then 2: all are listed now.
    expect(sent.json.uploaded_chunks).to.deep.equal([0, 1, 2]);
    expect((await readSession(dataDir, id)).uploaded_chunks).to.deep.equal([0, 1, 2]);
    const done = await client.complete(id);
    expect(done.status, done.text).to.equal(200);
    expect((await client.get(done.json.file_url)).body.equals(data)).to.equal(true);
  });

  describe('a spawned server killed with SIGKILL', function () {
    this.timeout(60_000);
    let proc: ServerProcess | undefined;
    afterEach(async () => {
      await proc?.kill('SIGKILL');
      proc = undefined;
    });

    it('loses no accepted chunk when killed in the middle of a chunk upload; the client resumes from status', async () => {
      const chunkSize = 1024 * 1024;
      const data = textOf(4 * chunkSize + 123, 'kill -9');
      const chunks = chunksOf(data, chunkSize);
      const env = { DATA_DIR: dataDir, LOG_LEVEL: 'silent' };
      proc = await spawnServer(env);
      const token = await signToken('alice');
      let client = legacyClient(proc.url, token);
      const id = (await client.initiate({ filename: 'k.txt', file_size: data.length, chunk_size: chunkSize, mime_type: 'text/plain' })).json
        .session_id as string;
      for (const n of [0, 3]) expect((await client.chunk(id, n, chunks[n]!, { hash: true })).status).to.equal(200);

      // Chunk 1 is half sent when the server is killed.
      const form = multipart([
        { name: 'chunk_hash', value: sha256(chunks[1]!) },
        { name: 'file', value: chunks[1]!, filename: 'blob', contentType: 'application/octet-stream' },
      ]);
      const url = new URL(`${proc.url}/api/v1/upload/${id}/chunk/1`);
      const req = http.request(url, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': form.contentType, 'Content-Length': form.body.length },
      });
      const failed = new Promise<void>((resolve) => {
        req.on('error', () => resolve());
        req.on('response', () => resolve());
      });
      req.write(form.body.subarray(0, form.body.length / 2));
      await new Promise((resolve) => setTimeout(resolve, 300));
      await proc.kill('SIGKILL');
      await failed;

      proc = await spawnServer(env);
      client = legacyClient(proc.url, token);
      const status = await client.status(id);
      expect(status.json.uploaded_chunks).to.deep.equal([0, 3]);
      for (const n of status.json.remaining_chunks as number[]) {
        const sent = await client.chunk(id, n, chunks[n]!, { hash: true });
        expect(sent.status, sent.text).to.equal(200);
      }
      const done = await client.complete(id, { session_id: id, file_hash: sha256(data) });
      expect(done.status, done.text).to.equal(200);
      const file = await request(`${proc.url}${done.json.file_url}`);
      expect(file.body.equals(data)).to.equal(true);
    });
  });
});

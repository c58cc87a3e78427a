import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import { Readable } from 'node:stream';
import { expect } from 'chai';
import { request } from './helpers/http.js';
import { spawnServer, type ServerProcess } from './helpers/process.js';
import { makeDataDir, signToken } from './helpers/server.js';
import { legacyClient } from './legacy-client.js';

// Chunk bodies stream to disk: with ten 10 MiB chunks in flight at once the server's resident set
// must stay well under 100 MiB above idle (issue 4). Measured on a spawned server process.

const MiB = 1024 * 1024;
const CHUNK = 10 * MiB;
const CHUNKS = 10;

async function rssBytes(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** Chunk n: a shared 10 MiB text block whose first line names the chunk, as a stream. */
function chunkBody(shared: Buffer, n: number, boundary: string) {
  const label = Buffer.from(`chunk ${String(n).padStart(4, '0')}\n`);
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="blob"\r\nContent-Type: application/octet-stream\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const parts = [head, label, shared.subarray(label.length), tail];
  return { stream: Readable.from(parts), length: parts.reduce((sum, part) => sum + part.length, 0), label };
}

describe('legacy chunk uploads stream (server RSS)', function () {
  this.timeout(120_000);
  let proc: ServerProcess | undefined;
  let dataDir: string;
  after(async () => {
    await proc?.kill('SIGKILL');
    if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('keeps RSS well under 100 MiB above idle with ten 10 MiB chunks in flight, and assembles the exact file', async function () {
    if (process.platform !== 'linux') this.skip();
    dataDir = await makeDataDir();
    proc = await spawnServer({ DATA_DIR: dataDir, LOG_LEVEL: 'silent', MAX_FILE_SIZE: String(CHUNK * CHUNKS) });
    const pid = proc.child.pid!;
    const token = await signToken('alice');
    const client = legacyClient(proc.url, token);

    // Warm up (JIT, first requests, module loading) before taking the idle figure.
    for (let i = 0; i < 3; i++) await client.get('/health');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const idle = await rssBytes(pid);

    const initiated = await client.initiate({ filename: 'big.txt', file_size: CHUNK * CHUNKS, chunk_size: CHUNK, mime_type: 'text/plain' });
    expect(initiated.status, initiated.text).to.equal(200);
    const id = initiated.json.session_id as string;

    const shared = Buffer.alloc(CHUNK, 'legacy streaming memory test line\n');
    let peak = idle;
    const sampler = setInterval(() => {
      rssBytes(pid).then((rss) => (peak = Math.max(peak, rss)), () => undefined);
    }, 10);
    const expected = createHash('sha256');
    try {
      const answers = await Promise.all(
        Array.from({ length: CHUNKS }, (_, n) => {
          const boundary = `b${n}x${Date.now()}`;
          const body = chunkBody(shared, n, boundary);
          return request(`${proc!.url}/api/v1/upload/${id}/chunk/${n}`, {
            method: 'POST',
            headers: { Authorization: `Bearer ${token}`, 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Content-Length': body.length },
            body: body.stream,
          });
        }),
      );
      for (const answer of answers) expect(answer.status, answer.text).to.equal(200);
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, await rssBytes(pid));
    for (let n = 0; n < CHUNKS; n++) {
      const label = Buffer.from(`chunk ${String(n).padStart(4, '0')}\n`);
      expected.update(label).update(shared.subarray(label.length));
    }

    const growth = peak - idle;
    console.log(`      server RSS: idle ${(idle / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB, growth ${(growth / MiB).toFixed(1)} MiB`);
    expect(growth).to.be.below(100 * MiB);

    const done = await client.complete(id, { session_id: id, file_hash: expected.digest('hex') });
    expect(done.status, done.text).to.equal(200);
  });
});

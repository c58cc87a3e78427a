// A load driver that speaks raw tus over loopback. Bodies are streamed from a fixed random pool,
// starting with an MP4 `ftyp` box so that tusgate's content check accepts them.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';

const FTYP = Buffer.from('000000206674797069736f6d0000020069736f6d69736f32617663316d703431', 'hex');
const POOL = randomBytes(4 * 1024 * 1024);

/** A well-formed MP4 head for a file of `size` bytes: `ftyp`, then one `mdat` box holding the rest. */
function mp4Head(size: number): Buffer {
  const mdat = Buffer.alloc(8);
  mdat.writeUInt32BE(size - FTYP.length);
  mdat.write('mdat', 4, 'latin1');
  return Buffer.concat([FTYP, mdat]);
}
const METADATA = `filetype ${Buffer.from('video/mp4').toString('base64')},filename ${Buffer.from('bench.mp4').toString('base64')}`;

/** Bytes [start, end) of a virtual MP4 file of `size` bytes, streamed in pieces of up to 256 KiB. */
function body(start: number, end: number, size: number): Readable {
  const head = mp4Head(size);
  let position = start;
  return new Readable({
    read() {
      if (position >= end) return void this.push(null);
      if (position < head.length) {
        const piece = head.subarray(position, Math.min(head.length, end));
        position += piece.length;
        return void this.push(piece);
      }
      const at = position % POOL.length;
      const length = Math.min(256 * 1024, end - position, POOL.length - at);
      this.push(POOL.subarray(at, at + length));
      position += length;
    },
  });
}

export interface Target {
  url: string;
  token: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function send(url: string, method: string, headers: Record<string, string | number>, payload?: Readable): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk.slice(0, 500)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    if (payload) payload.pipe(req);
    else req.end();
  });
}

function common(target: Target) {
  return { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${target.token}` };
}

export async function create(target: Target, size: number): Promise<string> {
  const res = await send(`${target.url}/files/`, 'POST', { ...common(target), 'Upload-Length': size, 'Upload-Metadata': METADATA });
  if (res.status !== 201) throw new Error(`POST answered ${res.status}`);
  return new URL(res.headers.location!, target.url).toString();
}

export async function patch(target: Target, location: string, start: number, end: number, size: number): Promise<number> {
  const res = await send(
    location,
    'PATCH',
    { ...common(target), 'Upload-Offset': start, 'Content-Type': 'application/offset+octet-stream', 'Content-Length': end - start },
    body(start, end, size),
  );
  if (res.status !== 204) throw new Error(`PATCH answered ${res.status} ${res.text}`);
  return Number(res.headers['upload-offset']);
}

/** Uploads `size` bytes in PATCHes of `chunk` bytes; returns each PATCH's latency in ms. */
export async function upload(target: Target, size: number, chunk = size): Promise<number[]> {
  const location = await create(target, size);
  const latencies: number[] = [];
  for (let offset = 0; offset < size; offset += chunk) {
    const started = performance.now();
    await patch(target, location, offset, Math.min(size, offset + chunk), size);
    latencies.push(performance.now() - started);
  }
  return latencies;
}

/** Runs `count` jobs with at most `concurrency` at once. */
export async function pool<T>(count: number, concurrency: number, job: (index: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        const index = next++;
        results[index] = await job(index);
      }
    }),
  );
  return results;
}

/** A legacy chunk as multipart/form-data, streamed: preamble, the chunk's bytes, epilogue. */
function multipartChunk(start: number, end: number, size: number): { stream: Readable; length: number; contentType: string } {
  const boundary = 'tusgatebench7d3f';
  const preamble = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="chunk"\r\nContent-Type: application/octet-stream\r\n\r\n`);
  const epilogue = Buffer.from(`\r\n--${boundary}--\r\n`);
  const stream = Readable.from(
    (async function* () {
      yield preamble;
      for await (const piece of body(start, end, size)) yield piece as Buffer;
      yield epilogue;
    })(),
  );
  return { stream, length: preamble.length + (end - start) + epilogue.length, contentType: `multipart/form-data; boundary=${boundary}` };
}

/**
 * Uploads `size` bytes through the legacy /api/v1 facade: initiate, chunks `parallel` at a time,
 * complete. Returns each chunk request's latency in ms.
 */
export async function legacyUpload(target: Target, size: number, chunkSize: number, parallel: number): Promise<number[]> {
  const auth = { Authorization: `Bearer ${target.token}` };
  const initiate = await sendJson(`${target.url}/api/v1/upload/initiate`, auth, {
    filename: 'bench.mp4',
    file_size: size,
    chunk_size: chunkSize,
    mime_type: 'video/mp4',
  });
  const { session_id: session, total_chunks: total } = JSON.parse(initiate.text) as { session_id: string; total_chunks: number };
  const latencies = await pool(total, parallel, async (chunk) => {
    const start = chunk * chunkSize;
    const part = multipartChunk(start, Math.min(size, start + chunkSize), size);
    const started = performance.now();
    const res = await send(
      `${target.url}/api/v1/upload/${session}/chunk/${chunk}`,
      'POST',
      { ...auth, 'Content-Type': part.contentType, 'Content-Length': part.length },
      part.stream,
    );
    if (res.status !== 200) throw new Error(`chunk answered ${res.status} ${res.text}`);
    return performance.now() - started;
  });
  const complete = await sendJson(`${target.url}/api/v1/upload/${session}/complete`, auth, { session_id: session });
  if (complete.status !== 200) throw new Error(`complete answered ${complete.status} ${complete.text}`);
  return latencies;
}

async function sendJson(url: string, headers: Record<string, string>, value: unknown) {
  const payload = Buffer.from(JSON.stringify(value));
  return send(url, 'POST', { ...headers, 'Content-Type': 'application/json', 'Content-Length': payload.length }, Readable.from([payload]));
}

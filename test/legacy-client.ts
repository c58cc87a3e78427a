import { createHash, randomBytes } from 'node:crypto';
import { request, type RawResponse } from './helpers/http.js';

/** A response with its JSON body parsed (undefined when the body is not JSON). */
export interface JsonResponse extends RawResponse {
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function withJson(response: RawResponse): JsonResponse {
  let json: unknown;
  try {
    json = JSON.parse(response.text);
  } catch {
    json = undefined;
  }
  return { ...response, json };
}

export interface Part {
  name: string;
  value: Buffer | string;
  filename?: string;
  contentType?: string;
}

/** A multipart/form-data body built by hand, parts in the order given. */
export function multipart(parts: Part[]): { body: Buffer; contentType: string } {
  const boundary = `----tusgate${randomBytes(8).toString('hex')}`;
  const pieces: Buffer[] = [];
  for (const part of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"`;
    if (part.filename !== undefined) head += `; filename="${part.filename}"`;
    head += '\r\n';
    if (part.contentType) head += `Content-Type: ${part.contentType}\r\n`;
    pieces.push(Buffer.from(`${head}\r\n`), Buffer.from(part.value), Buffer.from('\r\n'));
  }
  pieces.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(pieces), contentType: `multipart/form-data; boundary=${boundary}` };
}

export interface ChunkOptions {
  /** chunk_hash field: a value, `true` for the right hash, or absent. */
  hash?: string | true;
  /** Send chunk_hash after the file part instead of before it. */
  hashAfter?: boolean;
  headers?: Record<string, string>;
}

/** The legacy API as the original clients call it, over plain HTTP. */
export function legacyClient(baseUrl: string, token: string | undefined) {
  const auth = (): Record<string, string> => (token === undefined ? {} : { Authorization: `Bearer ${token}` });
  const json = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    withJson(
      await request(`${baseUrl}${path}`, {
        method,
        headers: { ...auth(), ...(body === undefined ? {} : { 'Content-Type': 'application/json' }), ...headers },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      }),
    );
  return {
    initiate: (body: unknown, headers?: Record<string, string>) => json('POST', '/api/v1/upload/initiate', body, headers),
    async chunk(sessionId: string, chunk: number | string, data: Buffer, options: ChunkOptions = {}) {
      const hash = options.hash === true ? sha256(data) : options.hash;
      const file: Part = { name: 'file', value: data, filename: 'blob', contentType: 'application/octet-stream' };
      const parts: Part[] = [];
      if (hash !== undefined && !options.hashAfter) parts.push({ name: 'chunk_hash', value: hash });
      parts.push(file);
      if (hash !== undefined && options.hashAfter) parts.push({ name: 'chunk_hash', value: hash });
      return this.chunkRaw(sessionId, chunk, parts, options.headers);
    },
    async chunkRaw(sessionId: string, chunk: number | string, parts: Part[], headers: Record<string, string> = {}) {
      const form = multipart(parts);
      return withJson(
        await request(`${baseUrl}/api/v1/upload/${sessionId}/chunk/${chunk}`, {
          method: 'POST',
          headers: { ...auth(), 'Content-Type': form.contentType, ...headers },
          body: form.body,
        }),
      );
    },
    complete: (sessionId: string, body: unknown = { session_id: sessionId }) => json('POST', `/api/v1/upload/${sessionId}/complete`, body),
    status: (sessionId: string) => json('GET', `/api/v1/upload/${sessionId}/status`),
    cancel: (sessionId: string) => json('DELETE', `/api/v1/upload/${sessionId}`),
    get: async (path: string, headers: Record<string, string> = {}) => withJson(await request(`${baseUrl}${path}`, { headers })),
  };
}

export type LegacyClient = ReturnType<typeof legacyClient>;

/** Splits `data` into the legacy chunk grid. */
export function chunksOf(data: Buffer, chunkSize: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let start = 0; start < data.length; start += chunkSize) chunks.push(data.subarray(start, start + chunkSize));
  return chunks;
}

/** Initiates, sends every chunk (with chunk_hash) in the given order, and completes. */
export async function uploadWhole(
  client: LegacyClient,
  data: Buffer,
  init: { filename: string; mime_type: string; chunk_size: number; file_hash?: string },
  order?: number[],
) {
  const initiated = await client.initiate({ file_size: data.length, ...init });
  if (initiated.status !== 200) throw new Error(`initiate: ${initiated.status} ${initiated.text}`);
  const id = initiated.json.session_id as string;
  const chunks = chunksOf(data, init.chunk_size);
  for (const n of order ?? chunks.map((_, i) => i)) {
    const sent = await client.chunk(id, n, chunks[n]!, { hash: true });
    if (sent.status !== 200) throw new Error(`chunk ${n}: ${sent.status} ${sent.text}`);
  }
  const completed = await client.complete(id);
  return { id, initiated, completed };
}

import http from 'node:http';
import type { Readable } from 'node:stream';

export interface RawResponse {
  status: number;
  /** The reason phrase of the status line. */
  statusMessage: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

/**
 * A plain HTTP request with exactly the headers given (fetch would add, normalise or refuse some
 * of the malformed ones the protocol tests send).
 */
export function request(
  url: string,
  options: { method?: string; headers?: Record<string, string | number>; body?: Buffer | string | Readable } = {},
): Promise<RawResponse> {
  const headers = { ...options.headers };
  const named = (name: string) => Object.keys(headers).some((key) => key.toLowerCase() === name);
  const body = options.body;
  // Node frames a body of GET, HEAD, DELETE or OPTIONS with neither Content-Length nor chunks, so the
  // server would read it as the next request; a body given whole is always sent with its length.
  if ((typeof body === 'string' || Buffer.isBuffer(body)) && !named('content-length') && !named('transfer-encoding')) {
    headers['Content-Length'] = Buffer.byteLength(body);
  }
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, statusMessage: res.statusMessage ?? '', headers: res.headers, body, text: body.toString('utf8') });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body === undefined) req.end();
    else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  });
}

export function b64(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64');
}

export function metadata(values: Record<string, string>): string {
  return Object.entries(values)
    .map(([key, value]) => `${key} ${b64(value)}`)
    .join(',');
}

/** tus helpers over `request`. */
export function tus(baseUrl: string, token: string) {
  const common = { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}` };
  return {
    async create(length: number | 'defer', meta: Record<string, string> = { filetype: 'text/plain' }, extra: Record<string, string | number> = {}) {
      const headers: Record<string, string | number> = { ...common, ...extra };
      if (length === 'defer') headers['Upload-Defer-Length'] = '1';
      else headers['Upload-Length'] = length;
      if (Object.keys(meta).length > 0) headers['Upload-Metadata'] = metadata(meta);
      return request(`${baseUrl}/files/`, { method: 'POST', headers });
    },
    patch(location: string, offset: number, body: Buffer | string | Readable, extra: Record<string, string | number> = {}) {
      return request(location, {
        method: 'PATCH',
        headers: { ...common, 'Upload-Offset': offset, 'Content-Type': 'application/offset+octet-stream', ...extra },
        body,
      });
    },
    head(location: string, extra: Record<string, string> = {}) {
      return request(location, { method: 'HEAD', headers: { ...common, ...extra } });
    },
    delete(location: string) {
      return request(location, { method: 'DELETE', headers: common });
    },
  };
}

/**
 * Opens a tus PATCH announcing `length` bytes and sends nothing yet: the caller writes (some of) the
 * body itself, to drop, stall or pace a request the way flaky clients do.
 */
export function openPatch(location: string | URL, token: string, offset: number, length: number, extra: Record<string, string> = {}): http.ClientRequest {
  return http.request(location, {
    method: 'PATCH',
    agent: false,
    headers: {
      'Tus-Resumable': '1.0.0',
      Authorization: `Bearer ${token}`,
      'Upload-Offset': offset,
      'Content-Type': 'application/offset+octet-stream',
      'Content-Length': length,
      ...extra,
    },
  });
}

/**
 * Opens a tus creation that will carry `bodyLength` bytes of an upload of `length` (creation-with-upload)
 * and sends nothing yet, as `openPatch` does for a PATCH.
 */
export function openCreation(endpoint: string, token: string, length: number, bodyLength: number, meta: Record<string, string>): http.ClientRequest {
  return http.request(endpoint, { method: 'POST', agent: false, headers: creationHeaders(token, length, bodyLength, meta) });
}

/** The headers of a tus creation that carries `bodyLength` bytes of an upload of `length`. */
export function creationHeaders(token: string, length: number, bodyLength: number, meta: Record<string, string>): Record<string, string | number> {
  return {
    'Tus-Resumable': '1.0.0',
    Authorization: `Bearer ${token}`,
    'Upload-Length': length,
    'Upload-Metadata': metadata(meta),
    'Content-Type': 'application/offset+octet-stream',
    'Content-Length': bodyLength,
  };
}

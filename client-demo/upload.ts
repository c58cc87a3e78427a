// tusgate's command-line uploader, on tus-js-client:
//
//   npm run upload -- FILE... [--endpoint URL] [--token T] [--state PATH] [--chunk-size N] [--type MIME]
//
// Each file's SHA-256 is computed first and sent as metadata, so the server refuses (460) bytes that
// changed on the way; at the end the server's Repr-Digest must equal it. Interrupted uploads (Ctrl-C,
// kill, a dropped connection) are remembered in a URL store and continue from the server's offset
// when the same command runs again. Exit code 0 only when every file was uploaded and verified.
//
// With --legacy it speaks the 2Truths-1Lie `/api/v1` chunked-upload API instead (initiate, one
// multipart POST per chunk with its SHA-256, complete with the file's SHA-256); the session of an
// unfinished file is remembered next to the URL store and only its missing chunks are sent again.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as tus from 'tus-js-client';

const USAGE = `usage: npm run upload -- FILE... [options]

options:
  --endpoint URL     tus endpoint (default: $TUSGATE_ENDPOINT or http://127.0.0.1:1080/files/)
  --token T          Bearer token (default: $TUSGATE_TOKEN, else the server's development token)
  --state PATH       where unfinished uploads are remembered (default: ~/.tusgate/uploads.json)
  --chunk-size N     bytes per PATCH request, e.g. 5M (default: the whole rest of the file in one)
  --type MIME        the files' type (default: guessed from each file's extension)
  --retries N        retries after a failed request, with growing pauses up to 20 s (default: 6)
  --legacy           use the legacy /api/v1 chunked-upload API instead of tus (--endpoint may then
                     be the server's root URL; --chunk-size defaults to 1M, the API's default)
  -h, --help         this text
`;

/** Types by extension, for the kinds of file tusgate accepts by default; the server has the last word. */
const TYPES: Record<string, string> = {
  '.mp4': 'video/mp4', '.m4v': 'video/mp4', '.webm': 'video/webm', '.ogv': 'video/ogg', '.avi': 'video/avi',
  '.mov': 'video/quicktime', '.mp3': 'audio/mpeg', '.wav': 'audio/wav', '.ogg': 'audio/ogg', '.oga': 'audio/ogg',
  '.aac': 'audio/aac', '.m4a': 'audio/mp4', '.weba': 'audio/webm', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg',
  '.png': 'image/png', '.gif': 'image/gif', '.webp': 'image/webp', '.txt': 'text/plain', '.text': 'text/plain',
};

function guessType(file: string): string {
  return TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** "5M", "256k", "1048576" → bytes. */
function parseSize(text: string): number {
  const match = /^(\d+)\s*([kmg]?)i?b?$/i.exec(text.trim());
  if (!match) throw new UsageError(`--chunk-size: not a size: ${text}`);
  const power = ' kmg'.indexOf(match[2]!.toLowerCase() || ' ');
  const bytes = Number(match[1]) * 1024 ** power;
  if (bytes < 1) throw new UsageError('--chunk-size must be at least 1 byte');
  return bytes;
}

class UsageError extends Error {}

/** The tus endpoint (--endpoint or TUSGATE_ENDPOINT): an http(s) URL. */
function parseEndpoint(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--endpoint: not a URL: ${text}`);
  }
  if (!/^https?:$/.test(url.protocol)) throw new UsageError(`--endpoint: not an http:// or https:// URL: ${text}`);
  return url.href;
}

/** Pauses between retries: the whole schedule (39 s) outlasts a server restart or a short outage. */
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000];

function retries(text: string | undefined): number {
  if (text === undefined) return RETRY_DELAYS.length;
  if (!/^\d+$/.test(text) || Number(text) > RETRY_DELAYS.length) throw new UsageError(`--retries must be 0 to ${RETRY_DELAYS.length}`);
  return Number(text);
}

// tus-js-client's Node build exports FileUrlStorage, but its type declarations omit it.
const { FileUrlStorage } = tus as unknown as { FileUrlStorage: new (file: string) => tus.UrlStorage };

/**
 * The URL store, one operation at a time. tus-js-client removes a finished upload's entry without
 * waiting (fire and forget), so the next file's entry could race it for FileUrlStorage's lock file,
 * and an exit right after the last file could cut the removal short; `settled()` is awaited before
 * exiting. A lock left by a killed run is stale after 10 s (proper-lockfile), so ELOCKED is retried.
 */
class SerialUrlStorage implements tus.UrlStorage {
  private queue: Promise<unknown> = Promise.resolve();
  /**
   * Set while the server's last answer to a resuming HEAD said "not you" or "not now" (401, 403,
   * 429): tus-js-client drops an upload's entry on any 4xx there, but the upload is still on the
   * server, to be continued with a valid token or later.
   */
  keepEntries = false;

  constructor(private readonly inner: tus.UrlStorage) {}

  private run<T>(operation: () => Promise<T>): Promise<T> {
    const attempt = async (): Promise<T> => {
      for (let tries = 0; ; tries++) {
        try {
          return await operation();
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ELOCKED' || tries >= 24) throw error;
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
      }
    };
    const result = this.queue.then(attempt);
    this.queue = result.catch(() => undefined);
    return result;
  }

  settled(): Promise<unknown> {
    return this.queue;
  }

  findAllUploads() {
    return this.run(() => this.inner.findAllUploads());
  }
  findUploadsByFingerprint(fingerprint: string) {
    return this.run(() => this.inner.findUploadsByFingerprint(fingerprint));
  }
  removeUpload(urlStorageKey: string) {
    if (this.keepEntries) return Promise.resolve();
    return this.run(() => this.inner.removeUpload(urlStorageKey));
  }
  addUpload(fingerprint: string, upload: tus.PreviousUpload) {
    return this.run(() => this.inner.addUpload(fingerprint, upload));
  }
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--';
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/** One progress bar on stderr: redrawn in place ten times a second on a terminal, one line a second otherwise (logs, CI). */
class ProgressBar {
  private readonly tty = Boolean(process.stderr.isTTY);
  private lastLine = 0;
  private startTime = Date.now();
  private startBytes: number | undefined;

  constructor(private readonly label: string) {}

  update(done: number, total: number): void {
    this.startBytes ??= done;
    const now = Date.now();
    if (now - this.lastLine < (this.tty ? 100 : 1000) && done < total) return;
    this.lastLine = now;
    const rate = (done - this.startBytes) / Math.max((now - this.startTime) / 1000, 0.001);
    const fraction = total ? done / total : 1;
    const width = 24;
    const filled = Math.round(fraction * width);
    const line =
      `${this.label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(fraction * 100).toFixed(1).padStart(5)}% ` +
      `${bytes(done)}/${bytes(total)} ${bytes(rate)}/s ETA ${duration(rate > 0 ? (total - done) / rate : Infinity)}`;
    process.stderr.write(this.tty ? `\r\x1b[2K${line}` : `${line}\n`);
  }

  /** A message of its own line; on a terminal the bar is drawn again below it at the next update. */
  log(message: string): void {
    process.stderr.write(this.tty ? `\r\x1b[2K${message}\n` : `${message}\n`);
  }

  /** Ends the bar's line on a terminal, so that the next message starts on its own. */
  end(): void {
    if (this.tty && this.lastLine) process.stderr.write('\n');
  }
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** `sha-256=:<base64>:` (RFC 9530) → hex, or undefined. */
function digestHex(header: string | null | undefined): string | undefined {
  const b64 = header?.match(/sha-256=:([A-Za-z0-9+/=]+):/)?.[1];
  return b64 ? Buffer.from(b64, 'base64').toString('hex') : undefined;
}

/** A failed upload in plain words, with the server's own message when it sent one. */
function explain(detailed: tus.DetailedError, endpoint: string): string {
  const response = detailed.originalResponse;
  if (!response) {
    const cause = detailed.causingError?.message ?? detailed.message;
    return `could not reach ${endpoint}: ${cause}`;
  }
  const status = response.getStatus();
  const body = response.getBody()?.trim();
  const said = `HTTP ${status}${body ? `: "${body}"` : ''}`;
  switch (status) {
    case 401:
      return `the server refused the token; pass a valid one with --token or TUSGATE_TOKEN (${said})`;
    case 413:
      return `the file is larger than the server accepts (${said})`;
    case 415:
      return `the server does not accept this type of file, or its content is not what the type says (${said})`;
    case 429: {
      const wait = response.getHeader('Retry-After');
      return `too many uploads${wait ? `, try again in ${wait} s` : ''} (${said})`;
    }
    case 460:
      return `the bytes the server received do not match the file's SHA-256, so it discarded the upload (${said})`;
    default:
      return `the server refused the upload (${said})`;
  }
}

async function resolveToken(endpoint: string, given: string | undefined): Promise<string> {
  const token = given ?? process.env.TUSGATE_TOKEN;
  if (token) return token;
  // Development mode: a server without a configured key hands out a token for its demo user.
  const url = new URL('/demo/token', endpoint);
  let response: Response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new Error(`could not reach ${url.origin}: ${(error as Error & { cause?: Error }).cause?.message ?? (error as Error).message}`);
  }
  if (!response.ok) {
    throw new Error('no token: pass --token or set TUSGATE_TOKEN (the server is not in development mode, so it gives none out)');
  }
  return ((await response.json()) as { token: string }).token;
}

interface UploadSettings {
  endpoint: string;
  token: string;
  urlStorage: SerialUrlStorage;
  chunkSize: number;
  retryDelays: number[];
  type?: string;
}

async function forgetUpload(upload: tus.Upload, storage: tus.UrlStorage): Promise<void> {
  for (const previous of await upload.findPreviousUploads().catch(() => [])) {
    if (previous.uploadUrl === upload.url) await storage.removeUpload(previous.urlStorageKey).catch(() => undefined);
  }
}

/** Uploads one file, resuming an earlier attempt when the URL store has one; resolves with its URL and digest. */
async function uploadFile(file: string, settings: UploadSettings, current: { upload?: tus.Upload }): Promise<{ url: string; sha256: string }> {
  const stat = await fs.promises.stat(file);
  if (!stat.isFile()) throw new Error('not a regular file');
  const name = path.basename(file);
  process.stderr.write(`${name}: computing SHA-256 of ${bytes(stat.size)}…\n`);
  const sha256 = await sha256Of(file);
  const bar = new ProgressBar(name);
  const authorization = `Bearer ${settings.token}`;

  const finalResponse = await new Promise<tus.HttpResponse>((resolve, reject) => {
    const upload = new tus.Upload(fs.createReadStream(file), {
      endpoint: settings.endpoint,
      chunkSize: settings.chunkSize,
      uploadSize: stat.size,
      metadata: { filename: name, filetype: settings.type ?? guessType(file), sha256 },
      headers: { Authorization: authorization },
      urlStorage: settings.urlStorage,
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      // By content, not path and modification time: a file rewritten with other bytes of the same size
      // within the same second starts a new upload instead of resuming the old one (460 at the end).
      fingerprint: async () => ['tusgate', sha256, stat.size, settings.endpoint].join('-'),
      // 4xx answers other than 409/423 are final; tus-js-client retries the rest.
      retryDelays: settings.retryDelays,
      onAfterResponse(request, response) {
        if (request.getMethod() === 'HEAD') settings.urlStorage.keepEntries = [401, 403, 429].includes(response.getStatus());
        if (request.getMethod() === 'HEAD' && response.getStatus() === 200) {
          bar.log(`${name}: resuming ${upload.url} from byte ${response.getHeader('Upload-Offset')} of ${stat.size}`);
        }
        if (request.getMethod() === 'POST' && response.getStatus() === 201) {
          bar.log(`${name}: created ${new URL(response.getHeader('Location') ?? '', settings.endpoint).href}`);
        }
      },
      onProgress: (done, total) => bar.update(done, total),
      onSuccess: ({ lastResponse }) => (bar.end(), resolve(lastResponse)),
      onError: (error) => {
        bar.end();
        // These answers mean the upload is gone or can never finish: forget it. (After a 401 or a
        // 429 it is still there, to be continued with a valid token or later.)
        const status = (error as tus.DetailedError).originalResponse?.getStatus() ?? 0;
        const forget = [404, 410, 413, 415, 460].includes(status) ? forgetUpload(upload, settings.urlStorage) : Promise.resolve();
        void forget.finally(() => reject(error));
      },
    });
    current.upload = upload;
    upload
      .findPreviousUploads()
      .then((previous) => {
        // The newest attempt for this file (same path, size, mtime and endpoint) is the one to continue.
        const latest = previous.sort((a, b) => Date.parse(b.creationTime) - Date.parse(a.creationTime))[0];
        if (latest) upload.resumeFromPreviousUpload(latest);
        upload.start();
      })
      .catch(reject);
  });

  const url = current.upload!.url!;
  // The final PATCH (or, when the upload was already complete, the HEAD) carries the server's digest.
  let serverHex = digestHex(finalResponse.getHeader('Repr-Digest'));
  if (!serverHex) {
    const head = await fetch(url, { method: 'HEAD', headers: { Authorization: authorization } });
    serverHex = digestHex(head.headers.get('Repr-Digest'));
  }
  if (serverHex !== sha256) {
    throw new Error(`the server reports SHA-256 ${serverHex ?? '(none)'} but the file's is ${sha256}`);
  }
  return { url, sha256 };
}

// ---------------------------------------------------------------------------------------------
// --legacy: the 2Truths-1Lie `/api/v1` chunked-upload API (initiate → chunks → complete).

/** A refusal by the legacy API: its status and `detail` in words. */
class LegacyHttpError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly retryAfter: string | null,
  ) {
    super(`HTTP ${status}${detail ? `: "${detail}"` : ''}`);
  }
}

/** A request that could not be made at all (refused connection, reset, DNS…). */
class LegacyNetworkError extends Error {}

/** `{"detail": "..."}` or FastAPI's 422 list, as one line of text. */
function legacyDetail(text: string): string {
  try {
    const detail = (JSON.parse(text) as { detail?: unknown }).detail;
    if (typeof detail === 'string') return detail;
    if (Array.isArray(detail)) {
      return detail.map((item: { loc?: unknown[]; msg?: string }) => `${(item.loc ?? []).join('.')}: ${item.msg ?? '?'}`).join('; ');
    }
  } catch {
    // not JSON: the text itself
  }
  return text.trim().slice(0, 500);
}

function explainLegacy(error: LegacyHttpError): string {
  switch (error.status) {
    case 401:
      return `the server refused the token; pass a valid one with --token or TUSGATE_TOKEN (${error.message})`;
    case 404:
      return `the server does not know this upload or path; is --endpoint a tusgate with the legacy API? (${error.message})`;
    case 410:
      return `the upload session expired on the server (${error.message})`;
    case 413:
      return `the file is larger than the server accepts (${error.message})`;
    case 415:
      return `the server does not accept this type of file, or its content is not what the type says (${error.message})`;
    case 429:
      return `too many uploads${error.retryAfter ? `, try again in ${error.retryAfter} s` : ''} (${error.message})`;
    default:
      return `the server refused the upload (${error.message})`;
  }
}

interface LegacySession {
  session_id: string;
  chunk_size: number;
  total_chunks: number;
  sha256: string;
  created: string;
}

/**
 * The sessions of unfinished legacy uploads, one JSON file next to tus mode's URL store, keyed by the
 * file's path, size and mtime and the server. Writes go one at a time and replace the file atomically,
 * so a kill at any moment leaves either the old or the new map.
 */
class LegacySessionStore {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly file: string) {}

  static key(file: string, stat: fs.Stats, base: string): string {
    return `legacy::${path.resolve(file)}::${stat.size}::${Math.trunc(stat.mtimeMs)}::${base}`;
  }

  private async read(): Promise<Record<string, LegacySession>> {
    try {
      return JSON.parse(await fs.promises.readFile(this.file, 'utf8')) as Record<string, LegacySession>;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new Error(`cannot read ${this.file}: ${(error as Error).message}`);
    }
  }

  private change(edit: (map: Record<string, LegacySession>) => void): Promise<void> {
    const result = this.queue.then(async () => {
      const map = await this.read();
      edit(map);
      const temporary = `${this.file}.${process.pid}.tmp`;
      await fs.promises.writeFile(temporary, `${JSON.stringify(map, null, 2)}\n`);
      await fs.promises.rename(temporary, this.file);
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  async get(key: string): Promise<LegacySession | undefined> {
    await this.queue;
    return (await this.read())[key];
  }

  set(key: string, session: LegacySession): Promise<void> {
    return this.change((map) => void (map[key] = session));
  }

  remove(key: string): Promise<void> {
    return this.change((map) => void delete map[key]);
  }

  settled(): Promise<unknown> {
    return this.queue;
  }
}

interface LegacySettings {
  /** The server's root: the API's paths are resolved against it. */
  base: string;
  token: string;
  sessions: LegacySessionStore;
  chunkSize: number;
  retryDelays: number[];
  type?: string;
  /** Aborts the request in flight (Ctrl-C). */
  signal: AbortSignal;
}

/**
 * One request to the legacy API, retried with the backoff schedule after a network error, a 5xx or a
 * 429 (after Retry-After when the server sends one); other non-200 answers are final.
 */
async function legacyRequest(
  settings: LegacySettings,
  method: string,
  url: string,
  body?: () => BodyInit | object,
  log?: (message: string) => void,
): Promise<{ json: any; headers: Headers }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  for (let attempt = 0; ; attempt++) {
    let failure: Error;
    try {
      const payload = body?.();
      const isJson = payload !== undefined && !(payload instanceof FormData);
      const response = await fetch(url, {
        method,
        headers: { Authorization: `Bearer ${settings.token}`, ...(isJson ? { 'Content-Type': 'application/json' } : {}) },
        body: isJson ? JSON.stringify(payload) : (payload as BodyInit | undefined),
        signal: settings.signal,
      });
      const text = await response.text();
      if (response.ok) return { json: text ? JSON.parse(text) : undefined, headers: response.headers };
      failure = new LegacyHttpError(response.status, legacyDetail(text), response.headers.get('Retry-After'));
      if (response.status < 500 && response.status !== 429) throw failure;
    } catch (error) {
      if (error instanceof LegacyHttpError || settings.signal.aborted) throw error;
      const cause = (error as Error & { cause?: Error }).cause?.message ?? (error as Error).message;
      failure = new LegacyNetworkError(`could not reach ${new URL(url).origin}: ${cause}`);
    }
    if (attempt >= settings.retryDelays.length) throw failure;
    const retryAfter = failure instanceof LegacyHttpError && failure.retryAfter ? Number(failure.retryAfter) * 1000 : NaN;
    const delay = Number.isFinite(retryAfter) ? Math.min(retryAfter, 60_000) : settings.retryDelays[attempt]!;
    log?.(`${method} ${new URL(url).pathname} failed (${failure.message}); retrying in ${delay / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

/** SHA-256 of bytes [start, end) of the file, read from disk. */
async function sha256OfRange(file: string, start: number, end: number): Promise<string> {
  const hash = createHash('sha256');
  if (end > start) for await (const chunk of fs.createReadStream(file, { start, end: end - 1 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Uploads one file through the legacy API, continuing its remembered session when there is one. */
async function uploadFileLegacy(file: string, settings: LegacySettings): Promise<{ url: string; sha256: string }> {
  const stat = await fs.promises.stat(file);
  if (!stat.isFile()) throw new Error('not a regular file');
  const name = path.basename(file);
  const api = (route: string) => new URL(`/api/v1/upload/${route}`, settings.base).href;
  process.stderr.write(`${name}: computing SHA-256 of ${bytes(stat.size)}…\n`);
  const sha256 = await sha256Of(file);
  const bar = new ProgressBar(name);
  const log = (message: string) => bar.log(`${name}: ${message}`);
  const key = LegacySessionStore.key(file, stat, settings.base);

  // A remembered session continues with the chunks the server does not have yet.
  let session = await settings.sessions.get(key);
  let remaining: number[] | undefined;
  let completedUrl: string | undefined;
  if (session && session.sha256 !== sha256) session = undefined; // same size and mtime, other bytes
  if (session) {
    try {
      const { json: status } = await legacyRequest(settings, 'GET', api(`${session.session_id}/status`), undefined, log);
      if (status.status === 'pending' || status.status === 'in_progress') {
        remaining = status.remaining_chunks as number[];
        log(`resuming session ${session.session_id}: ${session.total_chunks - remaining.length} of ${session.total_chunks} chunks already on the server`);
      } else if (status.status === 'completed') {
        // Completed by a run killed before it could verify: the server names its file this way.
        completedUrl = new URL(`/api/v1/files/${session.session_id}_${encodeURIComponent(name)}`, settings.base).href;
        log(`session ${session.session_id} was already completed`);
      } else {
        log(`session ${session.session_id} is ${status.status}; starting a new one`);
      }
    } catch (error) {
      if (!(error instanceof LegacyHttpError) || ![403, 404, 410].includes(error.status)) throw error;
      log(`session ${session.session_id} is gone from the server (${error.message}); starting a new one`);
    }
    if (!remaining && !completedUrl) {
      await settings.sessions.remove(key);
      session = undefined;
    }
  }

  let fileUrl: string;
  if (completedUrl) {
    fileUrl = completedUrl;
  } else {
    if (!session) {
      const { json } = await legacyRequest(
        settings,
        'POST',
        api('initiate'),
        () => ({ filename: name, file_size: stat.size, chunk_size: settings.chunkSize, mime_type: settings.type ?? guessType(file), file_hash: sha256 }),
        log,
      );
      session = { session_id: json.session_id, chunk_size: json.chunk_size, total_chunks: json.total_chunks, sha256, created: new Date().toISOString() };
      await settings.sessions.set(key, session);
      remaining = Array.from({ length: session.total_chunks }, (_, i) => i);
      log(`initiated session ${session.session_id} (${session.total_chunks} chunks of ${bytes(session.chunk_size)})`);
    }
    const { session_id: id, chunk_size: chunkSize, total_chunks: total } = session;
    const chunkBytes = (n: number) => Math.min(chunkSize, stat.size - n * chunkSize);
    log(`sending ${remaining!.length} of ${total} chunks`);

    // Each chunk is read from disk by a Blob backed by the file, never the whole file into memory.
    const blob = await fs.openAsBlob(file);
    let done = stat.size - remaining!.reduce((sum, n) => sum + chunkBytes(n), 0);
    bar.update(done, stat.size);
    try {
      for (const n of remaining!) {
        const start = n * chunkSize;
        const end = start + chunkBytes(n);
        const chunkHash = await sha256OfRange(file, start, end);
        await legacyRequest(
          settings,
          'POST',
          api(`${id}/chunk/${n}`),
          () => {
            const form = new FormData();
            form.append('chunk_hash', chunkHash);
            form.append('file', blob.slice(start, end, 'application/octet-stream'), `chunk_${n}`);
            return form;
          },
          log,
        );
        done += end - start;
        bar.update(done, stat.size);
      }
      const { json: completed } = await legacyRequest(settings, 'POST', api(`${id}/complete`), () => ({ session_id: id, file_hash: sha256 }), log);
      fileUrl = new URL(completed.file_url as string, settings.base).href;
    } finally {
      bar.end();
    }
  }
  // Finished on the server: nothing left to continue, whatever the check below says.
  await settings.sessions.remove(key);

  const { headers } = await legacyRequest(settings, 'HEAD', fileUrl, undefined, log);
  const serverHex = digestHex(headers.get('Repr-Digest'));
  if (serverHex !== sha256) {
    throw new Error(`the server reports SHA-256 ${serverHex ?? '(none)'} for ${fileUrl} but the file's is ${sha256}`);
  }
  return { url: fileUrl, sha256 };
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        endpoint: { type: 'string' },
        token: { type: 'string' },
        state: { type: 'string' },
        'chunk-size': { type: 'string' },
        type: { type: 'string' },
        retries: { type: 'string' },
        legacy: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('no FILE given');

  // `npm run upload` runs in the repository; relative paths are meant from where npm was run (INIT_CWD).
  const invokedIn = process.env.INIT_CWD ?? process.cwd();
  const endpoint = parseEndpoint(values.endpoint ?? process.env.TUSGATE_ENDPOINT ?? 'http://127.0.0.1:1080/files/');
  const statePath = path.resolve(invokedIn, values.state ?? process.env.TUSGATE_STATE ?? path.join(os.homedir(), '.tusgate', 'uploads.json'));
  await fs.promises.mkdir(path.dirname(statePath), { recursive: true });
  const token = await resolveToken(endpoint, values.token);
  const chunkSize = values['chunk-size'] ? parseSize(values['chunk-size']) : values.legacy ? 1_048_576 : Infinity;
  const retryDelays = RETRY_DELAYS.slice(0, retries(values.retries));
  const settings: UploadSettings = {
    endpoint,
    token,
    urlStorage: new SerialUrlStorage(new FileUrlStorage(statePath)),
    chunkSize,
    retryDelays,
    type: values.type,
  };
  // --legacy: its sessions are remembered in the same directory as the tus URL store.
  const abort = new AbortController();
  const legacy: LegacySettings = {
    base: new URL('/', endpoint).href,
    token,
    sessions: new LegacySessionStore(path.join(path.dirname(statePath), 'legacy-sessions.json')),
    chunkSize,
    retryDelays,
    type: values.type,
    signal: abort.signal,
  };

  // Ctrl-C stops the request in flight but keeps the upload on the server and in the URL store.
  const current: { upload?: tus.Upload } = {};
  process.once('SIGINT', () => {
    abort.abort();
    void Promise.allSettled([current.upload?.abort(false), settings.urlStorage.settled(), legacy.sessions.settled()]).finally(() => {
      process.stderr.write('\ninterrupted: run the same command again to continue where it stopped\n');
      process.exit(130);
    });
  });

  let failures = 0;
  for (const given of positionals) {
    const file = path.resolve(invokedIn, given);
    try {
      const { url, sha256 } = values.legacy ? await uploadFileLegacy(file, legacy) : await uploadFile(file, settings, current);
      process.stderr.write(`${path.basename(file)}: done, SHA-256 verified by the server\n`);
      // stdout: one line per verified file, for scripts.
      process.stdout.write(`${url}  sha256:${sha256}  ${given}\n`);
    } catch (error) {
      if (abort.signal.aborted) await new Promise(() => undefined); // the SIGINT handler exits
      failures++;
      const message =
        error instanceof tus.DetailedError ? explain(error, endpoint) : error instanceof LegacyHttpError ? explainLegacy(error) : (error as Error).message;
      process.stderr.write(`${path.basename(file)}: FAILED: ${message}\n`);
    }
  }
  if (positionals.length > 1) process.stderr.write(`${positionals.length - failures} of ${positionals.length} files uploaded and verified\n`);
  await Promise.all([settings.urlStorage.settled(), legacy.sessions.settled()]);
  return failures ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`tusgate upload: ${(error as Error).message}\n${error instanceof UsageError ? `\n${USAGE}` : ''}`);
    process.exit(error instanceof UsageError ? 2 : 1);
  },
);

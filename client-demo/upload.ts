// tusgate's command-line uploader, on tus-js-client:
//
//   npm run upload -- FILE... [--endpoint URL] [--token T] [--state PATH] [--chunk-size N] [--type MIME]
//
// Each file's SHA-256 is computed first and sent as metadata, so the server refuses (460) bytes that
// changed on the way; at the end the server's Repr-Digest must equal it. Interrupted uploads (Ctrl-C,
// kill, a dropped connection) are remembered in a URL store and continue from the server's offset
// when the same command runs again. Exit code 0 only when every file was uploaded and verified.
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
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
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
      // 4xx answers other than 409/423 are final; tus-js-client retries the rest.
      retryDelays: settings.retryDelays,
      onAfterResponse(request, response) {
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

  const endpoint = new URL(values.endpoint ?? process.env.TUSGATE_ENDPOINT ?? 'http://127.0.0.1:1080/files/').href;
  const statePath = path.resolve(values.state ?? process.env.TUSGATE_STATE ?? path.join(os.homedir(), '.tusgate', 'uploads.json'));
  await fs.promises.mkdir(path.dirname(statePath), { recursive: true });
  const settings: UploadSettings = {
    endpoint,
    token: await resolveToken(endpoint, values.token),
    urlStorage: new SerialUrlStorage(new FileUrlStorage(statePath)),
    chunkSize: values['chunk-size'] ? parseSize(values['chunk-size']) : Infinity,
    retryDelays: RETRY_DELAYS.slice(0, retries(values.retries)),
    type: values.type,
  };

  // Ctrl-C stops the request in flight but keeps the upload on the server and in the URL store.
  const current: { upload?: tus.Upload } = {};
  process.once('SIGINT', () => {
    void Promise.allSettled([current.upload?.abort(false), settings.urlStorage.settled()]).finally(() => {
      process.stderr.write('\ninterrupted: run the same command again to continue where it stopped\n');
      process.exit(130);
    });
  });

  let failures = 0;
  for (const file of positionals) {
    try {
      const { url, sha256 } = await uploadFile(file, settings, current);
      process.stderr.write(`${path.basename(file)}: done, SHA-256 verified by the server\n`);
      // stdout: one line per verified file, for scripts.
      process.stdout.write(`${url}  sha256:${sha256}  ${file}\n`);
    } catch (error) {
      failures++;
      const message = error instanceof tus.DetailedError ? explain(error, endpoint) : (error as Error).message;
      process.stderr.write(`${path.basename(file)}: FAILED: ${message}\n`);
    }
  }
  if (positionals.length > 1) process.stderr.write(`${positionals.length - failures} of ${positionals.length} files uploaded and verified\n`);
  await settings.urlStorage.settled();
  return failures ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`tusgate upload: ${(error as Error).message}\n${error instanceof UsageError ? `\n${USAGE}` : ''}`);
    process.exit(error instanceof UsageError ? 2 : 1);
  },
);

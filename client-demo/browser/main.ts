// The /demo/ page: Uppy's Dashboard uploading to tusgate's tus endpoint with @uppy/tus.
import Uppy, { type UppyFile } from '@uppy/core';
import Dashboard from '@uppy/dashboard';
import Tus, { type TusBody } from '@uppy/tus';
import { defaultOptions as tusDefaults, type DetailedError } from 'tus-js-client';
import '@uppy/core/css/style.min.css';
import '@uppy/dashboard/css/style.min.css';
import './style.css';
import type { DemoConfig } from './types.js';
import type { HashMessage } from './hash-worker.js';

type DemoMeta = { name: string; type: string; sha256?: string };
type DemoFile = UppyFile<DemoMeta, TusBody>;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
/** tus-js-client's pauses before each retry: long enough, in all, to ride out a server restart. */
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000];
/**
 * Refusals after which the server has removed the upload, or will refuse it again whatever is retried:
 * not found or expired (404, 410), too large (413), content not of its type (415), SHA-256 mismatch (460).
 * Errors a retry can fix (network, 5xx, 409, 423, 429) and a refused token (401) are not among them.
 */
const UPLOAD_GONE = new Set([404, 410, 413, 415, 460]);

function formatBytes(n: number): string {
  // Powers of 1024, as Uppy's own messages count them, so the two never disagree on screen.
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

/** `sha-256=:<base64>:` (RFC 9530) → lower-case hex, or undefined. */
function digestHex(header: string | null): string | undefined {
  const b64 = header?.match(/sha-256=:([A-Za-z0-9+/=]+):/)?.[1];
  if (!b64) return undefined;
  return Array.from(atob(b64), (c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join('');
}

/** Streams the file through a worker; `onProgress` gets the fraction hashed so far. */
function sha256(file: Blob, onProgress: (fraction: number) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const worker = new Worker('/demo/hash-worker.js');
    worker.onmessage = (event: MessageEvent<HashMessage>) => {
      const message = event.data;
      if (message.type === 'progress') return onProgress(file.size ? message.bytes / file.size : 1);
      worker.terminate();
      if (message.type === 'done') resolve(message.sha256);
      else reject(new Error(`could not compute the SHA-256: ${message.message}`));
    };
    worker.onerror = (event) => {
      worker.terminate();
      reject(new Error(`could not compute the SHA-256: ${event.message}`));
    };
    worker.postMessage(file);
  });
}

/**
 * Removes tus-js-client's resume entries (localStorage `tus::…`) for the upload at `url`. Left there,
 * they would outlive the upload, which can never be resumed; tus-js-client drops one itself only on
 * success (removeFingerprintOnSuccess) or when a later resume finds it gone.
 */
async function forgetUpload(url: string): Promise<void> {
  const storage = tusDefaults.urlStorage;
  for (const entry of await storage.findAllUploads()) {
    if (entry.uploadUrl === url) await storage.removeUpload(entry.urlStorageKey);
  }
}

/**
 * Fetches a file with the token and saves it under its name: with FILES_PUBLIC=false a plain link
 * would be sent without the token and refused (404). Saved rather than opened: a blob: URL opened in
 * a tab would be a document of this page's origin, without the Content-Security-Policy the server
 * serves files with.
 */
async function saveWithToken(url: string, name: string, token: string): Promise<void> {
  const response = await fetch(url, { headers: { Authorization: `Bearer ${token}` } }).catch(() => undefined);
  if (!response?.ok) {
    const why = !response
      ? 'the server could not be reached'
      : response.status === 404
        ? 'the server did not find it for this token (files here are readable by their owner only; the token may have expired)'
        : `HTTP ${response.status}`;
    showProblems([`${name} could not be fetched: ${why}.`]);
    return;
  }
  const objectUrl = URL.createObjectURL(await response.blob());
  const save = document.createElement('a');
  save.href = objectUrl;
  save.download = name;
  save.click();
  // Not at once: the download reads the blob after this returns.
  setTimeout(() => URL.revokeObjectURL(objectUrl), 60_000);
}

/** The server's refusal in plain words, with its own message after it. */
function explain(status: number | undefined, serverText: string, retryAfter: string | null, config: DemoConfig): string {
  const said = serverText.trim() ? ` The server said: “${serverText.trim()}”` : '';
  switch (status) {
    case undefined:
    case 0:
      return 'The server could not be reached. Check the connection, then press retry: the upload continues where it stopped.';
    case 401:
      return config.devMode
        ? `The server did not accept the demo token (the server's data directory may have changed). Reload the page.${said}`
        : `The server did not accept your token: it may have expired. Paste a fresh one and retry.${said}`;
    case 413:
      return `The file is larger than the server accepts (${formatBytes(config.maxFileSize)} at most).${said}`;
    case 415:
      return `The server does not accept this kind of file, or its content is not what its type says.${said}`;
    case 429:
      return `Too many uploads at once or in the last hour.${retryAfter ? ` Try again in ${retryAfter} s.` : ''}${said}`;
    case 460:
      return `The bytes the server received do not match the file's SHA-256, so the upload was discarded. Retry it.${said}`;
    default:
      return `The upload failed (HTTP ${status}).${said}`;
  }
}

function typesNote(types: string[]): string {
  const groups = new Map<string, string[]>();
  for (const type of types) {
    const [group = type, sub = ''] = type.split('/');
    groups.set(group, [...(groups.get(group) ?? []), sub]);
  }
  return [...groups].map(([group, subs]) => (subs.includes('*') ? `any ${group}` : `${group} (${subs.join(', ')})`)).join(' · ');
}

/** Seconds since the epoch at which a JWT expires, if it says (the page cannot check its signature). */
function expiresAt(token: string): number | undefined {
  try {
    const payload = JSON.parse(atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))) as { exp?: unknown };
    return typeof payload.exp === 'number' ? payload.exp : undefined;
  } catch {
    return undefined;
  }
}

/** Why a token cannot be sent now, or undefined when it can. */
function tokenProblem(token: string): string | undefined {
  if (!token) return 'Paste a token first: the server accepts uploads only with one.';
  const exp = expiresAt(token);
  if (exp !== undefined && exp * 1000 <= Date.now()) {
    // Sent, it would be refused, and the client would then give up the resume point of an upload.
    return 'Your token has expired. Paste a fresh one, then start the upload again: it continues where it stopped.';
  }
  return undefined;
}

async function main(): Promise<void> {
  const config = (await (await fetch('/demo/config')).json()) as DemoConfig;
  let token = '';
  /** The token to send now: in development mode, one from the server when there is none or it nears expiry. */
  const currentToken = async (): Promise<string> => {
    if (config.devMode && (!token || (expiresAt(token) ?? Infinity) * 1000 < Date.now() + 10 * 60_000)) {
      const response = await fetch('/demo/token', { cache: 'no-store' });
      if (response.ok) token = ((await response.json()) as { token: string }).token;
    }
    return token;
  };

  const mode = $('mode');
  mode.hidden = false;
  if (config.devMode) {
    mode.textContent = 'development mode';
    mode.title = 'No JWT key is configured: this page uses a token for the demo user made by the server.';
    await currentToken();
  } else {
    mode.textContent = 'token required';
    const form = $<HTMLFormElement>('auth');
    const input = $<HTMLInputElement>('token');
    form.hidden = false;
    // Kept for this tab only, so a reload can resume an upload without pasting again.
    token = sessionStorage.getItem('tusgate-token') ?? '';
    input.value = token;
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      token = input.value.trim();
      sessionStorage.setItem('tusgate-token', token);
      form.classList.toggle('saved', Boolean(token));
    });
    form.classList.toggle('saved', Boolean(token));
  }

  const exactly = `${config.maxFileSize.toLocaleString('en')} bytes`;
  $('limits').textContent = `Server limits: up to ${formatBytes(config.maxFileSize)} (${exactly}) per file · ${typesNote(config.allowedTypes)}`;

  const uppy = new Uppy<DemoMeta, TusBody>({
    // The server's limits, fetched from it: refused here before any byte is sent.
    restrictions: { maxFileSize: config.maxFileSize, allowedFileTypes: config.acceptedTypes },
    // An expired or missing token is caught before any request: a refused resume (401) would make
    // the client give up the upload's stored place and start a new one.
    onBeforeUpload: () => {
      const problem = config.devMode ? undefined : tokenProblem(token);
      if (problem) showProblems([problem]);
      return problem === undefined;
    },
  });
  uppy.use(Dashboard<DemoMeta, TusBody>, {
    inline: true,
    target: '#dashboard',
    width: '100%',
    height: 420,
    proudlyDisplayPoweredByUppy: false,
    hideProgressDetails: false,
  });
  uppy.use(Tus<DemoMeta, TusBody>, {
    endpoint: new URL(config.endpoint, location.href).href,
    async onBeforeRequest(req) {
      req.setHeader('Authorization', `Bearer ${await currentToken()}`);
    },
    // Only what the server reads: it takes `filename`/`filetype` (copied from name/type) and `sha256`.
    allowedMetaFields: ['name', 'type', 'sha256'],
    retryDelays: RETRY_DELAYS,
    removeFingerprintOnSuccess: true,
    // A retry is shown, or a stalled progress bar looks like a hang.
    onShouldRetry(error, attempt, _options, retryByDefault) {
      const retrying = retryByDefault(error);
      // tus-js-client asks only while a delay is left: `attempt` indexes it.
      if (retrying) {
        const delay = RETRY_DELAYS[attempt] ?? 0;
        uppy.info(`Connection to the server lost: retrying${delay ? ` in ${delay / 1000} s` : ''} (attempt ${attempt + 1} of ${RETRY_DELAYS.length})`, 'warning', delay + 5000);
      }
      return retrying;
    },
    onError(error) {
      const { originalRequest, originalResponse: response } = error as DetailedError;
      const status = response?.getStatus();
      if (status !== undefined && UPLOAD_GONE.has(status) && originalRequest) void forgetUpload(originalRequest.getURL());
      // The Dashboard shows this message; make it the server's answer in plain words.
      const xhr = response?.getUnderlyingObject() as XMLHttpRequest | undefined;
      error.message = explain(status, response?.getBody() ?? '', xhr?.getResponseHeader('Retry-After') ?? null, config);
    },
  });

  // The SHA-256 is computed before the upload starts, so that it travels as metadata and the server
  // can refuse (460) a file whose bytes changed on the way.
  uppy.addPreProcessor(async (fileIDs) => {
    for (const id of fileIDs) {
      const file = uppy.getFile(id);
      if (!file || file.meta.sha256 || !(file.data instanceof Blob)) continue;
      const message = 'Computing SHA-256…';
      uppy.emit('preprocess-progress', file, { mode: 'determinate', message, value: 0 });
      const hex = await sha256(file.data, (value) => uppy.emit('preprocess-progress', file, { mode: 'determinate', message, value }));
      uppy.setFileMeta(id, { ...file.meta, sha256: hex });
      uppy.emit('preprocess-complete', uppy.getFile(id));
    }
  });

  uppy.on('upload-success', async (file, response) => {
    if (!file || !response.uploadURL) return;
    const url = response.uploadURL;
    // The final PATCH answers with the digest the server computed; fall back to asking the file.
    let server = digestHex((response.body?.xhr as XMLHttpRequest | undefined)?.getResponseHeader('Repr-Digest') ?? null);
    if (!server) {
      const head = await fetch(url, { method: 'HEAD', headers: { Authorization: `Bearer ${await currentToken()}` } }).catch(() => undefined);
      server = digestHex(head?.headers.get('Repr-Digest') ?? null);
    }
    const save = config.filesPublic ? undefined : async () => saveWithToken(url, file.name ?? 'file', await currentToken());
    addResult(file as DemoFile, url, server, save);
  });
  uppy.on('upload-error', (file, error) => {
    if (file) addError(file as DemoFile, error.message);
  });
  // Every file refused in one pick is named, until the next upload starts.
  let refused: string[] = [];
  uppy.on('restriction-failed', (file, error) => {
    const tooLarge = (file?.size ?? 0) > config.maxFileSize ? ` (the server accepts at most ${exactly})` : '';
    refused = [...refused, `${file?.name ? `${file.name}: ` : ''}${error.message}${tooLarge}`];
    showProblems(refused);
  });
  uppy.on('upload', () => {
    refused = [];
    showProblems([]);
  });
}

function showProblems(messages: string[]): void {
  const problem = $('problem');
  problem.textContent = messages.join('\n');
  problem.hidden = messages.length === 0;
}

function item(file: DemoFile, className: string): HTMLLIElement {
  $('empty').hidden = true;
  // A retried file replaces its earlier line.
  document.querySelector(`li[data-id="${CSS.escape(file.id)}"]`)?.remove();
  const li = document.createElement('li');
  li.dataset.id = file.id;
  li.className = `result ${className}`;
  li.dataset.file = file.name ?? '';
  const title = document.createElement('div');
  title.className = 'result-title';
  const name = document.createElement('strong');
  name.textContent = file.name ?? 'file';
  const size = document.createElement('span');
  size.className = 'size';
  size.textContent = formatBytes(file.size ?? 0);
  title.append(name, size);
  li.append(title);
  $('results').prepend(li);
  return li;
}

/** `save`, when given, is what a click on the file's link does instead of opening it. */
function addResult(file: DemoFile, url: string, serverHex: string | undefined, save?: () => Promise<void>): void {
  const verified = Boolean(serverHex) && serverHex === file.meta.sha256;
  const li = item(file, verified ? 'ok' : 'unverified');
  const link = document.createElement('a');
  link.className = 'result-link';
  link.href = url;
  link.target = '_blank';
  link.rel = 'noopener';
  link.textContent = url;
  if (save) {
    link.title = 'Files on this server are readable by their owner only: a click fetches this one with your token and saves it.';
    link.addEventListener('click', (event) => {
      event.preventDefault();
      void save();
    });
  }
  const digest = document.createElement('div');
  digest.className = 'digest';
  const label = document.createElement('span');
  label.textContent = 'SHA-256';
  const code = document.createElement('code');
  code.className = 'result-sha256';
  code.textContent = serverHex ?? 'not reported by the server';
  digest.append(label, code);
  const status = document.createElement('div');
  status.className = 'status';
  status.textContent = verified
    ? '✓ verified: the server computed the same SHA-256 as your browser'
    : serverHex
      ? '✗ the server reported a different SHA-256 than your browser computed'
      : '✗ the server did not report a SHA-256 for this file';
  li.append(link, digest, status);
}

function addError(file: DemoFile, message: string): void {
  const li = item(file, 'failed');
  const status = document.createElement('div');
  status.className = 'status result-error';
  status.textContent = message;
  li.append(status);
}

main().catch((error: unknown) => showProblems([`The demo could not start: ${(error as Error).message}`]));

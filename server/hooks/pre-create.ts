import { randomUUID } from 'node:crypto';
import { EVENT_ID_HEADER, SIGNATURE_HEADER, signatureHeader } from './signature.js';

export interface PreCreateRequest {
  user: string;
  origin: 'tus' | 'legacy';
  length: number | null;
  metadata: Record<string, string | null>;
  /** A partial upload of a concatenation (no type of its own: its final upload is asked about too). */
  partial: boolean;
}

/** `contentType`: the receiver's type for `message`, when it is passed on (see `passedType`). */
export type PreCreateVerdict = { ok: true } | { ok: false; status: number; message: string; contentType?: string };

/** What a client can be given as the receiver typed it: data or words, never markup to render. */
const PASSED_TYPES = ['application/json', 'application/problem+json', 'text/plain'];
const MAX_MESSAGE = 1000;

/**
 * The type a refusal's body keeps on its way to a tus client, or undefined for plain text. The body
 * is read as UTF-8 and sent on as UTF-8, so a type that names another charset is not kept.
 */
function passedType(header: string | null): string | undefined {
  const [essence = '', ...parameters] = (header ?? '').split(';').map((part) => part.trim().toLowerCase());
  if (!PASSED_TYPES.includes(essence)) return undefined;
  const charset = parameters.find((parameter) => parameter.startsWith('charset='))?.slice('charset='.length).replace(/^"(.*)"$/, '$1');
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') return undefined;
  return `${essence}; charset=utf-8`;
}

export interface PreCreateOptions {
  url: string;
  secret: string;
  timeoutMs: number;
  failOpen: boolean;
}

/**
 * The blocking pre-create hook: the receiver's 2xx lets an upload be created, its 4xx refuses it
 * with the receiver's own status and message (and type, for tus clients); a timeout, a network error
 * or a 5xx refuses with 503 unless the hook is configured to fail open.
 */
export function preCreateHook(options: PreCreateOptions) {
  return async (request: PreCreateRequest): Promise<PreCreateVerdict> => {
    const id = `evt_${randomUUID().replace(/-/g, '')}`;
    const body = JSON.stringify({
      id,
      type: 'upload.pre-create',
      time: new Date().toISOString(),
      data: { owner: request.user, origin: request.origin, length: request.length, metadata: request.metadata, partial: request.partial },
    });
    let response: Response;
    let text = '';
    let cut = false;
    try {
      response = await fetch(options.url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', [SIGNATURE_HEADER]: signatureHeader(options.secret, body), [EVENT_ID_HEADER]: id },
        body,
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      const whole = (await response.text()).trim();
      text = whole.slice(0, MAX_MESSAGE);
      cut = text.length < whole.length;
    } catch {
      return options.failOpen ? { ok: true } : { ok: false, status: 503, message: 'Service Unavailable: the upload policy service did not answer' };
    }
    if (response.ok) return { ok: true };
    if (response.status >= 400 && response.status < 500) {
      if (!text) return { ok: false, status: response.status, message: `Refused by the upload policy (${response.status})` };
      // A cut body is no longer the receiver's JSON: it goes on as plain text.
      const contentType = cut ? undefined : passedType(response.headers.get('content-type'));
      return { ok: false, status: response.status, message: text, ...(contentType && { contentType }) };
    }
    return options.failOpen ? { ok: true } : { ok: false, status: 503, message: 'Service Unavailable: the upload policy service failed' };
  };
}

export type PreCreateHook = ReturnType<typeof preCreateHook>;

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

export type PreCreateVerdict = { ok: true } | { ok: false; status: number; message: string };

export interface PreCreateOptions {
  url: string;
  secret: string;
  timeoutMs: number;
  failOpen: boolean;
}

/**
 * The blocking pre-create hook: the receiver's 2xx lets an upload be created, its 4xx refuses it
 * with the receiver's own status and message; a timeout, a network error or a 5xx refuses with 503
 * unless the hook is configured to fail open.
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
    try {
      response = await fetch(options.url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', [SIGNATURE_HEADER]: signatureHeader(options.secret, body), [EVENT_ID_HEADER]: id },
        body,
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      text = (await response.text()).slice(0, 1000).trim();
    } catch {
      return options.failOpen ? { ok: true } : { ok: false, status: 503, message: 'Service Unavailable: the upload policy service did not answer' };
    }
    if (response.ok) return { ok: true };
    if (response.status >= 400 && response.status < 500) {
      return { ok: false, status: response.status, message: text || `Refused by the upload policy (${response.status})` };
    }
    return options.failOpen ? { ok: true } : { ok: false, status: 503, message: 'Service Unavailable: the upload policy service failed' };
  };
}

export type PreCreateHook = ReturnType<typeof preCreateHook>;

import type { PreCreateHook } from '../hooks/pre-create.js';
import { isAllowedType } from './content-type.js';
import { parseSha256 } from './digest.js';
import type { Locker } from '@tus/utils';
import type { Quota } from './quota.js';
import type { VerifyingStore } from './verifying-store.js';
import type { HttpError } from './verifying-store.js';

export interface CreationRequest {
  user: string;
  uploadId: string;
  declaredType: string | undefined;
  sha256: string | null | undefined;
  /** A partial upload of a concatenation: its type is checked on the final upload instead. */
  partial?: boolean;
  /** What the pre-create hook is told, besides the user. */
  origin?: 'tus' | 'legacy';
  length?: number;
  metadata?: Record<string, string | null>;
  /** Whether the client has closed its connection (it would never learn of the upload). */
  clientGone?: () => boolean;
}

export interface PolicyLimits {
  allowedTypes: readonly string[];
  /** The application's own say (HOOKS_PRE_CREATE_URL), asked after tusgate's checks pass. */
  preCreate?: PreCreateHook;
}

/** What a door needs to create uploads itself (concatenation, the IETF draft) under tusgate's rules. */
export interface CreationDeps extends PolicyLimits {
  store: VerifyingStore;
  locker: Locker;
  quota: Quota;
  maxFileSize: number;
}

/** `contentType`: the type of `error.body` when it is a pre-create receiver's own; otherwise it is plain text. */
export type PolicyVerdict = { ok: true } | { ok: false; error: HttpError; retryAfterSeconds?: number; contentType?: string };

/**
 * The rules every new upload must pass, whichever door it comes through. Size is checked earlier
 * (it needs only a header); type, declared digest, the pre-create hook and the user's quotas are
 * checked here, the quota last because passing it takes one of the user's slots.
 */
export async function admitUpload(request: CreationRequest, limits: PolicyLimits, quota: Quota): Promise<PolicyVerdict> {
  if (!request.partial) {
    if (!request.declaredType) {
      return { ok: false, error: { status_code: 415, body: 'Unsupported Media Type: declare the file type in Upload-Metadata (filetype)\n' } };
    }
    if (!isAllowedType(request.declaredType, limits.allowedTypes)) {
      return { ok: false, error: { status_code: 415, body: `Unsupported Media Type: ${request.declaredType} is not allowed\n` } };
    }
  }
  if (parseSha256(request.sha256) === 'invalid') {
    return { ok: false, error: { status_code: 400, body: 'Bad Request: metadata sha256 must be 64 hex digits or base64 of 32 bytes\n' } };
  }
  if (limits.preCreate) {
    const answer = await limits.preCreate({
      user: request.user,
      origin: request.origin ?? 'tus',
      length: request.length ?? null,
      metadata: request.metadata ?? {},
      partial: request.partial ?? false,
    });
    if (!answer.ok) {
      // The policy service away (503) is a moment's trouble: clients are told when to try again.
      const retryAfterSeconds = answer.status === 503 ? 1 : undefined;
      return { ok: false, error: { status_code: answer.status, body: `${answer.message}\n` }, retryAfterSeconds, contentType: answer.contentType };
    }
    // The hook may take seconds; an upload made for a client gone meanwhile would hold a slot with a
    // URL nobody has.
    if (request.clientGone?.()) return { ok: false, error: { status_code: 400, body: 'Bad Request: the client went away before the upload was created\n' } };
  }
  const admission = await quota.admit(request.user, request.uploadId);
  if (!admission.ok) {
    const body = admission.reason === 'active'
      ? 'Too Many Requests: too many incomplete uploads; finish or delete one first\n'
      : 'Too Many Requests: upload creation rate exceeded\n';
    return { ok: false, error: { status_code: 429, body }, retryAfterSeconds: admission.retryAfterSeconds };
  }
  return { ok: true };
}

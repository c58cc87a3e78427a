import { STATUS_CODES } from 'node:http';
import type { Response } from 'express';
import type { HttpError } from '../uploads/verifying-store.js';

/** Problem types the resumable-uploads draft registers (https://iana.org/assignments/http-problem-types). */
export type UploadProblemType = 'mismatching-upload-offset' | 'completed-upload' | 'inconsistent-upload-length';

const TITLES: Record<UploadProblemType, string> = {
  'mismatching-upload-offset': 'offset from request does not match offset of resource',
  'completed-upload': 'upload is already completed',
  'inconsistent-upload-length': 'inconsistent length values for upload',
};

/** An RFC 9457 problem, thrown by a handler and sent as `application/problem+json`. */
export class Problem {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly type?: UploadProblemType,
    readonly members: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {}

  /** A store or policy error (`{ status_code, body }`) as a problem. */
  static from(error: HttpError, headers: Record<string, string> = {}): Problem {
    return new Problem(error.status_code, error.body.trim(), undefined, {}, headers);
  }

  send(res: Response, headers: Record<string, string> = {}): void {
    const body = {
      type: this.type ? `https://iana.org/assignments/http-problem-types#${this.type}` : 'about:blank',
      title: this.type ? TITLES[this.type] : (STATUS_CODES[this.status] ?? (this.status === 460 ? 'Checksum Mismatch' : 'Error')),
      status: this.status,
      detail: this.detail,
      ...this.members,
    };
    // A service away (shared state, the policy hook) is a moment's trouble: say when to try again.
    const retry = this.status === 503 ? { 'Retry-After': '1' } : {};
    // Node knows no reason phrase for 460.
    if (this.status === 460) res.statusMessage = 'Checksum Mismatch';
    res.status(this.status).set({ ...retry, ...headers, ...this.headers, 'Content-Type': 'application/problem+json' }).end(JSON.stringify(body));
  }
}

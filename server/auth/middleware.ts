import type { NextFunction, Request, Response } from 'express';
import { Problem } from '../tus/problem.js';
import { AuthError, type Identity, type TokenVerifier } from './verifier.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      identity?: Identity;
      requestId?: string;
    }
  }
}

export type BearerResult = { kind: 'missing' } | { kind: 'wrong-scheme' } | { kind: 'token'; token: string };

/** Reads `Authorization: Bearer <token>`; the scheme is matched case-insensitively (RFC 7235). */
export function readBearer(header: string | undefined): BearerResult {
  if (!header || !header.trim()) return { kind: 'missing' };
  const match = /^(\S+)\s+(\S+)\s*$/.exec(header.trim());
  if (!match) return /^bearer$/i.test(header.trim()) ? { kind: 'missing' } : { kind: 'wrong-scheme' };
  if (match[1]!.toLowerCase() !== 'bearer') return { kind: 'wrong-scheme' };
  return { kind: 'token', token: match[2]! };
}

/** Resolves the caller's identity, or undefined when the token is absent or invalid. */
export async function identify(verify: TokenVerifier, header: string | undefined): Promise<Identity | AuthFailure> {
  const bearer = readBearer(header);
  if (bearer.kind !== 'token') return { failure: bearer.kind };
  try {
    return await verify(bearer.token);
  } catch (error) {
    if (error instanceof AuthError) return { failure: 'invalid' };
    throw error;
  }
}

export interface AuthFailure {
  failure: 'missing' | 'wrong-scheme' | 'invalid';
}

export function isFailure(value: Identity | AuthFailure): value is AuthFailure {
  return 'failure' in value;
}

/** For the tus endpoint: every request but OPTIONS needs a valid token, else 401. */
export function requireBearer(verify: TokenVerifier) {
  return async (req: Request, res: Response, next: NextFunction) => {
    if (req.method === 'OPTIONS') return next();
    const result = await identify(verify, req.headers.authorization);
    if (isFailure(result)) {
      const description = result.failure === 'invalid' ? 'invalid or expired token' : 'a Bearer token is required';
      const challenge = { 'WWW-Authenticate': `Bearer error="invalid_token", error_description="${description}"` };
      // Requests of the IETF resumable-uploads draft get its problem documents, tus ones plain text.
      if (req.get('upload-draft-interop-version') !== undefined) return new Problem(401, description).send(res, challenge);
      res.status(401).set(challenge).type('text/plain').send(`Unauthorized: ${description}\n`);
      return;
    }
    req.identity = result;
    next();
  };
}

/** Like requireBearer, but lets anonymous callers through (file downloads when FILES_PUBLIC). */
export function optionalBearer(verify: TokenVerifier) {
  return async (req: Request, _res: Response, next: NextFunction) => {
    const result = await identify(verify, req.headers.authorization);
    if (!isFailure(result)) req.identity = result;
    next();
  };
}

import type { NextFunction, Request, Response } from 'express';
import { AuthError, type Identity, type TokenVerifier } from '../auth/verifier.js';
import { LegacyError } from './errors.js';

/**
 * FastAPI's HTTPBearer, whose answers the legacy clients know: it splits the header at the first
 * space; a missing header or an empty scheme or credential is 403 "Not authenticated", another
 * scheme is 403 "Invalid authentication credentials", and only a token that fails verification is
 * 401. (tusgate's readBearer is stricter about whitespace and answers the tus door's way.)
 */
function splitAuthorization(header: string | undefined): { scheme: string; credentials: string } {
  if (!header) return { scheme: '', credentials: '' };
  const space = header.indexOf(' ');
  return space < 0 ? { scheme: header, credentials: '' } : { scheme: header.slice(0, space), credentials: header.slice(space + 1) };
}

export async function legacyIdentity(verify: TokenVerifier, header: string | undefined): Promise<Identity> {
  const { scheme, credentials } = splitAuthorization(header);
  if (!scheme || !credentials) throw new LegacyError(403, 'Not authenticated');
  if (scheme.toLowerCase() !== 'bearer') throw new LegacyError(403, 'Invalid authentication credentials');
  try {
    return await verify(credentials);
  } catch (error) {
    if (error instanceof AuthError) throw new LegacyError(401, 'Invalid authentication credentials', { 'WWW-Authenticate': 'Bearer' });
    throw error;
  }
}

/** Every /api/v1/upload route: the caller's identity on `req.identity`, or the legacy refusal. */
export function legacyAuth(verify: TokenVerifier) {
  return async (req: Request, _res: Response, next: NextFunction) => {
    req.identity = await legacyIdentity(verify, req.headers.authorization);
    next();
  };
}

/**
 * Admins are named by configuration (ADMIN_USERS) or by the token itself (`role: "admin"`, or
 * "admin" in a `roles` array), so an identity provider that already issues roles needs no list.
 */
export function isAdmin(identity: Identity, adminUsers: readonly string[]): boolean {
  if (adminUsers.includes(identity.user)) return true;
  const { role, roles } = identity.claims as { role?: unknown; roles?: unknown };
  return role === 'admin' || (Array.isArray(roles) && roles.includes('admin'));
}

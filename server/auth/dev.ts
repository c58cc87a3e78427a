import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';

export const DEMO_USER = 'demo-user';

/** A secret made at start-up for development mode; it is never written anywhere. */
export function makeDevSecret(): string {
  return randomBytes(32).toString('base64url');
}

export async function signDevToken(secret: string, user = DEMO_USER, ttlSeconds = 24 * 3600): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(user)
    .setIssuedAt()
    .setExpirationTime(`${ttlSeconds}s`)
    .sign(Buffer.from(secret, 'utf8'));
}

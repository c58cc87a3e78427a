import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { Unavailable } from '../redis/unavailable.js';

export interface KeySettings {
  JWT_SECRET?: string | undefined;
  JWT_PUBLIC_KEY?: string | undefined;
  JWT_JWKS_URL?: string | undefined;
  JWT_ISSUER?: string | undefined;
  JWT_AUDIENCE?: string | undefined;
  JWT_USER_CLAIM: string;
}

export interface Identity {
  user: string;
  claims: JWTPayload;
}

export class AuthError extends Error {}

/**
 * A key set that cannot be fetched (unreachable, timed out, not 200, not a key set) says nothing
 * about the token: the request is answered 503, which clients retry, instead of 401, on which
 * tus-js-client gives up. A key set that has no key for the token is still the token's fault.
 */
function withKeySetOutages(keySet: JWTVerifyGetKey): JWTVerifyGetKey {
  return async (header, token) => {
    try {
      return await keySet(header, token);
    } catch (error) {
      const fetching =
        error instanceof errors.JWKSTimeout ||
        error instanceof errors.JWKSInvalid ||
        error instanceof TypeError ||
        (error instanceof errors.JOSEError && error.code === 'ERR_JOSE_GENERIC' && /JSON Web Key Set/.test(error.message));
      if (fetching) throw new Unavailable(error, 'the JWT key set');
      throw error;
    }
  };
}

const CLOCK_TOLERANCE_SECONDS = 5;
const CACHE_MAX_ENTRIES = 10_000;
const CACHE_MAX_MS = 60_000;

/** The algorithms a PEM key may sign with: pinned to the key's type, so no token can pick its own. */
function algorithmsForPublicKey(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return ['RS256'];
    case 'ec':
      if (key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return ['ES256'];
      throw new Error('JWT_PUBLIC_KEY: only P-256 EC keys (ES256) are supported');
    case 'ed25519':
      return ['EdDSA'];
    default:
      throw new Error(`JWT_PUBLIC_KEY: unsupported key type ${key.asymmetricKeyType}`);
  }
}

export type TokenVerifier = (token: string) => Promise<Identity>;

/**
 * Verifies bearer tokens with jose. A verified token is remembered briefly (by its exact text, which
 * includes the signature) so that the many small requests of one upload don't each pay for a
 * signature check; an entry never outlives the token's own `exp`.
 */
export function createTokenVerifier(settings: KeySettings): TokenVerifier {
  let key: KeyObject | JWTVerifyGetKey;
  let algorithms: string[];
  if (settings.JWT_SECRET) {
    key = createSecretKey(Buffer.from(settings.JWT_SECRET, 'utf8'));
    algorithms = ['HS256'];
  } else if (settings.JWT_PUBLIC_KEY) {
    let publicKey: KeyObject;
    try {
      publicKey = createPublicKey(settings.JWT_PUBLIC_KEY);
    } catch (error) {
      // Node's own message ("DECODER routines::unsupported") names no setting: say which one.
      throw new Error(`JWT_PUBLIC_KEY: not a usable PEM public key (${(error as Error).message})`);
    }
    key = publicKey;
    algorithms = algorithmsForPublicKey(publicKey);
  } else if (settings.JWT_JWKS_URL) {
    key = withKeySetOutages(createRemoteJWKSet(new URL(settings.JWT_JWKS_URL)));
    algorithms = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];
  } else {
    throw new Error('no JWT key configured');
  }

  const cache = new Map<string, { identity: Identity; until: number }>();

  return async function verify(token: string): Promise<Identity> {
    const now = Date.now();
    const hit = cache.get(token);
    if (hit && hit.until > now) return hit.identity;
    if (hit) cache.delete(token);

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key as KeyObject, {
        algorithms,
        issuer: settings.JWT_ISSUER,
        audience: settings.JWT_AUDIENCE,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
      }));
    } catch (error) {
      if (error instanceof errors.JOSEError || error instanceof TypeError) throw new AuthError(error.message);
      throw error;
    }
    // Without a configured audience a token that names one was meant for someone else.
    if (!settings.JWT_AUDIENCE && payload.aud !== undefined) throw new AuthError('unexpected "aud" claim');
    const user = payload[settings.JWT_USER_CLAIM];
    if (typeof user !== 'string' || user.length === 0 || user.length > 256) {
      throw new AuthError(`missing or invalid "${settings.JWT_USER_CLAIM}" claim`);
    }
    const identity = { user, claims: payload };
    const until = Math.min(now + CACHE_MAX_MS, payload.exp !== undefined ? payload.exp * 1000 : Infinity);
    if (cache.size >= CACHE_MAX_ENTRIES) cache.delete(cache.keys().next().value!);
    cache.set(token, { identity, until });
    return identity;
  };
}

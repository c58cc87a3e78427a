import { SignJWT } from 'jose';
import type { Tusgate } from '../../server/app.js';
import type { Config } from '../../server/config.js';
import { makeDataDir, startApp } from './app-server.js';

export { makeDataDir };

export const TEST_SECRET = 'test-secret-for-tusgate-tests-only-0123456789';

export interface TestServer {
  url: string;
  config: Config;
  tusgate: Tusgate;
  dataDir: string;
  /** A valid HS256 token for `user`. */
  token(user?: string, claims?: Record<string, unknown>): Promise<string>;
  close(): Promise<void>;
}

export async function signToken(
  user: string,
  claims: Record<string, unknown> = {},
  secret = TEST_SECRET,
  expiresIn: string | number = '1h',
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(user)
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(Buffer.from(secret, 'utf8'));
}

/** Starts tusgate in this process on 127.0.0.1:<random port> with a fresh data directory. */
export async function startServer(overrides: Partial<Config> = {}): Promise<TestServer> {
  const started = await startApp({ config: { JWT_SECRET: TEST_SECRET, ...overrides } });
  return { ...started, token: (user = 'alice', claims = {}) => signToken(user, claims) };
}

import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import { createApp, type Tusgate } from '../../server/app.js';
import { createTokenVerifier } from '../../server/auth/verifier.js';
import { loadConfig, type Config } from '../../server/config.js';

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

export async function makeDataDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'tusgate-test-'));
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
  const dataDir = overrides.DATA_DIR ?? (await makeDataDir());
  const config = loadConfig({}, { JWT_SECRET: TEST_SECRET, DATA_DIR: dataDir, LOG_LEVEL: 'silent', ...overrides });
  const tusgate = await createApp(config, { verify: createTokenVerifier(config), logger: pino({ level: 'silent' }) });
  const server = http.createServer(tusgate.app);
  server.requestTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    config,
    tusgate,
    dataDir,
    token: (user = 'alice', claims = {}) => signToken(user, claims),
    async close() {
      tusgate.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (!overrides.DATA_DIR) await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

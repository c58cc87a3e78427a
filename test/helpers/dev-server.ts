import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { createApp } from '../../server/app.js';
import { DEMO_USER } from '../../server/auth/dev.js';
import { createTokenVerifier } from '../../server/auth/verifier.js';
import { loadConfig, type Config } from '../../server/config.js';
import { makeDataDir, signToken, TEST_SECRET } from './server.js';

export interface DevServer {
  url: string;
  dataDir: string;
  /** The token /demo/token hands out (for the user `demo-user`). */
  devToken: string;
  close(): Promise<void>;
}

/**
 * tusgate in this process in development mode, as server/main.ts runs it without a key: the app gets
 * a token for the demo user and serves it at /demo/token. The secret is the tests' own.
 */
export async function startDevServer(overrides: Partial<Config> = {}): Promise<DevServer> {
  const dataDir = await makeDataDir();
  const config = loadConfig({}, { JWT_SECRET: TEST_SECRET, DATA_DIR: dataDir, LOG_LEVEL: 'silent', ...overrides });
  const devToken = await signToken(DEMO_USER);
  const tusgate = await createApp(config, { verify: createTokenVerifier(config), logger: pino({ level: 'silent' }), devToken });
  const server = http.createServer(tusgate.app);
  server.requestTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    dataDir,
    devToken,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

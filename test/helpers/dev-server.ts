import { DEMO_USER } from '../../server/auth/dev.js';
import type { Config } from '../../server/config.js';
import { startApp } from './app-server.js';
import { signToken, TEST_SECRET } from './server.js';

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
  const devToken = await signToken(DEMO_USER);
  const started = await startApp({ config: { JWT_SECRET: TEST_SECRET, ...overrides }, devToken });
  return { url: started.url, dataDir: started.dataDir, devToken, close: started.close };
}

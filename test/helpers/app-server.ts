import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { createApp, type Tusgate } from '../../server/app.js';
import { createTokenVerifier, type TokenVerifier } from '../../server/auth/verifier.js';
import { loadConfig, type Config } from '../../server/config.js';
import { waitFor } from './wait.js';

export async function makeDataDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'tusgate-test-'));
}

/** The name of a file in `dir`, not among `known`, that has bytes; waits up to 10 s for one. */
export function newFileWithBytes(dir: string, known: ReadonlySet<string> = new Set()): Promise<string> {
  return waitFor(
    async () => {
      for (const name of await fs.readdir(dir).catch(() => [])) {
        if (!known.has(name) && (await fs.stat(path.join(dir, name))).size > 0) return name;
      }
      return undefined;
    },
    10_000,
    `a new file with bytes in ${dir}`,
  );
}

/**
 * tusgate in this process on 127.0.0.1:<random port>. Nothing is assumed about the key: the config
 * is tus.config.ts's defaults plus `config`, and the caller may pass its own logger and verifier.
 * (helpers/server.ts and helpers/dev-server.ts build on this with the tests' own secret.)
 */
export interface AppServerOptions {
  config?: Partial<Config>;
  logger?: Logger;
  verify?: TokenVerifier;
  devToken?: string;
}

export interface AppServer {
  url: string;
  config: Config;
  tusgate: Tusgate;
  dataDir: string;
  close(): Promise<void>;
}

export async function startApp(options: AppServerOptions = {}): Promise<AppServer> {
  const ownDir = options.config?.DATA_DIR === undefined;
  const dataDir = options.config?.DATA_DIR ?? (await makeDataDir());
  const config = loadConfig({}, { LOG_LEVEL: 'silent', ...options.config, DATA_DIR: dataDir });
  const tusgate = await createApp(config, {
    verify: options.verify ?? createTokenVerifier(config),
    logger: options.logger ?? pino({ level: 'silent' }),
    devToken: options.devToken,
  });
  const server = http.createServer(tusgate.app);
  server.requestTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    config,
    tusgate,
    dataDir,
    async close() {
      await tusgate.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (ownDir) await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A pino logger that keeps every line it writes, in memory. */
export function memoryLogger(level = 'info'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = pino({ level, base: { service: 'tusgate' } }, { write: (line: string) => void lines.push(line) });
  return { logger, lines };
}


import http from 'node:http';
import path from 'node:path';
import { createApp, type Tusgate } from './app.js';
import { devSecret, signDevToken, DEMO_USER } from './auth/dev.js';
import { createTokenVerifier } from './auth/verifier.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { RESUME_LATER } from './redis/unavailable.js';

function fail(message: string): never {
  process.stderr.write(`tusgate: ${message}\n`);
  process.exit(1);
}

/** A data directory that cannot be made or written is a setting to fix, not a crash to debug. */
function failDataDir(config: Config, error: unknown): never {
  fail(`DATA_DIR=${JSON.stringify(config.DATA_DIR)} cannot be used: ${(error as Error).message}`);
}

async function start(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }

  const hasKey = Boolean(config.JWT_SECRET || config.JWT_PUBLIC_KEY || config.JWT_JWKS_URL);
  let devToken: string | undefined;
  /** Development mode: signs the demo user's token, fresh for each page that asks. */
  let signDemoToken: (() => Promise<string>) | undefined;
  if (!hasKey) {
    if (config.NODE_ENV === 'production') {
      fail('no JWT key configured: set JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL (NODE_ENV=production)');
    }
    let secret: string;
    try {
      secret = await devSecret(path.resolve(config.DATA_DIR));
    } catch (error) {
      failDataDir(config, error);
    }
    config = { ...config, JWT_SECRET: secret };
    signDemoToken = () => signDevToken(secret);
    devToken = await signDemoToken();
  }

  let verify;
  try {
    verify = createTokenVerifier(config);
  } catch (error) {
    fail(`invalid configuration: ${(error as Error).message}`);
  }
  let tusgate: Tusgate;
  try {
    tusgate = await createApp(config, { verify, devToken: signDemoToken });
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    const { code, path: where } = error as NodeJS.ErrnoException;
    const dataDir = path.resolve(config.DATA_DIR);
    if (code && where && (path.resolve(where) + path.sep).startsWith(dataDir + path.sep)) failDataDir(config, error);
    throw error;
  }
  const { logger } = tusgate;

  // After SIGTERM, a connection kept alive is closed once its running request is answered, and a
  // request that arrives on it meanwhile is turned away: clients retry elsewhere or later.
  let stopping = false;
  const running = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    if (stopping) {
      // A tus HEAD (a client resuming) gets 423: on any 5xx tus-js-client starts the upload over.
      const status = req.method === 'HEAD' && req.headers['tus-resumable'] !== undefined ? RESUME_LATER.status_code : 503;
      res.writeHead(status, { Connection: 'close', 'Retry-After': '1', 'Content-Type': 'text/plain' }).end('Service Unavailable: the server is shutting down\n');
      return;
    }
    running.add(res);
    res.once('close', () => running.delete(res));
    tusgate.app(req, res);
  });
  // Uploads from slow connections may take hours: limit idleness, not a request's total time.
  server.requestTimeout = 0;
  server.timeout = config.REQUEST_IDLE_TIMEOUT_MS;
  server.keepAliveTimeout = 5000;

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.PORT, config.HOST, resolve);
    });
  } catch (error) {
    await tusgate.close().catch(() => undefined);
    // An address in use, a port that needs privileges, a HOST that is no address of this machine.
    fail(`cannot listen on HOST=${config.HOST} PORT=${config.PORT}: ${(error as Error).message}`);
  }
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.PORT;
  logger.info({ host: config.HOST, port, dataDir: config.DATA_DIR }, 'tusgate listening');
  process.stdout.write(`tusgate listening on http://${config.HOST}:${port} (tus endpoint /files/)\n`);
  if (devToken) {
    process.stdout.write(
      `development mode: no JWT key configured; a random secret is kept in DATA_DIR/dev-secret.\n` +
        `token for user "${DEMO_USER}" (24 h):\n${devToken}\n` +
        `try: curl -i -X OPTIONS http://${config.HOST}:${port}/files/\n`,
    );
  }

  const sweep = setInterval(() => {
    tusgate.sweep().then(
      (removed) => removed > 0 && logger.info({ removed }, 'expired uploads (and creations a crash cut off) removed'),
      (error: unknown) => logger.error({ err: error }, 'expiry sweep failed'),
    );
  }, config.SWEEP_INTERVAL_SECONDS * 1000);
  sweep.unref();

  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    for (const res of running) if (!res.headersSent) res.setHeader('Connection', 'close');
    logger.info({ signal }, 'shutting down: no new connections, waiting for running requests');
    clearInterval(sweep);
    server.close(() => {
      logger.info('all requests finished');
      void tusgate.close().finally(() => process.exit(0));
    });
    server.closeIdleConnections();
    // Requests still running after the grace period are cut; the store keeps what arrived.
    setTimeout(() => {
      logger.warn('grace period over: closing remaining connections');
      server.closeAllConnections();
      // Closing waits (a bounded time) for the cut requests' locks to be given back.
      setTimeout(() => process.exit(0), 5000).unref();
    }, config.SHUTDOWN_GRACE_MS).unref();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

// undici's web streams (which @tus/server's request bodies are built on) can throw
// ERR_INVALID_STATE from a stream controller when a client vanishes at an unlucky moment; that
// error belongs to one dead request and must not take every other upload down with the process.
process.on('uncaughtException', (error: NodeJS.ErrnoException) => {
  if (error.code === 'ERR_INVALID_STATE' && /ReadableStream|Controller/.test(String(error.stack))) {
    process.stderr.write(`tusgate: ignored a stream error of an aborted request: ${error.message}\n`);
    return;
  }
  process.stderr.write(`tusgate: fatal: ${error.stack ?? error}\n`);
  process.exit(1);
});

start().catch((error: unknown) => {
  process.stderr.write(`tusgate: failed to start: ${(error as Error).stack ?? error}\n`);
  process.exit(1);
});

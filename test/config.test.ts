import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { expect } from 'chai';
import { exportSPKI, generateKeyPair } from 'jose';
import { ConfigError, loadConfig } from '../server/config.js';
import { LEGACY_MIME_TYPES } from '../tus.config.js';
import { request, tus } from './helpers/http.js';
import { startRedis } from './helpers/redis.js';
import { makeDataDir } from './helpers/server.js';
import { freePort, runServer, type RunningServer } from './helpers/spawn.js';
import { TEXT } from './samples.js';

/** Asserts that loadConfig refuses `env` with a one-line ConfigError naming `variable`. */
function expectRefused(env: Record<string, string>, variable: string): string {
  let thrown: unknown;
  try {
    loadConfig(env);
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `${JSON.stringify(env)} must be refused`).to.be.instanceOf(ConfigError);
  const message = (thrown as Error).message;
  expect(message, 'one line').not.to.match(/[\r\n]/);
  expect(message).to.include(variable);
  return message;
}

describe('config: loadConfig', () => {
  it('has the SPEC §1 defaults', () => {
    const config = loadConfig({});
    expect(config.PORT).to.equal(1080);
    expect(config.HOST).to.equal('127.0.0.1');
    expect(config.DATA_DIR).to.equal('./data');
    expect(config.JWT_SECRET).to.equal(undefined);
    expect(config.JWT_PUBLIC_KEY).to.equal(undefined);
    expect(config.JWT_JWKS_URL).to.equal(undefined);
    expect(config.JWT_ISSUER).to.equal(undefined);
    expect(config.JWT_AUDIENCE).to.equal(undefined);
    expect(config.JWT_USER_CLAIM).to.equal('sub');
    expect(config.MAX_FILE_SIZE).to.equal(100_000_000);
    expect(config.MAX_CHUNK_SIZE).to.equal(10_485_760);
    expect(config.UPLOAD_EXPIRY_SECONDS).to.equal(86_400);
    expect(config.SWEEP_INTERVAL_SECONDS).to.equal(60);
    expect(config.MAX_ACTIVE_UPLOADS_PER_USER).to.equal(10);
    expect(config.UPLOADS_PER_HOUR_PER_USER).to.equal(100);
    expect(config.FILES_PUBLIC).to.equal(true);
    expect(config.CORS_ORIGINS).to.deep.equal(['http://localhost:3000', 'http://127.0.0.1:3000']);
    expect(config.STORAGE).to.equal('file');
    expect(config.REDIS_URL).to.equal(undefined);
    expect(config.MAX_IMAGE_PIXELS).to.equal(100_000_000);
  });

  it('allows the legacy MIME list plus the standard names by default', () => {
    const legacy = [
      'video/mp4', 'video/webm', 'video/ogg', 'video/avi', 'video/mov',
      'audio/mp3', 'audio/wav', 'audio/ogg', 'audio/aac', 'audio/webm',
      'image/jpeg', 'image/png', 'image/gif', 'image/webp',
      'text/plain',
    ];
    expect(LEGACY_MIME_TYPES).to.have.members(legacy);
    expect(loadConfig({}).ALLOWED_MIME_TYPES).to.have.members([...legacy, 'video/quicktime', 'audio/mpeg', 'audio/mp4']);
  });

  it('is overridden by environment variables, typed', () => {
    const config = loadConfig({
      PORT: '8080',
      HOST: '0.0.0.0',
      DATA_DIR: '/tmp/somewhere',
      JWT_SECRET: 'a-secret-of-sufficient-length',
      JWT_ISSUER: 'https://issuer.example',
      JWT_AUDIENCE: 'tusgate',
      JWT_USER_CLAIM: 'email',
      MAX_FILE_SIZE: '5000',
      MAX_CHUNK_SIZE: '1024',
      ALLOWED_MIME_TYPES: ' image/* , text/plain ',
      UPLOAD_EXPIRY_SECONDS: '120',
      SWEEP_INTERVAL_SECONDS: '5',
      MAX_ACTIVE_UPLOADS_PER_USER: '3',
      UPLOADS_PER_HOUR_PER_USER: '7',
      FILES_PUBLIC: 'false',
      CORS_ORIGINS: 'https://a.example,https://b.example',
    });
    expect(config).to.include({
      PORT: 8080,
      HOST: '0.0.0.0',
      DATA_DIR: '/tmp/somewhere',
      JWT_SECRET: 'a-secret-of-sufficient-length',
      JWT_ISSUER: 'https://issuer.example',
      JWT_AUDIENCE: 'tusgate',
      JWT_USER_CLAIM: 'email',
      MAX_FILE_SIZE: 5000,
      MAX_CHUNK_SIZE: 1024,
      UPLOAD_EXPIRY_SECONDS: 120,
      SWEEP_INTERVAL_SECONDS: 5,
      MAX_ACTIVE_UPLOADS_PER_USER: 3,
      UPLOADS_PER_HOUR_PER_USER: 7,
      FILES_PUBLIC: false,
    });
    expect(config.ALLOWED_MIME_TYPES).to.deep.equal(['image/*', 'text/plain']);
    expect(config.CORS_ORIGINS).to.deep.equal(['https://a.example', 'https://b.example']);
    expect(loadConfig({ FILES_PUBLIC: 'true' }).FILES_PUBLIC).to.equal(true);
    expect(loadConfig({ FILES_PUBLIC: '0' }).FILES_PUBLIC).to.equal(false);
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ PORT: '', MAX_FILE_SIZE: '' })).to.include({ PORT: 1080, MAX_FILE_SIZE: 100_000_000 });
  });

  it('refuses bad values with a one-line message naming the variable', () => {
    expectRefused({ MAX_FILE_SIZE: 'abc' }, 'MAX_FILE_SIZE');
    expectRefused({ MAX_FILE_SIZE: '-5' }, 'MAX_FILE_SIZE');
    expectRefused({ MAX_FILE_SIZE: '1.5' }, 'MAX_FILE_SIZE');
    expectRefused({ MAX_FILE_SIZE: '0' }, 'MAX_FILE_SIZE');
    expectRefused({ FILES_PUBLIC: 'maybe' }, 'FILES_PUBLIC');
    expectRefused({ PORT: '99999' }, 'PORT');
    expectRefused({ PORT: 'http' }, 'PORT');
    expectRefused({ ALLOWED_MIME_TYPES: 'image/png,notamime' }, 'ALLOWED_MIME_TYPES');
    expectRefused({ ALLOWED_MIME_TYPES: 'image/png,text/' }, 'ALLOWED_MIME_TYPES');
    expectRefused({ ALLOWED_MIME_TYPES: ',' }, 'ALLOWED_MIME_TYPES');
    expectRefused({ JWT_JWKS_URL: 'not a url' }, 'JWT_JWKS_URL');
    expectRefused({ JWT_PUBLIC_KEY: 'not a pem' }, 'JWT_PUBLIC_KEY');
    expectRefused({ STORAGE: 'ftp' }, 'STORAGE');
    expectRefused({ UPLOAD_EXPIRY_SECONDS: '1h' }, 'UPLOAD_EXPIRY_SECONDS');
    expectRefused({ CORS_ORIGINS: 'notaurl' }, 'CORS_ORIGINS');
    expectRefused({ CORS_ORIGINS: 'https://a.example,http://b.example/path' }, 'CORS_ORIGINS');
    expectRefused({ JWT_JWKS_URL: 'ftp://keys.example/jwks.json' }, 'JWT_JWKS_URL');
    expectRefused({ HOOKS_URL: 'file:///etc/passwd', HOOKS_SECRET: 'a-secret-of-sufficient-length' }, 'HOOKS_URL');
  });

  it('takes CORS_ORIGINS as origins (or *), and exactly one JWT key', () => {
    expect(loadConfig({ CORS_ORIGINS: 'https://a.example:8443, http://127.0.0.1:3000' }).CORS_ORIGINS).to.deep.equal([
      'https://a.example:8443',
      'http://127.0.0.1:3000',
    ]);
    expect(loadConfig({ CORS_ORIGINS: '*' }).CORS_ORIGINS).to.deep.equal(['*']);
    const both = expectRefused({ JWT_SECRET: 'a-secret-of-sufficient-length', JWT_JWKS_URL: 'https://keys.example/jwks.json' }, 'JWT_SECRET');
    expect(both).to.include('JWT_JWKS_URL');
    expect(both).not.to.include('a-secret-of-sufficient-length');
  });

  it('refuses a number written in another notation, rather than guessing what it meant', () => {
    // "0x10" is not sixteen bytes and "1e3" is not a byte count anyone writes on purpose.
    expectRefused({ MAX_FILE_SIZE: '0x10' }, 'MAX_FILE_SIZE');
    expectRefused({ MAX_FILE_SIZE: '1e3' }, 'MAX_FILE_SIZE');
    expectRefused({ PORT: ' ' }, 'PORT');
    expectRefused({ MAX_MEDIA_DURATION_SECONDS: '0x10' }, 'MAX_MEDIA_DURATION_SECONDS');
    expectRefused({ MIN_MEDIA_DURATION_SECONDS: ' ' }, 'MIN_MEDIA_DURATION_SECONDS');
    expect(loadConfig({ MAX_MEDIA_DURATION_SECONDS: '2.5' }).MAX_MEDIA_DURATION_SECONDS).to.equal(2.5);
  });

  it('refuses times longer than a timer can wait (it would fire at once) or a date can hold', () => {
    for (const name of ['SHUTDOWN_GRACE_MS', 'HOOKS_TIMEOUT_MS', 'HOOKS_RETRY_BASE_MS', 'REQUEST_IDLE_TIMEOUT_MS']) {
      expectRefused({ [name]: '3000000000' }, name);
      expect(loadConfig({ [name]: '2147483647' })[name as 'SHUTDOWN_GRACE_MS']).to.equal(2147483647);
    }
    expectRefused({ SWEEP_INTERVAL_SECONDS: '3000000' }, 'SWEEP_INTERVAL_SECONDS');
    expectRefused({ UPLOAD_EXPIRY_SECONDS: '9007199254740991' }, 'UPLOAD_EXPIRY_SECONDS');
    expectRefused({ HOOKS_MAX_AGE_SECONDS: '9007199254740991' }, 'HOOKS_MAX_AGE_SECONDS');
  });

  it('takes REDIS_URL only as a URL ioredis reads as written: a port, a numeric database', () => {
    for (const url of ['redis://127.0.0.1:abc', 'redis://127.0.0.1:99999', 'redis://127.0.0.1:6379/x', 'redis://', 'http://cache:6379']) expectRefused({ REDIS_URL: url }, 'REDIS_URL');
    for (const url of ['redis://127.0.0.1:6379', 'rediss://user:pw@cache.example:6380/2', 'redis://cache/']) expect(loadConfig({ REDIS_URL: url }).REDIS_URL).to.equal(url);
  });

  it('needs S3_BUCKET with STORAGE=s3, and both S3 keys or neither', () => {
    expectRefused({ STORAGE: 's3' }, 'S3_BUCKET');
    expectRefused({ STORAGE: 's3', S3_BUCKET: 'uploads', S3_ENDPOINT: 'not a url' }, 'S3_ENDPOINT');
    const keys = expectRefused({ STORAGE: 's3', S3_BUCKET: 'uploads', S3_ACCESS_KEY_ID: 'AKIA-only' }, 'S3_ACCESS_KEY_ID');
    expect(keys).not.to.include('AKIA-only');
    const config = loadConfig({ STORAGE: 's3', S3_BUCKET: 'uploads', S3_FORCE_PATH_STYLE: 'true' });
    expect(config).to.include({ STORAGE: 's3', S3_BUCKET: 'uploads', S3_REGION: 'us-east-1', S3_FORCE_PATH_STYLE: true });
  });

  it('never echoes a secret in its message', () => {
    const message = expectRefused({ JWT_SECRET: 'too-short-x' }, 'JWT_SECRET');
    expect(message).not.to.include('too-short-x');
    const redis = expectRefused({ REDIS_URL: 'http://user:hunter2secret@cache:6379' }, 'REDIS_URL');
    expect(redis).not.to.include('hunter2secret');
  });

  it('applies explicit overrides after the environment', () => {
    expect(loadConfig({ PORT: '8080' }, { PORT: 9090 }).PORT).to.equal(9090);
  });
});

describe('config: the real process', function () {
  this.timeout(30_000);
  const running: RunningServer[] = [];
  let dataDir: string;
  before(async () => (dataDir = await makeDataDir()));
  after(async () => {
    // Every spawned process is stopped by its PID, bounded.
    await Promise.all(running.map((proc) => proc.stop('SIGKILL', 5000).catch(() => undefined)));
    await fs.rm(dataDir, { recursive: true, force: true });
  });
  const run = (env: Record<string, string>) => {
    const proc = runServer(env);
    running.push(proc);
    return proc;
  };
  const exitCode = (proc: RunningServer, timeoutMs = 15_000) =>
    Promise.race([
      proc.exited,
      new Promise<never>((_resolve, reject) =>
        setTimeout(() => reject(new Error(`no exit within ${timeoutMs} ms\nstdout: ${proc.stdout()}\nstderr: ${proc.stderr()}`)), timeoutMs),
      ),
    ]);
  const stderrLines = (proc: RunningServer) => proc.stderr().split('\n').filter((line) => line.trim() !== '');

  it('stops on MAX_FILE_SIZE=abc with one stderr line naming it', async () => {
    const proc = run({ PORT: String(await freePort()), DATA_DIR: dataDir, JWT_SECRET: 'a-secret-of-sufficient-length', MAX_FILE_SIZE: 'abc' });
    expect(await exitCode(proc)).to.not.equal(0);
    const lines = stderrLines(proc);
    expect(lines, proc.stderr()).to.have.length(1);
    expect(lines[0]).to.include('MAX_FILE_SIZE');
    expect(proc.stdout()).not.to.include('listening');
  });

  it('stops with one line naming the variable when DATA_DIR, HOST or PORT cannot be used', async () => {
    const secret = { JWT_SECRET: 'a-secret-of-sufficient-length' };
    const busy = net.createServer().listen(0, '127.0.0.1');
    await once(busy, 'listening');
    try {
      const cases: Array<[Record<string, string>, RegExp]> = [
        [{ PORT: String(await freePort()), DATA_DIR: '/dev/null/x' }, /DATA_DIR/],
        [{ PORT: String(await freePort()), DATA_DIR: dataDir, HOST: 'not..a..host' }, /HOST=not\.\.a\.\.host/],
        [{ PORT: String((busy.address() as net.AddressInfo).port), HOST: '127.0.0.1', DATA_DIR: dataDir }, /PORT=\d+.*EADDRINUSE/],
      ];
      for (const [env, named] of cases) {
        const proc = run({ ...secret, ...env });
        expect(await exitCode(proc)).to.not.equal(0);
        const lines = stderrLines(proc);
        expect(lines, proc.stderr()).to.have.length(1);
        expect(lines[0]).to.match(named);
        expect(proc.stdout()).not.to.include('listening');
      }
    } finally {
      busy.close();
    }
  });

  it('stops with one line naming REDIS_URL when Redis cannot be reached, or has no such database', async () => {
    const secret = { JWT_SECRET: 'a-secret-of-sufficient-length' };
    const redis = await startRedis();
    try {
      const cases: Array<[string, RegExp]> = [
        [`redis://127.0.0.1:${await freePort()}`, /^tusgate: REDIS_URL: Redis at 127\.0\.0\.1:\d+ cannot be used/],
        [`${redis.url}/99`, /^tusgate: REDIS_URL: .*database 99.*out of range/],
      ];
      for (const [url, named] of cases) {
        const proc = run({ ...secret, PORT: String(await freePort()), DATA_DIR: dataDir, REDIS_URL: url });
        expect(await exitCode(proc)).to.not.equal(0);
        const lines = stderrLines(proc);
        expect(lines, proc.stderr()).to.have.length(1);
        expect(lines[0]).to.match(named);
      }
    } finally {
      await redis.stop();
    }
  });

  it('stops on a PEM that is not a usable key with one line naming JWT_PUBLIC_KEY', async () => {
    const proc = run({
      PORT: String(await freePort()),
      DATA_DIR: dataDir,
      JWT_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n',
    });
    expect(await exitCode(proc)).to.not.equal(0);
    const lines = stderrLines(proc);
    expect(lines, proc.stderr()).to.have.length(1);
    expect(lines[0]).to.include('JWT_PUBLIC_KEY');
  });

  it('stops on an unsupported key type (P-384) with one line naming JWT_PUBLIC_KEY', async () => {
    const { publicKey } = await generateKeyPair('ES384', { extractable: true });
    const proc = run({ PORT: String(await freePort()), DATA_DIR: dataDir, JWT_PUBLIC_KEY: await exportSPKI(publicKey) });
    expect(await exitCode(proc)).to.not.equal(0);
    const lines = stderrLines(proc);
    expect(lines, proc.stderr()).to.have.length(1);
    expect(lines[0]).to.include('JWT_PUBLIC_KEY');
  });

  it('`npm start` passes SIGTERM on to the server, which stops cleanly (as a container runtime stops it)', async () => {
    const port = await freePort();
    const proc = runServer({ PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, JWT_SECRET: 'a-secret-of-sufficient-length' }, ['start'], 'npm');
    const signal = (pid: number, name: NodeJS.Signals | 0) => {
      try {
        process.kill(pid, name);
        return true;
      } catch {
        return false;
      }
    };
    let serverPid = 0;
    try {
      await proc.waitForStdout(/tusgate listening/, 30_000);
      // The process that listens is npm's child (the shell execs it): npm's signal must reach it.
      serverPid = Number(execFileSync('pgrep', ['-P', String(proc.child.pid)], { encoding: 'utf8' }).trim().split('\n')[0]);
      expect(await proc.stop('SIGTERM', 20_000)).to.equal(0);
      expect(proc.stdout() + proc.stderr()).to.include('shutting down');
      expect(signal(serverPid, 0), 'the server process outlived npm').to.equal(false);
      const after = await request(`http://127.0.0.1:${port}/health`).catch((error: NodeJS.ErrnoException) => error.code);
      expect(after).to.equal('ECONNREFUSED');
    } finally {
      // A server left behind by a failed run is stopped by its PID.
      if (serverPid) signal(serverPid, 'SIGKILL');
      await proc.stop('SIGKILL', 5000).catch(() => undefined);
    }
  });

  it('refuses to start in production without a key, with one clear line', async () => {
    const proc = run({ PORT: String(await freePort()), DATA_DIR: dataDir, NODE_ENV: 'production' });
    expect(await exitCode(proc)).to.not.equal(0);
    const lines = stderrLines(proc);
    expect(lines, proc.stderr()).to.have.length(1);
    expect(lines[0]).to.match(/JWT_SECRET|JWT_PUBLIC_KEY|JWT_JWKS_URL/);
    expect(lines[0]).to.match(/production/);
    expect(proc.stdout()).not.to.include('listening');
  });

  describe('development mode (no key, NODE_ENV unset)', () => {
    let proc: RunningServer;
    let url: string;
    let token: string;
    before(async () => {
      const port = await freePort();
      url = `http://127.0.0.1:${port}`;
      proc = run({ PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
      const match = await proc.waitForStdout(/token for user "([^"]+)"[^\n]*\n(\S+)\n/, 20_000);
      token = match[2]!;
    });

    it('prints a token that works on POST /files/', async () => {
      expect(token.split('.')).to.have.length(3);
      const client = tus(url, token);
      const created = await client.create(TEXT.length, { filetype: 'text/plain', filename: 'dev.txt' });
      expect(created.status, created.text).to.equal(201);
      const location = new URL(created.headers.location!, url).href;
      expect((await client.patch(location, 0, TEXT)).status).to.equal(204);
      const got = await request(location);
      expect(got.status).to.equal(200);
      expect(got.body.equals(TEXT)).to.equal(true);
    });

    it('serves a token signed when asked at GET /demo/token, not cached: a page open for days gets a valid one', async () => {
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const response = await request(`${url}/demo/token`);
      expect(response.status).to.equal(200);
      expect(response.headers['cache-control']).to.include('no-store');
      const served = (JSON.parse(response.text) as { token: string }).token;
      const claims = JSON.parse(Buffer.from(served.split('.')[1]!, 'base64url').toString()) as { sub: string; exp: number };
      const printed = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { sub: string; exp: number };
      expect(claims.sub).to.equal(printed.sub);
      // A day from now, not from the server's start.
      expect(claims.exp).to.be.greaterThan(printed.exp);
      expect(claims.exp).to.be.within(Date.now() / 1000 + 86_400 - 60, Date.now() / 1000 + 86_400 + 1);
      expect((await tus(url, served).create(TEXT.length)).status).to.equal(201);
    });

    it('still refuses tokens it did not sign', async () => {
      const forged = `${token.split('.').slice(0, 2).join('.')}.${'A'.repeat(43)}`;
      const response = await tus(url, forged).create(TEXT.length);
      expect(response.status).to.equal(401);
    });

    it('exits 0 on SIGTERM', async () => {
      expect(await proc.stop('SIGTERM', 15_000)).to.equal(0);
    });

    it('keeps its secret in DATA_DIR, owner-only: a token from before a restart still works after it', async () => {
      const file = path.join(dataDir, 'dev-secret');
      expect((await fs.stat(file)).mode & 0o077).to.equal(0);
      const port = await freePort();
      const again = run({ PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
      try {
        await again.waitForStdout(/token for user/, 20_000);
        const created = await tus(`http://127.0.0.1:${port}`, token).create(TEXT.length);
        expect(created.status, created.text).to.equal(201);
      } finally {
        await again.stop('SIGTERM', 15_000);
      }
    });
  });

  it('serves no /demo/token when a key is configured', async () => {
    const port = await freePort();
    const proc = run({ PORT: String(port), DATA_DIR: dataDir, JWT_SECRET: 'a-secret-of-sufficient-length', LOG_LEVEL: 'warn' });
    await proc.waitForStdout(/tusgate listening/, 20_000);
    expect(proc.stdout()).not.to.include('token for user');
    expect((await request(`http://127.0.0.1:${port}/demo/token`)).status).to.equal(404);
    expect(await proc.stop('SIGTERM', 15_000)).to.equal(0);
  });
});

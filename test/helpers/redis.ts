import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './process.js';

export interface RedisServer {
  url: string;
  port: number;
  pid: number;
  dir: string;
  /** Stops the server by its PID; its directory (and data, if persisted) is removed unless `keepData`. */
  stop(options?: { keepData?: boolean }): Promise<void>;
}

export interface RedisOptions {
  /** Default: a free port. Give the port of a stopped server to start it again at the same URL. */
  port?: number;
  /** Default: a new temporary directory. */
  dir?: string;
  /** Persist every write (append-only file), so a restart in the same `dir` keeps the data. */
  appendOnly?: boolean;
  timeoutMs?: number;
}

/** The redis-server binary on PATH or Debian's default place; undefined if it is not installed. */
export function findRedisServer(): string | undefined {
  const onPath = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim();
  if (onPath) return onPath;
  return existsSync('/usr/bin/redis-server') ? '/usr/bin/redis-server' : undefined;
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setTimeout(500);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().startsWith('+PONG'));
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/**
 * Starts a throw-away redis-server on a free loopback port: no persistence, its own directory and
 * pidfile, in the foreground so it is stopped by its PID. Fails with one clear line if the binary is
 * missing (CI installs it with apt; see .ci/run).
 */
export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const { timeoutMs = 10_000, appendOnly = false } = options;
  const binary = findRedisServer();
  if (!binary) throw new Error('redis-server is not installed (apt-get install -y redis-server); the Redis tests need it');
  const port = options.port ?? (await freePort());
  const dir = options.dir ?? mkdtempSync(path.join(os.tmpdir(), 'tusgate-redis-'));
  const pidfile = path.join(dir, 'redis.pid');
  const child: ChildProcess = spawn(
    binary,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', appendOnly ? 'yes' : 'no',
      '--appendfsync', 'always', '--daemonize', 'no', '--pidfile', pidfile, '--dir', dir, '--logfile', ''],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const started = Date.now();
  while (!(await ping(port))) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`redis-server exited early:\n${output}`);
    if (Date.now() - started > timeoutMs) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not answer within ${timeoutMs} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  // In the foreground the server is our child itself (the pidfile holds the same PID); stop exactly it.
  const pid = child.pid!;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid,
    dir,
    async stop({ keepData = false } = {}) {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(pid, 'SIGTERM');
        const killer = setTimeout(() => process.kill(pid, 'SIGKILL'), 5_000);
        await exited;
        clearTimeout(killer);
      }
      if (!keepData) rmSync(dir, { recursive: true, force: true });
    },
  };
}

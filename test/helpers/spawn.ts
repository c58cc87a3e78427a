import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, killAtExit } from './process.js';

export { freePort };

// Spawns the real server process for start-up tests. Unlike helpers/process.ts (spawnServer), this
// keeps stdout and stderr apart, sets no key and does not wait for the server to listen, so that
// refusals to start and development mode can be observed.

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The parent's environment without anything that configures tusgate (so only `env` does). */
const TUSGATE_VARIABLES = /^(PORT|HOST|DATA_DIR|JWT_.*|MAX_.*|MIN_.*|ALLOWED_MIME_TYPES|UPLOAD.*|SWEEP_.*|FILES_PUBLIC|CORS_ORIGINS|STORAGE|S3_.*|REDIS_URL|HOOKS_.*|ADMIN_USERS|LOG_LEVEL|NODE_ENV|SHUTDOWN_GRACE_MS|REQUEST_IDLE_TIMEOUT_MS)$/;

export interface RunningServer {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal's name) once the process has exited. */
  exited: Promise<number | string>;
  /** Waits until stdout matches `pattern`, or rejects after `timeoutMs` (or when the process exits). */
  waitForStdout(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Sends `signal` to this process (by its PID) and waits, bounded, for it to exit. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | string>;
}

/**
 * Runs `node --import tsx server/main.ts` as `npm start` does (or node with other `args`: a built
 * bundle, or another `command` such as npm itself), with a clean tusgate environment.
 */
export function runServer(env: Record<string, string>, args = ['--import', 'tsx', 'server/main.ts'], command = process.execPath): RunningServer {
  const base: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!TUSGATE_VARIABLES.test(name)) base[name] = value;
  const child = spawn(command, args, {
    cwd: REPO_ROOT,
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  killAtExit(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
  let done = false;
  void exited.then(() => (done = true));

  const withTimeout = <T>(promise: Promise<T>, timeoutMs: number, what: string) =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\nstdout: ${out}\nstderr: ${err}`)),
        timeoutMs,
      );
      promise.then(
        (value) => (clearTimeout(timer), resolve(value)),
        (error: unknown) => (clearTimeout(timer), reject(error)),
      );
    });

  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitForStdout(pattern, timeoutMs = 15_000) {
      const found = new Promise<RegExpMatchArray>((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(out);
          if (match) {
            child.stdout!.off('data', check);
            resolve(match);
          } else if (done) {
            reject(new Error(`process exited before printing ${pattern}\nstdout: ${out}\nstderr: ${err}`));
          }
        };
        child.stdout!.on('data', check);
        void exited.then(() => setImmediate(check));
        check();
      });
      return withTimeout(found, timeoutMs, `${pattern} on stdout`);
    },
    async stop(signal = 'SIGTERM', timeoutMs = 15_000) {
      if (!done && child.pid !== undefined) {
        try {
          process.kill(child.pid, signal);
        } catch {
          // already gone
        }
      }
      try {
        return await withTimeout(exited, timeoutMs, `exit after ${signal}`);
      } catch (error) {
        if (child.pid !== undefined && !done) process.kill(child.pid, 'SIGKILL');
        throw error;
      }
    },
  };
}

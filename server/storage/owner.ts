import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../config.js';

const HOST = os.hostname();
/** How often the owner touches its mark, and how long after the last touch a mark counts as left behind. */
const HEARTBEAT_MS = 10_000;
const STALE_MS = 3 * HEARTBEAT_MS;

/** Whether a process with this pid runs on this host (one that may not be signalled counts as running). */
export function processRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

const readMark = (file: string) =>
  fs.readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });

/**
 * Marks `directory` as this process's: its journals are written at positions only their one writer
 * knows, so a second process on the same directory (without REDIS_URL) would overwrite them. The mark
 * names host, pid and a token of this run, and is touched every 10 s. A start is refused while a
 * mark is fresh and names another running process of this host. A mark is taken over when it is
 * stale (its process died, whatever now has its pid), of another host (which cannot be checked from
 * here; a container recreated under a new host name must start), or names this pid (an earlier run
 * of a container's pid 1). An owner that finds its mark taken over says so with a process warning.
 * Returns the release, which stops the touching and removes the mark if it is still this run's.
 */
export async function claimDirectory(directory: string): Promise<() => Promise<void>> {
  const file = path.join(directory, 'owner');
  const token = randomBytes(8).toString('hex');
  const mark = `${HOST} ${process.pid} ${token}\n`;
  await fs.mkdir(directory, { recursive: true });
  // The mark is written whole under another name, then linked into place: two processes starting at
  // once cannot both create it, and neither can read a half-written one.
  const written = path.join(directory, `owner.${token}`);
  await fs.writeFile(written, mark);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await fs.link(written, file);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw error;
      }
      const [held, stat] = await Promise.all([readMark(file), fs.stat(file).catch(() => undefined)]);
      const [host, pidText] = (held ?? '').trim().split(' ');
      const pid = Number(pidText);
      const fresh = stat !== undefined && Date.now() - stat.mtimeMs < STALE_MS;
      if (fresh && host === HOST && Number.isInteger(pid) && pid !== process.pid && processRunning(pid)) {
        throw new ConfigError(`DATA_DIR ${directory} is in use by process ${pid} of this host; several processes on one directory need REDIS_URL`);
      }
      await fs.rm(file, { force: true });
    }
  } finally {
    await fs.rm(written, { force: true });
  }
  const ours = async () => (await readMark(file)) === mark;
  let warned = false;
  const heartbeat = setInterval(() => {
    void ours()
      .then(async (still) => {
        if (still) {
          const now = new Date();
          await fs.utimes(file, now, now);
        } else if (!warned) {
          warned = true;
          process.emitWarning(`DATA_DIR ${directory} was taken over by another process; its journals are no longer this process's alone`);
        }
      })
      .catch(() => undefined);
  }, HEARTBEAT_MS);
  heartbeat.unref();
  return async () => {
    clearInterval(heartbeat);
    if (await ours().catch(() => false)) await fs.rm(file, { force: true });
  };
}

const SHARED_MARK = 'shared-state';

/**
 * Notes in `directory` that its uploads' state lives in Redis (processes with REDIS_URL share it),
 * so that a process started on it without REDIS_URL refuses instead of serving none of them.
 */
export async function markSharedState(directory: string): Promise<void> {
  await fs.mkdir(directory, { recursive: true });
  await fs.writeFile(path.join(directory, SHARED_MARK), 'redis\n');
}

export async function refuseIfShared(directory: string): Promise<void> {
  if ((await readMark(path.join(directory, SHARED_MARK))) === undefined) return;
  throw new ConfigError(
    `DATA_DIR ${directory} holds uploads whose state is in Redis: start with REDIS_URL, or remove ${path.join(directory, SHARED_MARK)} to use the directory without it`,
  );
}

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const HOST = os.hostname();

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Marks `directory` as this process's: its journals are written at positions only their one writer
 * knows, so a second process of this host on the same directory (without REDIS_URL) would overwrite
 * them. That one is refused at start-up. An owner of another host cannot be checked from here and
 * is taken over (a container recreated under a new host name must start); so is one whose pid is
 * not running or is this process's own (an earlier run of a container's pid 1).
 * Returns the release, which removes the mark if it is still this process's.
 */
export async function claimDirectory(directory: string): Promise<() => Promise<void>> {
  const file = path.join(directory, 'owner');
  const mark = `${HOST} ${process.pid}\n`;
  await fs.mkdir(directory, { recursive: true });
  const held = await fs.readFile(file, 'utf8').catch(() => '');
  const [host, pidText] = held.trim().split(' ');
  const pid = Number(pidText);
  if (host === HOST && Number.isInteger(pid) && pid !== process.pid && running(pid)) {
    throw new Error(
      `DATA_DIR ${directory} is in use by process ${pid} of this host; several processes on one directory need REDIS_URL`,
    );
  }
  await fs.writeFile(file, mark);
  return async () => {
    if ((await fs.readFile(file, 'utf8').catch(() => '')) === mark) await fs.rm(file, { force: true });
  };
}
